"""Disaggregation on the hub as readings arrive, in bounded memory.

The hub keeps the last ``window_s`` of whole-house power (a ring of at most one sample a
second), re-runs the batch disaggregator over it every ``every_s`` of new data, and emits
each appliance run once, when it lies ``margin_s`` inside both ends of the window: what the
disaggregator says at a moment depends on the hour either side of it (the trees' widest
windows, the home's floor), so a run that far inside the window is called as the batch path
calls it on the whole day. Each half hour's energy per appliance is settled the same way.
A run longer than the window less both margins (four hours by default) is not seen live.
As the hub stops, every run that has ended and every whole half hour is sent with what the
window holds; the half hour in progress is not (after a restart it would be counted twice).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from edge.nilm.appliances import THRESHOLDS
from edge.nilm.disaggregate import disaggregate
from edge.nilm.model import Model
from protocols.uplink import ApplianceEnergyV1, ApplianceRunV1


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
    def __init__(self, model: Model, window_s: float = 8 * 3600, every_s: float = 300,
                 margin_s: float = 7200) -> None:
        self.model = model
        self.window_s, self.every_s, self.margin_s = window_s, every_s, margin_s
        self._half_hours: dict[tuple[str, int], float] = {}  # settled, not yet taken
        self._settled_to = -np.inf  # half hours before this are settled
        self._ts: deque[float] = deque(maxlen=int(window_s) + 1)  # at most a sample a second
        self._w: deque[float] = deque(maxlen=int(window_s) + 1)
        self._last_run_at: float | None = None
        self._trimmed = False  # older power has left the window: its first two hours lack what came before
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
            self._trimmed = True
        if self._last_run_at is None:
            self._last_run_at = ts
        if ts - self._last_run_at < self.every_s:
            return []
        self._last_run_at = ts
        return self.flush(final=False)

    def flush(self, final: bool = True) -> list[Run]:
        """Runs settled (when ``final``, as the hub stops: every run that has ended), each once."""
        if len(self._ts) < 3:
            return []
        ts = np.fromiter(self._ts, dtype=np.float64)
        w = np.fromiter(self._w, dtype=np.float64)
        horizon = ts[-1] if final else ts[-1] - self.margin_s
        after = ts[0] + self.margin_s if self._trimmed else ts[0]
        estimates = disaggregate(ts, w, self.model)
        self._settle_half_hours(ts, estimates, after, horizon)
        new = []
        for run in runs_from(ts, estimates):
            key = (run.appliance, run.start)
            if run.end > horizon or run.start < after or key in self._emitted:
                continue  # still going, too near the window's start to be sure, or already sent
            if len(self._emitted_order) == self._emitted_order.maxlen:
                self._emitted.discard(self._emitted_order[0])
            self._emitted_order.append(key)
            self._emitted.add(key)
            new.append(run)
        return new

    def _settle_half_hours(self, ts: np.ndarray, estimates: dict[str, np.ndarray], after: float,
                           horizon: float) -> None:
        """Whole half hours between ``after`` and ``horizon`` not settled before (the hub's first half hour counts
        from its first sample)."""
        first = max(self._settled_to, after if self._trimmed else np.floor(after / HALF_HOUR) * HALF_HOUR)
        first = np.ceil(first / HALF_HOUR) * HALF_HOUR
        last = np.floor(min(horizon, ts[-1]) / HALF_HOUR) * HALF_HOUR  # half hours that end by here
        if last <= first:
            return
        for (name, start), wh in half_hour_energy(ts, estimates, first, last).items():
            self._half_hours[(name, start)] = wh
        self._settled_to = last

    def take_half_hours(self) -> list[ApplianceEnergyV1]:
        """Energy per appliance per settled half hour, each once (the hub's outbox keeps them after)."""
        out = [ApplianceEnergyV1(appliance=name, start=start, energy_wh=round(wh, 2))
               for (name, start), wh in sorted(self._half_hours.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
        self._half_hours.clear()
        return out


HALF_HOUR = 1800


def half_hour_energy(ts: np.ndarray, estimates: dict[str, np.ndarray], first: float = -np.inf,
                     last: float = np.inf) -> dict[tuple[str, int], float]:
    """Wh per (appliance, half-hour start) for the half hours in [first, last), each sample held until the next."""
    if len(ts) < 2:
        return {}
    dt = np.diff(ts, append=ts[-1] + np.median(np.diff(ts)))
    dt = np.minimum(dt, 60.0)  # a gap in the meter's data is not an appliance running through it
    slot = (np.floor(ts / HALF_HOUR) * HALF_HOUR).astype(np.int64)
    keep = (slot >= first) & (slot < last)
    out: dict[tuple[str, int], float] = {}
    slots, index = np.unique(slot[keep], return_inverse=True)
    for name, est in estimates.items():
        wh = np.bincount(index, (est * dt)[keep], len(slots)) / 3600
        for start, value in zip(slots, wh, strict=True):
            out[(name, int(start))] = float(value)
    return out
