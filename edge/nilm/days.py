"""Which days of long submetered houses the learner reads: its memory grows with every day it learns from.

Learning holds each house's features and, for the washing machine, four synthetic copies of them, and the trees'
histograms over all of it: about 40 MB a house-day (4 REFIT houses of 7 days each: 1.24 GB peak, against 0.25 GB for
their one day each; ``python -m bench.nilm_train_cost``). A user's own data often runs for months (REFIT's houses
for two years), which would need tens of GB. So ``ohmni nilm train`` and ``adapt`` learn from at most ``--max-days``
(28) in all, shared among the houses: each house longer than its share gives that many whole days, the days each of
its appliances ran first (in turn, so every appliance is seen), spread through the file, then other days spread
alike. The days chosen are put back to back (each moved by whole days, so the time of day is kept): a gap between
two of them is not learned as hours of the house standing still.
"""

from __future__ import annotations

import numpy as np

from edge.nilm.appliances import THRESHOLDS
from edge.nilm.house_csv import House

DAY = 86_400


def days_spanned(house: House) -> int:
    return int((house.timestamp[-1] - house.timestamp[0]) // DAY) + 1 if len(house.timestamp) else 0


def within(houses: list[House], max_days: int) -> tuple[list[House], list[str]]:
    """The houses cut to their share of ``max_days`` (at least a day each), and a line for each house cut."""
    share = max(1, max_days // max(1, len(houses)))
    out, said = [], []
    for house in houses:
        spanned = days_spanned(house)
        if spanned <= share:
            out.append(house)
            continue
        out.append(chosen_days(house, share))
        said.append(f"{house.name}: {spanned} days; learning from {days_spanned(out[-1])} of them (the days its "
                    f"appliances ran first, spread through the file)")
    return out, said


def _spread(days: np.ndarray) -> list[int]:
    """``days`` in an order that covers them evenly from the first pick on: the middle, then the quarters, ..."""
    order: list[int] = []
    seen: set[int] = set()
    parts = 1
    while len(order) < len(days):
        for i in (np.arange(parts) * 2 + 1) * len(days) // (2 * parts):
            if int(i) not in seen:
                seen.add(int(i))
                order.append(int(days[i]))
        parts *= 2
    return order


def chosen_days(house: House, n: int) -> House:
    """``n`` whole days of ``house`` (see the module's notes), back to back from its first chosen day."""
    day = ((house.timestamp - house.timestamp[0]) // DAY).astype(np.int64)
    queues = [_spread(np.unique(day[v >= THRESHOLDS.get(name, 10)])) for name, v in house.appliances.items()]
    chosen: set[int] = set()
    while len(chosen) < n and any(queues):  # a day each appliance ran, in turn
        for queue in queues:
            while queue and queue[0] in chosen:
                queue.pop(0)
            if queue and len(chosen) < n:
                chosen.add(queue.pop(0))
    for d in _spread(np.unique(day)):  # then any day, spread alike
        if len(chosen) >= n:
            break
        chosen.add(d)
    picked = np.array(sorted(chosen))
    keep = np.isin(day, picked)
    shift = (np.searchsorted(picked, day[keep]) + picked[0] - day[keep]) * DAY  # each day to its place in line
    kept = house.subset(keep)
    kept.timestamp = kept.timestamp + shift
    return kept
