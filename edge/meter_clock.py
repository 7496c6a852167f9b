"""A meter's clock that jumps ahead for one telegram is not believed until the next telegram agrees.

Meters do send the odd telegram stamped in the future (dsmr-reader keeps a test of it, in
``../shared/data/dsmr``: its datalogger drops telegrams ahead of the server's clock). The hub cannot judge
by its own clock: a Raspberry Pi has no battery clock, and an offline hub may run for days before NTP sets
it. Judged by the meter's own order instead, one such telegram did lasting harm: the disaggregator takes the
meter's order as the truth and ignored every later reading as late (until the meter's clock reached the
glitch, years on), and the face kept every later reading in its "last minute" (memory without bound).

So a reading more than ``JUMP_S`` ahead of the one before it is held back. If the next reading is at or after
it, the meter's clock really moved (the hub was off for hours, the meter set right): both go on. If the next
is before it, the held reading was a glitch: it is dropped and counted, and the readings go on from the one
before it. A reading behind the one before it is not held: the store keeps it (the cloud judges its time),
and the disaggregator and the face skip or restart on it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from protocols.readings import MeterReading

#: More than this ahead of the reading before it, a reading waits for the next to agree. An hour: a meter
#: telegram comes every 1 to 10 seconds, so anything longer is the hub having been away or the clock moving,
#: and waiting for one more telegram costs a few seconds.
JUMP_S = 3600


class ClockGuard:
    def __init__(self, last_ts: float | None = None, jump_s: float = JUMP_S) -> None:
        self.last_ts, self.jump_s = last_ts, jump_s
        self.held: MeterReading | None = None
        self.counters: Counter[str] = Counter()

    def admit(self, readings: Iterable[MeterReading]) -> list[MeterReading]:
        """The readings to keep, in order; a jump ahead held back until the next reading says whether it holds."""
        out: list[MeterReading] = []
        for reading in readings:
            held, self.held = self.held, None
            if held is not None:
                if reading.ts >= held.ts:
                    out.append(held)  # the next reading agrees: the clock really moved
                    self.last_ts = held.ts
                else:
                    self.counters["clock_jumps_dropped"] += 1
            if self.last_ts is not None and reading.ts - self.last_ts > self.jump_s:
                self.held = reading
                continue
            out.append(reading)
            self.last_ts = reading.ts if self.last_ts is None else max(self.last_ts, reading.ts)
        return out
