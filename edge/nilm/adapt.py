"""A learned model gone on learning from one home's own submetered history (its plugs): ``adapt``.

The hub runs it once a day in a worker thread (``edge/agent.py``), and ``ohmni nilm adapt`` by hand; see
docs/nilm.md, "Learning its own home". Each time from the base model, so the model never grows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from edge.nilm.appliances import THRESHOLDS
from edge.nilm.boost import fit
from edge.nilm.features import cells_of, house_matrix
from edge.nilm.house_csv import House
from edge.nilm.model import (
    STEP_WINDOWS_S,
    SUBSAMPLE,
    THRESHOLD_GRID,
    ApplianceModel,
    Model,
    columns_read,
    f1_at,
    precision_of,
    step_power,
)

ADAPT_TREES = 20  # trees each booster adds per adaptation: a home's few days teach less than twenty homes did
ADAPT_RATES = (0.05, 0.15)  # how hard the new trees pull, tried on the home's own held-out half
#: Ten minutes on in each half of the history before the trees learn from a home: a few boils of a kettle are too
#: few to judge a change by (a week holds dozens).
ADAPT_MIN_ON_CELLS = 100
ADAPT_MIN_ON_SAMPLES = 30  # samples on before the estimate's watts follow this home's own appliance
ADAPT_GAIN = 0.02  # F1 on the held-out half a change must win by, or the appliance's trees stay as they were


def adapt(model: Model, houses: list[House], trees: int = ADAPT_TREES,
          progress: Callable[[str], None] | None = None) -> Model:
    """The model, gone on learning from one home's own submetered channels (its plugs); ``houses`` are that
    home's pieces of history, in time order.

    Per appliance with a channel: the estimate's on-power range becomes this home's appliance's own; and the
    boosters boost ``trees`` more trees from where theirs stand (the homes they learned from stay in the trees
    before), at the rate and with the vote threshold that score best when trees grown on one half of the
    history score the other half, both ways; unless no choice beats the model as it was by ``ADAPT_GAIN`` F1 on
    those halves, or the appliance hardly ran in one half (a week without a wash says nothing about a wash
    here): then its trees and threshold stay. The window whose floor the watts stand above is chosen again, by
    MAE against this home's own watts on the same held-out halves (a washer beside a heater wants the minute, one
    whose drum swings wants the quarter hour). Signatures, hedges and the shortest and longest runs kept stay:
    chosen over many homes."""
    say = progress or (lambda _msg: None)
    prepared = [(h, *house_matrix(h.timestamp, h.mains, model.signatures)) for h in houses]
    appliances = dict(model.appliances)
    for name, old in model.appliances.items():
        have = [(h, k, x) for h, k, x in prepared if name in h.appliances]
        if not have:
            continue
        x = have[0][2] if len(have) == 1 else np.vstack([x for _, _, x in have])  # a hub's one home: no copy
        watts = np.concatenate([cells_of(k, h.appliances[name]) for h, k, _ in have])  # this home's, per cell
        y = watts >= THRESHOLDS[name]
        on = np.concatenate([h.appliances[name][h.appliances[name] >= THRESHOLDS[name]] for h, _, _ in have])
        mine = replace(old)  # its trees, threshold and on-power change below; the rest is the model's
        if len(on) >= ADAPT_MIN_ON_SAMPLES:
            mine.power_lo, mine.power_hi = float(max(THRESHOLDS[name], np.percentile(on, 10))), float(
                np.percentile(on, 95))
        later = np.arange(len(y)) >= len(y) // 2
        if min(int(y[later].sum()), int(y[~later].sum())) < ADAPT_MIN_ON_CELLS:
            appliances[name] = mine
            say(f"{name}: it hardly ran in one half of this history; on-power {mine.power_lo:.0f}–"
                f"{mine.power_hi:.0f} W, trees as they were")
            continue
        held = {0.0: old.vote(x)}  # the votes of each choice on cells its trees never saw (the model's: this home)
        before = f1_at(held[0.0], y, np.array([old.threshold]))[0]
        best = (before + ADAPT_GAIN, 0.0, old.threshold)
        for rate in ADAPT_RATES:
            held[rate] = np.empty(len(y))
            for half in (False, True):
                trial = _boost_on(old, x[later != half], y[later != half], trees, rate)
                held[rate][later == half] = trial.vote(x[later == half])
            f1 = f1_at(held[rate], y, THRESHOLD_GRID)
            if f1.max() > best[0]:
                best = (float(f1.max()), rate, float(THRESHOLD_GRID[int(np.argmax(f1))]))
        f1, rate, mine.threshold = best
        if rate:
            mine.trees = _boost_on(old, x, y, trees, rate).trees
        mine.step_s = _own_window(mine, held[rate], watts, [x for _, _, x in have])
        mine.precision = precision_of(mine.kept(held[rate]), y, mine.threshold) or old.precision  # right here, held out
        appliances[name] = mine
        say(f"{name}: {int(y.sum())} cells on of {len(y)}; on-power {mine.power_lo:.0f}–{mine.power_hi:.0f} W; "
            + (f"{trees} trees more per booster at rate {rate:g}, on above {mine.threshold:.2f}: F1 {before:.2f} -> "
               f"{f1:.2f} on the held-out halves" if rate else f"trees as they were (F1 {before:.2f} held out)")
            + f"; watts above {mine.step_s} s's floor" + (f" (was {old.step_s})" if mine.step_s != old.step_s else ""))
    return Model(model.signatures, appliances)


def _own_window(model: ApplianceModel, vote: np.ndarray, watts: np.ndarray, pieces: list[np.ndarray]) -> int:
    """The window whose estimate is nearest (MAE) this home's own ``watts``, given held-out votes, both over the
    cells of the ``pieces``' feature matrices in order; the model's window wins a tie."""
    parts = [step_power(x) for x in pieces]  # per piece: a window does not reach across a gap between pieces
    steps = {s: np.concatenate([p[s] for p in parts]) for s in STEP_WINDOWS_S}
    error = {s: float(np.sum(np.abs(model.estimate(vote, steps, step_s=s) - watts))) for s in STEP_WINDOWS_S}
    return min(STEP_WINDOWS_S, key=lambda s: (error[s], s != model.step_s))


def _boost_on(old: ApplianceModel, x: np.ndarray, y: np.ndarray, trees: int, rate: float) -> ApplianceModel:
    labels = y.astype(np.float64)
    boosters = [fit(columns_read(i, x), labels, trees=trees, rate=rate, subsample=SUBSAMPLE, seed=2 + i, start=start)
                for i, start in enumerate(old.trees)]  # every pair of an ensemble goes on
    return ApplianceModel(old.name, boosters, old.threshold, old.power_lo, old.power_hi, old.detector_votes)
