"""Hub throughput and cost: `python -m bench.hub [--seconds S]`.

1. Telegrams/s through the hub's P1 pipeline (framing, CRC, variant, dsmr-parser, normalising,
   SQLite, face) beside the bare dsmr-parser parse rate on the same telegrams (the baseline).
2. MQTT messages/s through the hub's MQTT link from a real Mosquitto (QoS 1), device
   payloads decoded and stored.
3. Real time: a real `ohmni hub run` process reading the simulated meter at 1 telegram/s
   with 10 plugs publishing at 1 Hz, uploading to a real cloud; its CPU share of one core
   and its resident memory, read from /proc.
The last line holds key=value figures.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from dsmr_parser import telegram_specifications
from dsmr_parser.parsers import TelegramParser

from edge.config import FaceConfig, MqttConfig
from edge.face import FaceTracker
from edge.mqtt_link import MqttLink
from edge.sources.serial_p1 import P1Decoder
from edge.store import HubStore
from firmware_sim.household import Household
from firmware_sim.meter import SimMeter
from ohmni.demo import free_port, spawn, start_cloud, wait_for
from protocols.devices import DeviceReading
from tests.fixtures.mosquitto import Broker

START = 1_764_057_600


def telegrams(n: int) -> list[bytes]:
    house = Household.load(None, START)
    meter = SimMeter()
    return [meter.telegram(meter.tick(START + i, sum(house.step(START + i).values()))) for i in range(n)]


def bench_parser(data: list[bytes]) -> float:
    parser = TelegramParser(telegram_specifications.V5)
    texts = [t.decode() for t in data]
    t0 = time.perf_counter()
    for text in texts:
        parser.parse(text)
    return len(texts) / (time.perf_counter() - t0)


def bench_pipeline(data: list[bytes], folder: Path) -> float:
    store = HubStore(folder / "bench-hub.sqlite3")
    face = FaceTracker(FaceConfig())
    decoder = P1Decoder()
    t0 = time.perf_counter()
    for telegram in data:
        readings = decoder.feed(telegram)
        store.add_readings(readings)
        for r in readings:
            face.update(r.ts, r.net_power_w)
    rate = len(data) / (time.perf_counter() - t0)
    assert decoder.counters["readings"] == len(data), decoder.counters
    store.close()
    return rate


async def bench_mqtt(broker: Broker, n: int) -> float:
    import aiomqtt

    from tests.fixtures.mosquitto import USERS

    got: list = []
    store = HubStore(Path(broker.folder) / "bench-mqtt.sqlite3")
    cfg = MqttConfig(enabled=True, host=broker.host, port=broker.port, username="hub", password=USERS["hub"],
                     client_id="bench-hub", discovery=False)
    def received(readings: list[DeviceReading]) -> None:
        got.extend(readings)
        store.add_device_readings(readings, time.time())

    link = MqttLink(cfg, "bench", received)
    task = asyncio.create_task(link.run())
    while not link.connected:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    payloads = [json.dumps({"power": i % 3000, "energy": i / 1000, "voltage": 230, "current": 1.0})
                for i in range(n)]
    async with aiomqtt.Client(broker.host, broker.port, username="device", password=USERS["device"],
                              max_inflight_messages=200) as device:
        t0 = time.perf_counter()
        for i, payload in enumerate(payloads):
            await device.publish(f"zigbee2mqtt/plug_{i % 10}", payload, qos=1)
        while len(got) < n:
            await asyncio.sleep(0.005)
        rate = n / (time.perf_counter() - t0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    store.close()
    return rate


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


PLUGS = "".join(f"""
[[plug]]
name = "plug_{i}"
appliance = "{app}"
kind = "{kind}"
every_s = 1
""" for i, (app, kind) in enumerate([("kettle", "zigbee"), ("fridge", "shelly"), ("washing_machine", "tasmota"),
                                      ("dishwasher", "zigbee"), ("microwave", "shelly")] * 2))


def bench_realtime(broker: Broker, folder: Path, seconds: float, nilm: bool) -> tuple[float, float]:
    from importlib import resources

    from tests.fixtures.mosquitto import USERS

    house = resources.files("firmware_sim").joinpath("household.toml").read_text()
    house = house[:house.index("# Smart plugs")] + PLUGS  # the demo home with ten plugs at 1 Hz
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "house.toml").write_text(house)
    for name in ("hub.token", "householder.key"):
        (folder / name).write_text(secrets.token_urlsafe(32))
    (folder / "device.pw").write_text(USERS["device"])
    (folder / "hub.toml").write_text(f"""
[mqtt]
enabled = true
host = "{broker.host}"
port = {broker.port}
username = "hub"
password = "{USERS['hub']}"
client_id = "bench-realtime-hub"

