"""Store-and-forward against a real cloud process: lost acks, a day offline, kill -9, refused batches."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cloud.auth import new_secret
from edge.config import CloudConfig
from edge.store import HubStore
from edge.uplink import Uplink
from ohmni.demo import Child, free_port, spawn, start_cloud, wait_drained
from protocols.devices import DeviceReading
from protocols.readings import MeterReading

DAY0 = 1_764_028_800


def readings(n: int, step_s: int = 10, start: int = DAY0) -> list[MeterReading]:
    return [MeterReading(ts=start + i * step_s, meter_id="E1", import_t1_wh=1000 + i, import_t2_wh=0,
                         export_t1_wh=0, export_t2_wh=0, power_import_w=360, power_export_w=0) for i in range(n)]


class Cloud:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (folder / "hub.token").write_text(new_secret())
        (folder / "householder.key").write_text(new_secret())
        self.child: Child | None = None

    def start(self) -> None:
        self.child = start_cloud(self.folder, self.port, data_dir=self.folder / "db")

    def stop(self) -> None:
        if self.child:
            self.child.stop()

    def stored(self) -> list[int]:
        key = (self.folder / "householder.key").read_text().strip()
        rows = httpx.get(f"{self.url}/api/v1/household/readings", headers={"Authorization": f"Bearer {key}"},
                         timeout=30).json()
        return [r["ts"] for r in rows]


@pytest.fixture
def cloud(tmp_path):
    c = Cloud(tmp_path)
    c.start()
    yield c
    c.stop()


def uplink_for(store: HubStore, cloud: Cloud, transport: httpx.AsyncBaseTransport | None = None,
               batch_max: int = 500) -> Uplink:
    return Uplink(store, "hub-demo", CloudConfig(url=cloud.url, token_file=cloud.folder / "hub.token",
                                                 batch_max=batch_max, interval_s=0.05, max_backoff_s=0.2),
                  transport=transport)


class LoseFirstAck(httpx.AsyncBaseTransport):
    """Forwards to the real cloud, which stores the batch; the first answer is lost on the way back."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        if not self.lost:
            self.lost += 1
            raise httpx.ReadError("connection reset before the acknowledgement arrived", request=request)
        return response


async def test_a_retry_after_a_lost_acknowledgement_duplicates_nothing(cloud, tmp_path):
    store = HubStore(tmp_path / "hub.sqlite3")
    store.add_readings(readings(1200))
    lossy = LoseFirstAck()
    uplink = uplink_for(store, cloud, transport=lossy)
    assert await uplink.drain(30)
    assert lossy.lost == 1 and uplink.counters["upload_failures"] == 1
    assert uplink.counters["duplicates_reported"] == 500  # the first batch again: the cloud already had it
    stored = cloud.stored()
    assert stored == sorted(set(stored)) and len(stored) == 1200


