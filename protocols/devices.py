"""Device payloads (zigbee2mqtt, Shelly gen1/gen2, Tasmota, Glow) -> readings, as a table of mappings.

Each mapping is data: a topic pattern and how the payload's fields become a
:class:`DeviceReading`. Adding a device means adding a row, not a branch. Units are
normalised: power in W, energy in kWh, voltage in V, current in A.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

#: Glow reports -8388.608 (int24 0x800000 / 1000) when the meter gave no reading.
GLOW_ERROR = -8388.608
UINT48_NOT_AVAILABLE = 0xFFFFFFFFFFFF


class PayloadError(ValueError):
    """A payload that does not say what its device should; the message names the problem."""


@dataclass(frozen=True)
class DeviceReading:
    device: str  # e.g. "zigbee2mqtt:plug_kettle", "shelly:shellyplusplugs-abc:0"
    kind: str  # the mapping that read it
    power_w: float | None = None
    energy_kwh: float | None = None
    export_kwh: float | None = None
    voltage_v: float | None = None
    current_a: float | None = None
    ts: float | None = None  # the device's own timestamp, when it sends one
    extra: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, float]:
        return {k: v for k, v in (("power_w", self.power_w), ("energy_kwh", self.energy_kwh),
                                  ("export_kwh", self.export_kwh), ("voltage_v", self.voltage_v),
                                  ("current_a", self.current_a)) if v is not None}


#: Past any watts, volts, amps or kWh counter a plug or meter reports (a terawatt-hour): a broken device, or a
#: unit the hub does not know; refused rather than taken as a home's truth (it teaches the disaggregator).
MAX_VALUE = 1e12


def _json(payload: bytes | str) -> Any:
    try:
        return json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None


def _number(value: Any, what: str) -> float:
    """A number the payload must carry (a topic's whole payload, a field already seen present)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PayloadError(f"{what} is {value!r}, not a number")
    try:
        number = float(value)
    except ValueError:
        raise PayloadError(f"{what} is {value!r}, not a number") from None
    if not math.isfinite(number):
        raise PayloadError(f"{what} is {value!r}, not a finite number")
    if abs(number) > MAX_VALUE:
        raise PayloadError(f"{what} is {value!r}, more than any device reports")
    return number


def _optional_number(value: Any, what: str) -> float | None:
    """A field the payload may leave out (None); present, it must be a finite number."""
    return None if value is None else _number(value, what)


def _object(value: Any, what: str) -> dict[str, Any]:
    """A JSON object the payload may leave out (absent or null: empty); present, it must be an object, so a
    list or a number where a device sends an object is a ``PayloadError``, not an ``AttributeError``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{what} is {_short(value)}, not a JSON object")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _device_time(value: Any, what: str) -> float | None:
    """A device's own clock: Unix milliseconds (zigbee2mqtt's ``last_seen: epoch``) or ISO 8601 with an offset
    (zigbee2mqtt's ``ISO_8601`` and ``ISO_8601_local``, Tasmota with ``SetOption52 1``). A time without an offset
    (Tasmota's default, the device's local zone, which the hub does not know) gives None: the hub then stamps
    the reading as it arrives, as for devices that send no time."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value) / 1000
    if not isinstance(value, str):
        raise PayloadError(f"{what} is {value!r}, not a time")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(f"{what} is {value!r}, not an ISO 8601 time") from None
    return when.timestamp() if when.tzinfo is not None else None


def _pick(obj: dict[str, Any], table: dict[str, tuple[str, float]], device: str, kind: str) -> DeviceReading:
    """Fields of ``obj`` named in ``table`` (payload key -> (reading field, scale))."""
    values: dict[str, Any] = {}  # DeviceReading's keywords, all floats here
    for key, (name, scale) in table.items():
        number = _optional_number(obj.get(key), f"{key}")
        if number is not None:
            values[name] = number * scale
    return DeviceReading(device=device, kind=kind, **values)


def _one(device: str, kind: str, name: str, value: float) -> DeviceReading:
    """A reading of one field, named as a payload's topic names it."""
    values: dict[str, Any] = {name: value}
    return DeviceReading(device=device, kind=kind, **values)


# --- zigbee2mqtt -------------------------------------------------------------------------

Z2M_FIELDS = {"power": ("power_w", 1.0), "energy": ("energy_kwh", 1.0), "voltage": ("voltage_v", 1.0),
              "current": ("current_a", 1.0), "produced_energy": ("export_kwh", 1.0)}


def z2m_state(m: re.Match[str], payload: bytes) -> list[DeviceReading]:
    obj = _json(payload)
    if not isinstance(obj, dict):
        raise PayloadError("zigbee2mqtt state must be a JSON object")
    reading = _pick(obj, Z2M_FIELDS, f"zigbee2mqtt:{m['device']}", "zigbee2mqtt")
    return [replace(reading, ts=_device_time(obj.get("last_seen"), "last_seen"))] if reading.fields() else []


def z2m_attribute(m: re.Match[str], payload: bytes) -> list[DeviceReading]:
    name, scale = Z2M_FIELDS[m["attr"]]
    value = _number(payload.decode(errors="replace").strip(), m["attr"])
    return [_one(f"zigbee2mqtt:{m['device']}", "zigbee2mqtt", name, value * scale)]


def z2m_bridge_devices(payload: bytes) -> dict[str, dict[str, Any]]:
    """zigbee2mqtt's retained ``bridge/devices`` list -> {friendly_name: {ieee, model, vendor, type}}."""
    devices = _json(payload)
    if not isinstance(devices, list):
        raise PayloadError("bridge/devices must be a JSON list")
    out: dict[str, dict[str, Any]] = {}
    for d in devices:
        if not isinstance(d, dict) or d.get("type") == "Coordinator" or not d.get("friendly_name"):
            continue
        definition = _object(d.get("definition"), "definition")
        out[str(d["friendly_name"])] = {"ieee": d.get("ieee_address"), "model": definition.get("model"),
                                        "vendor": definition.get("vendor"), "type": d.get("type")}
    return out


# --- Shelly ---------------------------------------------------------------------------------

SHELLY1_FIELDS = {  # topic suffix -> (field, scale); energy counters in watt-minutes
    "relay/{ch}/power": ("power_w", 1.0), "relay/{ch}/energy": ("energy_kwh", 1 / 60000),
    "emeter/{ch}/power": ("power_w", 1.0), "emeter/{ch}/total": ("energy_kwh", 1 / 1000),
    "emeter/{ch}/total_returned": ("export_kwh", 1 / 1000), "emeter/{ch}/voltage": ("voltage_v", 1.0),
    "emeter/{ch}/current": ("current_a", 1.0),
}
_SHELLY1 = {re.escape(k).replace(r"\{ch\}", r"(?P<ch>\d+)"): v for k, v in SHELLY1_FIELDS.items()}


def shelly_gen1(m: re.Match[str], payload: bytes) -> list[DeviceReading]:
    for pattern, (name, scale) in _SHELLY1.items():
        sub = re.fullmatch(pattern, m["rest"])
        if sub:
            value = _number(payload.decode(errors="replace").strip(), m["rest"])
            return [_one(f"shelly:{m['device']}:{sub['ch']}", "shelly-gen1", name, value * scale)]
    return []  # other Shelly topics (online, temperature, relay state) carry no energy


SHELLY2_FIELDS = {"apower": ("power_w", 1.0), "voltage": ("voltage_v", 1.0), "current": ("current_a", 1.0)}
_SHELLY2_COMPONENT = re.compile(r"(switch|pm1|em1):(\d+)")


def shelly_gen2(m: re.Match[str], payload: bytes) -> list[DeviceReading]:
    """NotifyStatus / NotifyFullStatus: each switch:N (or pm1:N) component's changed values."""
    obj = _json(payload)
    if not isinstance(obj, dict) or obj.get("method") not in ("NotifyStatus", "NotifyFullStatus"):
        return []
    params = _object(obj.get("params"), "params")
    out = []
    for key, comp in params.items():
        sub = _SHELLY2_COMPONENT.fullmatch(key)
        if not sub or not isinstance(comp, dict):
            continue
        reading = _pick(comp, SHELLY2_FIELDS, f"shelly:{obj.get('src', m['device'])}:{sub[2]}", "shelly-gen2")
        energy = comp.get("aenergy")
        if isinstance(energy, dict) and energy.get("total") is not None:
            reading = replace(reading, energy_kwh=_number(energy["total"], "aenergy.total") / 1000)
        returned = comp.get("ret_aenergy")
        if isinstance(returned, dict) and returned.get("total") is not None:
            reading = replace(reading, export_kwh=_number(returned["total"], "ret_aenergy.total") / 1000)
        if reading.fields():
            out.append(replace(reading, ts=_optional_number(params.get("ts"), "ts")))
    return out


# --- Tasmota ---------------------------------------------------------------------------------

TASMOTA_FIELDS = {"Power": ("power_w", 1.0), "Total": ("energy_kwh", 1.0), "Voltage": ("voltage_v", 1.0),
                  "Current": ("current_a", 1.0)}


@dataclass(frozen=True)
class SmlKeys:
    """A Tasmota SML meter script's names: the user chooses them, so the hub is told them."""

    prefix: str = "SML"
    import_kwh: str = "Total_in"
    export_kwh: str = "Total_out"
    power_w: str = "Power_curr"


def tasmota(m: re.Match[str], payload: bytes, sml: SmlKeys = SmlKeys()) -> list[DeviceReading]:
    obj = _json(payload)
    if not isinstance(obj, dict):
        raise PayloadError("Tasmota SENSOR must be a JSON object")
    obj = _object(obj["StatusSNS"], "StatusSNS") if "StatusSNS" in obj else obj
    device = f"tasmota:{m['device']}"
    out: list[DeviceReading] = []
    energy = obj.get("ENERGY")
    if isinstance(energy, dict):
        channels = max((len(v) for v in energy.values() if isinstance(v, list)), default=0)
        if channels:  # multi-channel: arrays per channel, scalars shared
            for ch in range(channels):
                values = {k: (v[ch] if isinstance(v, list) and ch < len(v) else v)
                          for k, v in energy.items() if k != "Total" or not isinstance(v, dict)}
                if isinstance(energy.get("Total"), int | float) and ch > 0:
                    values.pop("Total", None)  # one Total for the device, kept on channel 1
                out.append(replace(_pick(values, TASMOTA_FIELDS, f"{device}:{ch + 1}", "tasmota"),
                                   extra={"channel": ch + 1}))
        else:
            out.append(_pick(energy, TASMOTA_FIELDS, device, "tasmota"))
    block = obj.get(sml.prefix)
    if isinstance(block, dict):
        power = _optional_number(block.get(sml.power_w), f"{sml.prefix}.{sml.power_w}")
        out.append(DeviceReading(
            device=f"{device}:meter", kind="tasmota-sml",
            energy_kwh=_optional_number(block.get(sml.import_kwh), f"{sml.prefix}.{sml.import_kwh}"),
            export_kwh=_optional_number(block.get(sml.export_kwh), f"{sml.prefix}.{sml.export_kwh}"),
            power_w=power))
    ts = _device_time(obj.get("Time"), "Time")
    return [replace(r, ts=ts) for r in out if r.fields()]


# --- Hildebrand Glow ---------------------------------------------------------------------------


def glow(m: re.Match[str], payload: bytes) -> list[DeviceReading]:
    obj = _json(payload)
    meter = obj.get(m["meter"]) if isinstance(obj, dict) else None
    if not isinstance(meter, dict):
        raise PayloadError(f"Glow payload lacks its {m['meter']!r} object")
    energy = _object(meter.get("energy"), "energy")
    imports = _object(energy.get("import"), "energy.import")
    imp = _optional_number(imports.get("cumulative"), "energy.import.cumulative")
    exp = _optional_number(_object(energy.get("export"), "energy.export").get("cumulative"), "energy.export.cumulative")
    power = _object(meter.get("power"), "power")
    kw = _optional_number(power.get("value"), "power.value")
    if kw is not None and abs(kw - GLOW_ERROR) < 1e-6:
        kw = None  # the meter's "no reading" sentinel
    units = power.get("units") or "kW"
    if not isinstance(units, str):
        raise PayloadError(f"power.units is {_short(units)}, not a unit")
    units = units.lower()
    return [DeviceReading(
        device=f"glow:{m['device']}:{m['meter']}", kind="glow",
        energy_kwh=imp if imp else None,  # a cumulative 0 is the CAD not having read the meter yet
        export_kwh=exp, power_w=None if kw is None else (kw * 1000 if units == "kw" else kw),
        extra={"mpan": imports.get("mpan") or imports.get("mprn")})]


# --- the table ---------------------------------------------------------------------------------

Decoder = Callable[[re.Match[str], bytes], list[DeviceReading]]


@dataclass(frozen=True)
class Mapping:
    name: str
    topic: re.Pattern[str]
    decode: Decoder
    subscribe: str  # the MQTT filter that brings these topics


def mappings(z2m_base: str = "zigbee2mqtt", sml: SmlKeys | None = None) -> tuple[Mapping, ...]:
    base = re.escape(z2m_base)
    keys = sml or SmlKeys()
    return (
        Mapping("zigbee2mqtt-attribute",
                re.compile(rf"{base}/(?P<device>[^/]+)/(?P<attr>{'|'.join(Z2M_FIELDS)})"), z2m_attribute,
                f"{z2m_base}/#"),
        Mapping("zigbee2mqtt", re.compile(rf"{base}/(?P<device>(?!bridge$)[^/]+)"), z2m_state, f"{z2m_base}/#"),
        Mapping("shelly-gen1", re.compile(r"shellies/(?P<device>[^/]+)/(?P<rest>.+)"), shelly_gen1, "shellies/#"),
        Mapping("shelly-gen2", re.compile(r"(?P<device>[^/]+)/events/rpc"), shelly_gen2, "+/events/rpc"),
        Mapping("tasmota", re.compile(r"tele/(?P<device>[^/]+)/SENSOR"), lambda m, p: tasmota(m, p, keys),
                "tele/+/SENSOR"),
        Mapping("tasmota-status", re.compile(r"stat/(?P<device>[^/]+)/STATUS10"), lambda m, p: tasmota(m, p, keys),
                "stat/+/STATUS10"),
        Mapping("glow", re.compile(r"glow/(?P<device>[^/]+)/SENSOR/(?P<meter>electricitymeter|gasmeter)"),
                glow, "glow/+/SENSOR/+"),
    )


def decode(topic: str, payload: bytes, table: tuple[Mapping, ...]) -> list[DeviceReading]:
    """Readings in one message; [] for topics no mapping reads; PayloadError for a bad payload."""
    for mapping in table:
        m = mapping.topic.fullmatch(topic)
        if m:
            return mapping.decode(m, payload)
    return []


def subscriptions(table: tuple[Mapping, ...]) -> list[str]:
    out: list[str] = []
    for mapping in table:
        if mapping.subscribe not in out:
            out.append(mapping.subscribe)
    return out


# --- Zigbee Smart Energy metering cluster (0x0702) ------------------------------------------------

SUMMATION_DELIVERED, SUMMATION_RECEIVED = 0x0000, 0x0001
UNIT_OF_MEASURE, MULTIPLIER, DIVISOR, INSTANTANEOUS_DEMAND = 0x0300, 0x0301, 0x0302, 0x0400
UNITS = {0: "kWh"}  # 0x00 = kW/kWh; others (m3, ft3, …) are not electricity


def _int24(value: int) -> int:
    value &= 0xFFFFFF
    return value - 0x1000000 if value & 0x800000 else value


def metering(attributes: dict[int, int], device: str = "zigbee") -> DeviceReading:
    """Energy (kWh) and demand (W) from metering attributes, scaled by multiplier/divisor.

    A uint48 of all ones is "not available"; demand is a signed 24-bit number.
    """
    unit = attributes.get(UNIT_OF_MEASURE, 0) & 0x7F
    if unit not in UNITS:
        raise PayloadError(f"metering unit 0x{unit:02x} is not kW/kWh")
    multiplier = attributes.get(MULTIPLIER, 1) or 1
    divisor = attributes.get(DIVISOR, 1) or 1

    def scaled(attr: int) -> float | None:
        raw = attributes.get(attr)
        if raw is None or raw == UINT48_NOT_AVAILABLE:
            return None
        return raw * multiplier / divisor

    demand = attributes.get(INSTANTANEOUS_DEMAND)
    return DeviceReading(device=device, kind="zigbee-metering", energy_kwh=scaled(SUMMATION_DELIVERED),
                         export_kwh=scaled(SUMMATION_RECEIVED),
                         power_w=None if demand is None else _int24(demand) * multiplier / divisor * 1000)
