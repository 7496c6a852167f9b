"""The meter display over MQTT: the hub publishes face, power and reason retained; the
simulated display renders them — with the cloud unreachable — on a real Mosquitto."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import aiomqtt
import httpx

from edge.agent import HubAgent
from edge.config import HubConfig
from firmware_sim.display import DisplayDevice
from protocols.display import Face
from protocols.readings import MeterReading
from tests.edge.test_mqtt import until
from tests.fixtures import free_port
from tests.fixtures.mosquitto import USERS

T0 = 1_764_028_800


class Script:
    """A meter source that plays readings: an hour at 300 W, then a kettle."""

    name = "script"

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.go = asyncio.Event()
        self.done = asyncio.Event()

    async def run(self, sink) -> None:
        await self.go.wait()
        register = 1_000_000.0
        for i in range(3900):
            watts = 3300 if i >= 3600 else 300
            register += watts / 3600
            sink([MeterReading(ts=T0 + i, meter_id="E1", import_t1_wh=int(register), import_t2_wh=0,
                               export_t1_wh=0, export_t2_wh=0, power_import_w=watts, power_export_w=0)])
            if i % 100 == 0:
                await asyncio.sleep(0.01)  # a little of the hour, as a meter would pace it
        self.done.set()
        await asyncio.Event().wait()


async def test_the_display_shows_the_hubs_face_with_the_cloud_unreachable(mosquitto, tmp_path):
    dead_cloud = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    cfg = HubConfig.model_validate({
        "hub": {"id": "hub-display", "data_dir": tmp_path},
        "cloud": {"url": dead_cloud, "token": "x", "interval_s": 0.5, "max_backoff_s": 1, "timeout_s": 1},
        "display": {"port": free_port()},
        "mqtt": {"enabled": True, "host": mosquitto.host, "port": mosquitto.port, "username": "hub",
                 "password": USERS["hub"], "display_interval_s": 0, "connect_timeout_s": 3},
        "nilm": {"enabled": False}})
    source = Script()
    agent = HubAgent(cfg, source)
    running = asyncio.create_task(agent.run(drain_s=0))
    lines: list[str] = []
    screen = DisplayDevice(mosquitto.host, mosquitto.port, "hub-display", username="device",
                           password=USERS["device"], on_render=lines.append)
    showing = asyncio.create_task(screen.run())
    try:
        await until(lambda: agent.mqtt is not None and agent.mqtt.connected and screen.connected)
        source.go.set()
        await asyncio.wait_for(source.done.wait(), 30)
        await until(lambda: screen.state is not None and screen.state.ts == T0 + 3899, timeout=15)
        assert screen.state.face == Face.FROWN and screen.state.power_w == 3300
        assert screen.line.startswith(":-( 3300 W - Last minute 3.")
        assert any(line.startswith(":-| 300 W") for line in lines)  # the calm hour before
        # the same state over HTTP on the hub's own port
        async with httpx.AsyncClient() as client:  # the hub serves it from this event loop
            page = await client.get(f"http://127.0.0.1:{cfg.display.port}/api/display", timeout=5)
        assert page.status_code == 200 and page.json()["face"] == "frown"
        assert agent.uplink.last_error is not None  # the cloud really was away

        # retained: a display that boots now shows the face at once; garbage keeps the last good face
        late = DisplayDevice(mosquitto.host, mosquitto.port, "hub-display", username="device",
                             password=USERS["device"])
        booting = asyncio.create_task(late.run())
        await until(lambda: late.state is not None and late.state.face == Face.FROWN, timeout=10)
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, username="device",
                                  password=USERS["device"]) as intruder:
            await intruder.publish(screen.topic, b"{not a display state", qos=1)
        await until(lambda: late.counters["rejected"] == 1, timeout=10)
        assert late.state.face == Face.FROWN
        booting.cancel()

        # the meter goes quiet (its cable out): the displays stop showing the last face as if it were now
        agent.last_arrival = (time.time() - 600, agent.last_arrival[1])
        quiet = asyncio.create_task(agent._housekeeping(every_s=0.05, prune_every_s=3600))
        await until(lambda: screen.state is not None and screen.state.face == Face.NEUTRAL, timeout=10)
        quiet.cancel()
        assert screen.state.reason == "No reading from the meter for 10 min: is its cable in? (last: 3300 W)"
        async with httpx.AsyncClient() as client:
            page = (await client.get(f"http://127.0.0.1:{cfg.display.port}/api/display", timeout=5)).json()
        assert (page["face"], page["reason"]) == ("neutral", screen.state.reason) and 600 <= page["stale_s"] < 660
        agent.on_readings([MeterReading(ts=T0 + 3900, meter_id="E1", import_t1_wh=1_001_400, import_t2_wh=0,
                                        export_t1_wh=0, export_t2_wh=0, power_import_w=3300, power_export_w=0)])
        async with httpx.AsyncClient() as client:
            page = (await client.get(f"http://127.0.0.1:{cfg.display.port}/api/display", timeout=5)).json()
        assert page["face"] == "frown" and "stale_s" not in page  # a reading again: the face is for now
    finally:
        showing.cancel()
        agent.request_stop()
        await asyncio.wait_for(running, 30)