class CaptivePortalFirst(httpx.AsyncBaseTransport):
    """A network whose first answer is a captive portal's sign-in page (200, HTML); after it, the real cloud."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.portal_pages = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.portal_pages:
            self.portal_pages += 1
            return httpx.Response(200, html="<html><body>Sign in to Hotel Wi-Fi</body></html>", request=request)
        return await self.inner.handle_async_request(request)


async def test_a_200_that_is_not_the_clouds_acknowledgement_is_retried_not_fatal(cloud, tmp_path):
    """A captive portal answers 200 with its page: the batch is not acknowledged, the error says what came back,
    and the next try delivers it (before, the uplink's task ended with a ValidationError and nothing more went)."""
    store = HubStore(tmp_path / "hub.sqlite3")
    store.add_readings(readings(20))
    portal = CaptivePortalFirst()
    uplink = uplink_for(store, cloud, transport=portal)
    uplink.seal()
    assert await uplink.send_pending() is False
    assert "not the cloud's acknowledgement" in (uplink.last_error or "") and "Hotel Wi-Fi" in uplink.last_error
    assert store.status()["backlog_readings"] == 20
    assert await uplink.drain(30)
    assert cloud.stored() == [r.ts for r in readings(20)]


async def test_a_day_offline_then_everything_arrives_once(tmp_path):
    cloud = Cloud(tmp_path)  # not started: the cloud is down
    store = HubStore(tmp_path / "hub.sqlite3")
    uplink = uplink_for(store, cloud, batch_max=5000)
    day = readings(8640)  # a simulated day at one reading every 10 s
    for i in range(0, len(day), 360):
        store.add_readings(day[i:i + 360])
        uplink.seal()
        assert await uplink.send_pending() is False
    assert store.status()["backlog_readings"] == 8640
    assert "unreachable" in uplink.last_error
    cloud.start()
    try:
        assert await uplink.drain(60)
        assert cloud.stored() == [r.ts for r in day]
    finally:
        cloud.stop()


async def test_a_refused_batch_is_parked_and_does_not_block_the_rest(cloud, tmp_path):
    store = HubStore(tmp_path / "hub.sqlite3")
    store.add_readings(readings(10))
    uplink = uplink_for(store, cloud)
    uplink.seal()
    # a batch the cloud can never take (here: corrupted on disk) must not hold up the next ones
    store.db.execute("UPDATE outbox SET body = ? WHERE seq = 1", ('{"seq": "x"}',))
    store.add_readings(readings(10, start=DAY0 + 1000))
    assert await uplink.drain(30)
    assert uplink.counters["batches_rejected"] == 1
    assert store.status()["batches_rejected_by_cloud"] == 1
    assert len(cloud.stored()) == 10


async def test_a_stored_reading_the_schema_cannot_take_is_kept_back_not_fatal(cloud, tmp_path):
    """A store from an older hub holds a reading the wire refuses (a negative power it once took from a meter):
    sealing it raised ValidationError and stopped the uplink at every start. It stays in the store, counted, and
    the readings around it go."""
    store = HubStore(tmp_path / "hub.sqlite3")
    store.add_readings(readings(20))
    store.db.execute("UPDATE readings SET power_import_w = -5 WHERE ts = ?", (DAY0 + 50,))
    store.db.commit()
    uplink = uplink_for(store, cloud)
    assert await uplink.drain(30)
    assert cloud.stored() == [r.ts for r in readings(20) if r.ts != DAY0 + 50]
    assert store.status()["readings_unsendable"] == 1 and store.status()["backlog_readings"] == 0


def test_kill_9_during_writes_loses_nothing_that_was_committed(cloud, tmp_path):
    """The hub is killed while the meter writes at 200x; what its store committed reaches the cloud."""
    hub_args = ["hub", "run", "--port", str(tmp_path / "tty"), "--cloud", cloud.url, "--token-file",
                str(cloud.folder / "hub.token"), "--data-dir", str(tmp_path / "hub"), "--uplink-interval", "0.5"]
    sim = subprocess.Popen([sys.executable, "-m", "ohmni", "sim", "run", "--speed", "200", "--duration", "12",
                            "--out", str(tmp_path / "sim"), "--link", str(tmp_path / "tty")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (tmp_path / "tty").exists():
            time.sleep(0.05)
        port = free_port()
        hub = spawn("hub", [*hub_args, "--display-port", str(port)], tmp_path)
        time.sleep(4)
        hub.proc.send_signal(signal.SIGKILL)  # a power cut, mid-write
        hub.proc.wait()
        db = sqlite3.connect(tmp_path / "hub" / "hub.sqlite3")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        committed = [row[0] for row in db.execute("SELECT ts FROM readings ORDER BY ts")]
        db.close()
        assert len(committed) > 100
        port = free_port()
        hub = spawn("hub", [*hub_args, "--display-port", str(port)], tmp_path)
        sim.wait(60)
        with (tmp_path / "sim" / "meter.csv").open() as f:
            last_ts = int(f.read().splitlines()[-1].split(",")[0])
        wait_drained(f"http://127.0.0.1:{port}", last_ts, hub)
        stored = set(cloud.stored())
        assert set(committed) <= stored  # nothing committed before the kill is lost
        hub.stop()
    finally:
        sim.terminate()
        sim.wait(10)



async def test_past_the_disk_budget_readings_are_compacted_not_lost(cloud, tmp_path):
    store = HubStore(tmp_path / "hub.sqlite3")
    seconds = [MeterReading(ts=DAY0 + i, meter_id="E1", import_t1_wh=5000 + i // 3, import_t2_wh=0, export_t1_wh=0,
                            export_t2_wh=0, power_import_w=1200 if (i // 60) % 2 else 0, power_export_w=0)
               for i in range(7200)]  # two hours at 1 s, the cloud away
    store.add_readings(seconds)
    budget = store.used_bytes() // 4
    assert store.enforce_budget(budget) > 0
    assert store.used_bytes() <= budget
    kept = store.db.execute("SELECT ts, import_t1_wh, power_import_w, resolution_s FROM readings "
                            "ORDER BY ts").fetchall()
    # one reading a minute, but the minutes from a quarter hour before the last reading as read (COMPACT_AFTER_S:
    # with the cloud there, those are the readings not yet sent, and they keep their resolution)
    assert len(kept) == 104 + 960
    old, fresh = kept[:104], kept[104:]
    # each minute keeps its last register exactly, with the minute's mean power
    assert all(ts % 60 == 59 and wh == 5000 + (ts - DAY0) // 3 for ts, wh, _, _ in old)
    assert [p for _, _, p, _ in old[:2]] == [0, 1200] and {r for *_, r in old} == {60}
    assert [ts for ts, *_ in fresh] == list(range(DAY0 + 6240, DAY0 + 7200)) and {r for *_, r in fresh} == {None}
    uplink = uplink_for(store, cloud)
    assert await uplink.drain(30)
    stored = cloud.stored()
    assert len(stored) == 1064 and stored[-1] == DAY0 + 7199  # the last register, exactly as the meter had it
    key = (cloud.folder / "householder.key").read_text().strip()
    summary = httpx.get(f"{cloud.url}/api/v1/household/summary", headers={"Authorization": f"Bearer {key}"}).json()
    assert any("1-minute resolution" in n for n in summary["notices"])


async def test_appliance_runs_and_half_hours_travel_with_the_readings(cloud, tmp_path):
    from protocols.uplink import ApplianceEnergyV1, ApplianceRunV1

    store = HubStore(tmp_path / "hub.sqlite3")
    store.add_readings(readings(30))
    run = ApplianceRunV1(appliance="kettle", start=DAY0 + 60, end=DAY0 + 230, energy_wh=137.0, peak_w=2900,
                         confidence=0.6, profile_w=[2900.0, 2900.0, 2900.0])
    assert store.add_runs([run, run]) == 1  # a run is kept once
    half_hours = [ApplianceEnergyV1(appliance=a, start=DAY0 - DAY0 % 1800, energy_wh=wh)
                  for a, wh in (("kettle", 137.0), ("fridge", 41.5))]
    assert store.add_energy(half_hours + half_hours[:1]) == 2  # and a half hour once
    assert await uplink_for(store, cloud).drain(30)
    db = sqlite3.connect(cloud.folder / "db" / "cloud.sqlite3")
    stored = db.execute("SELECT appliance, start, run_json FROM appliance_runs").fetchall()
    energy = db.execute("SELECT appliance, start, energy_wh FROM appliance_energy ORDER BY appliance").fetchall()
    db.close()
    assert [(a, s) for a, s, _ in stored] == [("kettle", DAY0 + 60)]
    assert ApplianceRunV1.model_validate_json(stored[0][2]) == run
    assert energy == [("fridge", DAY0 - DAY0 % 1800, 41.5), ("kettle", DAY0 - DAY0 % 1800, 137.0)]


async def test_what_the_cloud_has_had_goes_after_the_days_kept_and_nothing_else(cloud, tmp_path):
    """The store kept every reading and every batch's body for ever (about 40 MB a day at one reading a second), so a
    hub filled its disk in a year; and once that history passed the disk budget, the readings not yet sent (the last
    seconds') were compacted every minute with the cloud there, and the home told the cloud had been away. What the
    cloud acknowledged goes once older than the days kept; a parked batch, an unsendable reading and what waits stay;
    fresh readings are never compacted."""
    from protocols.uplink import ApplianceRunV1

    store = HubStore(tmp_path / "hub.sqlite3")
    two_days = readings(2 * 8640)  # every 10 s
    store.add_readings(two_days[:10])
    store.db.execute("UPDATE readings SET power_import_w = -5 WHERE ts = ?", (DAY0 + 50,))  # unsendable
    uplink = uplink_for(store, cloud)
    assert await uplink.drain(30)
    store.add_readings(two_days[10:20])
    uplink.seal()
    store.db.execute("UPDATE outbox SET body = ? WHERE acked_at IS NULL", ('{"seq": "x"}',))  # parked by the cloud
    assert await uplink.drain(30) and uplink.counters["batches_rejected"] == 1
    store.add_readings(two_days[20:])
    store.add_runs([ApplianceRunV1(appliance="kettle", start=DAY0 + 600, end=DAY0 + 780, energy_wh=120, peak_w=2900,
                                   confidence=0.9, profile_w=[2900.0] * 3)])
    store.add_device_readings([DeviceReading(device="shelly:plug:0", kind="plug", power_w=5, ts=t)
                               for t in range(DAY0, DAY0 + 2 * 86400, 60)], time.time())
    assert await uplink.drain(60)
    store.add_readings(readings(30, start=two_days[-1].ts + 10))  # the newest, not yet sent
    acked_bodies = store.db.execute("SELECT count(*) FROM outbox WHERE acked_at IS NOT NULL AND body != ''")
    assert acked_bodies.fetchone()[0] == 0  # a batch's body goes once the cloud has it
    store.db.execute("UPDATE outbox SET body = '{}' WHERE seq = 1")  # as a hub before this kept it
    before = store.used_bytes()

    gone: dict[str, int] = {}
    while step := store.prune(86400, limit=1000):
        for table, n in step.items():
            gone[table] = gone.get(table, 0) + n
    last = two_days[-1].ts + 300
    kept = [ts for (ts,) in store.db.execute("SELECT ts FROM readings ORDER BY ts")]
    # a day before the newest reading and after, and the unsendable one and the parked batch's ten
    assert kept == sorted([DAY0 + 50, *(r.ts for r in two_days[10:20]),
                           *(r.ts for r in [*two_days, *readings(30, start=two_days[-1].ts + 10)]
                             if r.ts >= last - 86400)])
    assert gone["readings"] == len(two_days) - 1 - 10 - sum(r.ts >= last - 86400 for r in two_days)
    assert gone["appliance_runs"] == 1 and store.runs() == []
    assert gone["device_readings"] == 1439 and len(store.device_readings()) == 1441  # a day before the newest on
    assert "outbox" not in gone  # acknowledged just now: the rows stay the days kept, for `hub status`
    assert gone["outbox bodies"] == 1
    assert store.status()["batches_rejected_by_cloud"] == 1 and store.status()["readings_unsendable"] == 1
    assert store.used_bytes() < before * 0.6
    assert len(cloud.stored()) == len(two_days) - 1 - 10  # the cloud has what went

    # over a budget the history alone fills, with the cloud there: the readings not yet sent keep their resolution
    assert store.enforce_budget(1) == 0 and store.unreported_compactions() == []
