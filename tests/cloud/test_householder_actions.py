"""What a householder does, not just reads: accept or dismiss a nudge, export use and cost."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal

from cloud import deps
from protocols.uplink import UplinkBatch
from tests.cloud.test_api import DAY, cloud, post, reading  # noqa: F401  (the fixture, on both backends)


def two_hours(client, secrets) -> None:
    readings = [reading(DAY + i * 60, 1000 + i * 10, power_w=600) for i in range(121)]  # 600 W for two hours
    assert post(client, secrets["hub"], UplinkBatch(hub_id="hub-demo", seq=1, readings=readings)).status_code == 200


def test_accepting_and_dismissing_nudges(cloud):  # noqa: F811
    client, secrets = cloud
    two_hours(client, secrets)
    auth = {"Authorization": f"Bearer {secrets['key']}"}
    nudges = client.get("/api/v1/household/coach", headers=auth).json()["nudges"]
    always_on = next(n for n in nudges if n["kind"] == "always_on")
    assert always_on["status"] == "open" and len(always_on["id"]) == 16

    resp = client.post(f"/api/v1/household/nudges/{always_on['id']}", json={"decision": "accept"}, headers=auth)
    assert resp.status_code == 200
    again = {n["id"]: n for n in client.get("/api/v1/household/coach", headers=auth).json()["nudges"]}
    assert again[always_on["id"]]["status"] == "accepted"

    # the other household cannot decide for this one: the nudge is not theirs
    other = {"Authorization": f"Bearer {secrets['other_key']}"}
    assert client.post(f"/api/v1/household/nudges/{always_on['id']}", json={"decision": "dismiss"},
                       headers=other).status_code == 404
    # signed in on the page (a session cookie, not the key), a change needs the page's CSRF token
    page = client.get("/login", params={"key": secrets["key"]})
    assert secrets["key"] not in client.cookies.get(deps.SESSION_COOKIE)
    csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    url = f"/api/v1/household/nudges/{always_on['id']}"
    assert client.post(url, json={"decision": "dismiss"}).status_code == 403
    assert client.post(url, json={"decision": "dismiss"}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.post(url, json={"decision": "dismiss"}, headers={"X-CSRF-Token": csrf}).status_code == 200
    # signing out ends the session on the server: the old cookie opens nothing
    old = client.cookies.get(deps.SESSION_COOKIE)
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 403
    client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    client.cookies.clear()
    assert client.get("/api/v1/household/summary", cookies={deps.SESSION_COOKIE: old}).status_code == 401
    client.cookies.clear()
    left = client.get("/api/v1/household/coach", headers=auth).json()["nudges"]
    assert always_on["id"] not in {n["id"] for n in left}
    assert client.post("/api/v1/household/nudges/ffffffffffffffff", json={"decision": "accept"},
                       headers=auth).status_code == 404


def test_the_cost_export_adds_up_to_todays_cost(cloud):  # noqa: F811
    client, secrets = cloud
    two_hours(client, secrets)
    auth = {"Authorization": f"Bearer {secrets['key']}"}
    resp = client.get("/api/v1/household/export/costs.csv", headers=auth)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert len(rows) == 5 and all(r["band"] for r in rows)  # 00:00 to 02:00 inclusive: five half-hours
    energy = sum(Decimal(r["kwh"]) for r in rows)
    today = client.get("/api/v1/household/summary", headers=auth).json()["today"]
    assert energy * 1000 == today["energy_wh"]
    standing = Decimal("0.6010")  # the demo tariff's daily standing charge
    cost = (sum(Decimal(r["cost_GBP"]) for r in rows) + standing).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert str(cost) == today["cost"]
    readings = client.get("/api/v1/household/export/readings.csv", headers=auth).text.splitlines()
    assert len(readings) == 1 + 121 and readings[0].startswith("ts,utc,meter_id")


def test_history_with_the_tariffs_bands(cloud):  # noqa: F811
    from dataclasses import replace

    from cloud.bootstrap import DEMO_HOUSEHOLD
    from tests.cloud.test_coach import e7

    client, secrets = cloud
    store = client.app.state.storage
    client.portal.call(store.upsert_household, replace(DEMO_HOUSEHOLD, tariff_json=e7().model_dump_json()))
    readings = [reading(DAY + i * 1800, 1000 + i * 500) for i in range(48 * 3)]  # three days, 1 kWh an hour
    assert post(client, secrets["hub"], UplinkBatch(hub_id="hub-demo", seq=1, readings=readings)).status_code == 200
    auth = {"Authorization": f"Bearer {secrets['key']}"}

    day = client.get("/api/v1/household/history", params={"span": "day"}, headers=auth).json()
    assert day["resolution_s"] == 1800 and len(day["bars"]) == 48 and {b["kwh"] for b in day["bars"]} == {"0.500"}
    night = [b for b in day["bands"] if b["band"] == "Night"]
    assert [(b["level"], b["rate"], b["end"] - b["start"]) for b in night] == [("cheap", "0.09", 7 * 3600)]
    assert {b["band"] for b in day["bands"]} == {"Night", "Day"}

    week = client.get("/api/v1/household/history", params={"span": "week"}, headers=auth).json()
    assert len([b for b in week["bands"] if b["level"] == "cheap"]) == 7 and len(week["bars"]) == 48 * 3
    assert week["bars"][0]["kwh"] == "0.000"  # the first reading ever is the base: nothing before it to subtract
    month = client.get("/api/v1/household/history", params={"span": "month"}, headers=auth).json()
    assert month["resolution_s"] == 86400 and [b["kwh"] for b in month["bars"]] == ["23.500", "24.000", "24.000"]
    assert client.get("/api/v1/household/history", params={"span": "year"}, headers=auth).status_code == 422


def test_a_new_homes_floor_and_projection_come_from_the_half_hours_seen_whole(cloud):  # noqa: F811
    """A hub that joined at 00:10 and was last heard at 02:20, the home at a steady 600 W: the first half-hour holds
    20 minutes and the one in progress 20, so neither may stand for a half-hour (the floor read 420 W from the
    second, and the projection took both as typical of their slots)."""
    client, secrets = cloud
    readings = [reading(DAY + 600 + i * 60, 1000 + i * 10, power_w=600) for i in range(131)]  # 00:10 to 02:20
    assert post(client, secrets["hub"], UplinkBatch(hub_id="hub-demo", seq=1, readings=readings)).status_code == 200
    report = client.get("/api/v1/household/coach", headers={"Authorization": f"Bearer {secrets['key']}"}).json()
    floor = next(n for n in report["nudges"] if n["kind"] == "always_on")
    # 600 W all year at the demo's 24.50p: 600 x 8.76 kWh x 0.245
    assert "about 600 W" in floor["message"] and floor["saving"] == "1287.72", floor
    p = report["preview"]
    # every slot still to come (from 02:30 to the period's end, London being on UTC in winter) at 0.3 kWh
    end = int(datetime.combine(date.fromisoformat(p["period_end"]), time(), UTC).timestamp())
    slots = (end - (DAY + 9000)) // 1800
    assert Decimal(p["projected_kwh"]) == Decimal(p["so_far_kwh"]) + Decimal("0.3") * slots, p


def test_a_wash_sent_in_pieces_is_one_wash_on_the_bill(cloud):  # noqa: F811
    """The hub sends a wash as six pieces (its calls dip under the on line as the drum pauses); the householder's
    table of where this bill's energy went says one run of 1.2 kWh, not six."""
    import json

    from tests.cloud.test_coach import wash_in_pieces

    client, secrets = cloud
    readings = [reading(DAY + i * 60, 1000 + i * 10, power_w=600) for i in range(121)]
    pieces = wash_in_pieces(datetime.fromtimestamp(DAY + 1800, UTC), (120, 300, 180, 120, 240))
    body = UplinkBatch(hub_id="hub-demo", seq=1, readings=readings).model_dump() | {
        "runs": [p.model_dump() for p in pieces]}
    resp = client.post("/api/v1/hub/batches", content=json.dumps(body),
                       headers={"Authorization": f"Bearer {secrets['hub']}"})
    assert resp.status_code == 200, resp.text
    report = client.get("/api/v1/household/coach", headers={"Authorization": f"Bearer {secrets['key']}"}).json()
    assert [(a["appliance"], a["runs"], a["kwh"]) for a in report["appliances"]] == [("washing_machine", 1, "1.20")]


