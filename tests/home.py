"""The running home the end-to-end and browser tests share: the cloud, a simulated meter and
the hub as real processes (an hour of telegrams at 120x), started once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from ohmni.demo import free_port, spawn, start_cloud, wait_drained, wait_for

START = "2025-11-25T01:00:00+00:00"  # at night: the coach finds the always-on floor from a night
START_TS = 1_764_032_400
KETTLE_AT_S = 420
KETTLE_S = 170
TELEGRAMS = 3600
HOUSE = f"""
seed = 3
[[appliance]]
name = "baseload"
kind = "constant"
power_w = 250
noise_w = 5
[[appliance]]
name = "fridge"
kind = "cycling"
power_w = 80
on_s = 600
off_s = 900
[[appliance]]
name = "kettle"
kind = "program"
phases = [[{KETTLE_S}, 2900]]
runs_at_s = [{KETTLE_AT_S}]
"""


def _secret(path: Path) -> str:
    import secrets
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    path.chmod(0o600)
    return value


@pytest.fixture(scope="session")
def running_home(tmp_path_factory: pytest.TempPathFactory):
    """Cloud, simulated meter (an hour at 120x, a fault every 40 telegrams) and hub."""
    tmp_path = tmp_path_factory.mktemp("home")
    (tmp_path / "house.toml").write_text(HOUSE)
    key = _secret(tmp_path / "householder.key")
    _secret(tmp_path / "hub.token")
    agent_password = _secret(tmp_path / "agent.password")
    cloud_port, display_port = free_port(), free_port()
    cloud_url, hub_url = f"http://127.0.0.1:{cloud_port}", f"http://127.0.0.1:{display_port}"
    children = []
    try:
        children.append(start_cloud(tmp_path, cloud_port))
        sim = spawn("sim", ["sim", "run", "--speed", "120", "--duration", "30", "--start", START, "--household",
                            str(tmp_path / "house.toml"), "--out", str(tmp_path / "sim"), "--link",
                            str(tmp_path / "meter.tty"), "--fault-every", "40"], tmp_path)
        children.append(sim)
        wait_for("meter", (tmp_path / "meter.tty").exists, sim, 15)
        hub = spawn("hub", ["hub", "run", "--port", str(tmp_path / "meter.tty"), "--cloud", cloud_url,
                            "--token-file", str(tmp_path / "hub.token"), "--data-dir", str(tmp_path / "hub"),
                            "--display-port", str(display_port), "--uplink-interval", "1"], tmp_path)
        children.append(hub)
        sim.proc.wait(60)
        assert sim.proc.returncode == 0, sim.tail()
        wait_drained(hub_url, START_TS + TELEGRAMS - 1, hub)
        yield {"tmp": tmp_path, "cloud": cloud_url, "hub": hub_url, "key": key, "agent_password": agent_password}
    finally:
        for child in reversed(children):
            child.stop()
        for child in children:
            assert "Traceback" not in child.log.read_text(), child.tail(40)
