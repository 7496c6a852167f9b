"""What disaggregation costs the hub: `python -m bench.nilm_cost HOUSE.csv [MODEL.json]`.

Run in its own process so the resident memory is the hub's share (NumPy and the model) and
not the bench's: one day of the house's mains resampled to 1 s (86,400 samples), disaggregated
once, timed beside a baseline in the same run — reading the day (np.interp) — and the peak
resident memory read from the kernel (VmHWM). Prints one key=value line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from bench import peak_rss_mb
from edge.nilm.disaggregate import disaggregate
from edge.nilm.house_csv import read_house
from edge.nilm.model import load, pretrained


def main(argv: list[str]) -> None:
    house = read_house(Path(argv[0]))
    model = load(Path(argv[1])) if len(argv) > 1 else pretrained()
    ts = np.arange(86_400, dtype=np.float64) + house.timestamp[0]
    t0 = time.perf_counter()
    mains = np.interp(ts, house.timestamp, house.mains)
    baseline = time.perf_counter() - t0
    t0 = time.perf_counter()
    disaggregate(ts, mains, model)
    seconds = time.perf_counter() - t0
    rss_mb = peak_rss_mb()
    print(f"day_1s_seconds={seconds:.2f} interp_seconds={baseline:.4f} peak_rss_mb={rss_mb:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
