"""What the hub learns from submetered houses, in two layers, all from the data (no hand-typed power):

1. each appliance's switching *signature* (``Signature``): the power it draws when on, the
   steps it makes in the whole-house signal, how long its runs and rests last, and for the
   washing machine and dishwasher the heating element and where it sits in the cycle. The
   event detector (``events.py``) pairs the mains' steps with these.
2. per appliance, two boosted-tree models (``boost.py``) that read the mains' shapes over several
   time scales (``features.py``), one also the event detector's verdicts (the washing machine three
   such pairs, ``ENSEMBLE``). They vote (the mean of their probabilities), with or without the
   detector as a third voter (its verdict 0 or 1; only for the appliances it pairs by their own
   steps: kettle, microwave, fridge). Which of the two votes, the vote above which the appliance is
   on, the window whose floor a call's watts stand above, how much a doubtful call's watts are
   hedged and the shortest and longest runs of calls kept are chosen *out of fold*: trees trained on
   half of the training houses are scored on the other half, so each choice is made on homes the trees
   never saw. For appliances with few runs the trees also see synthetic homes, and the washing machine
   other appliances' days that are not washes (``synthetic.py``).

``adapt.py`` goes on from a learned model with one home's own submetered history (its plugs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np

from edge.nilm import ModelFileError
from edge.nilm.appliances import NAMES, THRESHOLDS
from edge.nilm.boost import Trees, fit
from edge.nilm.events import ORDER
from edge.nilm.features import EVENT_COLUMNS, FEATURE_NAMES, GRID_S, cells_of, house_matrix, window
from edge.nilm.house_csv import House
from edge.nilm.synthetic import with_synthetic

MODEL_VERSION = 2


@dataclass
class Signature:
    on_w: float  # median power while on
    step_lo: float  # rising steps of this size (10th…90th percentile, widened)
    step_hi: float
    dur_lo: float  # run lengths in seconds (5th…95th percentile)
    dur_hi: float
    runs: int  # runs seen in training (0: nothing learned)
    # multi-state appliances (washing machine, dishwasher): the heating element and the cycle around it
    heat_w: float = 0.0
    heat_dur_lo: float = 0.0
    heat_dur_hi: float = 0.0
    before_heat_s: float = 0.0  # median time from the cycle's start to its first heating
    after_heat_s: float = 0.0  # median time from the last heating to the cycle's end
    idle_w: float = 0.0  # median power in the cycle outside heating
    dur_median: float = 0.0  # median run length
    heats_per_cycle: float = 0.0  # how many heating runs a cycle has (a dishwasher heats twice)
    off_hi: float = 0.0  # 95th percentile of the time between runs (a cycling fridge's longest rest)


def runs_of(on: np.ndarray, ts: np.ndarray, max_gap_s: float) -> list[tuple[int, int]]:
    """[start, end) index ranges where ``on`` holds, bridging off-gaps shorter than ``max_gap_s``."""
    idx = np.flatnonzero(on)
    if not len(idx):
        return []
    out: list[tuple[int, int]] = []
    start = prev = idx[0]
    for i in idx[1:]:
        if ts[i] - ts[prev] > max_gap_s:
            out.append((start, prev + 1))
            start = i
        prev = i
    out.append((start, prev + 1))
    return out


GAP_S = {"kettle": 20, "microwave": 30, "fridge": 60, "washing_machine": 600, "dishwasher": 900}


def learn_signatures(houses: list[House]) -> dict[str, Signature]:
    model: dict[str, Signature] = {}
    for name in NAMES:
        powers, steps, durations, gaps = [], [], [], []
        for house in houses:
            p = house.appliances.get(name)
            if p is None:
                continue
            on = p >= THRESHOLDS[name]
            powers.append(p[on])
            runs = runs_of(on, house.timestamp, GAP_S[name])
            gaps += [float(house.timestamp[a2] - house.timestamp[b1 - 1]) for (_, b1), (a2, _) in zip(runs, runs[1:],
                                                                                                       strict=False)]
            for a, b in runs:
                durations.append(house.timestamp[b - 1] - house.timestamp[a] + 7)
                steps.append(float(np.max(p[a:b])) if name in ("kettle", "microwave") else float(np.median(p[a:b])))
        allp = np.concatenate(powers) if powers else np.array([])
        if len(durations) < 2 or not len(allp):
            model[name] = Signature(0, 0, 0, 0, 0, len(durations))
            continue
        s, d = np.asarray(steps), np.asarray(durations)
        model[name] = Signature(
            on_w=float(np.median(allp)), step_lo=float(np.percentile(s, 10) * 0.8),
            step_hi=float(np.percentile(s, 90) * 1.2), dur_lo=float(np.percentile(d, 5) * 0.7),
            dur_hi=float(np.percentile(d, 95) * 1.3), runs=len(durations), dur_median=float(np.median(d)),
            off_hi=float(np.percentile(gaps, 95)) if gaps else 0.0)
        if name in MULTI_STATE:
            model[name] = _heating(model[name], houses, name)
    return model


MULTI_STATE = ("washing_machine", "dishwasher")
HEAT_FLOOR_W = 1000.0


def _heating(sig: Signature, houses: list[House], name: str) -> Signature:
    """Learn the heating element: its power, how long it heats, and where in the cycle."""
    heat_p, heat_d, before, after, idle, counts = [], [], [], [], [], []
    for house in houses:
        p = house.appliances.get(name)
        if p is None:
            continue
        ts = house.timestamp
        for a, b in runs_of(p >= THRESHOLDS[name], ts, GAP_S[name]):
            seg, t = p[a:b], ts[a:b]
            heating = seg >= HEAT_FLOOR_W
            if not heating.any():
                continue
            heats = runs_of(heating, t, 60)
            counts.append(len(heats))
            for x, y in heats:
                heat_p.append(float(np.median(seg[x:y])))
                heat_d.append(float(t[y - 1] - t[x] + 7))
            before.append(float(t[heats[0][0]] - t[0]))
            after.append(float(t[-1] - t[heats[-1][1] - 1]))
            if (~heating).any():
                idle.append(float(np.median(seg[~heating])))
    if not heat_p:
        return sig
    return Signature(**{**vars(sig), "heat_w": float(np.median(heat_p)),
                        "heat_dur_lo": float(np.percentile(heat_d, 5) * 0.7),
                        "heat_dur_hi": float(np.percentile(heat_d, 95) * 1.3),
                        "before_heat_s": float(np.median(before)), "after_heat_s": float(np.median(after)),
                        "idle_w": float(np.median(idle)) if idle else sig.on_w,
                        "heats_per_cycle": float(np.median(counts))})


@dataclass
class ApplianceModel:
    name: str
    trees: list[Trees]  # pairs of boosters: the first of each reads the event detector's verdicts, the second not
    threshold: float  # call the appliance on above this vote (chosen out of fold)
    power_lo: float  # its power when on, 10th and 95th percentile: the estimate is the step, kept in this range
    power_hi: float
    detector_votes: bool = False  # the event detector's verdict is a third voter (chosen out of fold)
    hedge: float = 0.0  # how much a doubtful call is pulled towards the on/off line (chosen out of fold)
    step_s: int = 900  # the estimate's step stands above the lowest level of this centred window (out of fold)
    #: per fifth of the way from the threshold to a vote of 1, the share of held-out calls that were right (a
    #: call's confidence, out of fold; empty in older model files: then the vote itself)
    precision: tuple[float, ...] = ()
    #: runs of calls (bridged over ``GAP_S``) shorter than this are dropped (chosen out of fold; ``MIN_RUN_S``)
    min_run_s: float = 0.0
    #: runs of calls longer than this are dropped, 0 none (chosen out of fold; ``MAX_RUN_S``)
    max_run_s: float = 0.0

    def kept(self, vote: np.ndarray, threshold: float | None = None, min_run_s: float | None = None,
             max_run_s: float | None = None) -> np.ndarray:
        """The vote, with the cells of call runs shorter than ``min_run_s`` or longer than ``max_run_s`` lowered to
        the threshold (not called)."""
        return without_odd_runs(vote, self.threshold if threshold is None else threshold,
                                self.min_run_s if min_run_s is None else min_run_s, GAP_S[self.name],
                                self.max_run_s if max_run_s is None else max_run_s)

    def vote(self, x: np.ndarray, detector_votes: bool | None = None) -> np.ndarray:
        """Per cell, the mean of the boosters' probabilities (an ensemble's pairs averaged, so they count as one
        pair), and with them the event detector's verdict (0 or 1) as a third voter."""
        boosters = [t.probability(columns_read(i, x)) for i, t in enumerate(self.trees)]
        trees = np.sum(boosters, axis=0) / len(boosters)
        if self.detector_votes if detector_votes is None else detector_votes:
            verdict = x[:, x.shape[1] - EVENT_COLUMNS + NAMES.index(self.name)] >= THRESHOLDS[self.name]
            return (2 * trees + verdict) / 3
        return trees

    def estimate(self, vote: np.ndarray, steps: dict[int, np.ndarray], threshold: float | None = None,
                 hedge: float | None = None, step_s: int | None = None, min_run_s: float | None = None,
                 max_run_s: float | None = None) -> np.ndarray:
        """Watts per cell: off at or below the threshold or in a run of calls too short or too long (``min_run_s``,
        ``max_run_s``); on, the step it stands on above its window's floor (``steps`` per window, as ``step_power``
        gives them), in its learned range. With a hedge, a call just over the threshold is pulled towards the on/off
        line (by the hedge's power of how far the vote is over): a doubtful call costs less when it is wrong, a sure
        one keeps its watts."""
        threshold = self.threshold if threshold is None else threshold
        hedge = self.hedge if hedge is None else hedge
        vote = self.kept(vote, threshold, min_run_s, max_run_s)
        watts = np.clip(steps[self.step_s if step_s is None else step_s], self.power_lo, self.power_hi)
        if hedge:
            sure = np.clip((vote - threshold) / (1 - threshold), 0, 1) ** hedge
            watts = THRESHOLDS[self.name] + (watts - THRESHOLDS[self.name]) * sure
        return np.where(vote > threshold, watts, 0.0)

    def confidence(self, vote: np.ndarray) -> np.ndarray:
        """Per cell called on, how likely it is right: the share of calls at such a vote that were right on
        homes the trees never saw (``precision``); 0 where not called."""
        vote = self.kept(vote)
        if not self.precision:
            return np.where(vote > self.threshold, vote, 0.0)
        return np.where(vote > self.threshold, np.asarray(self.precision)[_sureness_bin(vote, self.threshold)], 0.0)

    def to_json(self) -> dict:
        return {"trees": [t.to_json() for t in self.trees], "threshold": round(self.threshold, 3),
                "power_lo": round(self.power_lo, 1), "power_hi": round(self.power_hi, 1),
                "detector_votes": self.detector_votes, "hedge": self.hedge, "step_s": self.step_s,
                "precision": [round(p, 3) for p in self.precision], "min_run_s": self.min_run_s,
                "max_run_s": self.max_run_s}

    @classmethod
    def from_json(cls, name: str, doc: dict) -> ApplianceModel:
        precision = tuple(float(p) for p in doc.get("precision", ()))
        if precision and (len(precision) != CONFIDENCE_BINS or not all(0 <= p <= 1 for p in precision)):
            # a hand-edited file would otherwise fail only when a call looks its confidence up
            raise ValueError(f"{name}: precision must be {CONFIDENCE_BINS} shares between 0 and 1, or absent; "
                             f"got {list(precision)}")
        min_run_s = float(doc.get("min_run_s", 0.0))  # absent in older model files: no run is dropped
        if not 0 <= min_run_s <= max(MIN_RUN_GRID_S):
            raise ValueError(f"{name}: min_run_s must be 0 to {max(MIN_RUN_GRID_S)} s; got {min_run_s}")
        max_run_s = float(doc.get("max_run_s", 0.0))  # absent in older model files: no run is too long
        if not 0 <= max_run_s <= LONGEST_JUDGED_S:
            raise ValueError(f"{name}: max_run_s must be 0 (none) to {LONGEST_JUDGED_S} s; got {max_run_s}")
        return cls(name, [Trees.from_json(t) for t in doc["trees"]], doc["threshold"], doc["power_lo"],
                   doc["power_hi"], doc["detector_votes"], doc["hedge"], int(doc.get("step_s", cls.step_s)),
                   precision, min_run_s, max_run_s)


