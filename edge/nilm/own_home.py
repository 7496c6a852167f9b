"""A home's own submetered truth: the meter's power beside the plugs the installer put on appliances.

A plug on the washing machine is what REFIT's submeters were: one appliance's own power beside
the whole house's. The hub keeps both (``readings`` and ``device_readings`` in its store); this
reads them back as a ``House`` for ``adapt`` (the hub does this itself, see
``edge/agent.py``) or writes them as a house CSV (``ohmni hub nilm-export``) for
``ohmni nilm adapt`` and ``ohmni nilm train``.

Decisions: one row per cell of the disaggregator's 6-second grid (``features.GRID_S``), the last
meter reading in it, which is all the disaggregator reads of them (``features.to_grid``): a week of
a 1-second meter is 100,000 rows, not 600,000 (it runs on a Pi). The mains are the meter's import minus
export, floored at 0 (a house CSV's power is never negative; a home exporting solar has no
appliance to find in that moment anyway). A plug's power in a cell is its last report before the
cell ends; a report older than ``PLUG_HOLD_S`` says nothing (the plug is off the network), and
such rows are left out rather than guessed. Several plugs for one appliance (two freezers) add
up, as REFIT's channels do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge.nilm.features import GRID_S
from edge.nilm.house_csv import House, write_house

if TYPE_CHECKING:
    from edge.store import HubStore

PLUG_HOLD_S = 300.0  # plugs report on change and every minute or so; a report older than this is stale


def own_home(store: HubStore, plugs: dict[str, str], history_s: float | None = None) -> House | None:
    """The home's last ``history_s`` before its latest meter reading (all of it: None) on the grid, with one column
    per appliance a plug is mapped to (device -> appliance), or None when no cell has every mapped plug's power."""
    (last,) = store.db.execute("SELECT MAX(ts) FROM readings WHERE channel = 'electricity'").fetchone()
    if last is None or not plugs:
        return None
    since = -np.inf if history_s is None else last - history_s
    # with MAX(ts), SQLite takes the bare column from the row holding the maximum: the cell's last reading
    meter = np.array(store.db.execute(
        "SELECT CAST(ts / ? AS INTEGER) AS cell, MAX(power_import_w - power_export_w, 0), MAX(ts) FROM readings "
        "WHERE channel = 'electricity' AND ts >= ? GROUP BY cell ORDER BY cell", (GRID_S, since)).fetchall(),
        dtype=np.float64).reshape(-1, 3)[:, :2]
    ts = meter[:, 0] * GRID_S
    end = ts + GRID_S
    known = np.ones(len(ts), dtype=bool)
    columns: dict[str, np.ndarray] = {}
    for appliance, devices in by_appliance(plugs).items():
        got = plug_power(store, devices, np.nextafter(end, -np.inf), since)  # the last report before the cell ends
        if got is None:
            return None  # a mapped plug that never reported then: no cell has every plug's power
        columns[appliance], fresh = got
        known &= fresh
    if not known.any():
        return None
    return House("own home", ts[known], meter[known, 1], {k: v[known] for k, v in columns.items()})


def by_appliance(plugs: dict[str, str]) -> dict[str, list[str]]:
    """The plugs (device -> appliance) as appliance -> its devices, in the order the config names them."""
    out: dict[str, list[str]] = {}
    for device, appliance in plugs.items():
        out.setdefault(appliance, []).append(device)
    return out


def plug_power(store: HubStore, devices: list[str], at: np.ndarray,
               since: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The ``devices``' power added up as each last reported it at or before each time in ``at`` (reports from
    ``since - PLUG_HOLD_S`` on), and where every one of them had reported within ``PLUG_HOLD_S`` then; None when one
    of them sent no report at all."""
    total = np.zeros(len(at))
    known = np.ones(len(at), dtype=bool)
    for device in devices:
        rows = np.array(store.db.execute(
            "SELECT ts, power_w FROM device_readings WHERE device = ? AND power_w IS NOT NULL AND ts >= ? "
            "ORDER BY ts", (device, since - PLUG_HOLD_S)).fetchall(), dtype=np.float64).reshape(-1, 2)
        if not len(rows):
            return None
        report = np.searchsorted(rows[:, 0], at, side="right") - 1
        held = np.maximum(report, 0)
        known &= (report >= 0) & (at - rows[held, 0] <= PLUG_HOLD_S)
        total += np.clip(rows[held, 1], 0, None)
    return total, known


def export_own_home(store: HubStore, plugs: dict[str, str], out: Path, history_s: float | None = None) -> House | None:
    """Write the home as a house CSV; returns what was written (None: nothing to write)."""
    house = own_home(store, plugs, history_s)
    if house is not None:
        write_house(out, house.timestamp, house.mains, house.appliances)
    return house
