"""A long house made of a real one: REFIT holds one day a house here, and the long-file paths (fortnight chunks,
the learner's day budget) need months. Shared by the tests and ``bench.nilm_train_cost``."""

from __future__ import annotations

import numpy as np

from edge.nilm.house_csv import House


def days_of(house: House, days: int, keep_every: int = 1, mark_w: float = 0.0) -> House:
    """``house``'s real day over and over, ``days`` times, a day later each time (every ``keep_every``-th row); day
    d's mains ``d * mark_w`` W higher, so a test can tell which days were chosen by their mains."""
    rows = np.arange(0, len(house.timestamp), keep_every)
    return House(f"{house.name}_{days}_days", np.concatenate([house.timestamp[rows] + d * 86_400 for d in range(days)]),
                 np.concatenate([house.mains[rows] + d * mark_w for d in range(days)]),
                 {k: np.tile(v[rows], days) for k, v in house.appliances.items()})
