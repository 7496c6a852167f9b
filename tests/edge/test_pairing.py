"""`ohmni hub pair` against a real Mosquitto and a stand-in zigbee2mqtt bridge.

The bridge is the one fake here (no Zigbee radio on this machine); it speaks zigbee2mqtt's
real bridge API: permit_join requests and responses, device_joined / device_interview
events, device rename.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from tests.edge.test_mqtt import device
from tests.fixtures.mosquitto import USERS

DEVICES = [("0x00158d0001a2b3c4", "TS011F_plug_1", "TuYa"), ("0x00158d0001a2b3c5", "SP 120", "innr")]


#: What a bridge (or another client on the broker) may put on the event topic that is not an event: skipped.
GARBLED = [b"{broken", b"[]", b"42", json.dumps({"type": "device_joined", "data": [1]}).encode(),
           json.dumps({"type": "device_interview", "data": {"ieee_address": 7, "status": "successful"}}).encode(),
           json.dumps({"type": "device_interview", "data": {"ieee_address": DEVICES[0][0], "status": "failed",
                                                            "definition": "TS011F"}}).encode()]


async def fake_bridge(broker, version: str, seen: list[dict], ready: asyncio.Event, base: str = "zigbee2mqtt",
                      garbled: bool = False) -> None:
    async with device(broker, identifier=f"z2m-{version}") as z2m:
        await z2m.publish(f"{base}/bridge/info", json.dumps({"version": version}), qos=1, retain=True)
        await z2m.subscribe(f"{base}/bridge/request/#", qos=1)
        ready.set()
        async for message in z2m.messages:
            request = json.loads(message.payload)
            seen.append({"topic": str(message.topic), **request})
            if str(message.topic).endswith("permit_join"):
                valid = ("time" in request) if version.startswith("2.") else ("value" in request)
                reply = {"data": request, "status": "ok"} if valid else {"data": {}, "status": "error",
                                                                         "error": "Invalid payload"}
                await z2m.publish(f"{base}/bridge/response/permit_join", json.dumps(reply), qos=1)
                if valid and (request.get("time") or request.get("value")):
                    for junk in GARBLED if garbled else []:
                        await z2m.publish(f"{base}/bridge/event", junk)
                    for ieee, model, vendor in DEVICES:
                        await asyncio.sleep(0.2)
                        await z2m.publish(f"{base}/bridge/event", json.dumps(
                            {"type": "device_joined", "data": {"friendly_name": ieee, "ieee_address": ieee}}))
                        await z2m.publish(f"{base}/bridge/event", json.dumps(
                            {"type": "device_interview", "data": {"friendly_name": ieee, "ieee_address": ieee,
                             "status": "successful", "supported": True,
                             "definition": {"model": model, "vendor": vendor}}}))
            elif str(message.topic).endswith("device/rename"):
                await z2m.publish(f"{base}/bridge/response/device/rename",
                                  json.dumps({"data": request, "status": "ok"}), qos=1)


async def run_pair(broker, tmp_path, version: str, garbled: bool = False) -> tuple[subprocess.CompletedProcess,
                                                                                   list[dict]]:
    (tmp_path / "pw").write_text(USERS["hub"])
    seen: list[dict] = []
    ready = asyncio.Event()
    bridge = asyncio.create_task(fake_bridge(broker, version, seen, ready, garbled=garbled))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        result = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "ohmni", "hub", "pair", "--mqtt", f"{broker.host}:{broker.port}", "--username",
            "hub", "--password-file", str(tmp_path / "pw"), "--time", "20", "--count", "2",
            "--names", "kettle_plug,fridge_plug"], capture_output=True, text=True, timeout=60)
    finally:
        bridge.cancel()
        await asyncio.gather(bridge, return_exceptions=True)
        async with device(broker, identifier="cleanup") as c:
            await c.publish("zigbee2mqtt/bridge/info", b"", retain=True)
    return result, seen


async def test_pairing_with_a_2x_bridge_names_the_joined_devices(mosquitto, tmp_path):
    result, seen = await run_pair(mosquitto, tmp_path, "2.1.3")
    assert result.returncode == 0, result.stderr
    assert seen[0] == {"topic": "zigbee2mqtt/bridge/request/permit_join", "time": 20}
    assert {"topic": "zigbee2mqtt/bridge/request/permit_join", "time": 0} in seen  # closed afterwards
    renames = [s for s in seen if s["topic"].endswith("rename")]
    assert [(r["from"], r["to"]) for r in renames] == [(DEVICES[0][0], "kettle_plug"), (DEVICES[1][0], "fridge_plug")]
    assert "kettle_plug" in result.stdout and "TS011F_plug_1" in result.stdout
    assert "2.x bridge API" in result.stderr


async def test_pairing_with_a_1x_bridge_uses_the_old_form(mosquitto, tmp_path):
    result, seen = await run_pair(mosquitto, tmp_path, "1.35.1")
    assert result.returncode == 0, result.stderr
    assert seen[0]["value"] is True and "1.x bridge API" in result.stderr
    assert {"topic": "zigbee2mqtt/bridge/request/permit_join", "value": False} in seen


async def test_messages_that_are_not_events_are_skipped_and_joining_still_closes(mosquitto, tmp_path):
    """Not JSON, not an object, data that is a list, an address that is a number: skipped (each once raised out of
    the pairing, with joining left open); the devices are still found, named, and joining closed."""
    result, seen = await run_pair(mosquitto, tmp_path, "2.1.3", garbled=True)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert [s["to"] for s in seen if s["topic"].endswith("rename")] == ["kettle_plug", "fridge_plug"]
    assert {"topic": "zigbee2mqtt/bridge/request/permit_join", "time": 0} in seen


async def test_no_broker_is_a_clear_error(tmp_path):
    result = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "ohmni", "hub", "pair", "--mqtt", "127.0.0.1:1", "--time", "2"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "cannot reach the broker" in result.stderr
    assert "Traceback" not in result.stderr




async def test_a_password_file_that_cannot_be_read_is_named(tmp_path):
    """Not "not authorised" from a broker asked with no password: the file is named, before any connection."""
    result = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "ohmni", "hub", "pair", "--mqtt", "127.0.0.1:1", "--username", "hub",
        "--password-file", str(tmp_path / "nope"), "--time", "2"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "cannot read the MQTT password" in result.stderr and "nope" in result.stderr
