"""Disaggregation on the hub as readings arrive, in bounded memory.

The hub keeps the last ``window_s`` of whole-house power (a ring of at most one sample a
second), re-runs the batch disaggregator over it every ``every_s`` of new data, and emits what
lies ``margin_s`` inside both ends of the window: what the disaggregator says at a moment
depends on the hour either side of it (the trees' widest windows, the home's floor), so that
far inside the window it says what the batch path says on the whole day. Each pass settles the
stretch after the last one's, and runs are stitched across passes: a run still going at the end
of a settled stretch stays open (its start, energy, peak, minute profile and confidence so far:
bounded) and goes on in the next, so a run of any length is emitted once, when it ends, as the
batch path has it. A run's confidence is the mean, over its samples, of how often calls like
them were right on homes the model never saw (``ApplianceModel.confidence``). Each half hour's
energy per appliance is settled the same way. As the hub stops, every run that has ended and
every whole half hour is sent with what the window holds; the run and the half hour in progress
are not: after every pass the hub keeps ``state()`` with what it settled, and a restarted hub
``resume``s from it with its store's last window of readings, so that run and half hour are sent
once and whole, and a hub killed before it could stop loses nothing it had not yet settled.
Where the meter goes silent for so long that what it said last, or the first of what it says after,
would be in the first ``margin_s`` of a window that has lost older power (which is never settled)
before a pass settles it — more than ``silence_s``, the window less both margins and a pass's
``every_s``: 3 h 55 min by default — the window is settled to its last sample first, as if the
hub stopped there, the half hour it was last seen in included (no more of it can come), and
starts afresh with the next sample, as a new hub would: nothing either side of the gap is lost.
A run open at the gap is closed where it was last seen.
An appliance a plug measures (``metered``) is settled nearer the window's end, ``PLUG_LAG_S`` before its last
reading, as far as its plug reported without a break: the plug's watts are what they are whatever the hour after says,
so its runs and half hours go to the cloud minutes after they end, not two hours. Where its plug was away the
disaggregator's estimate stands in, and that needs the margin as every other appliance's does. Each appliance is
settled to its own point (``state()`` keeps them).
Where the meter's clock is set back (it ran ahead, and was put right, or the hub restarted after readings stamped
ahead), a sample more than ``SETBACK_S`` behind the last is held until the next says whether to believe it: if the
next lies after it and before the last, the clock went back, and the window is settled as before a silence and starts
afresh from the held sample, its settling begun again there (what the hub sends of a half hour or run it sent before
is kept once, the first: the store and the cloud ignore the second); otherwise the held sample was a glitch, and is
dropped. Before, every reading behind the last was ignored as late, so a meter put right after a day ahead left the
home without appliances for a day.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np

from edge.nilm.appliances import THRESHOLDS
from edge.nilm.disaggregate import disaggregate_with_confidence
from edge.nilm.model import Model
from protocols.uplink import PROFILE_MINUTES, ApplianceEnergyV1, ApplianceRunV1


@dataclass(frozen=True)
class Run:
    appliance: str
    start: int
    end: int
    energy_wh: float
    peak_w: float
    profile_w: tuple[float, ...]  # mean W per minute from the start
    confidence: float = 1.0  # how likely its samples' calls are right (their mean; ``ApplianceModel.confidence``)

    def to_uplink(self) -> ApplianceRunV1:
        return ApplianceRunV1(appliance=self.appliance, start=self.start, end=max(self.end, self.start + 1),
                              energy_wh=round(self.energy_wh, 1), peak_w=round(self.peak_w, 1),
                              confidence=round(min(1.0, max(0.0, self.confidence)), 3),
                              profile_w=list(self.profile_w)[:PROFILE_MINUTES])


def runs_from(ts: np.ndarray, estimates: dict[str, np.ndarray],
              confidence: dict[str, np.ndarray] | None = None) -> list[Run]:
    """Contiguous stretches at or above each appliance's on threshold, with their energy, profile and (given each
    sample's, as ``disaggregate_with_confidence`` has them) confidence."""
    runs = RunsOfParts()
    runs.add(ts, estimates, confidence)
    return runs.end()


