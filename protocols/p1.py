"""DSMR P1: find telegram frames in a byte stream, check their CRC, decode and encode them.

Framing is ours (the real line is messy: garbage, streams that start mid-telegram,
truncated frames); decoding is ``dsmr-parser``'s, whose specifications are tables of
OBIS code -> value parser. The encoder is what the simulated meter speaks.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from protocols.crc16 import crc16_arc
from protocols.readings import MeterReading

#: A frame larger than this without its ``!`` is garbage, not a telegram (real ones are < 3 KB).
MAX_FRAME_BYTES = 16 * 1024
#: DSMR writes its timestamps in Dutch local time, with an S/W flag for summer/winter.
METER_TZ = ZoneInfo("Europe/Amsterdam")

_HEADER = re.compile(rb"/[A-Za-z]{3}")
_MIDLINE_HEADER = re.compile(rb"/[A-Za-z]{3}[0-9]")
_HEX = frozenset(b"0123456789abcdefABCDEF")


class CrcStatus(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    ABSENT = "absent"


class FrameError(StrEnum):
    """Why a frame was rejected; the value is the counter's label."""

    TRUNCATED = "truncated"
    OVERSIZED = "oversized"
    BAD_CRC = "bad_crc"
    UNDECODABLE = "undecodable"


@dataclass(frozen=True, slots=True)
class Frame:
    """One candidate telegram cut from the stream, ``/`` through the CRC digits."""

    raw: bytes
    crc: CrcStatus
    error: FrameError | None = None
    detail: str = ""


@dataclass
class FramerStats:
    frames: int = 0
    skipped_bytes: int = 0
    errors: Counter[str] = field(default_factory=Counter)


def _crc_status(body: bytes, digits: bytes) -> CrcStatus:
    if not digits:
        return CrcStatus.ABSENT
    return CrcStatus.VALID if int(digits, 16) == crc16_arc(body) else CrcStatus.INVALID


class P1Framer:
    """Cut a P1 byte stream into frames.

    A frame starts at a ``/`` followed by three letters, at the start of a line or after
    garbage that holds no ``(`` (so a ``/`` inside a value is not a start); it ends at a
    line that begins with ``!`` plus up to four hex CRC digits. A new start before the
    ``!`` marks the frame before it as truncated. Bytes outside frames (a stream that
    starts mid-telegram, junk between frames) are skipped and counted.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.stats = FramerStats()

    def _find_start(self, pos: int) -> int:
        buf = self._buf
        while True:
            m = _HEADER.search(buf, pos)
            if m is None:
                return -1
            i = m.start()
            if i == 0 or buf[i - 1] in b"\r\n":
                return i
            # Mid-line: a real header (baud digit after the maker, no brackets on the
            # rest of its line) after garbage or a cut-off line; not a "/" inside a value.
            eol = buf.find(b"\n", i)
            rest = buf[i:eol if eol >= 0 else len(buf)]
            if _MIDLINE_HEADER.match(rest) and b"(" not in rest and b")" not in rest and eol >= 0:
                return i
            pos = i + 1

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return every frame completed by them."""
        self._buf += data
        return self._drain(final=False)

    def flush(self) -> list[Frame]:
        """End of stream: whatever is left is a frame cut short or garbage."""
        frames = self._drain(final=True)
        if self._buf:
            start = self._find_start(0)
            if start >= 0:
                self.stats.skipped_bytes += start
                frames.append(self._reject(bytes(self._buf[start:]), FrameError.TRUNCATED,
                                           "stream ended before the '!' line"))
            else:
                self.stats.skipped_bytes += len(self._buf)
            self._buf.clear()
        return frames

    def _reject(self, raw: bytes, error: FrameError, detail: str) -> Frame:
        self.stats.errors[error.value] += 1
        return Frame(raw=raw, crc=CrcStatus.ABSENT, error=error, detail=detail)

    def _drain(self, final: bool) -> list[Frame]:
        out: list[Frame] = []
        buf = self._buf
        while True:
            start = self._find_start(0)
            if start < 0:
                # Keep a short tail: it may be the first bytes of a header.
                keep = 3
                drop = max(0, len(buf) - keep)
                self.stats.skipped_bytes += drop
                del buf[:drop]
                return out
            if start:
                self.stats.skipped_bytes += start
                del buf[:start]
            end = buf.find(b"\n!", 1)
            nxt = self._find_start(1)
            if nxt >= 0 and (end < 0 or nxt < end):
                out.append(self._reject(bytes(buf[:nxt]), FrameError.TRUNCATED,
                                        "a new telegram began before this one's '!' line"))
                del buf[:nxt]
                continue
            if end < 0:
                if len(buf) > MAX_FRAME_BYTES:
                    out.append(self._reject(bytes(buf[:MAX_FRAME_BYTES]), FrameError.OVERSIZED,
                                            f"no '!' line within {MAX_FRAME_BYTES} bytes"))
                    del buf[:MAX_FRAME_BYTES]
                    continue
                return out
            bang = end + 1
            pos = bang + 1
            while pos < len(buf) and pos - bang <= 4 and buf[pos] in _HEX:
                pos += 1
            digits = bytes(buf[bang + 1:pos])
            if len(digits) < 4 and pos == len(buf) and not final:
                return out  # the CRC may still be arriving
            if len(digits) > 4:
                digits = digits[:4]
                pos = bang + 5
            body = bytes(buf[:bang + 1])
            raw = bytes(buf[:pos])
            del buf[:pos]
            self.stats.frames += 1
            status = _crc_status(body, digits)
            if status is CrcStatus.INVALID:
                self.stats.errors[FrameError.BAD_CRC.value] += 1
                out.append(Frame(raw=raw, crc=status, error=FrameError.BAD_CRC,
                                 detail=f"CRC {digits.decode()} does not match {crc16_arc(body):04X}"))
            else:
                out.append(Frame(raw=raw, crc=status))


