"""Which days of long submetered houses the learner reads: its memory grows with every day it learns from.

Learning holds each house's features and, for the washing machine, four synthetic copies of them, and the trees'
histograms over all of it: about 40 MB a house-day (4 REFIT houses of 7 days each: 1.24 GB peak, against 0.25 GB for
their one day each; ``python -m bench.nilm_train_cost``). A user's own data often runs for months (REFIT's houses
for two years), which would need tens of GB. So ``ohmni nilm train`` and ``adapt`` learn from at most ``--max-days``
(28) in all, shared among the houses: each house longer than its share gives that many whole days, the days each of
its appliances ran first (in turn, so every appliance is seen), spread through the file, then other days spread
alike. The days chosen are put back to back (each moved by whole days, so the time of day is kept): a gap between
two of them is not learned as hours of the house standing still. Nor is more of a file than its share held while it
is read (``read_within``): a house longer than its share is read twice, a block at a time, first to see which days
its appliances ran, then for the chosen days alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.nilm.appliances import THRESHOLDS
from edge.nilm.house_csv import BLOCK_ROWS, House, HouseBlocks

DAY = 86_400


def days_spanned(house: House) -> int:
    return int((house.timestamp[-1] - house.timestamp[0]) // DAY) + 1 if len(house.timestamp) else 0


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


def pick(days: np.ndarray, ran: list[np.ndarray], n: int) -> np.ndarray:
    """``n`` of ``days`` (a house's day numbers, sorted), sorted: a day each appliance ran (``ran``: the days each
    did), in turn and spread through the file, then any day, spread alike."""
    queues = [_spread(r) for r in ran]
    chosen: set[int] = set()
    while len(chosen) < n and any(queues):  # a day each appliance ran, in turn
        for queue in queues:
            while queue and queue[0] in chosen:
                queue.pop(0)
            if queue and len(chosen) < n:
                chosen.add(queue.pop(0))
    for d in _spread(days):  # then any day, spread alike
        if len(chosen) >= n:
            break
        chosen.add(d)
    return np.array(sorted(chosen))


def day_numbers(timestamp: np.ndarray, first: float) -> np.ndarray:
    """The day each timestamp falls in, counted from the house's first timestamp (day 0)."""
    return ((timestamp - first) // DAY).astype(np.int64)


def ran_on(house: House, day: np.ndarray) -> list[np.ndarray]:
    """For each appliance column of ``house``, the days (of ``day``, one per row) it was on."""
    return [np.unique(day[v >= THRESHOLDS.get(name, 10)]) for name, v in house.appliances.items()]


def back_to_back(house: House, day: np.ndarray, picked: np.ndarray) -> House:
    """The rows of ``house`` on the ``picked`` days (``day``: each row's), each day moved by whole days to its place
    in line after ``picked[0]``: row by row, so a house can be cut a block at a time."""
    keep = np.isin(day, picked)
    shift = (np.searchsorted(picked, day[keep]) + picked[0] - day[keep]) * DAY
    kept = house.subset(keep)
    kept.timestamp = kept.timestamp + shift
    return kept


def chosen_days(house: House, n: int) -> House:
    """``n`` whole days of ``house`` (see the module's notes), back to back from its first chosen day."""
    day = day_numbers(house.timestamp, house.timestamp[0])
    return back_to_back(house, day, pick(np.unique(day), ran_on(house, day), n))


def _cut_line(name: str, spanned: int, kept: int) -> str:
    return (f"{name}: {spanned} days; learning from {kept} of them (the days its appliances ran first, spread "
            "through the file)")


def _joined(name: str, blocks: list[House]) -> House:
    return House(name, np.concatenate([b.timestamp for b in blocks]), np.concatenate([b.mains for b in blocks]),
                 {k: np.concatenate([b.appliances[k] for b in blocks]) for k in blocks[0].appliances})


def read_within(paths: list[Path], max_days: int, progress: Callable[[str], None] = lambda _: None,
                block_rows: int = BLOCK_ROWS) -> list[House]:
    """The house CSVs at ``paths``, each longer than its share of ``max_days`` (at least a day) cut to its
    ``chosen_days``, without holding more of a file than its share: a first pass, a block at a time, keeps the rows
    while they span no more than the share and, past it, only which days each appliance ran; a longer house is then
    read a second time for its chosen days alone (``block_rows`` at a time). ``progress`` gets a line for each house
    cut, before its second pass."""
    share = max(1, max_days // max(1, len(paths)))
    out = []
    for path in paths:
        kept: list[House] | None = []
        days: set[int] = set()
        ran: dict[str, set[int]] = {}
        first = np.nan  # the house's first timestamp, once read
        with HouseBlocks(path, need_truth=True, rows=block_rows) as blocks:
            for block in blocks:
                first = float(block.timestamp[0]) if np.isnan(first) else first
                day = day_numbers(block.timestamp, first)
                days.update(np.unique(day).tolist())
                for name, on in zip(block.appliances, ran_on(block, day), strict=True):
                    ran.setdefault(name, set()).update(on.tolist())
                if kept is not None and day[-1] < share:
                    kept.append(block)
                else:
                    kept = None  # longer than its share: its days are chosen once all are seen
            name, known = blocks.name, blocks.known
        if kept is not None:
            out.append(kept[0] if len(kept) == 1 else _joined(name, kept))
            continue
        spanned = max(days) + 1
        picked = pick(np.array(sorted(days)), [np.array(sorted(ran.get(k, ()))) for k in known], share)
        progress(_cut_line(name, spanned, len(picked)) + "; reading them")
        with HouseBlocks(path, need_truth=True, rows=block_rows) as blocks:
            cut = [back_to_back(b, day_numbers(b.timestamp, first), picked) for b in blocks]
        out.append(_joined(name, [b for b in cut if len(b.timestamp)]))
    return out
