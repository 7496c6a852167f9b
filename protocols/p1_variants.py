"""Every DSMR variant as data: how to recognise a telegram, and which dsmr-parser spec reads it.

The table is tried in order; the first variant whose test matches reads the telegram.
Normalisation then works by dsmr-parser's object names and the units the telegram
itself carries (Austrian meters say Wh and W), so no variant needs its own code.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dsmr_parser import telegram_specifications as specs
from dsmr_parser.parsers import TelegramParser

_VERSION = re.compile(rb"^1-3:0\.2\.8\((\d+)\)", re.MULTILINE)
_BE_VERSION = re.compile(rb"^0-0:96\.1\.4\((\d+)\)", re.MULTILINE)


def _header(raw: bytes) -> bytes:
    return raw.split(b"\n", 1)[0]


_TAIL = r".+?\r\n"


def _exact(pattern: str) -> str:
    """Make an OBIS pattern stop at its own code: ``1.8.1`` must not match ``1.8.11(`` (Israeli meters)."""
    if pattern.endswith(_TAIL) and "(?=" not in pattern:
        return pattern[: -len(_TAIL)] + r"(?=[(*])" + _TAIL
    return pattern


def _spec(base: dict[str, Any], plain_text: bool = False) -> dict[str, Any]:
    """A variant's spec: its own objects with exact codes, plus any DSMR 5 object it lacks
    (DSMR 4 meters also report voltages), read from plain text when ``plain_text``."""
    out = copy.copy(base)
    names = {o["value_name"] for o in base["objects"]}
    extra = [o for o in specs.V5["objects"] if o["value_name"] not in names]
    out["objects"] = [dict(o, obis_reference=_exact(o["obis_reference"])) for o in [*base["objects"], *extra]]
    if plain_text:
        out["general_global_cipher"] = False
    return out


@dataclass(frozen=True)
class Variant:
    name: str
    spec: dict[str, Any]
    matches: Callable[[bytes], bool]
    has_crc: bool = True  # False: DSMR 2.2/3 and some gateways send none by design
    has_clock: bool = True  # False: no 0-0:1.0.0 by design (DSMR 2.2/3, EasyMeter Q3D); the reader stamps them
    standard: str = "DSMR"  # what its version is a version of, as the probe names it


def _version_starts(prefix: bytes) -> Callable[[bytes], bool]:
    def test(raw: bytes) -> bool:
        m = _VERSION.search(raw)
        return m is not None and m.group(1).startswith(prefix)
    return test


VARIANTS: tuple[Variant, ...] = (
    Variant("luxembourg", _spec(specs.LUXEMBOURG_SMARTY, plain_text=True), lambda r: _header(r).startswith(b"/Lux")),
    Variant("belgium", _spec(specs.BELGIUM_FLUVIUS),
            lambda r: _header(r).startswith(b"/FLU") or _BE_VERSION.search(r) is not None),
    Variant("easymeter-q3d", _spec(specs.Q3D), lambda r: _header(r).startswith(b"/ESY"), has_crc=False,
            has_clock=False, standard="EasyMeter D0, not DSMR"),
    Variant("austria", _spec(specs.SAGEMCOM_T210_D_R, plain_text=True), lambda r: b"*Wh)" in r or b"*W)" in r),
    Variant("hungary", _spec(specs.EON_HUNGARY), lambda r: b"\n1-0:1.8.3(" in r and b"0-0:42.0.0(" in r),
    Variant("ireland", _spec(specs.ISKRA_IE), lambda r: b"MIE5T" in _header(r)),
    Variant("sweden", _spec(specs.SWEDEN),
            lambda r: b"\n1-0:1.8.0(" in r and b"\n1-0:1.8.1(" not in r and b"\n0-0:42.0.0(" not in r),
    Variant("dsmr5", _spec(specs.V5), _version_starts(b"5")),
    Variant("dsmr4", _spec(specs.V4), _version_starts(b"4")),
    Variant("dsmr2.2-3", _spec(specs.V2_2), lambda r: True, has_crc=False, has_clock=False),
)
BY_NAME = {variant.name: variant for variant in VARIANTS}

_PARSERS: dict[str, TelegramParser] = {}


def detect(raw: bytes) -> Variant:
    return next(v for v in VARIANTS if v.matches(raw))


def parse(raw: bytes, variant: Variant) -> Any:
    """dsmr-parser's Telegram for a plain-text frame (CRC already checked by the framer)."""
    parser = _PARSERS.get(variant.name)
    if parser is None:
        parser = _PARSERS[variant.name] = TelegramParser(variant.spec, apply_checksum_validation=False)
    # dsmr-parser's patterns expect CRLF; some meters end lines with LF only.
    text = re.sub(r"(?<!\r)\n", "\r\n", raw.decode("latin-1"))
    return parser.parse(text)


def version_of(raw: bytes, variant: Variant) -> str | None:
    """The P1 version as the meter states it ("5.0", "4.2"; Belgium with its e-MUCS id), else by variant."""
    be = _BE_VERSION.search(raw)
    if be is not None:
        digits = be.group(1).decode()
        return f"{digits[0]}.0 (e-MUCS {digits})"  # Fluvius states its companion-spec id, e.g. 50217
    m = _VERSION.search(raw)
    if m is not None:
        digits = m.group(1).decode()
        return f"{digits[0]}.{digits[1:]}" if len(digits) >= 2 else digits
    return {"dsmr2.2-3": "2.2/3.0", "sweden": None, "easymeter-q3d": None}.get(variant.name)


def _num(obj: Any) -> tuple[Decimal, str] | None:
    value = getattr(obj, "value", None)
    if value is None:
        return None
    try:
        return Decimal(value), (getattr(obj, "unit", None) or "")
    except (ArithmeticError, ValueError, TypeError):
        return None


def _scaled(value: Decimal, factor: Decimal) -> float:
    """``value * factor`` as a float; NaN where Decimal's context cannot hold it (``1e999999`` kWh), so the
    reading's check refuses it by name rather than ``decimal.Overflow`` escaping."""
    try:
        return float(value * factor)
    except ArithmeticError:
        return math.nan


_ONE, _KILO, _MILLI = Decimal(1), Decimal(1000), Decimal("0.001")


def energy_kwh(obj: Any) -> float | None:
    got = _num(obj)
    if got is None:
        return None
    value, unit = got
    return _scaled(value, _MILLI if unit.lower() == "wh" else _ONE)


def power_w(obj: Any) -> float | None:
    got = _num(obj)
    if got is None:
        return None
    value, unit = got
    return _scaled(value, _ONE if unit.lower() == "w" else _KILO)


def plain(obj: Any) -> float | None:
    got = _num(obj)
    return None if got is None else float(got[0])