#: The longest run of calls whose length the live path judges as the batch path does: its settled cells lie two
#: hours inside its window, so a run reaching out of where its votes are the batch path's is an hour long there too.
LONGEST_JUDGED_S = 3600

#: The shortest run of calls an appliance keeps, offered out of fold with the window and hedge (by MAE; of
#: lengths that score alike on the held-out houses, the longest), up to its learned median run length. Only the
#: washing machine: its wrong calls came as short runs (another load heating for a quarter hour) while a wash is
#: called for most of an hour, and on the bench's three REFIT splits this took its F1 0.518 -> 0.551 and MAE
#: 10.05 -> 9.83 W ("always off" 9.92 W); the dishwasher lost with it (0.622 -> 0.599), the fridge, kettle and
#: microwave did not gain (docs/nilm.md). At most ``LONGEST_JUDGED_S``.
MIN_RUN_GRID_S = (0, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 2700, LONGEST_JUDGED_S)
MIN_RUN_S: dict[str, tuple[int, ...]] = {"washing_machine": MIN_RUN_GRID_S}

#: The longest run of calls an appliance keeps (0: no limit), offered out of fold with the window, hedge and shortest
#: run (by MAE; of caps that score alike, the loosest), only above its learned long run (``Signature.dur_hi``: a run
#: as long as its own are is never dropped). Only the microwave: a sure call that lasts longer than any heating of
#: food is another load of its power (REFIT house 20, unseen on the bench's first split: half an hour of 1-2 kW,
#: called a microwave at 1.1 kW in runs of up to ten minutes, took its MAE over "always off"). Harness on the
#: bench's three REFIT splits (docs/nilm.md): per split, unseen houses' MAE 11.47 -> 7.88, 3.82 and 8.24 W as
#: they were ("always off" 7.94, 4.07, 11.03 W).
MAX_RUN_GRID_S = (0, 300, 600, 900, 1200, 1800, 2700, LONGEST_JUDGED_S)
MAX_RUN_S: dict[str, tuple[int, ...]] = {"microwave": MAX_RUN_GRID_S}


