"""REFIT and REDD (as in ../shared/data/nilm) -> house CSVs with the five appliance columns.

REFIT: `Unix` -> timestamp, `Aggregate` -> mains; appliance channels chosen by the
house's labels (all fridge-like channels summed into `fridge`, since the mains carries
them all). REDD (SGN pre-processed) has no timestamps: rows are ~3 s apart, so
timestamps are made at 3 s steps, with a gap of an hour between chunks so that no
window spans two chunks.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from edge.nilm.appliances import APPLIANCES
from edge.nilm.house_csv import write_house

REDD_STEP_S = 3
CHUNK_GAP_S = 3600


def refit_labels(labels_csv: Path, house: int) -> dict[str, str]:
    """Column -> label, without the room or number REFIT adds in brackets ("Freezer (Garage)",
    "Fridge-Freezer (1)"): every cold appliance in the mains belongs in the fridge's truth."""
    with labels_csv.open(newline="") as f:
        return {r["column"]: re.sub(r"\s*\(.*\)\s*$", "", r["label"]).strip() for r in csv.DictReader(f)
                if int(r["house"]) == house}


def convert_refit(day_csv: Path, labels_csv: Path, house: int, out: Path) -> list[str]:
    """Returns the appliance columns written (only those the house has)."""
    labels = refit_labels(labels_csv, house)
    data = np.loadtxt(day_csv, delimiter=",", skiprows=1, usecols=range(1, 12))
    header = ["Unix", "Aggregate", *(f"Appliance{i}" for i in range(1, 10))]
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
    z = np.load(npz)
    power, names, chunk = z["power"].astype(np.float64), [str(c) for c in z["columns"]], z["chunk"]
    power = np.nan_to_num(power, nan=0.0)
    breaks = np.concatenate([[0], (np.diff(chunk) != 0).astype(np.int64)])
    timestamp = start_ts + np.arange(len(power)) * REDD_STEP_S + np.cumsum(breaks) * CHUNK_GAP_S
    columns = {a.name: power[:, [names.index(lbl) for lbl in a.redd_labels if lbl in names]].sum(axis=1)
               for a in APPLIANCES if any(lbl in names for lbl in a.redd_labels)}
    write_house(out, timestamp.astype(np.float64), power[:, names.index("main")], columns)
    return list(columns)