def split_frames(data: bytes) -> list[Frame]:
    """Frame a whole byte string (a file, a capture)."""
    framer = P1Framer()
    return framer.feed(data) + framer.flush()


class DecodeError(ValueError):
    """A frame whose CRC is fine but whose content is not a usable reading."""


# --- encoding (the simulated meter) ---------------------------------------------------

def dsmr_timestamp(ts: int) -> str:
    """``YYMMDDhhmmssX`` in the meter's local time, X = S (summer) or W (winter)."""
    local = datetime.fromtimestamp(ts, UTC).astimezone(METER_TZ)
    flag = "S" if local.dst() else "W"
    return local.strftime("%y%m%d%H%M%S") + flag


def _kwh(wh: int, whole: int = 6) -> str:
    return f"{wh // 1000:0{whole}d}.{wh % 1000:03d}"


def _kw(w: int, whole: int = 2, decimals: int = 3) -> str:
    """Watts as kW with ``decimals`` places, cut (not rounded) as a meter shows them."""
    return f"{w // 1000:0{whole}d}.{w % 1000 // 10 ** (3 - decimals):0{decimals}d}"


def _meter_id(reading: MeterReading) -> str:
    return reading.meter_id.encode("latin-1").hex().upper()


@dataclass(frozen=True)
class DsmrVersion:
    """What a meter of one kind sends, as the simulated meter speaks it: a DSMR version, or the EasyMeter Q3D (not
    DSMR: a German D0 meter, read by the hub's ``easymeter-q3d`` variant)."""

    name: str  # as people say it: "5.0"
    crc: bool  # 2.2 and 3 end at a bare "!"
    voltage: bool  # 1-0:32.7.0 came with 5.0
    failure_counts: bool  # 0-0:96.7.21 and 0-0:96.7.9 came with 4
    watts_step: int  # 2.2 and 3 send kW with two decimals: 10 W steps
    every_s: int  # how often such meters send: 5.0 every second, the ones before every 10 s
    line: str  # the serial framing: 2.2 and 3 at 9600 baud 7E1, 4 and 5 at 115200 8N1
    standard: str = "DSMR"  # what the name is a version of
    tariffs: bool = True  # two import registers and a tariff indicator; the Q3D counts one total (1-0:1.8.0)
    header: str = "/OHM5\\2OHMNI-SIM-1"  # the identification line; a Q3D's starts "/ESY", as the hub tells it by

    @property
    def label(self) -> str:
        """As a person names it: "DSMR 5.0", "EasyMeter Q3D"."""
        return f"{self.standard} {self.name}"


