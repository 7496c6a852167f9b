"""`ohmni hub run` as an installer starts it: a simulated meter on a real pty, the display page's port."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from edge.config import HubConfig
from edge.provision import checks, store_write_checks
from ohmni.demo import free_port, spawn
from tests.edge.test_meter_clock import Listed


def _readings(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM readings").fetchone()[0]
    except sqlite3.Error:  # the hub is still making its tables
        return 0
    finally:
        con.close()


def _until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_display_port_another_program_holds_leaves_the_hub_reading_the_meter(tmp_path):
    """Another program on the display's port (8001 is a common one): the hub ended with uvicorn's SystemExit and a
    traceback, and under systemd restarted every 5 s reading nothing. It now names the port, goes on reading the
    meter without its page, stops cleanly, and `hub status` says another program answers there."""
    other = socket.create_server(("127.0.0.1", 0))  # listening, as another service would be
    taken = other.getsockname()[1]
    config = tmp_path / "hub.toml"
    config.write_text(f'[hub]\ndata_dir = "{tmp_path / "hub"}"\n[meter]\nport = "{tmp_path / "tty"}"\n'
                      f'[cloud]\nurl = "http://127.0.0.1:{free_port()}"\n[display]\nport = {taken}\n'
                      "[nilm]\nenabled = false\n")
    sim = subprocess.Popen([sys.executable, "-m", "ohmni", "sim", "run", "--speed", "20", "--duration", "60",
                            "--out", str(tmp_path / "sim"), "--link", str(tmp_path / "tty")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hub = None
    try:
        _until(lambda: (tmp_path / "tty").exists(), 30, "the simulated meter made no pty")
        hub = spawn("hub", ["hub", "run", "--config", str(config)], tmp_path)
        db = tmp_path / "hub" / "hub.sqlite3"
        _until(lambda: _readings(db) >= 5 or hub.proc.poll() is not None, 30, "the hub kept no reading")
        assert hub.proc.poll() is None, hub.tail()
        kept = _readings(db)
        _until(lambda: _readings(db) > kept or hub.proc.poll() is not None, 15, "the hub stopped reading")
        assert hub.proc.poll() is None, hub.tail()
        said = hub.tail(40)
        assert f"the display page cannot be served on 127.0.0.1:{taken} (Address already in use)" in said
        assert "no display page" in said and "Traceback" not in said

        status = subprocess.run([sys.executable, "-m", "ohmni", "hub", "status", "--config", str(config)],
                                capture_output=True, text=True, timeout=60)
        assert "another program answers" in status.stdout, status.stdout
        [check] = [c for c in checks(HubConfig.load(config)) if c.name == "hub agent"]
        assert check.verdict == "warn" and f"another program answers on 127.0.0.1:{taken}" in check.detail
        hub.proc.send_signal(signal.SIGINT)
        assert hub.proc.wait(30) == 0, hub.tail()
        assert "Traceback" not in hub.tail(40)
    finally:
        other.close()
        if hub is not None and hub.proc.poll() is None:
            hub.proc.kill()
        sim.terminate()
        sim.wait(30)


def test_display_port_0_says_the_port_it_took(tmp_path):
    """`--display-port 0` (any free): the hub printed port 0, an address nothing answers on."""
    hub = spawn("hub", ["hub", "run", "--port", str(tmp_path / "no-meter"), "--data-dir", str(tmp_path / "hub"),
                        "--cloud", f"http://127.0.0.1:{free_port()}", "--display-port", "0"], tmp_path)
    try:
        _until(lambda: "display http" in hub.tail() or hub.proc.poll() is not None, 30, "no banner")
        banner = next(line for line in hub.tail().splitlines() if "display http" in line)
        url = banner.rsplit("display ", 1)[1].strip()
        assert not url.startswith("http://127.0.0.1:0/"), banner
        _until(lambda: _answers(url), 30, f"nothing answers on {url}")
        assert "<html" in httpx.get(url, timeout=5).text.lower()
    finally:
        hub.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_an_embedded_broker_port_another_program_holds_is_said_and_the_hub_goes_on(tmp_path):
    """`[mqtt] embedded` on a port another program holds (most often a Mosquitto the installer forgot): amqtt's
    failed start ended the hub with two tracebacks. The hub now names the port in a line, runs on, and `hub status`
    says it."""
    other = socket.create_server(("127.0.0.1", 0))
    taken, display = other.getsockname()[1], free_port()
    config = tmp_path / "hub.toml"
    config.write_text(f'[hub]\ndata_dir = "{tmp_path / "hub"}"\n[meter]\nport = "{tmp_path / "no-meter"}"\n'
                      f'[cloud]\nurl = "http://127.0.0.1:{free_port()}"\n[display]\nport = {display}\n'
                      f"[nilm]\nenabled = false\n[mqtt]\nenabled = true\nembedded = true\nport = {taken}\n"
                      "connect_timeout_s = 1\n")
    hub = spawn("hub", ["hub", "run", "--config", str(config)], tmp_path)
    try:
        _until(lambda: _answers(f"http://127.0.0.1:{display}/display") or hub.proc.poll() is not None, 30,
               "the hub's page never answered")
        assert hub.proc.poll() is None, hub.tail()
        said = hub.tail(40)
        assert f"the embedded MQTT broker cannot listen on 127.0.0.1:{taken} (Address already in use)" in said
        assert "Traceback" not in said
        [check] = [c for c in checks(HubConfig.load(config)) if c.name == "embedded broker"]
        assert check.verdict == "warn" and f"127.0.0.1:{taken} (Address already in use)" in check.detail
    finally:
        other.close()
        hub.stop()
    assert "Traceback" not in hub.tail(40)


async def test_the_running_hub_drops_what_the_cloud_has_had_past_the_days_kept(tmp_path, caplog):
    """The agent's housekeeping prunes its store (hourly): readings the cloud acknowledged go once older than the
    days kept, those it has not stay."""
    import asyncio
    import logging

    from edge.agent import HubAgent
    from protocols.readings import MeterReading

    start = 1_764_072_000
    cfg = HubConfig.model_validate({"hub": {"data_dir": str(tmp_path / "hub"), "keep_days": 1},
                                    "nilm": {"enabled": False}})
    agent = HubAgent(cfg, source=Listed())
    agent.on_readings([MeterReading(ts=start + 60 * i, meter_id="E1", import_t1_wh=1000 + i, import_t2_wh=0,
                                    export_t1_wh=0, export_t2_wh=0, power_import_w=400, power_export_w=0)
                       for i in range(3 * 1440)])  # three days, a reading a minute
    while (seq := agent.store.seal_batch(cfg.hub.id, 1000, None)) is not None:
        if seq < 4:  # the cloud has had the first three batches (3,000 readings), not the rest
            agent.store.ack(seq)
    caplog.set_level(logging.INFO, logger="ohmni.hub")
    housekeeping = asyncio.create_task(agent._housekeeping(every_s=0.01))
    await asyncio.sleep(0.5)
    housekeeping.cancel()
    kept = [ts for (ts,) in agent.store.db.execute("SELECT ts FROM readings ORDER BY ts")]
    last = start + 60 * (3 * 1440 - 1)
    assert kept == [start + 60 * i for i in range(3 * 1440) if i >= 3000 or start + 60 * i >= last - 86400]
    gone = 3 * 1440 - len(kept)
    assert gone == 2879 and f"dropped what the cloud has had for over 1.0 days: {gone} readings" in caplog.text
    agent.store.close()


def test_a_store_that_cannot_take_a_write_holds_the_readings_until_it_can(tmp_path, caplog):
    """A full disk (here SQLite's own limit on the store's size, which fails a write as a full disk does, with
    SQLITE_FULL): the hub stopped at the first reading it could not write, and under systemd started only to fail
    again. It now holds the readings in memory, says so (status, `hub status`, the log once a minute), and keeps
    them all once the store takes writes again."""
    import logging

    from edge.agent import HubAgent
    from protocols.readings import MeterReading

    start = 1_764_072_000
    every = [MeterReading(ts=start + i, meter_id="E1", import_t1_wh=1000 + i // 10, import_t2_wh=0, export_t1_wh=0,
                          export_t2_wh=0, power_import_w=400 + (i % 7) * 100, power_export_w=0) for i in range(3000)]
    cfg = HubConfig.model_validate({"hub": {"data_dir": str(tmp_path / "hub")}})
    agent = HubAgent(cfg, source=Listed())
    caplog.set_level(logging.INFO, logger="ohmni.hub")
    agent.on_readings(every[:100])
    pages = agent.store.db.execute("PRAGMA page_count").fetchone()[0]
    agent.store.db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
    for i in range(100, 2900, 10):
        agent.on_readings(every[i:i + 10])  # the meter goes on sending: nothing raises
    status = agent.status()["store"]
    held = status["readings_held"]  # all but the few the store's last pages had room for
    assert status["readings"] + held == 2900 and held > 2500
    assert "database or disk is full" in status["write_error"] and status["counters"]["write_errors"] >= 1
    assert caplog.text.count("cannot write its store") == 1  # said once a minute, not at every reading
    [said] = store_write_checks({"store": status})  # as `hub status` reads the running hub's status
    assert said.verdict == "fail" and f"({held} readings held)" in said.detail
    assert agent.face.state is not None and agent.face.state.ts == every[2899].ts  # the face goes on

    agent.store.db.execute("PRAGMA max_page_count = 1073741823")  # room again
    agent.on_readings(every[2900:])
    assert store_write_checks({"store": agent.status()["store"]}) == []
    kept = [ts for (ts,) in agent.store.db.execute("SELECT ts FROM readings ORDER BY ts")]
    assert kept == [r.ts for r in every] and agent.status()["store"]["write_error"] is None
    assert f"the store takes writes again: {held} readings held in memory are kept" in caplog.text
    agent.store.close()
