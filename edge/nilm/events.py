"""Event-based disaggregation: pair the mains' rising and falling steps that fit an appliance.

The first disaggregator; now one of the inputs the trees read (``disaggregate.py``).

Heaviest appliances first (their steps are unambiguous), each on what the earlier ones left.
For each rising step whose size fits a signature, the first later falling step of a similar
size within the signature's run lengths closes the run; the appliance is estimated at the
step's size for the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edge.nilm.model import Signature

ORDER = ("kettle", "microwave", "fridge")  # paired by their own steps, heaviest first
CYCLES = ("washing_machine", "dishwasher")  # found by their heating element, then the cycle around it
MIN_STEP_W = 25.0


def median3(x: np.ndarray) -> np.ndarray:
    """Median of each sample and its neighbours (edges repeat): removes one-sample spikes."""
    if len(x) < 3:
        return x.copy()
    padded = np.concatenate([x[:1], x, x[-1:]])
    return np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)


def running_min(x: np.ndarray, width: int) -> np.ndarray:
    """Minimum over a centred window of ``width`` samples (edges repeat). NumPy only: SciPy's
    ndimage would cost the hub some 30 MB of memory for this one function."""
    width = max(1, min(width, len(x)))
    left = width // 2
    padded = np.concatenate([np.full(left, x[0]), x, np.full(width - 1 - left, x[-1])])
    return np.lib.stride_tricks.sliding_window_view(padded, width).min(axis=1)


def steps(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices and sizes of level changes (consecutive same-direction moves merged)."""
    d = np.diff(p)
    big = np.abs(d) >= MIN_STEP_W
    idx, size = [], []
    i = 0
    n = len(d)
    while i < n:
        if not big[i]:
            i += 1
            continue
        j, total = i, 0.0
        while j < n and big[j] and np.sign(d[j]) == np.sign(d[i]):
            total += d[j]
            j += 1
        idx.append(j)  # the level after the move starts at sample j
        size.append(total)
        i = j
    return np.asarray(idx, dtype=np.int64), np.asarray(size)


def events(ts: np.ndarray, mains: np.ndarray, model: dict[str, Signature]) -> dict[str, np.ndarray]:
    p = median3(mains)
    at, size = steps(p)
    used = np.zeros(len(at), dtype=bool)
    out = {name: np.zeros(len(mains)) for name in model}
    for name in ORDER:
        sig = model.get(name)
        if sig is None or not sig.runs:
            continue
        rising = np.flatnonzero((size >= sig.step_lo) & (size <= sig.step_hi) & ~used)
        for r in rising:
            if used[r]:
                continue
            t_on = ts[at[r]]
            for f in range(r + 1, len(at)):
                dt = ts[at[f]] - t_on
                if dt > sig.dur_hi:
                    break
                if used[f] or size[f] >= 0:
                    continue
                if abs(-size[f] - size[r]) <= 0.35 * size[r] and dt >= sig.dur_lo:
                    used[r] = used[f] = True
                    out[name][at[r]:at[f]] = (size[r] - size[f]) / 2
                    break
    _fill_unpaired(ts, at, size, used, model.get("fridge"), out.get("fridge"))
    _cycles(ts, at, size, used, model, out)
    _fridge_above_floor(ts, p, model.get("fridge"), out)
    return out


def _fridge_above_floor(ts: np.ndarray, p: np.ndarray, sig: Signature | None, out: dict[str, np.ndarray]) -> None:
    """Where no step was seen, a fridge is on when what the other appliances leave stands a
    fridge's step above the home's floor over its longest rest (both learned)."""
    est = out.get("fridge")
    if sig is None or est is None or not sig.runs or not sig.off_hi or len(ts) < 3:
        return
    others = sum((v for k, v in out.items() if k != "fridge"), np.zeros(len(p)))
    residual = p - others
    width = max(3, int(2 * sig.off_hi / max(float(np.median(np.diff(ts))), 1e-6)))
    above = residual - running_min(residual, width)
    on = (above >= sig.step_lo) & (above <= sig.step_hi * 1.5) & (est == 0)
    est[on] = sig.on_w


def _fill_unpaired(ts: np.ndarray, at: np.ndarray, size: np.ndarray, used: np.ndarray, sig: Signature | None,
                   est: np.ndarray | None) -> None:
    """A fridge start whose stop drowned in other loads: on for its usual run length."""
    if sig is None or est is None or not sig.runs or not sig.dur_median:
        return
    starts = np.flatnonzero((size >= sig.step_lo) & (size <= sig.step_hi) & ~used)
    for k, r in enumerate(starts):
        t_end = ts[at[r]] + sig.dur_median
        if k + 1 < len(starts):
            t_end = min(t_end, ts[at[starts[k + 1]]])
        end = np.searchsorted(ts, t_end)
        segment = est[at[r]:end]
        segment[segment == 0] = size[r]
        used[r] = True


def _cycles(ts: np.ndarray, at: np.ndarray, size: np.ndarray, used: np.ndarray, model: dict[str, Signature],
            out: dict[str, np.ndarray]) -> None:
    """Washing machine and dishwasher: heating runs (longer than any kettle), grouped into cycles; a
    group goes to the appliance whose learned heatings-per-cycle it matches (a dishwasher heats twice)."""
    sigs = {n: model[n] for n in CYCLES if n in model and model[n].heat_w}
    if not sigs:
        return
    lo = min(s.heat_w for s in sigs.values()) * 0.6
    hi = max(s.heat_w for s in sigs.values()) * 1.5
    longest = max(s.heat_dur_hi for s in sigs.values())
    shortest = max(min(s.heat_dur_lo for s in sigs.values()), _kettle_max(model))
    heats: list[tuple[int, int, float]] = []  # (start index, end index, power)
    for r in np.flatnonzero((size >= lo) & (size <= hi) & ~used):
        if used[r]:
            continue
        for f in range(r + 1, len(at)):
            dt = ts[at[f]] - ts[at[r]]
            if dt > longest:
                break
            if used[f] or size[f] >= 0:
                continue
            if abs(-size[f] - size[r]) <= 0.35 * size[r] and dt >= shortest:
                used[r] = used[f] = True
                heats.append((at[r], at[f], (size[r] - size[f]) / 2))
                break
    gap = max(s.before_heat_s + s.after_heat_s for s in sigs.values())
    groups: list[list[tuple[int, int, float]]] = []
    for heat in heats:
        if groups and ts[heat[0]] - ts[groups[-1][-1][1]] <= gap:
            groups[-1].append(heat)
        else:
            groups.append([heat])
    for group in groups:
        name = min(sigs, key=lambda n: abs(len(group) - sigs[n].heats_per_cycle))
        sig = sigs[name]
        start = np.searchsorted(ts, ts[group[0][0]] - sig.before_heat_s)
        end = np.searchsorted(ts, ts[group[-1][1]] + sig.after_heat_s)
        window = out[name][start:end]
        window[window < sig.idle_w] = sig.idle_w
        for a, b, power in group:
            out[name][a:b] = power


def _kettle_max(model: dict[str, Signature]) -> float:
    """Heating runs last longer than any kettle boil: that is what tells them apart."""
    kettle = model.get("kettle")
    return kettle.dur_hi if kettle is not None and kettle.runs else 0.0