DSMR_VERSIONS = {
    "22": DsmrVersion("2.2", crc=False, voltage=False, failure_counts=False, watts_step=10, every_s=10, line="7E1"),
    "30": DsmrVersion("3.0", crc=False, voltage=False, failure_counts=False, watts_step=10, every_s=10, line="7E1"),
    "42": DsmrVersion("4.2", crc=True, voltage=False, failure_counts=True, watts_step=1, every_s=10, line="8N1"),
    "50": DsmrVersion("5.0", crc=True, voltage=True, failure_counts=True, watts_step=1, every_s=1, line="8N1"),
    # As the recorded ndokter_easymeter-q3da1004 telegram: 9600 baud 7E1 (the volkszaehler wiki), unasked, every 2 s
    # (EasyMeter's push interfaces send a record every 2 s), no CRC, no clock, W per phase.
    "q3d": DsmrVersion("Q3D", crc=False, voltage=False, failure_counts=False, watts_step=1, every_s=2, line="7E1",
                       standard="EasyMeter", tariffs=False, header="/ESY5Q3DA1004 V3.04"),
}
VOLTAGE = "1-0:32.7.0"


def dsmr_version(version: str) -> DsmrVersion:
    """The table's row for ``version`` ("22", "30", "42", "50", "q3d"); a ValueError naming those for any other."""
    if version not in DSMR_VERSIONS:
        raise ValueError(f"DSMR version {version!r}: the simulated meter sends {', '.join(DSMR_VERSIONS)}")
    return DSMR_VERSIONS[version]


def _lines_4_5(reading: MeterReading, version: str, amps: int, voltage: float) -> list[str]:
    """DSMR 4.2 and 5.0: 4.2 sends a text message code and no voltage (5.0 added 1-0:32.7.0, dropped the code)."""
    lines = [
        f"1-3:0.2.8({version})",
        f"0-0:1.0.0({dsmr_timestamp(reading.ts)})",
        f"0-0:96.1.1({_meter_id(reading)})",
        f"1-0:1.8.1({_kwh(reading.import_t1_wh)}*kWh)",
        f"1-0:1.8.2({_kwh(reading.import_t2_wh)}*kWh)",
        f"1-0:2.8.1({_kwh(reading.export_t1_wh)}*kWh)",
        f"1-0:2.8.2({_kwh(reading.export_t2_wh)}*kWh)",
        f"0-0:96.14.0({reading.tariff or 1:04d})",
        f"1-0:1.7.0({_kw(reading.power_import_w)}*kW)",
        f"1-0:2.7.0({_kw(reading.power_export_w)}*kW)",
        f"0-0:96.7.21({reading.power_failures or 0:05d})",
        f"0-0:96.7.9({reading.long_power_failures or 0:05d})",
        "1-0:99.97.0(0)(0-0:96.7.19)",
        "1-0:32.32.0(00000)",
        "1-0:32.36.0(00000)",
        "0-0:96.13.1()",
        "0-0:96.13.0()",
        f"{VOLTAGE}({voltage:05.1f}*V)",
        f"1-0:31.7.0({amps:03d}*A)",
        f"1-0:21.7.0({_kw(reading.power_import_w)}*kW)",
        f"1-0:22.7.0({_kw(reading.power_export_w)}*kW)",
    ]
    dropped = "0-0:96.13.1" if DSMR_VERSIONS[version].voltage else VOLTAGE
    return [line for line in lines if not line.startswith(dropped + "(")]