class RunsOfParts:
    """``runs_from`` on an input said a part at a time (``disaggregate_parts``), holding one sample of it: runs go on
    across parts, each sample lasts until the next (a part's last until the next part's first), the input's very
    last for the median step of its part (``runs_from`` on a whole input: the median of all of it)."""

    def __init__(self) -> None:
        self._going: dict[str, _OpenRun] = {}
        self._last: tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]] | None = None  # not yet stitched
        self._ended: list[Run] = []
        self._step: float | None = None  # the last part's median step

    def add(self, ts: np.ndarray, estimates: dict[str, np.ndarray],
            confidence: dict[str, np.ndarray] | None = None) -> None:
        if not len(ts):
            return
        sure = confidence if confidence is not None else {name: np.ones(len(ts)) for name in estimates}
        if self._last is not None:
            self._stitch(*self._last, np.array([ts[0] - self._last[0][0]]))
        if len(ts) >= 2:
            self._step = float(np.median(np.diff(ts)))
            self._stitch(ts[:-1], {k: v[:-1] for k, v in estimates.items()}, {k: v[:-1] for k, v in sure.items()},
                         np.diff(ts))
        self._last = ts[-1:].copy(), {k: v[-1:].copy() for k, v in estimates.items()}, {
            k: v[-1:].copy() for k, v in sure.items()}

    def end(self) -> list[Run]:
        """Every run, in order of start (then appliance); the runs still on at the input's end end there."""
        if self._last is not None and self._step is not None:  # (one sample, all the input, lasts no time: no run)
            self._stitch(*self._last, np.array([self._step]))
        self._last = None
        runs = self._ended + [run.closed() for run in self._going.values()]
        self._going.clear()
        return sorted(runs, key=lambda r: (r.start, r.appliance))

    def _stitch(self, ts: np.ndarray, estimates: dict[str, np.ndarray], confidence: dict[str, np.ndarray],
                dt: np.ndarray) -> None:
        self._ended += stitch(self._going, ts, estimates, confidence, dt, np.arange(len(ts)))


def stitch(going: dict[str, _OpenRun], ts: np.ndarray, estimates: dict[str, np.ndarray],
           confidence: dict[str, np.ndarray], dt: np.ndarray, index: np.ndarray) -> list[Run]:
    """The runs that ended within the samples ``index`` (in order, each held ``dt``), those still ``going`` at the
    sample before them carried on; ``going`` becomes the runs still on at their last (a stretch of a longer input:
    the next stretch carries them on)."""
    ended: list[Run] = []
    for name, est in estimates.items():
        found = stretches(est[index] >= THRESHOLDS.get(name, 10))
        run = going.pop(name, None)
        if run is not None and (not found or found[0][0] != 0):
            ended.append(run.closed())  # it ended just before this stretch
            run = None
        for a, b in found:
            piece = index[a:b]
            if a != 0 or run is None:
                run = _OpenRun(name, float(ts[piece[0]]))
            run.add(ts[piece], est[piece], dt[piece], confidence[name][piece])
            if b < len(index):
                ended.append(run.closed())
            else:
                going[name] = run
    return ended


def stretches(on: np.ndarray) -> list[tuple[int, int]]:
    """(first, past the last) index of each stretch where ``on`` holds."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


class OpenRunState(TypedDict):
    """An open run as ``LiveState`` keeps it."""

    appliance: str
    t0: float
    energy_ws: float
    peak_w: float
    end: float
    minutes: list[list[float]]  # [minute from the start, sum of W, samples], in minute order
    sure: float
    samples: int


class LiveState(TypedDict):
    """``LiveDisaggregator.state()``, kept as JSON in the hub's store: read back, it is checked, not trusted."""

    version: int
    settled_to: dict[str, float]  # per appliance: its half hours before this are settled
    runs_to: dict[str, float]  # per appliance: its samples before this are settled for runs
    last_run_at: float | None
    open: list[OpenRunState]