def without_odd_runs(vote: np.ndarray, threshold: float, min_run_s: float, gap_s: float,
                     max_run_s: float = 0.0) -> np.ndarray:
    """``vote`` (one per grid cell, in time order) with every run of cells over ``threshold`` — calls less than
    ``gap_s`` apart are one run — that spans less than ``min_run_s``, or more than ``max_run_s`` (unless 0),
    lowered to ``threshold``."""
    if min_run_s <= 0 and max_run_s <= 0:
        return vote
    idx = np.flatnonzero(vote > threshold)
    if not len(idx):
        return vote
    new = np.flatnonzero(np.diff(idx) > gap_s / GRID_S) + 1  # where in ``idx`` a run starts
    starts, ends = np.r_[0, new], np.r_[new, len(idx)]
    spans = (idx[ends - 1] - idx[starts] + 1) * GRID_S
    odd = np.repeat((spans < min_run_s) | ((max_run_s > 0) & (spans > max_run_s)), ends - starts)
    if not odd.any():
        return vote
    out = vote.copy()
    out[idx[odd]] = threshold
    return out


@dataclass
class Model:
    signatures: dict[str, Signature]
    appliances: dict[str, ApplianceModel]


THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)
#: An appliance's step: how far the power stands above the lowest level of a centred window around. The quarter
#: hour holds a whole kettle or microwave run and a fridge's rest; a washer's long cycle has other loads come and
#: go within it, which a minute's floor leaves out. Which one an appliance takes is chosen out of fold.
STEP_WINDOWS_S = (60, 300, 900)


