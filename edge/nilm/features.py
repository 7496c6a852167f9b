"""What the trees see of the whole-house signal: shapes over several time scales, on a fixed grid.

Meters sample every 1–10 s, irregularly, with gaps. Everything is first put on a grid of
``GRID_S`` seconds anchored at the epoch (so the live path, which sees a moving window, cuts
the same cells as the batch path): the power at a cell is its last sample's, empty cells carry
the last value, so a 1 s meter is read as a 6 s meter would be, as REFIT's 7 s rows are (one
sample a cell). Not the cell's mean: of a 1 s meter's six samples a kettle switching mid-cell
leaves half its step in each of two cells, and the trees, which learned whole steps from REFIT,
missed it (the shipped model on REFIT's days held at 1 s: microwave F1 0.94 → 0.52, dishwasher
0.97 → 0.60; docs/nilm.md, "Data decisions"). Windows are centred and measured in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from edge.nilm.appliances import NAMES
from edge.nilm.events import events

if TYPE_CHECKING:
    from edge.nilm.model import Signature

GRID_S = 6.0
SCALES_S = (60, 300, 900, 3600, 7200)  # centred windows: a kettle boil, a microwave, a fridge cycle, a wash
FLOOR_S = 7200  # the home's floor: its lowest level over two hours
STEP_BANDS_W = ((30, 300), (300, 1200), (1200, 6000))  # fridges and motors; microwaves; heaters
COUNT_S = (900, 3600, 7200)
HEATER_W = 1200.0  # a step this big is a heating element switching
EVENT_COLUMNS = len(NAMES)  # the event detector's verdicts close the matrix, one column per appliance


def to_grid(ts: np.ndarray, mains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cell of each sample, power of each cell from the first sample's cell to the last's: its last sample's)."""
    cells = np.floor(ts / GRID_S).astype(np.int64)
    k = cells - cells[0]
    return k, last_of(k, mains)


def last_of(cell: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The last of ``values`` in each grid cell (``cell`` sorted, from 0; cells without a sample carry the previous
    cell's): per cell, the last sample at or before it."""
    return values[np.searchsorted(cell, np.arange(int(cell[-1]) + 1), side="right") - 1]


def cells_of(cell: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mean of ``values`` per grid cell (cells without a sample carry the previous cell's mean)."""
    n = int(cell[-1]) + 1
    counts = np.bincount(cell, minlength=n)
    means = np.bincount(cell, values, minlength=n) / np.maximum(counts, 1)
    filled = np.where(counts > 0, np.arange(n), 0)
    np.maximum.accumulate(filled, out=filled)
    return means[filled]


def house_matrix(ts: np.ndarray, mains: np.ndarray, signatures: dict[str, Signature]) -> tuple[np.ndarray, np.ndarray]:
    """(grid cell of each sample, feature matrix of the cells): the shapes, then the event detector's verdicts."""
    cell, grid = to_grid(ts, mains)
    x, _ = features(grid, extra=EVENT_COLUMNS)  # the verdicts go in its last columns: no second copy of it all
    verdicts = events(ts, mains, signatures)
    for j, n in enumerate(NAMES, start=x.shape[1] - EVENT_COLUMNS):
        x[:, j] = cells_of(cell, verdicts[n]) if n in verdicts else 0.0
    return cell, x


def _padded(x: np.ndarray, seconds: float) -> tuple[np.ndarray, int]:
    """``x`` with the end values repeated for a centred window of ``seconds`` (an odd number of cells), and it."""
    width = max(1, int(round(seconds / GRID_S)) | 1)
    half = width // 2
    return np.concatenate([np.full(half, x[0]), x, np.full(half, x[-1])]), width


def window(x: np.ndarray, seconds: float) -> np.ndarray:
    """Centred windows of ``seconds`` as a view (rows, width); edges repeat the end values."""
    padded, width = _padded(x, seconds)
    return np.lib.stride_tricks.sliding_window_view(padded, width)


def _sum(x: np.ndarray, seconds: float) -> np.ndarray:
    """Centred moving sum through a cumulative sum (linear time, whatever the window)."""
    padded, width = _padded(x, seconds)
    c = np.concatenate([[0.0], np.cumsum(padded)])
    return c[width:] - c[:-width]


def _since(event: np.ndarray, cap_s: float = 3600) -> np.ndarray:
    """Seconds since the last cell where ``event`` held (``cap_s`` when none or longer)."""
    idx = np.where(event, np.arange(len(event)), -1)
    np.maximum.accumulate(idx, out=idx)
    return np.where(idx >= 0, np.minimum((np.arange(len(event)) - idx) * GRID_S, cap_s), cap_s)


def _columns(x: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """The shapes of grid power ``x``, a named column at a time (float64), so no more than a few are held at once."""
    yield "power", x
    d = np.diff(x, prepend=x[0])
    yield "rise", d
    yield "fall_next", np.append(x[1:], x[-1]) - x
    floor = window(x, FLOOR_S).min(axis=1)
    yield "above_floor", x - floor
    for s in SCALES_S:
        w = window(x, s)
        lo, hi = w.min(axis=1), w.max(axis=1)
        width = w.shape[1]
        mean = _sum(x, s) / width
        var = np.maximum(_sum(x * x, s) / width - mean ** 2, 0.0)
        yield f"above_min_{s}", x - lo
        yield f"below_max_{s}", hi - x
        yield f"mean_above_floor_{s}", mean - floor
        yield f"std_{s}", np.sqrt(var)
        yield f"range_{s}", hi - lo
    for lo_w, hi_w in STEP_BANDS_W:
        moving = ((np.abs(d) >= lo_w) & (np.abs(d) < hi_w)).astype(np.float64)
        for s in COUNT_S:
            yield f"steps_{lo_w}_{hi_w}_{s}", _sum(moving, s)
    rises, falls = d >= HEATER_W, d <= -HEATER_W
    yield "since_heater_on", _since(rises)
    yield "until_heater_off", _since(falls[::-1])[::-1]
    yield "since_heater_off", _since(falls)
    yield "until_heater_on", _since(rises[::-1])[::-1]


FEATURE_NAMES = tuple(name for name, _ in _columns(np.zeros(1)))  # the shapes' names, in the matrix's order


def features(x: np.ndarray, extra: int = 0) -> tuple[np.ndarray, list[str]]:
    """(cells, features) float32 matrix for grid power ``x``, and the feature names; ``extra`` columns more at its
    end for the caller to fill. Filled a column at a time as each is computed: a week's float64 columns held all
    at once, then copied, were what took adapting a week past 100 MB (docs/nilm.md, "Figures")."""
    out = np.empty((len(x), len(FEATURE_NAMES) + extra), dtype=np.float32)
    for j, (_, column) in enumerate(_columns(x)):
        out[:, j] = column
    return out, list(FEATURE_NAMES)
