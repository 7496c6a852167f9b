"""The cloud's API and pages: who may write and read, dedup of retries, today's figures."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud.app import create_app
from cloud.auth import Principal, Role, hash_secret, new_secret
from cloud.bootstrap import DEMO_HOUSEHOLD
from cloud.settings import CloudSettings
from cloud.storage.base import Household
from protocols.display import DisplayState, Face
from protocols.uplink import ReadingV1, UplinkBatch

DAY = 1_764_028_800  # 2025-11-25 00:00 Europe/London (UTC in winter)


async def create_database(postgres) -> str:
    """A new, empty database in the session's PostgreSQL, so every test starts clean."""
    import uuid

    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    con = await asyncpg.connect(postgres.url)
    await con.execute(f"CREATE DATABASE {name}")
    await con.close()
    return postgres.url.rsplit("/", 1)[0] + f"/{name}"


def fresh_database(postgres) -> str:
    import asyncio

    return asyncio.run(create_database(postgres))


def demo_settings(request, tmp_path: Path, **extra: Any) -> tuple[CloudSettings, dict[str, str]]:
    """The demo household's cloud, on PostgreSQL when the test is parametrised with "postgres";
    its hub credential and householder key as ``secrets["hub"]`` and ``secrets["key"]``."""
    secrets = {"hub": new_secret(), "key": new_secret()}
    (tmp_path / "hub").write_text(secrets["hub"])
    (tmp_path / "key").write_text(secrets["key"])
    postgres = getattr(request, "param", "sqlite") == "postgres"
    database = fresh_database(request.getfixturevalue("postgres")) if postgres else None
    return CloudSettings(data_dir=tmp_path / "cloud", bootstrap_demo=True, demo_hub_token_file=tmp_path / "hub",
                         demo_householder_key_file=tmp_path / "key", database_url=database, **extra), secrets


