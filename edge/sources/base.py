"""The source interface: a source runs until cancelled and hands readings to a sink.

Adding a device (serial meter now, MQTT plugs next) means adding a source; the
pipeline behind the sink never changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

from protocols.readings import MeterReading

#: Receives the readings decoded from one chunk of input, in order.
ReadingSink = Callable[[Sequence[MeterReading]], None]


class Source(Protocol):
    name: str
    #: counts by outcome, e.g. {"frames": 10, "rejected_bad_crc": 1}, for status and metrics
    counters: Counter[str]

    async def run(self, sink: ReadingSink) -> None:
        """Read forever (reconnecting as needed) until the task is cancelled."""