def step_power(x: np.ndarray, windows: Iterable[int] = STEP_WINDOWS_S) -> dict[int, np.ndarray]:
    """Per window (seconds), per cell of a feature matrix, the power above the window's lowest level (the first
    feature is power)."""
    grid = x[:, 0].astype(np.float64)
    return {s: grid - window(grid, s).min(axis=1) for s in windows}


def learn(houses: list[House], trees: int = 80, progress: Callable[[str], None] | None = None) -> Model:
    """Learn signatures, then for each appliance two boosters, its threshold and estimate (see the module's notes)."""
    say = progress or (lambda _msg: None)
    signatures = learn_signatures(houses)
    say("signatures learned; reading the houses' shapes")
    prepared = [(h, *house_matrix(h.timestamp, h.mains, signatures)) for h in houses]
    appliances: dict[str, ApplianceModel] = {}
    for name in NAMES:
        have = [(h, k, x) for h, k, x in prepared if name in h.appliances]
        labels = [cells_of(k, h.appliances[name]) >= THRESHOLDS[name] for h, k, _ in have]
        if len(have) < 2 or not any(y.any() for y in labels):
            say(f"{name}: not learned (it needs two houses with its channel, and runs in them)")
            continue
        on = np.concatenate([h.appliances[name][h.appliances[name] >= THRESHOLDS[name]] for h, _, _ in have])
        model = ApplianceModel(name, [], 0.5, float(max(THRESHOLDS[name], np.percentile(on, 10))),
                               float(np.percentile(on, 95)))
        # per vote offered (with the detector only where it may vote): (vote, step, truth W, on) of unseen houses
        held_out: dict[bool, list] = {False: [], True: []} if name in PAIRED else {False: []}
        # the two halves share the houses where it ran most alike: one day of a house may hold no wash at all,
        # and trees that never saw one would choose for nothing
        fold_of = np.empty(len(have), dtype=np.int64)
        fold_of[np.argsort([-int(y.sum()) for y in labels], kind="stable")] = np.arange(len(have)) % 2
        for fold in (0, 1):
            part = [i for i in range(len(have)) if fold_of[i] == fold]
            model.trees = _ensemble([have[i] for i in part], [labels[i] for i in part], name, signatures, fold, trees)
            for detector, scored in held_out.items():
                scored += [(model.vote(x, detector), step_power(x), cells_of(k, h.appliances[name]), labels[i])
                           for i, (h, k, x) in enumerate(have) if fold_of[i] != fold]
        best = {detector: _best_threshold(scored) for detector, scored in held_out.items()}
        model.detector_votes = True in best and best[True][1] > best[False][1]
        model.threshold, f1 = best[model.detector_votes]
        scored = held_out[model.detector_votes]
        lengths = [d for d in MIN_RUN_S.get(name, (0,)) if d <= signatures[name].dur_median] or [0]
        caps = [c for c in MAX_RUN_S.get(name, (0,)) if c == 0 or c > signatures[name].dur_hi]
        error = {(s, hedge, d, c): sum(float(np.sum(np.abs(
            model.estimate(v, st, hedge=hedge, step_s=s, min_run_s=d, max_run_s=c) - w))) for v, st, w, _ in scored)
                 for s in STEP_WINDOWS_S for hedge in HEDGES for d in lengths for c in caps}
        # of lengths that score alike (the held-out houses had no calls between them), the longest: fewer runs said;
        # of caps alike, the loosest (none at all): a run is dropped only where held-out houses showed it wrong
        model.step_s, model.hedge, model.min_run_s, model.max_run_s = min(
            error, key=lambda k: (error[k], -k[2], -(k[3] or np.inf)))
        model.precision = precision_of(np.concatenate([model.kept(v) for v, _, _, _ in scored]),
                                       np.concatenate([y for _, _, _, y in scored]), model.threshold)
        model.trees = _ensemble(have, labels, name, signatures, 2, trees)
        appliances[name] = model
        say(f"{name}: {len(have)} houses; on above a vote of {model.threshold:.2f} of the trees"
            f"{' and the event detector' if model.detector_votes else ''}: F1 {f1:.2f} on held-out houses; "
            f"watts from the step above {model.step_s} s's floor, hedge {model.hedge:g}"
            + (f"; runs of calls shorter than {model.min_run_s / 60:g} min dropped" if model.min_run_s else "")
            + (f"; runs of calls longer than {model.max_run_s / 60:g} min dropped" if model.max_run_s else ""))
    return Model(signatures, appliances)


