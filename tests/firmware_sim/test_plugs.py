"""Simulated plugs publish real payload shapes that the hub's own mapping table reads back exactly."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
import threading

import pytest
import serial

from edge.mqtt_link import MqttLink
from firmware_sim.plugs import PlugState, step
from protocols.devices import decode, mappings
from tests.edge.test_mqtt import Running, hub_config, until
from tests.fixtures.mosquitto import USERS


@pytest.mark.parametrize("kind, device", [("zigbee", "zigbee2mqtt:p1"), ("shelly", "shelly:p1:0"),
                                          ("tasmota", "tasmota:p1")])
def test_each_plug_kind_round_trips_through_the_hub_mappings(kind, device):
    plug = PlugState(name="p1", appliance="kettle", kind=kind, every_s=10)
    messages = []
    for ts in range(1000, 1000 + 3600):
        messages += step([plug], ts, {"kettle": 2900.0 if ts < 1000 + 1800 else 0.0})
    assert len(messages) == 360
    first = decode(*messages[0][0:1], messages[0][1].encode(), mappings())
    last = decode(messages[-1][0], messages[-1][1].encode(), mappings())
    assert first[0].device == device and first[0].power_w == pytest.approx(2900)
    assert last[0].power_w == 0
    assert last[0].energy_kwh == pytest.approx(1.45, abs=0.01)  # half an hour at 2.9 kW


async def test_sim_plugs_reach_the_hub_over_mosquitto(mosquitto, tmp_path):
    (tmp_path / "pw").write_text(USERS["device"])
    (tmp_path / "house.toml").write_text("""
[[appliance]]
name = "kettle"
kind = "program"
phases = [[120, 3000]]
runs_at_s = [5]
[[plug]]
name = "kettle_plug"
appliance = "kettle"
kind = "zigbee"
every_s = 1
""")
    got = []
    link = MqttLink(hub_config(mosquitto, client_id="hub-sim-plugs"), "hub-1", got.extend)
    async with Running(link):
        await until(lambda: link.connected)
        await asyncio.sleep(0.2)
        sim = await asyncio.to_thread(subprocess.Popen, [
            sys.executable, "-m", "ohmni", "sim", "run", "--speed", "100", "--duration", "1.8", "--household",
            str(tmp_path / "house.toml"), "--out", str(tmp_path), "--link", str(tmp_path / "tty"),
            "--mqtt", f"{mosquitto.host}:{mosquitto.port}", "--mqtt-username", "device",
            "--mqtt-password-file", str(tmp_path / "pw")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # the meter waits for a reader on its pty: be that reader, and keep draining it
        await until(lambda: (tmp_path / "tty").exists())
        port = serial.Serial(str(tmp_path / "tty"), timeout=0.2)
        stop = threading.Event()

        def read_until_closed() -> None:
            try:
                while not stop.is_set():
                    port.read(4096)
            except serial.SerialException:
                pass  # the meter closed its end

        drain = threading.Thread(target=read_until_closed, daemon=True)
        drain.start()
        try:
            await until(lambda: len(got) >= 180, timeout=30)
        finally:
            await asyncio.to_thread(sim.wait, 30)
            stop.set()
            drain.join(2)
            port.close()
    with (tmp_path / "truth.csv").open() as f:
        truth = {int(r["timestamp"]): float(r["kettle"]) for r in csv.DictReader(f)}
    assert [r.power_w for r in got[:180]] == [truth[t] for t in sorted(truth)][:180]