[nilm]
enabled = {"true" if nilm else "false"}
every_s = 30
""")
    cloud_port, display_port = free_port(), free_port()
    children = []
    try:
        children.append(start_cloud(folder, cloud_port))
        import httpx
        sim = spawn("sim", ["sim", "run", "--speed", "1", "--household", str(folder / "house.toml"), "--out",
                            str(folder / "sim"), "--link", str(folder / "tty"), "--mqtt",
                            f"{broker.host}:{broker.port}", "--mqtt-username", "device", "--mqtt-password-file",
                            str(folder / "device.pw")], folder)
        children.append(sim)
        wait_for("meter", (folder / "tty").exists, sim, 15)
        hub = spawn("hub", ["hub", "run", "--config", str(folder / "hub.toml"), "--port", str(folder / "tty"),
                            "--cloud", f"http://127.0.0.1:{cloud_port}", "--token-file", str(folder / "hub.token"),
                            "--data-dir", str(folder / "hub"), "--display-port", str(display_port)], folder)
        children.append(hub)
        wait_for("hub", lambda: httpx.get(f"http://127.0.0.1:{display_port}/api/status").status_code == 200, hub, 30)
        # past start-up (imports, first connections, the first upload's lazy imports)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = httpx.get(f"http://127.0.0.1:{display_port}/api/status").json()
            if status["uplink"]["counters"].get("batches_acked") and (status["mqtt"] or {}).get(
                    "counters", {}).get("device_readings"):
                break
            time.sleep(0.5)
        time.sleep(2)
        cpu0, t0 = proc_cpu_s(hub.proc.pid), time.monotonic()
        rss_peak = 0.0
        while time.monotonic() - t0 < seconds:
            time.sleep(1)
            rss_peak = max(rss_peak, proc_rss_mb(hub.proc.pid))
        cpu_pct = (proc_cpu_s(hub.proc.pid) - cpu0) / (time.monotonic() - t0) * 100
        status = httpx.get(f"http://127.0.0.1:{display_port}/api/status").json()
        mqtt = status["mqtt"]["counters"]
        print(f"  realtime: {status['store']['readings']} readings, {mqtt.get('device_readings', 0)} plug readings, "
              f"{status['uplink']['counters'].get('batches_acked', 0)} batches uploaded in the run")
        return cpu_pct, rss_peak
    finally:
        for child in reversed(children):
            child.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="real-time phase length (default 60)")
    parser.add_argument("--telegrams", type=int, default=3000, help="telegrams for the throughput phase")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ohmni-bench-hub-"))
    atexit.register(shutil.rmtree, folder, True)  # the working files go when the bench ends
    data = telegrams(args.telegrams)
    baseline = bench_parser(data)
    pipeline = bench_pipeline(data, folder)
    print(f"P1: bare dsmr-parser {baseline:,.0f} telegrams/s; hub pipeline {pipeline:,.0f} telegrams/s "
          f"({pipeline / baseline:.2f}x the parser alone)")
    if shutil.which("mosquitto") is None:
        sys.exit("mosquitto is not installed: the MQTT and real-time phases need it (apt-get install mosquitto)")
    from tests.fixtures.mosquitto import start_broker

    (folder / "mosquitto").mkdir()
    broker = start_broker(folder / "mosquitto")
    try:
        mqtt_rate = asyncio.run(bench_mqtt(broker, 5000))
        print(f"MQTT: {mqtt_rate:,.0f} messages/s through the hub link (QoS 1, decoded and stored)")
        cpu_pct, rss = bench_realtime(broker, folder / "plain", args.seconds, nilm=False)
        print(f"Real time (1 telegram/s + 10 plugs at 1 Hz, {args.seconds:.0f} s): hub CPU {cpu_pct:.2f}% of one "
              f"core, resident memory {rss:.1f} MB (goal: < 1% and < 80 MB)")
        cpu_nilm, rss_nilm = bench_realtime(broker, folder / "nilm", args.seconds, nilm=True)
        print(f"The same with disaggregation on (a pass every 30 s of meter time): CPU {cpu_nilm:.2f}%, "
              f"resident memory {rss_nilm:.1f} MB (NumPy's share; goal for disaggregation: < 100 MB)")
    finally:
        broker.stop()
    figures = {"telegrams_per_s": f"{pipeline:.0f}", "dsmr_parser_per_s": f"{baseline:.0f}",
               "pipeline_vs_parser": f"{pipeline / baseline:.3f}", "mqtt_msgs_per_s": f"{mqtt_rate:.0f}",
               "cpu_pct_realtime": f"{cpu_pct:.3f}", "rss_mb": f"{rss:.1f}",
               "cpu_pct_realtime_nilm": f"{cpu_nilm:.3f}", "rss_mb_nilm": f"{rss_nilm:.1f}"}
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
