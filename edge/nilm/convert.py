"""REFIT and REDD (as in ../shared/data/nilm) -> house CSVs with the five appliance columns.

REFIT: `Unix` -> timestamp, `Aggregate` -> mains; appliance channels chosen by the
house's labels (all fridge-like channels summed into `fridge`, since the mains carries
them all). REDD (SGN pre-processed) has no timestamps: rows are ~3 s apart, so
timestamps are made at 3 s steps, with a gap of an hour between chunks so that no
window spans two chunks.

A file that is not what its converter reads (another CSV, a house the labels do not list, an
archive without REDD's arrays) raises ``ConvertError`` saying what it expected.
"""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

import numpy as np

from edge.nilm.appliances import APPLIANCES
from edge.nilm.house_csv import HouseCsvError, write_house

REDD_STEP_S = 3
CHUNK_GAP_S = 3600
REFIT_HEADER = ["Time", "Unix", "Aggregate", *(f"Appliance{i}" for i in range(1, 10))]
REDD_ARRAYS = ("power", "columns", "chunk")


class ConvertError(HouseCsvError):
    """A file its converter cannot read: to the commands, a house file they cannot read."""


def refit_house_number(day_csv: Path) -> int:
    """The house number in a REFIT file's name (``house_7_day.csv``, ``CLEAN_House7.csv``), so the command
    needs no ``--house`` for the files as REFIT and ../shared/data name them."""
    found = re.search(r"house[ _-]?(\d+)", day_csv.name, flags=re.IGNORECASE)
    if not found:
        raise ConvertError(f"{day_csv}: no house number in its name (like house_7_day.csv); give --house")
    return int(found[1])


def refit_labels(labels_csv: Path, house: int) -> dict[str, str]:
    """Column -> label, without the room or number REFIT adds in brackets ("Freezer (Garage)",
    "Fridge-Freezer (1)"): every cold appliance in the mains belongs in the fridge's truth."""
    try:
        with labels_csv.open(newline="", encoding="utf-8-sig", errors="replace") as f:
            rows = list(csv.DictReader(f))
    except csv.Error as exc:  # a binary file: "line contains NUL"
        raise ConvertError(f"{labels_csv}: not a CSV ({exc})") from None
    except OSError as exc:
        raise ConvertError(f"{labels_csv}: cannot read REFIT's labels ({exc.strerror}); give --labels") from None
    if not rows or not {"house", "column", "label"} <= set(rows[0]):
        raise ConvertError(f"{labels_csv}: not REFIT's labels.csv (it has the columns house, column, label)")
    try:
        mine = [r for r in rows if int(r["house"]) == house]
    except ValueError:
        raise ConvertError(f"{labels_csv}: a house number that is not a number") from None
    if not mine:
        houses = sorted({int(r["house"]) for r in rows})
        raise ConvertError(f"{labels_csv}: no house {house} (it labels houses {', '.join(map(str, houses))})")
    return {r["column"]: re.sub(r"\s*\(.*\)\s*$", "", r["label"]).strip() for r in mine}


def convert_refit(day_csv: Path, labels_csv: Path, house: int, out: Path) -> list[str]:
    """Returns the appliance columns written (only those the house has)."""
    labels = refit_labels(labels_csv, house)
    try:
        with day_csv.open(newline="", encoding="utf-8-sig", errors="replace") as f:
            first = next(csv.reader(f), [])
    except csv.Error:  # a binary file: "line contains NUL"
        first = ["\x00"]
    if [c.strip() for c in first] != REFIT_HEADER:
        found = ",".join(first)[:200]
        raise ConvertError(f"{day_csv}: line 1: not a REFIT house file (its header is {','.join(REFIT_HEADER)}; "
                           f"found {found if found.isprintable() else 'bytes that are not CSV text'})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": said below
            data = np.loadtxt(day_csv, delimiter=",", skiprows=1, usecols=range(1, 12), ndmin=2)
    except ValueError as exc:  # numpy: "could not convert string 'x' to float64 at row 0, column 4." (data rows)
        where = re.sub(r"at row (\d+), column (\d+)\.?$", lambda m: f"on line {int(m[1]) + 2}, column {m[2]}",
                       str(exc))
        raise ConvertError(f"{day_csv}: {where}") from None
    if not len(data) or not np.isfinite(data).all():
        raise ConvertError(f"{day_csv}: " + ("no rows" if not len(data) else
                                            f"line {int(np.flatnonzero(~np.isfinite(data).all(axis=1))[0]) + 2}: "
                                            "a value that is not a finite number"))
    header = REFIT_HEADER[1:]
    columns: dict[str, np.ndarray] = {}
    for appliance in APPLIANCES:
        picked = [header.index(c) for c, label in labels.items() if label in appliance.refit_labels]
        if picked:
            columns[appliance.name] = data[:, picked].sum(axis=1)
    order = np.argsort(data[:, 0], kind="stable")
    keep = order[np.concatenate([[True], np.diff(data[order, 0]) > 0])]  # REFIT repeats a few timestamps
    write_house(out, data[keep, 0], data[keep, 1], {k: v[keep] for k, v in columns.items()})
    return list(columns)


def convert_redd(npz: Path, out: Path, start_ts: int = 1_300_000_000) -> list[str]:
    with npz.open("rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise ConvertError(f"{npz}: not a .npz archive (REDD, SGN pre-processed: redd_sgn_houseN.npz)")
    try:
        z = np.load(npz)  # never with pickles: a file handed in must not run code
        power, names, chunk = z["power"].astype(np.float64), [str(c) for c in z["columns"]], z["chunk"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConvertError(f"{npz}: not a REDD (SGN pre-processed) .npz with the arrays "
                           f"{', '.join(REDD_ARRAYS)} ({exc})") from None
    if power.ndim != 2 or power.shape != (len(chunk), len(names)) or "main" not in names:
        raise ConvertError(f"{npz}: its arrays do not fit together (power {power.shape}, {len(names)} columns, "
                           f"{len(chunk)} chunk labels) or it has no 'main' column")
    power = np.nan_to_num(power, nan=0.0)
    breaks = np.concatenate([[0], (np.diff(chunk) != 0).astype(np.int64)])
    timestamp = start_ts + np.arange(len(power)) * REDD_STEP_S + np.cumsum(breaks) * CHUNK_GAP_S
    columns = {a.name: power[:, [names.index(lbl) for lbl in a.redd_labels if lbl in names]].sum(axis=1)
               for a in APPLIANCES if any(lbl in names for lbl in a.redd_labels)}
    write_house(out, timestamp.astype(np.float64), power[:, names.index("main")], columns)
    return list(columns)
