"""Scores as the issue states them: per appliance MAE (W), F1 of the on/off state, and the
share of energy correctly assigned (sum of min(estimate, truth) over the truth's energy),
beside the trivial floors: "always on" F1 and "always off" MAE; and how often calls were right beside the
confidence the model gave them."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

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


@dataclass
class Tally:
    """The sums ``score`` and ``calls_right`` are made of, added a stretch of samples at a time: houses pooled, and
    a file of any length scored without holding it."""

    appliance: str
    samples: int = 0
    abs_error: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    on: int = 0
    energy: float = 0.0  # the truth's sum (of non-negative power: "always off"'s error too)
    shared: float = 0.0  # sum of min(estimate, truth)
    said: float = 0.0  # the confidence given to the samples called on, summed

    def add(self, truth: np.ndarray, estimate: np.ndarray, confidence: np.ndarray | None = None) -> Tally:
        line = THRESHOLDS[self.appliance]
        on_truth, on_est = truth >= line, estimate >= line
        self.samples += len(truth)
        self.abs_error += float(np.sum(np.abs(estimate - truth)))
        self.tp += int(np.sum(on_truth & on_est))
        self.fp += int(np.sum(~on_truth & on_est))
        self.fn += int(np.sum(on_truth & ~on_est))
        self.on += int(np.sum(on_truth))
        self.energy += float(np.sum(truth))
        self.shared += float(np.sum(np.minimum(estimate, truth)))
        if confidence is not None:
            self.said += float(np.sum(confidence[on_est]))
        return self

    def __add__(self, other: Tally) -> Tally:
        """The two tallies pooled: what scoring both stretches in one tally would have summed (workers' results)."""
        if other.appliance != self.appliance:
            raise ValueError(f"cannot pool {other.appliance}'s tally into {self.appliance}'s")
        return replace(self, **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)
                                if f.name != "appliance"})

    def score(self) -> Score:
        denominator = 2 * self.tp + self.fp + self.fn
        n = max(1, self.samples)
        return Score(self.appliance, self.abs_error / n, 2 * self.tp / denominator if denominator else None,
                     self.shared / self.energy if self.energy > 0 else None,
                     2 * self.on / (self.on + self.samples) if self.samples else 0.0, self.energy / n)

    def calls_right(self) -> tuple[float | None, float | None]:
        """(the share of the samples called on that were on, the mean confidence the model gave those calls): how
        far a run's confidence can be taken at its word. (None, None) where nothing was called."""
        called = self.tp + self.fp
        if not called:
            return None, None
        return self.tp / called, self.said / called


def score(appliance: str, truth: np.ndarray, estimate: np.ndarray) -> Score:
    return Tally(appliance).add(truth, estimate).score()

