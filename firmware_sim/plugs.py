"""Simulated smart plugs that publish the real payload shapes of real devices over MQTT.

Each plug meters one appliance of the simulated home and publishes as its kind does:
a Zigbee metering plug through zigbee2mqtt (device state JSON), a Shelly gen2 plug
(NotifyStatus on <id>/events/rpc, energy in Wh) and a Tasmota plug (tele/<topic>/SENSOR
with an ENERGY object). Each carries the simulated time as its kind can (zigbee2mqtt's
``last_seen``, Shelly's ``ts``, Tasmota's ``Time`` with its offset), so the hub lines plug and
meter up at any speed. Shapes are data: a table of payload builders by kind.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

VOLTS = 230.0


@dataclass
class PlugState:
    name: str
    appliance: str
    kind: str
    every_s: int = 10
    energy_wh: float = 0.0
    last_sent: int | None = None


def _zigbee(p: PlugState, ts: int, watts: float) -> tuple[str, str]:
    return f"zigbee2mqtt/{p.name}", json.dumps({
        "last_seen": datetime.fromtimestamp(ts, UTC).isoformat(),  # zigbee2mqtt's advanced.last_seen: ISO_8601
        "power": round(watts), "energy": round(p.energy_wh / 1000, 2), "voltage": round(VOLTS),
        "current": round(watts / VOLTS, 2), "state": "ON" if watts > 0.5 else "OFF", "linkquality": 120})


def _shelly(p: PlugState, ts: int, watts: float) -> tuple[str, str]:
    return f"{p.name}/events/rpc", json.dumps({
        "src": p.name, "dst": "ohmni", "method": "NotifyStatus",
        "params": {"ts": float(ts), "switch:0": {"id": 0, "apower": round(watts, 1), "voltage": VOLTS,
                                                   "current": round(watts / VOLTS, 3),
                                                   "aenergy": {"total": round(p.energy_wh, 3)}}}})


def _tasmota(p: PlugState, ts: int, watts: float) -> tuple[str, str]:
    when = datetime.fromtimestamp(ts, UTC).isoformat()  # with its offset, as Tasmota sends it with SetOption52 1
    return f"tele/{p.name}/SENSOR", json.dumps({"Time": when, "ENERGY": {
        "TotalStartTime": "2024-01-01T00:00:00", "Total": round(p.energy_wh / 1000, 3), "Yesterday": 0.0,
        "Today": round(p.energy_wh / 1000, 3), "Power": round(watts), "ApparentPower": round(watts),
        "ReactivePower": 0, "Factor": 1.0 if watts else 0.0, "Voltage": round(VOLTS),
        "Current": round(watts / VOLTS, 3)}})


PAYLOADS: dict[str, Callable[[PlugState, int, float], tuple[str, str]]] = {
    "zigbee": _zigbee,
    "shelly": _shelly,
    "tasmota": _tasmota,
}


def plugs_from(spec: dict) -> list[PlugState]:
    """The household file's [[plug]] entries: name, appliance, kind (zigbee/shelly/tasmota), every_s."""
    out = []
    for entry in spec.get("plug", []):
        if entry.get("kind") not in PAYLOADS:
            raise ValueError(f"plug {entry.get('name')!r}: kind must be one of {', '.join(PAYLOADS)}")
        out.append(PlugState(name=str(entry["name"]), appliance=str(entry["appliance"]), kind=entry["kind"],
                             every_s=int(entry.get("every_s", 10))))
    return out


def step(plugs: list[PlugState], ts: int, watts: dict[str, float]) -> list[tuple[str, str]]:
    """Account one second for every plug; return the messages due now."""
    out = []
    for p in plugs:
        power = watts.get(p.appliance, 0.0)
        p.energy_wh += power / 3600
        if p.last_sent is None or ts - p.last_sent >= p.every_s:
            out.append(PAYLOADS[p.kind](p, ts, power))
            p.last_sent = ts
    return out