HEDGES = (0.0, 1.0, 2.0, 4.0, 8.0)
#: The detector may vote for the appliances it finds by pairing their own steps; for the washing machine and
#: dishwasher it only groups heating runs (F1 0.13 and 0.35 on unseen REFIT houses): there it stays a feature.
PAIRED = ORDER


CONFIDENCE_BINS = 5  # a call's vote, from the threshold to 1, in fifths


def _sureness_bin(vote: np.ndarray, threshold: float) -> np.ndarray:
    """Which fifth of the way from ``threshold`` to 1 each vote stands in (0 at or below the threshold)."""
    sure = np.clip((vote - threshold) / max(1e-9, 1 - threshold), 0, 1)
    return np.minimum((sure * CONFIDENCE_BINS).astype(np.int64), CONFIDENCE_BINS - 1)


MIN_CALLS = 50  # held-out cells a fifth needs for its own share; fewer, and it is pooled with its neighbour


def precision_of(vote: np.ndarray, y: np.ndarray, threshold: float) -> tuple[float, ...]:
    """Per fifth of the vote above ``threshold``, the share of the cells called there that were on (``y``),
    pooled where adjacent fifths disagree with their order (pool-adjacent-violators: a surer vote is never
    said to be less likely right) or hold fewer than ``MIN_CALLS`` cells. Empty if nothing was called."""
    called = vote > threshold
    if not called.any():
        return ()
    k = _sureness_bin(vote[called], threshold)
    right = np.bincount(k, y[called].astype(np.float64), CONFIDENCE_BINS)
    count = np.bincount(k, minlength=CONFIDENCE_BINS).astype(np.float64)
    blocks: list[np.ndarray] = []  # (right, count, fifths) of each pooled run of adjacent fifths

    def pool() -> None:
        last = blocks.pop()
        blocks[-1] = blocks[-1] + last

    for r, c in zip(right, count, strict=True):
        blocks.append(np.array([r, c, 1.0]))
        while len(blocks) > 1 and (blocks[-2][1] < MIN_CALLS or not blocks[-1][1]
                                   or blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]):
            pool()
    if len(blocks) > 1 and blocks[-1][1] < MIN_CALLS:  # the surest fifths too few alone: with the one before
        pool()
    return tuple(float(r / c) if c else 0.0 for r, c, n in blocks for _ in range(int(n)))


