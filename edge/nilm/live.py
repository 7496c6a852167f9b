"""Disaggregation on the hub as readings arrive, in bounded memory.

The hub keeps the last ``window_s`` of whole-house power (a ring of at most one sample a
second), re-runs the batch disaggregator over it every ``every_s`` of new data, and emits
each appliance run once it has ended (``settle_s`` before the window's end), never twice.
Two hours of settling is what the fridge's floor needs (it looks ahead over the fridge's
longest rest); with it the live path gives exactly the batch path's runs on real days.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from edge.nilm.appliances import THRESHOLDS
from edge.nilm.disaggregate import disaggregate
from edge.nilm.model import Signature
from protocols.uplink import ApplianceRunV1


@dataclass(frozen=True)
class Run:
    appliance: str
    start: int
    end: int
    energy_wh: float
    peak_w: float
    profile_w: tuple[float, ...]  # mean W per minute from the start

    def to_uplink(self, confidence: float = 0.6) -> ApplianceRunV1:
        return ApplianceRunV1(appliance=self.appliance, start=self.start, end=max(self.end, self.start + 1),
                              energy_wh=round(self.energy_wh, 1), peak_w=round(self.peak_w, 1),
                              confidence=confidence, profile_w=list(self.profile_w)[: 24 * 60])


def runs_from(ts: np.ndarray, estimates: dict[str, np.ndarray]) -> list[Run]:
    """Contiguous stretches at or above each appliance's on threshold, with their energy and profile."""
    out: list[Run] = []
    if len(ts) < 2:
        return out
    dt = np.diff(ts, append=ts[-1] + np.median(np.diff(ts)))
    for name, est in estimates.items():
        on = est >= THRESHOLDS.get(name, 10)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            t, p, d = ts[a:b], est[a:b], dt[a:b]
            minutes = ((t - t[0]) // 60).astype(np.int64)
            profile = tuple(round(float(np.mean(p[minutes == m])), 1) for m in range(int(minutes[-1]) + 1)
                            if np.any(minutes == m))
            out.append(Run(name, int(t[0]), int(t[-1] + d[-1]), float(np.sum(p * d) / 3600), float(np.max(p)),
                           profile))
    return sorted(out, key=lambda r: (r.start, r.appliance))


class LiveDisaggregator:
    def __init__(self, model: dict[str, Signature], window_s: float = 6 * 3600, every_s: float = 300,
                 settle_s: float = 7200) -> None:
        self.model = model
        self.window_s, self.every_s, self.settle_s = window_s, every_s, settle_s
        self._ts: deque[float] = deque(maxlen=int(window_s) + 1)  # at most a sample a second
        self._w: deque[float] = deque(maxlen=int(window_s) + 1)
        self._last_run_at: float | None = None
        self._emitted: set[tuple[str, int]] = set()
        self._emitted_order: deque[tuple[str, int]] = deque(maxlen=10_000)  # bounded memory of what was sent

    def feed(self, ts: float, power_w: float) -> list[Run]:
        if self._ts and ts <= self._ts[-1]:
            return []  # a repeated or late sample: the meter's order is the truth
        self._ts.append(ts)
        self._w.append(power_w)
        while self._ts and self._ts[0] < ts - self.window_s:
            self._ts.popleft()
            self._w.popleft()
        if self._last_run_at is None:
            self._last_run_at = ts
        if ts - self._last_run_at < self.every_s:
            return []
        self._last_run_at = ts
        return self.flush(final=False)

    def flush(self, final: bool = True) -> list[Run]:
        """Runs that have ended (all of them when ``final``), each once."""
        if len(self._ts) < 3:
            return []
        ts = np.fromiter(self._ts, dtype=np.float64)
        w = np.fromiter(self._w, dtype=np.float64)
        horizon = float("inf") if final else ts[-1] - self.settle_s
        new = []
        for run in runs_from(ts, disaggregate(ts, w, self.model)):
            key = (run.appliance, run.start)
            if run.end > horizon or run.start <= ts[0] or key in self._emitted:
                continue  # still going, cut by the window's start, or already sent
            if len(self._emitted_order) == self._emitted_order.maxlen:
                self._emitted.discard(self._emitted_order[0])
            self._emitted_order.append(key)
            self._emitted.add(key)
            new.append(run)
        return new
