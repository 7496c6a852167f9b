"""What a householder does, not just reads: accept or dismiss a nudge, export use and cost."""

from __future__ import annotations

import csv
import io
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
    # by cookie (the page), a change needs the CSRF token
    client.cookies.set(deps.SESSION_COOKIE, secrets["key"])
    url = f"/api/v1/household/nudges/{always_on['id']}"
    assert client.post(url, json={"decision": "dismiss"}).status_code == 403
    assert client.post(url, json={"decision": "dismiss"},
                       headers={"X-CSRF-Token": deps.csrf_token(secrets["key"])}).status_code == 200
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
