"""Disaggregation: the whole-house signal in, each appliance's power out, one value per input sample.

The mains go on the feature grid (``features.py``); the event detector (``events.py``) adds its
verdict per appliance as five more columns; per appliance, its two boosters and the detector
vote in each cell. Where the vote passes the learned threshold, the appliance's power is the
step it stands above the lowest level of the window learned for it (a minute, five, or a
quarter hour), kept within the range learned for it (so a kettle reads as a kettle, not as the
kettle and the oven together). Beside the watts, how likely each call is right (its run's confidence).
"""

from __future__ import annotations

import numpy as np

from edge.nilm.features import house_matrix
from edge.nilm.model import Model, step_power


def disaggregate(ts: np.ndarray, mains: np.ndarray, model: Model) -> dict[str, np.ndarray]:
    return disaggregate_with_confidence(ts, mains, model)[0]


def disaggregate_with_confidence(ts: np.ndarray, mains: np.ndarray,
                                 model: Model) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per appliance, its watts and, where it is called on, how likely that call is right (``ApplianceModel.
    confidence``; 0 where off), one value per input sample: a run's confidence is its samples' mean."""
    if len(ts) < 3:
        return ({name: np.zeros(len(ts)) for name in model.appliances},
                {name: np.zeros(len(ts)) for name in model.appliances})
    cell, x = house_matrix(ts, mains, model.signatures)
    steps = step_power(x, {m.step_s for m in model.appliances.values()})  # only the windows the model uses
    watts, confidence = {}, {}
    for name, m in model.appliances.items():
        vote = m.vote(x)
        watts[name], confidence[name] = m.estimate(vote, steps)[cell], m.confidence(vote)[cell]
    return watts, confidence