def _best_threshold(scored: list) -> tuple[float, float]:
    """(threshold, F1) that scores best over the held-out houses, pooled."""
    f1 = f1_at(np.concatenate([v for v, _, _, _ in scored]), np.concatenate([y for _, _, _, y in scored]),
                THRESHOLD_GRID)
    return float(THRESHOLD_GRID[int(np.argmax(f1))]), float(f1.max())


#: Appliances learned by several pairs of boosters, each pair on its own draw of synthetic homes (donors and
#: times), their votes averaged: two copies a house leave the washer's trees at the mercy of where its six washes
#: happened to land. Three pairs on the bench: REFIT washer F1 0.457 -> 0.488, MAE 10.3 W either way (docs/nilm.md).
ENSEMBLE: dict[str, int] = {"washing_machine": 3}


class Shape(TypedDict, total=False):
    """A tree shape other than ``boost.fit``'s defaults."""

    depth: int
    min_leaf: int
    l2: float


#: Tree shapes (``boost.fit``'s depth, minimum rows a leaf sees, L2) other than its defaults. The washer's few
#: washes let deep trees with small leaves learn where they happened to land: shallower trees with wide, damped
#: leaves cut its wrong calls (washer-only harness on the bench's splits: F1 0.480 -> 0.521, MAE 10.25 -> 10.02 W,
#: precision 0.42 -> 0.52; docs/nilm.md). Adaptation goes on at the same depth (``start``), default leaves.
SHAPES: dict[str, Shape] = {"washing_machine": {"depth": 3, "min_leaf": 1000, "l2": 30.0}}


def _ensemble(have: list, labels: list[np.ndarray], name: str, signatures: dict[str, Signature], seed: int,
              trees: int) -> list[Trees]:
    """``ENSEMBLE`` pairs of boosters (one pair for most appliances), each on its own synthetic draw; the first
    pair's draw is the one a single pair has (``seed``), so appliances without an ensemble learn as they did."""
    boosters: list[Trees] = []
    for member in range(ENSEMBLE.get(name, 1)):  # one at a time: a draw's matrices go before the next is made
        boosters += _boosters(*with_synthetic(have, labels, name, signatures, seed=seed + 100 * member), trees,
                              SHAPES.get(name, {}))
    return boosters


