"""One normalised object per P1 frame, whatever the variant: what `ohmni p1 decode` prints.

Energy in kWh and power in W whatever the meter's unit; ``total`` is the meter's own
total register where it has one, else the sum of its tariff registers; a register
reported as zero is 0, a field the telegram lacks is null.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from protocols.p1 import CrcStatus, DecodeError, Frame
from protocols.p1_variants import BY_NAME, detect, energy_kwh, parse, plain, power_w, version_of
from protocols.readings import MeterReading

_TARIFFS = ("1", "2", "3", "4")
GAS_DEVICE_TYPE = 3
#: Beyond what any meter shows, in its unit (kWh, W, V, m3, a count): DSMR registers have six to nine digits
#: before the point, and no connection draws a gigawatt. A telegram that says more, CRC or not, is refused rather
#: than stored. The cloud's own plausibility checks are tighter; this keeps what no meter can say (and what SQLite
#: cannot hold) out of the hub.
MOST = 1e9


def _registers(telegram: Any, kind: str, total_name: str) -> dict[str, float | None]:
    """Tariff registers and the total. A meter with only a total register (Sweden, Luxembourg)
    has one rate: its total is reported as tariff 1, with tariff 2 at 0, as billing systems do."""
    out: dict[str, float | None] = {}
    for n in _TARIFFS:
        value = energy_kwh(getattr(telegram, f"ELECTRICITY_{kind}_TARIFF_{n}", None))
        if value is not None or n in ("1", "2"):
            out[f"t{n}"] = value
    total = energy_kwh(getattr(telegram, total_name, None))
    tariff_values = [v for v in out.values() if v is not None]
    if total is None and tariff_values:
        total = round(sum(tariff_values), 6)
    elif total is not None and not tariff_values:
        out["t1"], out["t2"] = total, 0.0
    out["total"] = total
    return out


def _text_id(obj: Any) -> str | None:
    value = getattr(obj, "value", None)
    if not value:
        return None
    text = str(value)
    if len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
        try:
            decoded = bytes.fromhex(text).decode("ascii")
            if decoded.isprintable():
                return decoded
        except (ValueError, UnicodeDecodeError):
            pass
    return text


_DEVICE_TYPE = ("MBUS_DEVICE_TYPE", "DEVICE_TYPE")
_READING = ("MBUS_METER_READING", "HOURLY_GAS_METER_READING", "GAS_METER_READING")


def _first(obj: Any, names: tuple[str, ...]) -> Any:
    return next((getattr(obj, n) for n in names if getattr(obj, n, None) is not None), None)


def _gas(telegram: Any) -> tuple[float | None, str | None]:
    """The gas meter's reading: among M-Bus devices of type 3 (or of no stated type), one with a
    reading and a real capture time (an empty channel says 1970 and 0); else one with a reading."""
    devices = list(getattr(telegram, "MBUS_DEVICES", None) or []) or [telegram]
    candidates = []
    for device in devices:
        kind = plain(_first(device, _DEVICE_TYPE))
        reading = _first(device, _READING)
        if reading is None or plain(reading) is None or kind not in (None, GAS_DEVICE_TYPE):
            continue
        stamp = getattr(reading, "datetime", None)
        candidates.append((stamp is not None and stamp.year > 2000, reading))
    if not candidates:
        return None, None
    reading = next((r for real, r in candidates if real), candidates[0][1])
    return plain(reading), _when(reading)


def _when(obj: Any) -> str | None:
    stamp = getattr(obj, "datetime", None)
    return stamp.isoformat() if stamp is not None and stamp.year > 2000 else None


def _phases(telegram: Any, template: str, convert: Any) -> dict[str, float | None]:
    return {f"l{n}": convert(getattr(telegram, template.format(n=n), None)) for n in (1, 2, 3)}


def normalise(frame: Frame) -> dict[str, Any]:
    """The JSON object for one frame; decoding errors go in ``error``, never raise."""
    out: dict[str, Any] = {"crc": frame.crc.value, "variant": None, "version": None, "meter_id": None,
                           "timestamp": None, "import_kwh": None, "export_kwh": None, "power_import_w": None,
                           "power_export_w": None, "voltage_v": None, "current_a": None,
                           "power_import_phase_w": None, "gas_m3": None, "gas_timestamp": None,
                           "power_failures": None, "long_power_failures": None, "tariff": None,
                           "error": None}
    if frame.error is not None:
        out["error"] = f"{frame.error.value}: {frame.detail}" if frame.detail else frame.error.value
    variant = detect(frame.raw)
    out["variant"], out["version"] = variant.name, version_of(frame.raw, variant)
    try:
        telegram = parse(frame.raw, variant)
    except Exception as exc:  # dsmr-parser raises many kinds on broken input; report, never crash
        out["error"] = out["error"] or f"undecodable: {exc}"
        return out
    stamp = getattr(telegram, "P1_MESSAGE_TIMESTAMP", None)
    out["timestamp"] = stamp.value.isoformat() if stamp is not None and stamp.value is not None else None
    for name in ("EQUIPMENT_IDENTIFIER", "LUXEMBOURG_EQUIPMENT_IDENTIFIER", "BELGIUM_EQUIPMENT_IDENTIFIER",
                 "Q3D_EQUIPMENT_IDENTIFIER", "EQUIPMENT_SERIAL_NUMBER"):
        meter = _text_id(getattr(telegram, name, None))
        if meter:
            out["meter_id"] = meter
            break
    out["import_kwh"] = _registers(telegram, "USED", "ELECTRICITY_IMPORTED_TOTAL")
    out["export_kwh"] = _registers(telegram, "DELIVERED", "ELECTRICITY_EXPORTED_TOTAL")
    out["power_import_w"] = power_w(getattr(telegram, "CURRENT_ELECTRICITY_USAGE", None))
    out["power_export_w"] = power_w(getattr(telegram, "CURRENT_ELECTRICITY_DELIVERY", None))
    out["voltage_v"] = _phases(telegram, "INSTANTANEOUS_VOLTAGE_L{n}", plain)
    out["current_a"] = _phases(telegram, "INSTANTANEOUS_CURRENT_L{n}", plain)
    out["power_import_phase_w"] = _phases(telegram, "INSTANTANEOUS_ACTIVE_POWER_L{n}_POSITIVE", power_w)
    out["gas_m3"], out["gas_timestamp"] = _gas(telegram)
    short = plain(getattr(telegram, "SHORT_POWER_FAILURE_COUNT", None))
    long_ = plain(getattr(telegram, "LONG_POWER_FAILURE_COUNT", None))
    for key, count in (("power_failures", short), ("long_power_failures", long_)):
        if count is not None and not (0 <= count <= MOST and count == int(count)):
            out["error"] = out["error"] or f"{key.replace('_', ' ')} is {count}, not a count"
            count = None
        out[key] = None if count is None else int(count)
    tariff = getattr(telegram, "ELECTRICITY_ACTIVE_TARIFF", None)
    out["tariff"] = str(tariff.value) if tariff is not None and tariff.value is not None else None
    if out["import_kwh"]["total"] is None and out["power_import_w"] is None and out["error"] is None:
        out["error"] = "no energy register or power found: not a meter telegram this decoder knows"
    if out["error"] is None:
        try:
            _checked(out)
        except DecodeError as exc:
            out["error"] = str(exc)
    # what passed the checks is finite already; NaN or infinity can only be left where an error stands
    return out if out["error"] is None else _finite(out)


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None, at any depth: JSON has no NaN, and ``error`` has named them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


#: Each number the reading keeps, by where it sits in the normalised object, and how an error names it: groups of
#: registers or phases, then single values.
_GROUPS = (("import_kwh", "import register {} (kWh)"), ("export_kwh", "export register {} (kWh)"),
           ("voltage_v", "voltage {} (V)"), ("current_a", "current {} (A)"),
           ("power_import_phase_w", "power import phase {} (W)"))
_SINGLES = (("power_import_w", "power import (W)"), ("power_export_w", "power export (W)"), ("gas_m3", "gas (m3)"))


def _checked(obj: dict[str, Any]) -> None:
    """Every number the reading keeps is one a meter can give: NaN, infinite, negative or beyond any meter's
    digits is refused (a valid CRC only says the line carried the meter's bytes, not that they make sense).
    ``not 0 <= x <= MOST`` holds for NaN too; the error's words are made only for a value that fails (this runs
    for every telegram)."""
    for group, name in _GROUPS:
        for key, value in (obj[group] or {}).items():
            if value is not None and not 0 <= value <= MOST:
                raise DecodeError(f"{name.format(key)} is {value:g}, not a reading a meter gives (0 to {MOST:g})")
    for key, name in _SINGLES:
        value = obj[key]
        if value is not None and not 0 <= value <= MOST:
            raise DecodeError(f"{name} is {value:g}, not a reading a meter gives (0 to {MOST:g})")
    if obj["tariff"] is not None and not obj["tariff"].strip().isdigit():
        raise DecodeError(f"tariff indicator (0-0:96.14.0) is {obj['tariff']!r}, not a tariff number")


def _wh(kwh: float | None) -> int:
    return 0 if kwh is None else round(kwh * 1000)


def _w(watts: float | None) -> int:
    return 0 if watts is None else round(watts)


def _stamp(obj: dict[str, Any], received_at: int | None) -> int:
    if obj["timestamp"] is not None:
        return int(datetime.fromisoformat(obj["timestamp"]).timestamp())
    variant = BY_NAME.get(obj.get("variant") or "")
    if received_at is not None and variant is not None and not variant.has_clock:
        return received_at
    raise DecodeError("telegram has no valid timestamp (0-0:1.0.0)")


def to_reading(obj: dict[str, Any], received_at: int | None = None) -> MeterReading:
    """The hub's reading from a normalised frame; :class:`DecodeError` says what is missing or impossible.

    A meter with no clock by design (DSMR 2.2/3, EasyMeter Q3D) is stamped ``received_at``, the reader's clock, where
    one is given; a telegram of any other meter without its timestamp is refused, as a clock gone wrong would be."""
    if obj["error"]:
        raise DecodeError(obj["error"])
    ts = _stamp(obj, received_at)
    imp, exp = obj["import_kwh"], obj["export_kwh"]
    if imp["t1"] is None and imp["total"] is None:
        raise DecodeError("telegram has no import register (1-0:1.8.x)")
    volts = obj["voltage_v"] or {}
    t1, t2 = (imp["t1"], imp["t2"]) if imp["t1"] is not None else (imp["total"], 0.0)
    gas_ts = obj["gas_timestamp"]
    return MeterReading(
        ts=ts,
        meter_id=obj["meter_id"] or "unknown",
        import_t1_wh=_wh(t1), import_t2_wh=_wh(t2),
        export_t1_wh=_wh(exp["t1"]), export_t2_wh=_wh(exp["t2"]),
        power_import_w=_w(obj["power_import_w"]), power_export_w=_w(obj["power_export_w"]),
        voltage_l1_v=volts.get("l1"), tariff=int(obj["tariff"]) if obj["tariff"] else None,
        voltage_l2_v=volts.get("l2"), voltage_l3_v=volts.get("l3"),
        gas_m3=obj["gas_m3"], gas_ts=int(datetime.fromisoformat(gas_ts).timestamp()) if gas_ts else None,
        power_failures=obj["power_failures"], long_power_failures=obj["long_power_failures"],
    )


def decode_reading(raw: bytes) -> MeterReading:
    """Decode one accepted frame straight to a reading."""
    return to_reading(normalise(Frame(raw=raw, crc=CrcStatus.VALID)))