@pytest.fixture(params=["sqlite", "postgres"])
def cloud(request, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The cloud app on each storage backend: the same tests hold for SQLite and PostgreSQL."""
    settings, secrets = demo_settings(request, tmp_path)
    secrets |= {"other_hub": new_secret(), "other_key": new_secret()}
    app = create_app(settings)
    with TestClient(app) as client:
        store = app.state.storage
        other = Household("hh-other", "Other", "100000002", "M1 1AA", "Europe/London", DEMO_HOUSEHOLD.tariff_json)

        async def add_other() -> None:
            await store.upsert_household(other)
            await store.upsert_hub("hub-other", other.id)
            await store.add_credential(hash_secret(secrets["other_hub"]), Principal(Role.HUB, "hub-other", other.id))
            await store.add_credential(hash_secret(secrets["other_key"]),
                                       Principal(Role.HOUSEHOLDER, other.id, other.id))
        assert client.portal is not None  # set inside `with TestClient(...)`
        client.portal.call(add_other)
        yield client, secrets


def reading(ts: int, import_wh: int, power_w: int = 500) -> ReadingV1:
    return ReadingV1(ts=ts, meter_id="E1", import_t1_wh=import_wh, import_t2_wh=1_000_000, export_t1_wh=0,
                     export_t2_wh=0, power_import_w=power_w, power_export_w=0)


def post(client: TestClient, token: str, batch: UplinkBatch):
    return client.post("/api/v1/hub/batches", content=batch.model_dump_json(),
                       headers={"Authorization": f"Bearer {token}"})


def test_batch_needs_a_hub_credential(cloud):
    client, secrets = cloud
    batch = UplinkBatch(hub_id="hub-demo", seq=1, readings=[reading(DAY, 1)])
    assert post(client, "nonsense-token", batch).status_code == 401
    resp = post(client, secrets["key"], batch)  # a householder key is not a hub credential
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_a_hub_cannot_write_for_another_hub(cloud):
    client, secrets = cloud
    resp = post(client, secrets["other_hub"], UplinkBatch(hub_id="hub-demo", seq=1, readings=[reading(DAY, 1)]))
    assert resp.status_code == 403
    assert "hub-other" in resp.json()["detail"]


def test_retry_after_lost_ack_stores_nothing_twice(cloud):
    client, secrets = cloud
    batch = UplinkBatch(hub_id="hub-demo", seq=1, readings=[reading(DAY + i, 1000 + i) for i in range(10)])
    first = post(client, secrets["hub"], batch).json()
    assert first["stored"] == 10 and not first["replayed"]
    again = post(client, secrets["hub"], batch).json()
    assert again["stored"] == 0 and again["replayed"]
    # the same readings in a new batch (a hub that lost its outbox state) are still not duplicated
    overlap = UplinkBatch(hub_id="hub-demo", seq=2, readings=[reading(DAY + i, 1000 + i) for i in range(5, 15)])
    third = post(client, secrets["hub"], overlap).json()
    assert third["stored"] == 5 and third["duplicates"] == 5
    rows = client.get("/api/v1/household/readings", headers={"Authorization": f"Bearer {secrets['key']}"}).json()
    assert [r["ts"] for r in rows] == [DAY + i for i in range(15)]


def test_a_bad_item_is_named_and_the_good_ones_around_it_are_kept(cloud):
    client, secrets = cloud
    good = [reading(DAY + i, 1000 + i).model_dump() for i in range(3)]
    body = {"hub_id": "hub-demo", "seq": 1, "readings": [good[0], {"ts": "soon", "meter_id": "E1"}, good[1],
                                                          dict(good[2], power_import_w=5_000_000)]}
    resp = client.post("/api/v1/hub/batches", content=json.dumps(body),
                       headers={"Authorization": f"Bearer {secrets['hub']}"})
    assert resp.status_code == 200
    ack = resp.json()
    assert ack["stored"] == 2
    problems = {p["instance"]: p for p in ack["rejected"]}
    assert problems["#/readings/1"]["reason"] == "invalid_reading" and "ts" in problems["#/readings/1"]["detail"]
    assert problems["#/readings/3"]["reason"] == "absurd_value"
    assert all(p["status"] == 422 and p["type"].startswith("https://") for p in ack["rejected"])
    bad_json = client.post("/api/v1/hub/batches", content=b"{not json",
                           headers={"Authorization": f"Bearer {secrets['hub']}"})
    assert bad_json.status_code == 422 and bad_json.headers["content-type"].startswith("application/problem+json")


def test_ingest_rules_timestamps_registers_replacement_rollover(cloud):
    client, secrets = cloud
    auth = {"Authorization": f"Bearer {secrets['hub']}"}

    def send(seq: int, *readings: dict) -> dict:
        body = {"hub_id": "hub-demo", "seq": seq, "readings": list(readings)}
        return client.post("/api/v1/hub/batches", content=json.dumps(body), headers=auth).json()

    base = reading(DAY, 500_000).model_dump()
    assert send(1, base)["stored"] == 1
    future = dict(base, ts=int(time.time()) + 3 * 86400)
    backwards = dict(base, ts=DAY + 10, import_t1_wh=400_000)
    old = dict(base, ts=100)
    nan = dict(base, ts=DAY + 20, voltage_l1_v="NaN")
    ack = send(2, future, backwards, old, nan)
    assert ack["stored"] == 0
    assert sorted(p["reason"] for p in ack["rejected"]) == ["future_timestamp", "negative_delta", "not_finite",
                                                             "past_timestamp"]
    replaced = dict(base, ts=DAY + 30, meter_id="E2-new", import_t1_wh=0, import_t2_wh=0)
    assert send(3, replaced)["stored"] == 1  # a new meter starts again from zero: kept
    near_wrap = dict(replaced, ts=DAY + 40, import_t1_wh=999_999_000)
    wrapped = dict(replaced, ts=DAY + 50, import_t1_wh=1_500)
    assert send(4, near_wrap, wrapped)["stored"] == 2  # a register rollover is kept
    metrics = client.get("/metrics").text
    assert 'ohmni_readings_rejected_total{reason="negative_delta"} 1.0' in metrics
    assert 'ohmni_meter_events_total{event="register_rollover"} 1.0' in metrics
    assert 'ohmni_meter_events_total{event="meter_replaced"} 1.0' in metrics
    assert "ohmni_readings_stored_total 4.0" in metrics


def test_numbers_no_storage_can_hold_are_refused_by_item(cloud):
    """A register of 2**63 Wh, a run starting in year 292 billion, a sequence number past 64 bits: each is refused as
    the item it is (SQLite and PostgreSQL hold 64-bit integers; before, the whole batch was a 500), and the good
    reading beside it is stored."""
    client, secrets = cloud
    hub = {"Authorization": f"Bearer {secrets['hub']}"}
    good = reading(DAY, 1).model_dump()
    huge = dict(good, ts=DAY + 10, import_t1_wh=2**63 + 5)
    body = {"schema_version": 1, "hub_id": "hub-demo", "seq": 1, "readings": [good, huge]}
    ack = client.post("/api/v1/hub/batches", content=json.dumps(body), headers=hub)
    assert ack.status_code == 200, ack.text
    assert ack.json()["stored"] == 1
    [refused] = ack.json()["rejected"]
    assert refused["reason"] == "invalid_reading" and "import_t1_wh" in refused["detail"]
    for field, value in (("seq", 2**64), ("runs", [{"appliance": "kettle", "start": 2**62, "end": 2**62 + 60,
                                                     "energy_wh": 1, "peak_w": 1}])):
        resp = client.post("/api/v1/hub/batches", content=json.dumps({**body, "seq": 2, field: value}), headers=hub)
        assert resp.status_code == 422 and field in resp.text, (field, resp.status_code, resp.text)


def test_gzip_batches_are_accepted(cloud):
    import gzip
    client, secrets = cloud
    body = UplinkBatch(hub_id="hub-demo", seq=1, readings=[reading(DAY, 1)]).model_dump_json().encode()
    resp = client.post("/api/v1/hub/batches", content=gzip.compress(body),
                       headers={"Authorization": f"Bearer {secrets['hub']}", "Content-Encoding": "gzip"})
    assert resp.status_code == 200 and resp.json()["stored"] == 1
    broken = client.post("/api/v1/hub/batches", content=b"not gzip",
                         headers={"Authorization": f"Bearer {secrets['hub']}", "Content-Encoding": "gzip"})
    assert broken.status_code == 400
    two_members = gzip.compress(body[:40]) + gzip.compress(body[40:])  # concatenated members are one gzip body
    again = client.post("/api/v1/hub/batches", content=two_members,
                        headers={"Authorization": f"Bearer {secrets['hub']}", "Content-Encoding": "gzip"})
    assert again.status_code == 200 and again.json()["duplicates"] == 1


def test_hostile_bodies_are_refused_and_the_next_batch_is_stored(cloud):
    """Bodies that would take the cloud's memory or crash its gzip reader get a 413 or 400 saying why, are
    counted, and leave the service taking the next good batch."""
    import gzip

    from cloud.routers.hubs import MAX_BATCH_BYTES

    client, secrets = cloud
    hub = {"Authorization": f"Bearer {secrets['hub']}"}
    packed = {**hub, "Content-Encoding": "gzip"}
    good = UplinkBatch(hub_id="hub-demo", seq=1, readings=[reading(DAY, 1)]).model_dump_json().encode()
    flipped = bytearray(gzip.compress(good * 50))
    flipped[20:60] = bytes(b ^ 0xFF for b in flipped[20:60])  # a valid gzip header, then corrupt deflate data
    bomb = gzip.compress(b" " * (MAX_BATCH_BYTES + 1))  # 32 KB sent, over 32 MB unpacked
    assert len(bomb) < 100_000
    cases = [
        ("corrupt deflate", dict(content=bytes(flipped), headers=packed), 400, "not gzip: Error -3"),
        ("gzip cut short", dict(content=gzip.compress(good)[:-12], headers=packed), 400, "end-of-stream"),
        ("gzip bomb", dict(content=bomb, headers=packed), 413, "unpacks to more than 33,554,432 bytes"),
        ("declared too long", dict(content=b" " * (MAX_BATCH_BYTES + 1), headers=hub), 413, "over 33,554,432"),
        # no Content-Length: the bytes are counted as they arrive
        ("chunked too long", dict(content=iter([b" " * 2**20] * 33), headers=hub), 413, "over 33,554,432"),
    ]
    for what, request, status, said in cases:
        resp = client.post("/api/v1/hub/batches", **request)
        assert resp.status_code == status and said in resp.json()["detail"], (what, resp.status_code, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json"), what
    # any other call is held to 1 MiB, here one whose JSON FastAPI parses itself (it would answer 400)
    register = client.post("/api/v1/hubs/register", content=iter([b" " * 2**19] * 3),
                           headers={"Content-Type": "application/json"})
    assert register.status_code == 413 and "over 1,048,576 bytes" in register.json()["detail"], register.text
    resp = client.post("/api/v1/hub/batches", content=gzip.compress(good), headers=packed)
    assert resp.status_code == 200 and resp.json()["stored"] == 1
    metrics = client.get("/metrics").text
    assert 'ohmni_batches_total{outcome="invalid"} 2.0' in metrics
    assert 'ohmni_batches_total{outcome="too_large"} 1.0' in metrics
    assert 'ohmni_bodies_too_large_total{route="batch"} 2.0' in metrics
    assert 'ohmni_bodies_too_large_total{route="other"} 1.0' in metrics


def test_householder_sees_only_their_own_home(cloud):
    client, secrets = cloud
    post(client, secrets["hub"], UplinkBatch(hub_id="hub-demo", seq=1, readings=[reading(DAY, 1)]))
    mine = client.get("/api/v1/household/readings", headers={"Authorization": f"Bearer {secrets['key']}"}).json()
    theirs = client.get("/api/v1/household/readings",
                        headers={"Authorization": f"Bearer {secrets['other_key']}"}).json()
    assert len(mine) == 1 and theirs == []
    assert client.get("/api/v1/household/summary").status_code == 401


def test_today_figures_are_priced_exactly(cloud):
    client, secrets = cloud
    # 2.5 kWh since midnight: the register before midnight is the day's base
    readings = [reading(DAY - 10, 500_000), reading(DAY + 3600, 501_000), reading(DAY + 7200, 502_500, 2400)]
    display = DisplayState(ts=DAY + 7200, face=Face.FROWN, power_w=2400, reason="Using 2.4 kW")
    post(client, secrets["hub"], UplinkBatch(hub_id="hub-demo", seq=1, readings=readings, display=display))
    s = client.get("/api/v1/household/summary", headers={"Authorization": f"Bearer {secrets['key']}"}).json()
    assert s["power_w"] == 2400
    assert s["today"]["kwh"] == "2.500" and s["today"]["date"] == "2025-11-25"
    # 2.5 kWh x 24.50p + 60.10p standing = 121.35p
    expected = (Decimal("2.5") * Decimal("24.50") + Decimal("60.10")) / 100
    assert Decimal(s["today"]["cost"]) == expected.quantize(Decimal("0.01"))
    assert s["display"]["face"] == "frown"


def test_dashboard_page_needs_sign_in_and_shows_the_api_figures(cloud):
    client, secrets = cloud
    post(client, secrets["hub"], UplinkBatch(hub_id="hub-demo", seq=1,
                                             readings=[reading(DAY, 500_000), reading(DAY + 60, 500_321, 777)]))
    assert 'name="key"' in client.get("/").text  # the sign-in form
    assert client.get("/login", params={"key": "wrong"}).status_code == 401
    signed = client.get("/login", params={"key": secrets["key"]}, follow_redirects=False)
    assert signed.status_code == 303
    assert "httponly" in signed.headers["set-cookie"].lower()
    page = client.get("/").text
    api = client.get("/api/v1/household/summary").json()  # the cookie session works for the API too
    assert re.search(r'id="power-w">(\d+)<', page).group(1) == str(api["power_w"]) == "777"
    assert re.search(r'id="today-kwh">([\d.]+)<', page).group(1) == api["today"]["kwh"]
    assert re.search(r'id="today-cost">([\d.]+)<', page).group(1) == api["today"]["cost"]
    assert client.get("/static/vendor/plotly.min.js").status_code == 200
    assert client.get("/static/..%2Fsettings.py").status_code == 404


def test_coach_report_preview_explanation_shock_and_a_shift_nudge(cloud):
    client, secrets = cloud
    start = 1_735_689_600  # 2025-01-01 00:00 UTC (= London)
    readings, register = [], 1_000_000
    for i in range(48 * 41):  # January at 0.5 kWh per half-hour, then 1 kWh from February 1st
        ts = start + 1800 * i
        readings.append(reading(ts, register))
        register += 500 if ts < 1_738_368_000 else 1000
    run_start = 1_738_919_400  # 2025-02-07 09:10
    run = {"appliance": "washing_machine", "start": run_start, "end": run_start + 7200, "energy_wh": 1300,
           "peak_w": 2000, "profile_w": [2000.0] * 30 + [200.0] * 90}
    body = UplinkBatch(hub_id="hub-demo", seq=1, readings=readings).model_dump() | {"runs": [run]}
    resp = client.post("/api/v1/hub/batches", content=json.dumps(body),
                       headers={"Authorization": f"Bearer {secrets['hub']}"})
    assert resp.status_code == 200, resp.text
    auth = {"Authorization": f"Bearer {secrets['key']}"}
    report = client.get("/api/v1/household/coach", headers=auth).json()
    p = report["preview"]
    assert (p["period_start"], p["period_end"]) == ("2025-02-01", "2025-03-01")
    assert Decimal(p["so_far"]) < Decimal(p["projected"])
    ex = report["explanation"]
    assert ex is not None and "higher" in ex["sentences"][0]
    assert report["bill_shock"] is not None
    kinds = [n["kind"] for n in report["nudges"]]
    assert "always_on" in kinds
    # the washer's share of this bill: 30 min at 2 kW + 90 min at 200 W = 1.3 kWh at 24.50p
    assert report["appliances"] == [{"appliance": "washing_machine", "runs": 1, "kwh": "1.30", "cost": "0.32",
                                     "currency": "GBP"}]
    # the same 30 days on each tariff of the catalogue; this one is the flat demo rate at 24.50p
    tariffs = {t["name"]: t for t in report["tariffs"]}
    current = [t for t in tariffs.values() if t["current"]]
    assert len(current) == 1 and current[0]["days"] == 30 and "Economy 7 (example)" in tariffs
    # the 30 whole days before the last reading's day: Jan 11-31 at 24 kWh, Feb 1-9 at 48 kWh, less the
    # half-hour ending Feb 1 00:00 that still ran at the January rate; plus 30 days' standing charge
    kwh_30_days = Decimal(24) * 21 + Decimal(48) * 9 - Decimal("0.5")
    expected = kwh_30_days * Decimal("0.2450") + 30 * Decimal("0.6010")
    assert Decimal(current[0]["cost"]) == expected.quantize(Decimal("0.01"))
    # a flat tariff has no cheaper time: no shift nudge, whatever the run
    assert "shift" not in kinds
    client.get("/api/v1/household/coach", headers=auth)
    sent = client.get("/api/v1/household/notifications", headers=auth).json()
    # once per period and once per piece of advice, not once per look
    assert sorted(n["kind"] for n in sent) == sorted(["bill_shock", *["nudge"] * len(kinds)])
    other = client.get("/api/v1/household/coach", headers={"Authorization": f"Bearer {secrets['other_key']}"})
    assert other.json()["preview"] is None
    # on Economy 7 the same run gets a shift nudge, priced from its own profile
    from dataclasses import replace

    from tests.cloud.test_coach import e7
    store = client.app.state.storage
    client.portal.call(store.upsert_household, replace(DEMO_HOUSEHOLD, tariff_json=e7().model_dump_json()))
    nudges = client.get("/api/v1/household/coach", headers=auth).json()["nudges"]
    shift = [n for n in nudges if n["kind"] == "shift"]
    assert shift and shift[0]["saving"] == "0.27" and "washing machine ran at 09:10" in shift[0]["message"]


def test_settlement_half_hours_are_maintained_at_ingest(cloud):
    client, secrets = cloud
    rows = [reading(DAY + 60 * i, 10_000 + 20 * i) for i in range(120)]  # two hours, a reading a minute
    # out of order and split over two batches: the last register of each half-hour still wins
    post(client, secrets["hub"], UplinkBatch(hub_id="hub-demo", seq=1, readings=rows[60:]))
    post(client, secrets["hub"], UplinkBatch(hub_id="hub-demo", seq=2, readings=rows[:60]))
    store = client.app.state.storage
    buckets = client.portal.call(store.register_buckets, "hh-demo", DAY, DAY + 7200, 1800)
    assert buckets == [(DAY + 1800 * k, 1_010_000 + 20 * (30 * k + 29)) for k in range(4)]  # t1 + t2


def test_half_hour_appliance_energy_is_kept_once_and_priced_by_the_half_hour(cloud):
    """What the hub's disaggregation sends per appliance and half hour feeds the bill's appliance split."""
    client, secrets = cloud
    hub = {"Authorization": f"Bearer {secrets['hub']}"}
    day = 1_738_886_400  # 2025-02-07 00:00 UTC (= London)
    readings = [reading(day - 6 * 86400 + 1800 * i, 1_000_000 + 500 * i) for i in range(48 * 7)]
    energy = ([{"appliance": "fridge", "start": day + 1800 * i, "energy_wh": 40.0} for i in range(48)]
              + [{"appliance": "washing_machine", "start": day + 18 * 1800, "energy_wh": 600.0},
                 {"appliance": "washing_machine", "start": day + 19 * 1800, "energy_wh": 700.0}]
              + [{"appliance": "microwave", "start": day + 1800 * i, "energy_wh": 0.0} for i in range(48)])
    for seq in (1, 2):  # the second batch re-sends the same half hours, as after a lost ack
        body = UplinkBatch(hub_id="hub-demo", seq=seq, readings=readings if seq == 1 else []).model_dump()
        resp = client.post("/api/v1/hub/batches", content=json.dumps(body | {"energy": energy}), headers=hub)
        assert resp.status_code == 200, resp.text
    report = client.get("/api/v1/household/coach", headers={"Authorization": f"Bearer {secrets['key']}"}).json()
    split = {a["appliance"]: a for a in report["appliances"]}
    # 48 half hours at 40 Wh, stored once: 1.92 kWh at the flat 24.50p; the washer's 1.3 kWh, no runs sent
    assert (split["fridge"]["kwh"], split["fridge"]["cost"], split["fridge"]["runs"]) == ("1.92", "0.47", 0)
    assert (split["washing_machine"]["kwh"], split["washing_machine"]["cost"]) == ("1.30", "0.32")
    assert "microwave" not in split  # a day of zero half hours, no run: not a row of "0 runs, 0.00 kWh"
    bad = UplinkBatch(hub_id="hub-demo", seq=3).model_dump() | {
        "energy": [{"appliance": "fridge", "start": day + 60, "energy_wh": 1.0}]}
    resp = client.post("/api/v1/hub/batches", content=json.dumps(bad), headers=hub)
    assert resp.status_code == 422 and "half hour" in resp.text
