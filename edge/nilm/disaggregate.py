"""Disaggregation: the whole-house signal in, each appliance's power out, one value per input sample.

The mains go on the feature grid (``features.py``); the event detector (``events.py``) adds its
verdict per appliance as five more columns; per appliance, its two boosters and the detector
vote in each cell. Where the vote passes the learned threshold, the appliance's power is the
step it stands above the lowest level of the window learned for it (a minute, five, or a
quarter hour), kept within the range learned for it (so a kettle reads as a kettle, not as the
kettle and the oven together). Beside the watts, how likely each call is right (its run's confidence).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from edge.nilm.features import house_matrix
from edge.nilm.house_csv import House
from edge.nilm.model import Model, step_power


def disaggregate(ts: np.ndarray, mains: np.ndarray, model: Model) -> dict[str, np.ndarray]:
    return disaggregate_with_confidence(ts, mains, model)[0]


#: Inputs longer than a fortnight (``CHUNK_S``) go a fortnight at a time, each with ``MARGIN_S`` either side (what
#: is said at a moment depends on the hours around it), so memory is bounded whatever the file's length. Why 6 hours,
#: and where it is not exact: docs/nilm.md, "Long files"; ``tests/edge/test_nilm_model.py`` holds it to the whole.
CHUNK_S = 14 * 86_400
MARGIN_S = 21_600  # 6 hours


@dataclass
class Part:
    """A stretch of the input, in order, and what was said of it: its rows (the truth's columns too, where the input
    has them) and, per appliance, their watts and confidence. ``whole``: the input went in one piece."""

    house: House
    watts: dict[str, np.ndarray]
    confidence: dict[str, np.ndarray]
    whole: bool


def disaggregate_with_confidence(ts: np.ndarray, mains: np.ndarray, model: Model, chunk_s: float = CHUNK_S,
                                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per appliance, its watts and, where it is called on, how likely that call is right (``ApplianceModel.
    confidence``; 0 where off), one value per input sample: a run's confidence is its samples' mean. An input
    longer than ``chunk_s`` (and its margins) goes a chunk at a time, as ``disaggregate_parts`` takes it."""
    parts = list(disaggregate_parts([House("", ts, mains, {})], model, chunk_s))
    joined = [{name: np.concatenate([getattr(p, what)[name] for p in parts]) if parts else np.zeros(0)
               for name in model.appliances} for what in ("watts", "confidence")]
    return joined[0], joined[1]


def disaggregate_parts(blocks: Iterable[House], model: Model, chunk_s: float = CHUNK_S) -> Iterator[Part]:
    """``disaggregate_with_confidence`` on an input that comes a block of rows at a time (``HouseBlocks``), said a
    ``Part`` at a time as soon as what follows it is in: memory holds a chunk and its margins, whatever the input's
    length. An input that fits in one chunk and its margins goes whole, as one part; a longer one goes on whole
    multiples of ``chunk_s`` (a multiple of the grid's cell, so every chunk's cells are the whole's)."""
    source = iter(blocks)
    pending: list[House] = []
    ended = False

    def more() -> None:
        nonlocal ended
        block = next(source, None)
        if block is None:
            ended = True
        elif len(block.timestamp):
            pending.append(block)

    while not ended and (not pending or pending[-1].timestamp[-1] - pending[0].timestamp[0] <= chunk_s + 2 * MARGIN_S):
        more()
    if not pending:
        return
    if ended:  # it fits: all at once
        whole = _joined(pending)
        yield _part(whole, whole, model, whole=True)
        return
    start = float(np.floor(pending[0].timestamp[0] / chunk_s) * chunk_s)
    while True:
        end = start + chunk_s
        while not ended and pending[-1].timestamp[-1] < end + MARGIN_S:
            more()
        held = _joined(pending)
        ts = held.timestamp
        core = held.subset(slice(*np.searchsorted(ts, [start, end])))
        if len(core.timestamp):  # (none: a chunk in a gap)
            yield _part(held.subset(slice(*np.searchsorted(ts, [start - MARGIN_S, end + MARGIN_S]))), core, model)
        if ended and end > ts[-1]:
            return
        start = end
        pending = [held.subset(slice(int(np.searchsorted(ts, start - MARGIN_S)), None)).copy()]  # frees the rest


def _joined(blocks: list[House]) -> House:
    if len(blocks) == 1:
        return blocks[0]
    return House(blocks[0].name, np.concatenate([b.timestamp for b in blocks]),
                 np.concatenate([b.mains for b in blocks]),
                 {name: np.concatenate([b.appliances[name] for b in blocks]) for name in blocks[0].appliances})


def _part(around: House, core: House, model: Model, whole: bool = False) -> Part:
    """What is said of ``core``'s rows, from ``around`` (``core`` and its margins): fewer than three samples say
    nothing (0)."""
    n = len(core.timestamp)
    if len(around.timestamp) < 3:
        return Part(core, {name: np.zeros(n) for name in model.appliances},
                    {name: np.zeros(n) for name in model.appliances}, whole)
    first = int(np.searchsorted(around.timestamp, core.timestamp[0]))
    watts, confidence = _disaggregate(around.timestamp, around.mains, model, slice(first, first + n))
    return Part(core, watts, confidence, whole)


def _disaggregate(ts: np.ndarray, mains: np.ndarray, model: Model, rows: slice | None = None,
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``disaggregate_with_confidence`` on one stretch of three samples or more, all at once: of its ``rows`` (all
    of them by default; the margins' need not be kept)."""
    cell, x = house_matrix(ts, mains, model.signatures)
    cell = cell[rows if rows is not None else slice(None)]
    steps = step_power(x, {m.step_s for m in model.appliances.values()})  # only the windows the model uses
    watts, confidence = {}, {}
    for name, m in model.appliances.items():
        vote = m.vote(x)
        watts[name], confidence[name] = m.estimate(vote, steps)[cell], m.confidence(vote)[cell]
    return watts, confidence