@dataclass
class _OpenRun:
    """A run still going at the end of what is settled: what the emitted run will need, nothing more."""
    appliance: str
    t0: float
    energy_ws: float = 0.0
    peak_w: float = 0.0
    end: float = 0.0
    minutes: dict[int, list[float]] = field(default_factory=dict)  # minute from the start -> [sum of W, samples]
    sure: float = 0.0  # the sum of its samples' confidence
    samples: int = 0

    def add(self, t: np.ndarray, p: np.ndarray, d: np.ndarray, sure: np.ndarray) -> None:
        self.energy_ws += float(np.sum(p * d))
        self.sure += float(np.sum(sure))
        self.samples += len(p)
        self.peak_w = max(self.peak_w, float(np.max(p)))
        self.end = float(t[-1] + d[-1])
        minute = ((t - self.t0) // 60).astype(np.int64)
        keep = minute < PROFILE_MINUTES
        found, index = np.unique(minute[keep], return_inverse=True)
        for m, total, n in zip(found, np.bincount(index, p[keep]), np.bincount(index), strict=True):
            into = self.minutes.setdefault(int(m), [0.0, 0])
            into[0] += float(total)
            into[1] += int(n)

    def to_json(self) -> OpenRunState:
        return {"appliance": self.appliance, "t0": self.t0, "energy_ws": self.energy_ws, "peak_w": self.peak_w,
                "end": self.end, "minutes": [[m, total, n] for m, (total, n) in sorted(self.minutes.items())],
                "sure": self.sure, "samples": self.samples}

    @classmethod
    def from_json(cls, d: OpenRunState) -> _OpenRun:
        """Raises ValueError (or KeyError, TypeError) for anything ``to_json`` did not write."""
        minutes = {int(m): [float(total), int(n)] for m, total, n in d["minutes"]}
        run = cls(str(d["appliance"]), float(d["t0"]), float(d["energy_ws"]), float(d["peak_w"]),
                  float(d["end"]), minutes, float(d["sure"]), int(d["samples"]))
        if not all(np.isfinite([run.t0, run.energy_ws, run.peak_w, run.end, run.sure])) or run.samples < 0:
            raise ValueError(f"an open {run.appliance} run that is not a run")
        return run

    def closed(self) -> Run:
        return Run(self.appliance, int(self.t0), int(self.end), self.energy_ws / 3600, self.peak_w,
                   tuple(round(total / n, 1) for _, (total, n) in sorted(self.minutes.items())),
                   self.sure / max(1, self.samples))


#: What plugs measured at the window's readings, per appliance: (its watts at each reading, whether a plug had
#: reported then). The hub's is ``edge.agent.HubAgent.metered``.
Metered = Callable[[np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]


class LiveDisaggregator:
    """The batch disaggregator over a sliding window (see the module's notes). With ``metered``, an appliance a plug
    measures is what the plug says wherever it was reporting (confidence 1), and the disaggregator's estimate only
    where it was away: a home told its washing machine's cost should hear what the plug on it counted."""

    def __init__(self, model: Model, window_s: float = 8 * 3600, every_s: float = 300,
                 margin_s: float = 7200, metered: Metered | None = None) -> None:
        self.model = model
        self.metered = metered
        self.window_s, self.every_s, self.margin_s = window_s, every_s, margin_s
        self._half_hours: dict[tuple[str, int], float] = {}  # settled, not yet taken
        self._settled_to: dict[str, float] = {}  # per appliance, its half hours before this are settled (none: -inf)
        self._ts: deque[float] = deque(maxlen=int(window_s) + 1)  # at most a sample a second
        self._w: deque[float] = deque(maxlen=int(window_s) + 1)
        self._last_run_at: float | None = None
        self._trimmed = False  # older power has left the window: its first two hours lack what came before
        self._runs_to: dict[str, float] = {}  # per appliance, its samples before this are settled for runs
        self._open: dict[str, _OpenRun] = {}  # per appliance, its run going on at ``_runs_to``
        self.passes = 0  # passes run (each settles more): the hub saves ``state()`` after one
        self._behind: tuple[float, float] | None = None  # a sample far behind the last, until the next agrees
        self.clock_setbacks = 0  # times the meter's clock went back and the window started afresh
        #: A longer silence is settled up to before the window goes on (see the module's notes); a short window
        #: with a long pass interval settles before any gap of a minute or more.
        self.silence_s = max(60.0, window_s - 2 * margin_s - every_s)

    def state(self) -> LiveState:
        """Where the settling got to, for a hub that restarts to go on from (``resume``): the half hours and runs are
        settled to here, these runs were still going there, the last pass ran then. Bounded (an open run's profile
        is). Half hours settled and not yet taken are not in it: take them first, and keep both together."""
        return {"version": 2, "settled_to": dict(sorted(self._settled_to.items())),
                "runs_to": dict(sorted(self._runs_to.items())), "last_run_at": self._last_run_at,
                "open": [run.to_json() for run in self._open.values()]}

    def resume(self, ts: Sequence[float], power_w: Sequence[float], state: LiveState, older: bool) -> None:
        """Go on where a hub that stopped (or was killed) left off, as if it had not: its window refilled with what
        its store kept (the last ``window_s`` of readings, ``older`` when the store holds some before them) and its
        ``state()`` as saved with what it last settled. The run going on as it stopped goes on (one run, not two),
        the half hour it stopped in is settled whole at the next pass, and what it had not yet settled (the last
        ``margin_s`` before a kill) is settled from the window. A state that is not one (a damaged store) raises
        ValueError and leaves this disaggregator as it was. A state saved by a hub before plugged appliances were
        settled apart (version 1: one point for all) is read as that point for each."""
        try:
            version, names = state.get("version"), list(self.model.appliances)
            settled_to = _points(version, state["settled_to"], names)
            runs_to = _points(version, state["runs_to"], names)
            last_run_at = None if state["last_run_at"] is None else float(state["last_run_at"])
            runs = [_OpenRun.from_json(d) for d in state["open"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a disaggregator's saved state ({exc})") from None
        if len(ts) != len(power_w) or any(b <= a for a, b in zip(ts, list(ts)[1:], strict=False)):
            raise ValueError("the window to resume with is not in time order")
        self._ts.clear()
        self._w.clear()
        self._ts.extend(ts)
        self._w.extend(power_w)
        self._trimmed = older or len(ts) > int(self.window_s) + 1
        self._settled_to, self._runs_to = settled_to, runs_to
        self._open = {run.appliance: run for run in runs}
        self._last_run_at = last_run_at if last_run_at is not None or not self._ts else self._ts[-1]
        self._behind = None

    def feed(self, ts: float, power_w: float) -> list[Run]:
        ended: list[Run] = []
        behind, self._behind = self._behind, None
        if self._ts and ts <= self._ts[-1]:
            if self._ts[-1] - ts <= SETBACK_S:
                self._behind = behind
                return []  # a repeated or late sample: the meter's order is the truth
            if behind is None or ts <= behind[0]:
                self._behind = (ts, power_w)  # the meter's clock went back, or one reading is stamped wrong
                return []
            ended = self._settle_before_setback()
            ended += self.feed(*behind)
            return ended + self.feed(ts, power_w)
        if self._ts and ts - self._ts[-1] > self.silence_s:
            ended = self._settle_before_gap()
        self._ts.append(ts)
        self._w.append(power_w)
        while self._ts and self._ts[0] < ts - self.window_s:
            self._ts.popleft()
            self._w.popleft()
            self._trimmed = True
        if self._last_run_at is None:
            self._last_run_at = ts
        if ts - self._last_run_at < self.every_s:
            return ended
        self._last_run_at = ts
        return ended + self.flush(final=False)

    def replay(self, ts: Iterable[float], power_w: Iterable[float]) -> tuple[list[Run], list[ApplianceEnergyV1]]:
        """The runs and half hours a hub sends over these readings, fed one at a time as the meter gives them and
        then stopped: what the benches and tests hold to the batch path."""
        runs: list[Run] = []
        half_hours: list[ApplianceEnergyV1] = []
        for t, w in zip(ts, power_w, strict=True):
            runs += self.feed(t, w)
            half_hours += self.take_half_hours()
        runs += self.flush()
        return runs, half_hours + self.take_half_hours()

    def _settle_before_gap(self) -> list[Run]:
        """Settle the window to its last sample (its last half hour too: the meter was away past its end) and
        empty it, so the next sample starts a window as a new hub's first does."""
        ended = self.flush(final=True, last_half_hour=True)
        self._ts.clear()
        self._w.clear()
        self._trimmed = False
        self._last_run_at = None
        return ended

    def _settle_before_setback(self) -> list[Run]:
        """As before a silence; then the runs still open are closed where they were last seen, and the settling
        starts again from the next sample, behind where it had got to."""
        ended = self._settle_before_gap()
        ended += [run.closed() for run in self._open.values()]
        self._open.clear()
        self._settled_to.clear()
        self._runs_to.clear()
        self.clock_setbacks += 1
        return ended

    def flush(self, final: bool = True, last_half_hour: bool = False) -> list[Run]:
        """Runs that ended in the stretch settled now (when ``final``, as the hub stops: to the last sample; with
        ``last_half_hour`` the half hour that sample is in is settled too, as far as it goes)."""
        if len(self._ts) < 3:
            return []
        ts = np.fromiter(self._ts, dtype=np.float64)
        w = np.fromiter(self._w, dtype=np.float64)
        horizon = ts[-1] if final else ts[-1] - self.margin_s
        after = ts[0] + self.margin_s if self._trimmed else ts[0]
        estimates, confidence = disaggregate_with_confidence(ts, w, self.model)
        horizons = dict.fromkeys(estimates, horizon)
        for name, (watts, known) in (self.metered(ts) if self.metered else {}).items():
            if name in estimates:
                estimates[name] = np.where(known, watts, estimates[name])
                confidence[name] = np.where(known, 1.0, confidence[name])
                if not final:
                    horizons[name] = plugged_horizon(ts, known, horizon)
        self.passes += 1
        self._settle_half_hours(ts, estimates, after, horizons, last_half_hour)
        return self._settle_runs(ts, estimates, confidence, after, horizons, final)

    def _settle_runs(self, ts: np.ndarray, estimates: dict[str, np.ndarray], confidence: dict[str, np.ndarray],
                     after: float, horizons: dict[str, float], final: bool) -> list[Run]:
        """Stitch each appliance's samples from where the last pass stopped to its horizon onto its open run; the
        runs that ended there are emitted."""
        ended = [self._open.pop(name).closed() for name in list(self._open) if name not in estimates]
        dt = np.diff(ts, append=ts[-1] + np.median(np.diff(ts)))
        for name, est in estimates.items():
            runs_to = self._runs_to.get(name, -np.inf)
            if runs_to < after and name in self._open:  # the window holds nothing of where it was last seen
                ended.append(self._open.pop(name).closed())
            horizon = horizons[name]
            index = np.flatnonzero((ts >= max(runs_to, after)) & ((ts <= horizon) if final else (ts < horizon)))
            if len(index):
                self._runs_to[name] = float(np.nextafter(ts[index[-1]], np.inf))
                ended += stitch(self._open, ts, {name: est}, confidence, dt, index)
        return sorted(ended, key=lambda r: (r.start, r.appliance))

    def _settle_half_hours(self, ts: np.ndarray, estimates: dict[str, np.ndarray], after: float,
                           horizons: dict[str, float], last_half_hour: bool = False) -> None:
        """Each appliance's whole half hours between ``after`` and its horizon not settled before (the hub's first
        half hour counts from its first sample; with ``last_half_hour``, so does the one the horizon is in)."""
        for name, est in estimates.items():
            first = max(self._settled_to.get(name, -np.inf),
                        after if self._trimmed else np.floor(after / HALF_HOUR) * HALF_HOUR)
            first = np.ceil(first / HALF_HOUR) * HALF_HOUR
            end = min(horizons[name], ts[-1])
            last = (np.floor(end / HALF_HOUR) + (1 if last_half_hour else 0)) * HALF_HOUR  # half hours ending by here
            if last <= first:
                continue
            for key, wh in half_hour_energy(ts, {name: est}, first, last).items():
                self._half_hours[key] = wh
            self._settled_to[name] = float(last)

    def take_half_hours(self) -> list[ApplianceEnergyV1]:
        """Energy per appliance per settled half hour, each once (the hub's outbox keeps them after)."""
        out = [ApplianceEnergyV1(appliance=name, start=start, energy_wh=round(wh, 2))
               for (name, start), wh in sorted(self._half_hours.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
        self._half_hours.clear()
        return out


HALF_HOUR = 1800
#: How far behind the meter's last reading a plugged appliance is settled: a plug reports a change at once, but its
#: report can reach the hub a moment after the meter's reading of the same moment (and a reading holds until the
#: next, ``PLUG_HOLD_S``); a minute leaves room for that and is still minutes, not hours.
PLUG_LAG_S = 60.0
#: A sample further behind the last than this is the meter's clock going back (once the next agrees), not a late
#: one. A minute: a meter sends every 1 to 10 s, in order, so only a repeat of the last few can be nearer.
SETBACK_S = 60.0


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


def plugged_horizon(ts: np.ndarray, known: np.ndarray, horizon: float) -> float:
    """How far a plugged appliance can be settled past ``horizon`` (the margin every appliance is settled to): up to
    ``PLUG_LAG_S`` before the last reading, but not past the first reading after ``horizon`` where its plug had not
    reported (the disaggregator's estimate there needs the hour after it)."""
    reach = ts[-1] - PLUG_LAG_S
    tail = (ts >= horizon) & (ts < reach)
    away = np.flatnonzero(tail & ~known)
    return max(horizon, float(ts[away[0]]) if len(away) else reach)


def _points(version: object, saved: object, appliances: Iterable[str]) -> dict[str, float]:
    """A saved state's settled-to points per appliance (version 2), or its one point for every appliance (1)."""
    if version == 1:
        if saved is None:
            return {}
        if not isinstance(saved, int | float):
            raise TypeError("a settled-to point that is not a time")
        return dict.fromkeys(appliances, float(saved))
    if version != 2:
        raise ValueError(f"version {version!r}")
    if not isinstance(saved, dict):
        raise TypeError("settled-to points are not per appliance")
    points = {str(name): float(x) for name, x in saved.items()}
    if not all(np.isfinite(list(points.values()))):
        raise ValueError("a settled-to point that is not a time")
    return points
