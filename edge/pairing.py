"""Pairing Zigbee devices through zigbee2mqtt's bridge API, for `ohmni hub pair`.

zigbee2mqtt 2.x takes ``{"time": seconds}`` on ``bridge/request/permit_join`` (and
``{"time": 0}`` closes joining); 1.x took ``{"value": true}``. The bridge says its
version, retained, on ``bridge/info``; without it we speak 2.x. Joined devices show up
as ``bridge/event`` messages; renaming uses ``bridge/request/device/rename``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt


class PairingError(RuntimeError):
    pass


@dataclass
class Joined:
    ieee_address: str
    friendly_name: str
    model: str | None = None
    vendor: str | None = None
    interviewed: bool = False
    renamed_to: str | None = None


@dataclass
class PairingResult:
    bridge_version: str | None
    api: str
    devices: list[Joined] = field(default_factory=list)


def permit_payload(api: str, seconds: int) -> dict[str, Any]:
    if api == "1.x":
        return {"value": seconds > 0, "time": seconds} if seconds else {"value": False}
    return {"time": seconds}


def _object(payload: Any) -> dict[str, Any] | None:
    """A bridge message's JSON object, or None for anything else (not JSON, a list, a number): skipped, not a
    traceback that would leave joining open."""
    try:
        obj = json.loads(payload)
    except (TypeError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def _response(messages: asyncio.Queue[aiomqtt.Message], topic: str, timeout: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = await messages.get()
            if str(message.topic) == topic and (reply := _object(message.payload)) is not None:
                return reply


async def pair(client: aiomqtt.Client, base: str = "zigbee2mqtt", seconds: int = 120, count: int | None = None,
               names: list[str] | None = None, progress: Callable[[str], None] = lambda s: None,
               reply_timeout: float = 10.0) -> PairingResult:
    """Open joining, wait for devices (``count`` of them, or until ``seconds`` pass), name them, close."""
    queue: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
    for topic in (f"{base}/bridge/info", f"{base}/bridge/response/#", f"{base}/bridge/event"):
        await client.subscribe(topic, qos=1)

    async def pump() -> None:
        async for message in client.messages:
            queue.put_nowait(message)

    pumping = asyncio.create_task(pump())
    joining = False
    try:
        version = None
        try:
            info = await _response(queue, f"{base}/bridge/info", 2.0)
            version = str(info.get("version")) if info.get("version") else None
        except TimeoutError:
            pass
        api = "1.x" if version and version.startswith("1.") else "2.x"
        progress(f"zigbee2mqtt {version or '(version not published)'}: using the {api} bridge API")
        joining = True  # from here, however this ends, joining is closed again (finally)
        await client.publish(f"{base}/bridge/request/permit_join", json.dumps(permit_payload(api, seconds)), qos=1)
        reply = await _response(queue, f"{base}/bridge/response/permit_join", reply_timeout)
        if reply.get("status") != "ok":
            raise PairingError(f"zigbee2mqtt refused to open joining: {reply.get('error', reply)}")
        result = PairingResult(version, api)
        by_ieee: dict[str, Joined] = {}
        deadline = time.monotonic() + seconds
        progress(f"joining open for {seconds} s: put the devices in pairing mode")
        while time.monotonic() < deadline and (count is None or
                                              sum(d.interviewed for d in by_ieee.values()) < count):
            try:
                message = await asyncio.wait_for(queue.get(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if str(message.topic) != f"{base}/bridge/event":
                continue
            event = _object(message.payload) or {}
            data = _dict(event.get("data"))
            ieee = data.get("ieee_address")
            if not ieee or not isinstance(ieee, str):
                continue
            device = by_ieee.setdefault(ieee, Joined(ieee, str(data.get("friendly_name", ieee))))
            if event.get("type") == "device_joined":
                progress(f"joined: {device.friendly_name} ({ieee})")
            elif event.get("type") == "device_interview" and data.get("status") == "successful":
                definition = _dict(data.get("definition"))
                device.model, device.vendor, device.interviewed = definition.get("model"), definition.get(
                    "vendor"), True
                progress(f"ready: {device.friendly_name} {device.vendor or ''} {device.model or ''}".rstrip())
        await client.publish(f"{base}/bridge/request/permit_join", json.dumps(permit_payload(api, 0)), qos=1)
        joining = False
        result.devices = list(by_ieee.values())
        for device, name in zip(result.devices, names or [], strict=False):
            await client.publish(f"{base}/bridge/request/device/rename",
                                 json.dumps({"from": device.ieee_address, "to": name}), qos=1)
            reply = await _response(queue, f"{base}/bridge/response/device/rename", reply_timeout)
            if reply.get("status") != "ok":
                raise PairingError(f"renaming {device.friendly_name} failed: {reply.get('error', reply)}")
            device.renamed_to = name
            progress(f"named {device.ieee_address}: {name}")
        return result
    finally:
        if joining:  # stopped early (an error, Ctrl-C): the Zigbee network is not left open to any device
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(f"{base}/bridge/request/permit_join", json.dumps(permit_payload(api, 0)),
                                     qos=1)
        pumping.cancel()
