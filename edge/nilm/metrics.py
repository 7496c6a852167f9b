"""Scores as the issue states them: per appliance MAE (W), F1 of the on/off state, and the
share of energy correctly assigned (sum of min(estimate, truth) over the truth's energy),
beside the trivial floors: "always on" F1 and "always off" MAE; and how often calls were right beside the
confidence the model gave them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.nilm.appliances import THRESHOLDS


@dataclass
class Score:
    appliance: str
    mae_w: float
    f1: float | None  # None: never on in the truth and never predicted on
    energy_share: float | None
    always_on_f1: float
    always_off_mae_w: float


def score(appliance: str, truth: np.ndarray, estimate: np.ndarray) -> Score:
    on_truth, on_est = truth >= THRESHOLDS[appliance], estimate >= THRESHOLDS[appliance]
    tp = int(np.sum(on_truth & on_est))
    fp = int(np.sum(~on_truth & on_est))
    fn = int(np.sum(on_truth & ~on_est))
    denominator = 2 * tp + fp + fn
    on = int(np.sum(on_truth))
    always_on = 2 * on / (on + len(truth)) if len(truth) else 0.0
    energy = float(np.sum(truth))
    return Score(appliance, float(np.mean(np.abs(estimate - truth))), 2 * tp / denominator if denominator else None,
                 float(np.sum(np.minimum(estimate, truth)) / energy) if energy > 0 else None, always_on,
                 float(np.mean(np.abs(truth))))


def calls_right(appliance: str, truth: np.ndarray, estimate: np.ndarray,
                confidence: np.ndarray) -> tuple[float | None, float | None]:
    """(the share of the samples called on that were on, the mean confidence the model gave those calls): how
    far a run's confidence can be taken at its word. (None, None) where nothing was called."""
    called = estimate >= THRESHOLDS[appliance]
    if not called.any():
        return None, None
    return float(np.mean(truth[called] >= THRESHOLDS[appliance])), float(np.mean(confidence[called]))
