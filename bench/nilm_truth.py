"""How much of each submetered appliance's switching the mains show: `python -m bench.nilm_truth`.

A disaggregator reads the mains alone, so an appliance's switching is only there to find if the mains
step with it. Per REFIT house and appliance, at every switch on and off of its channel (the on/off line
``THRESHOLDS`` crossed, a change of at least 80% of that line over a minute each side), the mains' change
over the same minutes as a share of the channel's (median over the switchings), at the channel's own
time and with it shifted by up to five minutes (a clock offset between channel and mains would move the
best shift off 0). About a minute. Prints a table and a last key=value line: per appliance, the share of
switchings where the mains moved by at least half the channel's step.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bench import nilm_data
from bench.nilm import refit_houses
from edge.nilm.appliances import NAMES, THRESHOLDS
from edge.nilm.house_csv import House

SHIFTS_S = (-300, -60, -30, 0, 30, 60, 300)
SIDE_S = (5.0, 60.0)  # a side's samples: from 5 s to a minute away from the switching (the step itself left out)


def shares(house: House, name: str, shift: float) -> np.ndarray:
    """At each switching of ``name``'s channel, the mains' change (``shift`` seconds later) over the channel's."""
    ts, mains, power = house.timestamp, house.mains, house.appliances[name]
    on = power >= THRESHOLDS[name]
    out = []
    for i in np.flatnonzero(on[:-1] != on[1:]) + 1:
        t, u = ts[i], ts[i] + shift
        sides = [(ts >= c - SIDE_S[1]) & (ts < c - SIDE_S[0]) for c in (t, u)]
        sides += [(ts > c + SIDE_S[0]) & (ts <= c + SIDE_S[1]) for c in (t, u)]
        if min(int(s.sum()) for s in sides) < 3:
            continue  # a gap in the data beside it
        step = float(np.median(power[sides[2]]) - np.median(power[sides[0]]))
        if abs(step) >= 0.8 * THRESHOLDS[name]:
            out.append(float(np.median(mains[sides[3]]) - np.median(mains[sides[1]])) / step)
    return np.asarray(out)


def main() -> None:
    data = nilm_data() / "refit_1day_2015-01-08"
    seen: dict[str, list[np.ndarray]] = {n: [] for n in NAMES}
    print(f"{'house':>5s} {'appliance':16s}{'switchings':>11s}{'mains >= half':>15s}  median share at a shift of "
          + " ".join(f"{s:>5d}" for s in SHIFTS_S) + " s")
    with tempfile.TemporaryDirectory(prefix="ohmni-bench-truth-") as folder:
        houses = refit_houses(data, Path(folder))
    for n, house in houses.items():
        for name in house.appliances:
            at = {s: shares(house, name, s) for s in SHIFTS_S}
            if not len(at[0]):
                continue
            seen[name].append(at[0])
            medians = " ".join(f"{np.median(at[s]) if len(at[s]) else np.nan:5.2f}" for s in SHIFTS_S)
            print(f"{n:>5d} {name:16s}{len(at[0]):>11d}{np.mean(at[0] >= 0.5):>15.0%}  {' ' * 26}{medians}")
    figures = {n: float(np.mean(np.concatenate(v) >= 0.5)) for n, v in seen.items() if v}
    print(" ".join(f"{n}_mains_half={f:.2f}" for n, f in figures.items()))


if __name__ == "__main__":
    main()