SUBSAMPLE = 0.25  # rows each tree sees: neighbouring cells are near copies, and it keeps training quick


def _boosters(matrices: list[np.ndarray], labels: list[np.ndarray], trees: int,
              shape: Shape) -> list[Trees]:
    x = np.vstack(matrices)
    y = np.concatenate(labels).astype(np.float64)
    return [fit(columns_read(i, x), y, trees=trees, subsample=SUBSAMPLE, seed=i, **shape) for i in (0, 1)]


def columns_read(i: int, x: np.ndarray) -> np.ndarray:
    """The columns of a feature matrix the ``i``-th booster reads: the first of each pair all of them, the second
    the shapes alone (not the event detector's verdicts)."""
    return x[:, :-EVENT_COLUMNS] if i % 2 else x


def f1_at(vote: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """F1 of calling the appliance on above each threshold."""
    guess = vote[None, :] > thresholds[:, None]
    tp, fp, fn = np.sum(guess & y, 1), np.sum(guess & ~y, 1), np.sum(~guess & y, 1)
    return 2 * tp / np.maximum(1, 2 * tp + fp + fn)


def save(model: Model, path: Path) -> None:
    path.write_text(json.dumps({"version": MODEL_VERSION,
                                "signatures": {k: asdict(v) for k, v in model.signatures.items()},
                                "appliances": {k: v.to_json() for k, v in model.appliances.items()}},
                               separators=(",", ":")))


def load(path: Path) -> Model:
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or doc.get("version") != MODEL_VERSION:
            version = doc.get("version") if isinstance(doc, dict) else None
            raise ValueError(f"model version {version!r}, this hub reads {MODEL_VERSION}")
        model = Model({k: Signature(**v) for k, v in doc["signatures"].items()},
                      {k: ApplianceModel.from_json(k, v) for k, v in doc["appliances"].items()})
        checked(model)
        return model
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
        raise ModelFileError(f"{path}: {reason}") from exc


def _number(value: object, what: str, low: float = 0.0, high: float = np.inf) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{what} is {value!r}, not a number from {low:g} to {high:g}")


def checked(model: Model) -> None:
    """``ValueError`` naming the first thing in ``model`` the hub cannot run: a file written by ``ohmni nilm train``
    passes; one edited by hand or damaged on disk is refused as it is read (``load``), not in the middle of the hub's
    live pass, where an exception would stop the hub."""
    unknown = sorted(set(model.signatures) - set(NAMES)) + sorted(set(model.appliances) - set(NAMES))
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not an appliance the hub names ({', '.join(NAMES)})")
    for name, signature in model.signatures.items():
        for key, value in asdict(signature).items():
            _number(value, f"signatures.{name}.{key}")
    shapes = len(FEATURE_NAMES)
    for name, appliance in model.appliances.items():
        where = f"appliances.{name}"
        _number(appliance.threshold, f"{where}.threshold", 0.0, 1.0)
        _number(appliance.power_lo, f"{where}.power_lo")
        _number(appliance.power_hi, f"{where}.power_hi", appliance.power_lo)
        _number(appliance.hedge, f"{where}.hedge", 0.0, 64.0)
        if not isinstance(appliance.detector_votes, bool):
            raise ValueError(f"{where}.detector_votes is {appliance.detector_votes!r}, not true or false")
        if appliance.step_s not in STEP_WINDOWS_S:
            raise ValueError(f"{where}.step_s is {appliance.step_s!r}, not one of {STEP_WINDOWS_S}")
        if not appliance.trees or len(appliance.trees) % 2:
            raise ValueError(f"{where}.trees: {len(appliance.trees)} boosters, not pairs")
        for i, trees in enumerate(appliance.trees):
            try:  # the first of each pair reads the event detector's verdicts too (``columns_read``)
                trees.check(shapes if i % 2 else shapes + EVENT_COLUMNS)
            except ValueError as exc:
                raise ValueError(f"{where}.trees[{i}]: {exc}") from None


def pretrained() -> Model:
    """The model that ships with the hub: learned from all 20 REFIT houses (`ohmni nilm train`)."""
    from importlib import resources

    path = resources.files("edge.nilm").joinpath("pretrained.json")
    return load(Path(str(path)))
