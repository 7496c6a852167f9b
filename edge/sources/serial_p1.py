"""DSMR P1 over a serial port (or a pseudo-terminal), read with pyserial.

A reader thread blocks on the port and hands bytes to the event loop; framing and
decoding run in the loop. A port that vanishes (USB unplugged) is reopened with
backoff while the rest of the hub goes on.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

import serial

from edge.sources.base import ReadingSink
from protocols.p1 import CrcStatus, DecodeError, Frame, P1Framer
from protocols.p1_gcm import SMARTY_AUTH_KEY, GcmDecryptor, parse_key
from protocols.p1_normalise import normalise, to_reading
from protocols.p1_variants import detect
from protocols.readings import MeterReading

log = logging.getLogger("ohmni.hub.p1")
STRIP_PARITY = bytes(b & 0x7F for b in range(256))

def crc_acceptable(frame: Frame) -> bool:
    """Valid CRCs pass; an absent CRC only where the meter has none by design (DSMR 2.2/3)."""
    if frame.crc is CrcStatus.VALID:
        return True
    return frame.crc is CrcStatus.ABSENT and not detect(frame.raw).has_crc


class P1Decoder:
    """Bytes in, accepted readings out; every rejected frame counted by reason.

    With a key, the bytes are encrypted frames (Luxembourg Smarty) decrypted first. A meter with no clock (DSMR 2.2/3)
    is stamped by ``clock`` to the second as its bytes are decoded, and always a second after the reading before, so
    two telegrams read at once (a backlog after the hub was away) are two readings, not one stored twice.
    """

    def __init__(self, decryptor: GcmDecryptor | None = None, clock: Callable[[], float] = time.time) -> None:
        self.framer = P1Framer()
        self.decryptor = decryptor
        self.clock = clock
        self.counters: Counter[str] = Counter()
        self._last_ts = 0

    def feed(self, data: bytes) -> list[MeterReading]:
        if self.decryptor is not None:
            before = self.decryptor.counters["rejected_tag"]
            data = self.decryptor.feed(data)
            if self.decryptor.counters["rejected_tag"] > before:
                self.counters["rejected_decryption"] += self.decryptor.counters["rejected_tag"] - before
                log.warning("P1 frame rejected: %s", self.decryptor.last_error)
        readings = []
        for frame in self.framer.feed(data):
            self.counters["frames"] += 1
            if frame.error is not None:
                self.counters[f"rejected_{frame.error.value}"] += 1
                log.warning("P1 frame rejected (%s): %s", frame.error.value, frame.detail)
                continue
            if not crc_acceptable(frame):
                self.counters["rejected_missing_crc"] += 1
                log.warning("P1 frame rejected: DSMR 4+ telegram without its CRC")
                continue
            try:
                reading = to_reading(normalise(frame), received_at=max(int(self.clock()), self._last_ts + 1))
            except DecodeError as exc:
                self.counters["rejected_undecodable"] += 1
                log.warning("P1 frame rejected: %s", exc)
                continue
            except Exception:  # a decoder's own bug on a telegram nobody foresaw: that frame is lost, not the port
                self.counters["decoder_errors"] += 1
                log.exception("decoding a P1 frame failed; the frame is dropped")
                continue
            readings.append(reading)
            self._last_ts = reading.ts
            self.counters["readings"] += 1
        self.counters["skipped_bytes"] = self.framer.stats.skipped_bytes
        return readings


class SerialP1Source:
    name = "p1"

    def __init__(self, port: str, baudrate: int = 115200, bytesize: int = 8, parity: str = "N",
                 stopbits: int = 1, max_backoff_s: float = 30.0, key: str | None = None,
                 auth_key: str | None = None) -> None:
        self.port = port
        self.settings = {"baudrate": baudrate, "bytesize": bytesize, "parity": parity, "stopbits": stopbits}
        self.max_backoff_s = max_backoff_s
        decryptor = None
        if key:
            decryptor = GcmDecryptor(parse_key(key), parse_key(auth_key, "authentication key") if auth_key
                                     else SMARTY_AUTH_KEY)
        self.decoder = P1Decoder(decryptor)
        self.counters = self.decoder.counters
        self.connected = False
        self.last_error: str | None = None

    @property
    def seven_bit(self) -> bool:
        return self.settings["bytesize"] == 7

    def _reader(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes],
                stop: threading.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                with serial.Serial(self.port, timeout=1.0, **self.settings) as ser:
                    self.connected, self.last_error, backoff = True, None, 0.5
                    log.info("P1 port %s open", self.port)
                    while not stop.is_set():
                        data = ser.read(max(1, ser.in_waiting))
                        if data and self.seven_bit:
                            data = data.translate(STRIP_PARITY)  # a pty or lax adapter passes parity bits
                        if data:
                            loop.call_soon_threadsafe(queue.put_nowait, data)
            except (serial.SerialException, OSError) as exc:
                self.connected = False
                self.last_error = f"{self.port}: {exc}"
                self.counters["port_errors"] += 1
                log.warning("P1 port unavailable (%s); retrying in %.1f s", exc, backoff)
                stop.wait(backoff)
                backoff = min(self.max_backoff_s, backoff * 2)
        self.connected = False

    async def run(self, sink: ReadingSink) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        stop = threading.Event()
        thread = threading.Thread(target=self._reader, args=(loop, queue, stop), name="p1-reader", daemon=True)
        thread.start()
        try:
            while True:
                data = await queue.get()
                chunk: list[bytes] = [data]  # take what has piled up, decode it in one go
                while not queue.empty():
                    chunk.append(queue.get_nowait())
                readings: Sequence[MeterReading] = self.decoder.feed(b"".join(chunk))
                if readings:
                    sink(readings)
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, 2.0)