#: Where DSMR 2.2 and 3.0 differ, as an Iskra MT382 of each writes them: the digits of kW before the point, and the
#: threshold (2.2 in kW, 3.0 in amps).
_THRESHOLDS_2_3 = {"22": (4, "0999.00*kW"), "30": (3, "016*A")}


def _lines_2_3(reading: MeterReading, version: str, amps: int, voltage: float) -> list[str]:
    """DSMR 2.2 and 3.0, as an Iskra MT382 of each sends it: no version line, no timestamp, five-digit kWh, kW to
    10 W, a threshold and a breaker, no failure counts and no voltage or current (the amps and voltage go unused:
    every version's line builder takes the same arguments)."""
    kw_digits, threshold = _THRESHOLDS_2_3[version]
    return [
        f"0-0:96.1.1({_meter_id(reading)})",
        f"1-0:1.8.1({_kwh(reading.import_t1_wh, whole=5)}*kWh)",
        f"1-0:1.8.2({_kwh(reading.import_t2_wh, whole=5)}*kWh)",
        f"1-0:2.8.1({_kwh(reading.export_t1_wh, whole=5)}*kWh)",
        f"1-0:2.8.2({_kwh(reading.export_t2_wh, whole=5)}*kWh)",
        f"0-0:96.14.0({reading.tariff or 1:04d})",
        f"1-0:1.7.0({_kw(reading.power_import_w, whole=kw_digits, decimals=2)}*kW)",
        f"1-0:2.7.0({_kw(reading.power_export_w, whole=kw_digits, decimals=2)}*kW)",
        f"0-0:17.0.0({threshold})",
        "0-0:96.3.10(1)",
        "0-0:96.13.1()",
        "0-0:96.13.0()",
    ]


def _lines_q3d(reading: MeterReading, version: str, amps: int, voltage: float) -> list[str]:
    """An EasyMeter Q3D, as the A1004 writes: OBIS codes with their F group (*255), one import register in kWh to
    seven places, watts (not kW) per phase and in all, a state word and a serial number; no tariff, clock or CRC.
    The simulated home is on one phase, L1."""
    watts = f"{reading.power_import_w:06d}.00*W"
    return [
        f"1-0:0.0.0*255({reading.meter_id})",
        f"1-0:1.8.0*255({_kwh(reading.import_t1_wh, whole=8)}0000*kWh)",
        f"1-0:21.7.0*255({watts})",
        "1-0:41.7.0*255(000000.00*W)",
        "1-0:61.7.0*255(000000.00*W)",
        f"1-0:1.7.0*255({watts})",
        "1-0:96.5.5*255(80)",
        f"0-0:96.1.255*255(1ESY{reading.meter_id})",
    ]


_LINES: dict[str, Callable[[MeterReading, str, int, float], list[str]]] = {
    "22": _lines_2_3, "30": _lines_2_3, "42": _lines_4_5, "50": _lines_4_5, "q3d": _lines_q3d}


def encode_dsmr(reading: MeterReading, version: str = "50", current_l1_a: int | None = None,
                header: str | None = None) -> bytes:
    """A telegram for ``reading`` as a meter of ``version`` sends it (``DSMR_VERSIONS``: "50" every second, "42"
    every 10 s without the voltage, "22" and "30" every 10 s without a CRC or a timestamp, "q3d" an EasyMeter's),
    CRLF line endings; ``header`` for another identification line than the version's."""
    spec = dsmr_version(version)
    voltage = reading.voltage_l1_v if reading.voltage_l1_v is not None else 230.0
    amps = current_l1_a if current_l1_a is not None else round(reading.power_import_w / voltage)
    lines = _LINES[version](reading, version, amps, voltage)
    body = "\r\n".join([header or spec.header, "", *lines, "!"]).encode("latin-1")
    return body + (f"{crc16_arc(body):04X}" if spec.crc else "").encode() + b"\r\n"


def encode_dsmr5(reading: MeterReading, current_l1_a: int | None = None, header: str | None = None) -> bytes:
    """A DSMR 5.0 telegram for ``reading``, CRLF line endings and a correct CRC-16."""
    return encode_dsmr(reading, "50", current_l1_a, header)
