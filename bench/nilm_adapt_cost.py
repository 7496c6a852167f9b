"""What adapting to its own home costs the hub: `python -m bench.nilm_adapt_cost HOUSE.csv [MODEL.json]`.

In its own process, as `bench.nilm_cost`: the hub adapts on a week of its history read back on the
6-second grid (``edge/nilm/own_home.py``: 100,800 rows whatever the meter's rate), here the house's
day repeated seven times with every appliance column as a plug. Times ``adapt`` beside a
baseline in the same run (disaggregating that week once) and reads the peak resident memory.
Prints one key=value line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from bench import peak_rss_mb
from edge.nilm.adapt import adapt
from edge.nilm.disaggregate import disaggregate
from edge.nilm.features import GRID_S
from edge.nilm.house_csv import House, read_house
from edge.nilm.model import load, pretrained

DAYS = 7


def week(house: House) -> House:
    day = np.arange(0, 86_400, GRID_S)
    ts = (np.arange(DAYS)[:, None] * 86_400 + day[None, :]).ravel() + np.floor(house.timestamp[0] / 86_400) * 86_400
    at = house.timestamp[0] + (ts - ts[0]) % 86_400
    return House("week", ts, np.interp(at, house.timestamp, house.mains),
                 {k: np.interp(at, house.timestamp, v) for k, v in house.appliances.items()})


def main(argv: list[str]) -> None:
    home = week(read_house(Path(argv[0])))
    model = load(Path(argv[1])) if len(argv) > 1 else pretrained()
    t0 = time.perf_counter()
    disaggregate(home.timestamp, home.mains, model)
    baseline = time.perf_counter() - t0
    t0 = time.perf_counter()
    adapt(model, [home])
    seconds = time.perf_counter() - t0
    print(f"adapt_week_seconds={seconds:.1f} disaggregate_week_seconds={baseline:.1f} "
          f"adapt_peak_rss_mb={peak_rss_mb():.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