def test_a_wash_is_nudged_once_and_whole_though_its_pieces_come_in_two_batches(cloud):  # noqa: F811
    """On Economy 7, a wash at 09:10 sent as the hub settles it: three pieces first, with half hours settled to 09:30
    (the wash may go on), then the other three with half hours to 10:30. No nudge is told of the first three (12p of
    advice on 0.6 kWh), though the hub has settled its plugged kettle to 13:00 by then (a plug's watts are settled
    at once); once the wash is whole, one nudge of 1.2 kWh and 25p, and one notification of it."""
    import json
    from dataclasses import replace

    from cloud.bootstrap import DEMO_HOUSEHOLD
    from tests.cloud.test_coach import e7, wash_in_pieces

    client, secrets = cloud
    client.portal.call(client.app.state.storage.upsert_household,
                       replace(DEMO_HOUSEHOLD, tariff_json=e7().model_dump_json()))
    auth = {"Authorization": f"Bearer {secrets['key']}"}
    pieces = wash_in_pieces(datetime.fromtimestamp(DAY + 9 * 3600 + 600, UTC), (120, 300, 180, 120, 240))
    readings = [reading(DAY + i * 60, 1000 + i * 10, power_w=600) for i in range(14 * 60)]

    def send(seq: int, runs: list, settled_to_h: float) -> dict:
        energy = [{"appliance": "washing_machine", "start": DAY + 1800 * i, "energy_wh": 0.0}
                  for i in range(int(settled_to_h * 2))]
        energy += [{"appliance": "kettle", "start": DAY + 1800 * i, "energy_wh": 0.0} for i in range(26)]  # to 13:00
        body = UplinkBatch(hub_id="hub-demo", seq=seq, readings=readings if seq == 1 else []).model_dump() | {
            "runs": [p.model_dump() for p in runs], "energy": energy}
        resp = client.post("/api/v1/hub/batches", content=json.dumps(body),
                           headers={"Authorization": f"Bearer {secrets['hub']}"})
        assert resp.status_code == 200, resp.text
        return client.get("/api/v1/household/coach", headers=auth).json()

    first = send(1, pieces[:3], 9.5)
    assert [n for n in first["nudges"] if n["kind"] == "shift"] == []
    later = send(2, pieces[3:], 10.5)
    [shift] = [n for n in later["nudges"] if n["kind"] == "shift"]
    assert shift["saving"] == "0.25" and "ran at 09:10 and used 1.2 kWh" in shift["message"], shift
    told = [n for n in client.get("/api/v1/household/notifications", headers=auth).json()
            if n["kind"] == "nudge" and "washing machine" in n["message"]]
    assert len(told) == 1 and "1.2 kWh" in told[0]["message"], told
