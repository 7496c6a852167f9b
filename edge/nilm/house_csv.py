"""House CSVs: `timestamp` (Unix seconds), `mains` (W) and any appliance columns (W).

Reading checks what a user's file gets wrong and names the line: a missing column, text in
a number, NaN, negative power, timestamps out of order or repeated. No silent repair: a
file that breaks a rule is refused with the first offending line.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.nilm.appliances import NAMES


class HouseCsvError(ValueError):
    pass


@dataclass
class House:
    name: str
    timestamp: np.ndarray  # float64 seconds
    mains: np.ndarray  # float64 W
    appliances: dict[str, np.ndarray]  # submetered truth, W

    def subset(self, keep: np.ndarray) -> House:
        """The rows where ``keep`` holds (a stretch of the house's time), every column alike."""
        return House(self.name, self.timestamp[keep], self.mains[keep],
                     {k: v[keep] for k, v in self.appliances.items()})


def read_house(path: Path, need_truth: bool = False) -> House:
    try:
        f = path.open(newline="")
    except OSError as exc:
        raise HouseCsvError(f"{path}: {exc.strerror}") from None
    with f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise HouseCsvError(f"{path}: empty file") from None
        for column in ("timestamp", "mains"):
            if column not in header:
                raise HouseCsvError(f"{path}: line 1: no '{column}' column (found {', '.join(header)})")
        known = [name for name in header if name in NAMES]
        if need_truth and not known:
            raise HouseCsvError(f"{path}: line 1: no appliance column ({', '.join(NAMES)}) to learn or score from")
        index = {name: header.index(name) for name in ("timestamp", "mains", *known)}
        rows: list[list[float]] = []
        previous = -math.inf
        for line, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            values = []
            for name, i in index.items():
                try:
                    value = float(row[i])
                except IndexError:
                    raise HouseCsvError(f"{path}: line {line}: no value for '{name}'") from None
                except ValueError:
                    raise HouseCsvError(f"{path}: line {line}: '{name}' is {row[i]!r}, not a number") from None
                if not math.isfinite(value):
                    raise HouseCsvError(f"{path}: line {line}: '{name}' is {row[i]!r}, not a finite number")
                if name != "timestamp" and value < 0:
                    raise HouseCsvError(f"{path}: line {line}: '{name}' is negative ({value:g} W)")
                values.append(value)
            if values[0] <= previous:
                what = "repeats" if values[0] == previous else "goes back in time from"
                raise HouseCsvError(f"{path}: line {line}: timestamp {values[0]:.0f} {what} the line before "
                                    f"({previous:.0f}); sort the file and drop duplicates")
            previous = values[0]
            rows.append(values)
    if not rows:
        raise HouseCsvError(f"{path}: no data rows")
    data = np.asarray(rows, dtype=np.float64)
    return House(path.stem, data[:, 0], data[:, 1], {name: data[:, 2 + k] for k, name in enumerate(known)})


def write_house(path: Path, timestamp: np.ndarray, mains: np.ndarray | None,
                appliances: dict[str, np.ndarray]) -> None:
    columns = ["timestamp"] + (["mains"] if mains is not None else []) + list(appliances)
    arrays = [timestamp] + ([mains] if mains is not None else []) + list(appliances.values())
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for row in zip(*arrays, strict=True):
            w.writerow([f"{row[0]:.0f}", *(f"{v:.1f}" for v in row[1:])])
