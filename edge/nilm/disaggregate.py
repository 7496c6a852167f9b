"""Event-based disaggregation: pair the mains' rising and falling steps that fit an appliance.

Heaviest appliances first (their steps are unambiguous), each on what the earlier ones left.
For each rising step whose size fits a signature, the first later falling step of a similar
size within the signature's run lengths closes the run; the appliance is estimated at the
step's size for the run.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter

from edge.nilm.model import Signature

ORDER = ("kettle", "microwave", "fridge")  # paired by their own steps, heaviest first
CYCLES = ("washing_machine", "dishwasher")  # found by their heating element, then the cycle around it
MIN_STEP_W = 25.0


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


def disaggregate(ts: np.ndarray, mains: np.ndarray, model: dict[str, Signature]) -> dict[str, np.ndarray]:
    p = median_filter(mains, size=3, mode="nearest")
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
    for name in CYCLES:
        sig = model.get(name)
        if sig is None or not sig.heat_w:
            continue
        lo, hi = sig.heat_w * 0.6, sig.heat_w * 1.5
        for r in np.flatnonzero((size >= lo) & (size <= hi) & ~used):
            if used[r]:
                continue
            t_on = ts[at[r]]
            for f in range(r + 1, len(at)):
                dt = ts[at[f]] - t_on
                if dt > sig.heat_dur_hi:
                    break
                if used[f] or size[f] >= 0:
                    continue
                if abs(-size[f] - size[r]) <= 0.35 * size[r] and dt >= max(sig.heat_dur_lo, _kettle_max(model)):
                    used[r] = used[f] = True
                    start = np.searchsorted(ts, t_on - sig.before_heat_s)
                    end = np.searchsorted(ts, ts[at[f]] + sig.after_heat_s)
                    window = out[name][start:end]
                    window[window < sig.idle_w] = sig.idle_w
                    out[name][at[r]:at[f]] = (size[r] - size[f]) / 2
                    break
    return out


def _kettle_max(model: dict[str, Signature]) -> float:
    """Heating runs last longer than any kettle boil: that is what tells them apart."""
    kettle = model.get("kettle")
    return kettle.dur_hi if kettle is not None and kettle.runs else 0.0
