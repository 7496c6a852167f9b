"""Find a meter's P1 line settings, version and variant: `ohmni hub probe --port P`.

DSMR 4/5 talk at 115200 baud, DSMR 2.2/3 at 9600 with 7 data bits and even parity
(7E1). Read at 8N1, a 7E1 line shows the parity in each byte's top bit, so one read at
each speed tells both the speed and the framing: strip the top bit and see whether
valid telegrams appear. Each speed is listened to for at most one DSMR 2.2 interval
(10 s) plus a margin, or until two telegrams have come; once one has come, for up to that
long again (at least ``LISTEN_S``, however short the listening asked) for the second, so a
meter that sends every 10 s has its interval named too.
The interval is read off the two telegrams' own timestamps (0-0:1.0.0), the clock the
hub stores readings by, and off their arrival only where a telegram carries none.
On a pseudo-terminal the speed is not emulated, so a simulated meter is always found
at the first speed tried.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import serial

from edge.sources.serial_p1 import STRIP_PARITY
from protocols.p1 import P1Framer
from protocols.p1_normalise import normalise
from protocols.p1_variants import detect

SPEEDS = (115200, 9600)
LISTEN_S = 11.0


@dataclass
class ProbeResult:
    baudrate: int
    framing: str  # "8N1" or "7E1"
    variant: str
    version: str | None
    meter_id: str | None
    interval_s: float | None
    crc: str
    standard: str = "DSMR"  # what ``version`` is a version of (``Variant.standard``)

    @property
    def kind(self) -> str:
        """As the probe names it: "DSMR 5.0", "DSMR ?" (a DSMR meter stating no version), "EasyMeter D0, not DSMR"."""
        return f"DSMR {self.version or '?'}" if self.standard == "DSMR" else self.standard


def _frames(data: bytes) -> list:
    framer = P1Framer()
    return [f for f in framer.feed(data) if f.error is None]


def _interval(frames: list, stamps: list[float]) -> float | None:
    """Seconds between the last two telegrams by the meter's clock, or by their arrival where either has no
    timestamp or the clock did not move forward between them (set back, or stuck); None with fewer than two."""
    if len(frames) < 2:
        return None
    clock = [normalise(f)["timestamp"] for f in frames[-2:]]
    if all(clock):
        seconds = (datetime.fromisoformat(clock[1]) - datetime.fromisoformat(clock[0])).total_seconds()
        if seconds > 0:
            return seconds
    return stamps[-1] - stamps[-2] if len(stamps) >= 2 else None


def probe(port: str, listen_s: float = LISTEN_S, progress: Callable[[str], None] = lambda s: None,
          opener: Callable[..., serial.Serial] = serial.Serial) -> ProbeResult | None:
    for baud in SPEEDS:
        progress(f"listening at {baud} baud …")
        data = b""
        stamps: list[float] = []
        seen = 0
        with opener(port, baudrate=baud, bytesize=8, parity="N", stopbits=1, timeout=0.2) as ser:
            end = time.monotonic() + listen_s
            while time.monotonic() < end:
                chunk = ser.read(max(1, ser.in_waiting))
                if not chunk:
                    continue
                data += chunk
                for framing, payload in (("8N1", data), ("7E1", data.translate(STRIP_PARITY))):
                    frames = _frames(payload)
                    if len(frames) > seen:
                        if seen == 0:  # the speed is found: wait as long again for a second telegram
                            end = time.monotonic() + max(listen_s, LISTEN_S)
                            progress(f"a telegram at {baud} baud {framing}; waiting for the next …")
                        stamps += [time.monotonic()] * (len(frames) - seen)
                        seen = len(frames)
                    if len(frames) >= 2 or (frames and time.monotonic() > end - 0.5):
                        last = normalise(frames[-1])
                        variant = detect(frames[-1].raw)
                        return ProbeResult(baud, framing, variant.name, last["version"], last["meter_id"],
                                           _interval(frames, stamps), last["crc"], variant.standard)
        progress(f"no telegram at {baud} baud" + (f" ({len(data)} bytes of noise)" if data else ""))
    return None


#: Where udev names each USB serial device by its vendor, model and serial number: names that survive a reboot.
BY_ID = Path("/dev/serial/by-id")
#: Kernel names given in the order devices are found: a P1 cable and a Zigbee stick may swap them at a boot.
KERNEL_NAMES = re.compile(r"/dev/tty(USB|ACM)\d+")


def stable_name(port: str) -> str | None:
    """The lasting name (under ``BY_ID``) of ``port`` where ``port`` is a kernel name that can change at a boot
    (/dev/ttyUSB0, /dev/ttyACM0); None where it is not one or udev gave it none. With a Zigbee stick beside the P1
    cable (zigbee2mqtt's), /dev/ttyUSB0 is whichever the kernel found first: the hub would read the stick's bytes
    and zigbee2mqtt the meter's."""
    if not KERNEL_NAMES.fullmatch(port):
        return None
    try:
        links = sorted(BY_ID.iterdir())
    except OSError:
        return None
    target = os.path.realpath(port)
    return next((str(link) for link in links if os.path.realpath(link) == target), None)
