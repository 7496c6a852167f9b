"""A learned event model: each appliance's switching signature, learned from submetered houses.

Training reads the appliance channels only (never hand-typed constants): the power an
appliance draws when on, the size of the steps it makes in the whole-house signal, and
how long its runs last. Disaggregation (see ``disaggregate.py``) pairs rising and falling
steps of the mains that fit a signature, heaviest appliances first.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge.nilm.appliances import NAMES, THRESHOLDS
from edge.nilm.house_csv import House

MODEL_VERSION = 1


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


def learn(houses: list[House]) -> dict[str, Signature]:
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


def save(model: dict[str, Signature], path: Path) -> None:
    path.write_text(json.dumps({"version": MODEL_VERSION, "appliances": {k: asdict(v) for k, v in model.items()}},
                               indent=1))


def load(path: Path) -> dict[str, Signature]:
    doc = json.loads(path.read_text())
    if doc.get("version") != MODEL_VERSION:
        raise ValueError(f"{path}: model version {doc.get('version')!r}, this hub reads {MODEL_VERSION}")
    return {k: Signature(**v) for k, v in doc["appliances"].items()}


def pretrained() -> dict[str, Signature]:
    """The model that ships with the hub: learned from all 20 REFIT houses (`ohmni nilm train`)."""
    from importlib import resources

    path = resources.files("edge.nilm").joinpath("pretrained.json")
    return load(Path(str(path)))
