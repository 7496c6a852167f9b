"""Disaggregation: the whole-house signal in, each appliance's power out, one value per input sample.

The mains go on the feature grid (``features.py``); the event detector (``events.py``) adds its
verdict per appliance as five more columns; per appliance, its two boosters and the detector
vote in each cell. Where the vote passes the learned threshold, the appliance's power is the
step it stands above the lowest level of the window learned for it (a minute, five, or a
quarter hour), kept within the range learned for it (so a kettle reads as a kettle, not as the
kettle and the oven together). Beside the watts, how likely each call is right (its run's confidence).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edge.nilm.features import house_matrix
from edge.nilm.model import Model, step_power


def disaggregate(ts: np.ndarray, mains: np.ndarray, model: Model) -> dict[str, np.ndarray]:
    return disaggregate_with_confidence(ts, mains, model)[0]


#: Inputs longer than a fortnight (``CHUNK_S``) go a fortnight at a time, each with ``MARGIN_S`` either side (what
#: is said at a moment depends on the hours around it), so memory is bounded whatever the file's length. Why 6 hours,
#: and where it is not exact: docs/nilm.md, "Long files"; ``tests/edge/test_nilm_model.py`` holds it to the whole.
CHUNK_S = 14 * 86_400
MARGIN_S = 21_600  # 6 hours


def disaggregate_with_confidence(ts: np.ndarray, mains: np.ndarray, model: Model, chunk_s: float = CHUNK_S,
                                 progress: Callable[[int, int], None] | None = None,
                                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per appliance, its watts and, where it is called on, how likely that call is right (``ApplianceModel.
    confidence``; 0 where off), one value per input sample: a run's confidence is its samples' mean. An input
    longer than ``chunk_s`` (and its margins) goes a chunk at a time, ``progress(done, chunks)`` after each."""
    watts = {name: np.zeros(len(ts)) for name in model.appliances}
    confidence = {name: np.zeros(len(ts)) for name in model.appliances}
    if len(ts) < 3:
        return watts, confidence
    if ts[-1] - ts[0] <= chunk_s + 2 * MARGIN_S:
        starts = [float(ts[0])]
        chunk_s = np.inf
    else:  # chunks on whole multiples of chunk_s (a multiple of the grid's cell): every chunk's cells are the whole's
        first = np.floor(ts[0] / chunk_s) * chunk_s
        starts = [float(t) for t in np.arange(first, ts[-1] + 1, chunk_s)]
    for done, start in enumerate(starts, start=1):
        core = slice(*np.searchsorted(ts, [start, start + chunk_s]))
        lo, hi = np.searchsorted(ts, [start - MARGIN_S, start + chunk_s + MARGIN_S])
        if core.start < core.stop and hi - lo >= 3:  # fewer samples (a chunk in a gap) say nothing: they stay 0
            part_w, part_c = _disaggregate(ts[lo:hi], mains[lo:hi], model)
            inner = slice(core.start - lo, core.stop - lo)
            for name in model.appliances:
                watts[name][core], confidence[name][core] = part_w[name][inner], part_c[name][inner]
        if progress is not None:
            progress(done, len(starts))
    return watts, confidence


def _disaggregate(ts: np.ndarray, mains: np.ndarray, model: Model) -> tuple[dict[str, np.ndarray],
                                                                            dict[str, np.ndarray]]:
    """``disaggregate_with_confidence`` on one stretch of three samples or more, all at once."""
    cell, x = house_matrix(ts, mains, model.signatures)
    steps = step_power(x, {m.step_s for m in model.appliances.values()})  # only the windows the model uses
    watts, confidence = {}, {}
    for name, m in model.appliances.items():
        vote = m.vote(x)
        watts[name], confidence[name] = m.estimate(vote, steps)[cell], m.confidence(vote)[cell]
    return watts, confidence
