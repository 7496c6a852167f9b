"""What reading a long house costs `ohmni nilm train` and `adapt`: `python -m bench.nilm_learn_read [DAYS]`.

A submetered house of DAYS days (default 365) — REFIT house 9's real day, every column, at its own 8-second
readings, repeated — read for learning with the default ``--max-days`` (28), two ways in the same run, each in a
process of its own: as the commands read before (the whole file in memory, then its 28 days chosen:
``read_house`` + ``chosen_days``) and as they read now (``days.read_within``: a first pass a block at a time to see
which days the appliances ran, a second for those days alone). Time and peak resident memory of each, and whether
the two gave the same rows. About 2 minutes at 365 days. Prints a table and a last key=value line.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import nilm_data, peak_rss_mb
from edge.nilm.convert import convert_refit
from edge.nilm.house_csv import House, read_house, write_house
from tests.edge.long_house import days_of

MAX_DAYS = 28
WAYS = ("whole", "streamed")


def digest(house: House) -> str:
    """The rows a way gave, as one hash: the same hash, the same rows to learn from."""
    h = hashlib.sha256()
    for array in (house.timestamp, house.mains, *(house.appliances[k] for k in sorted(house.appliances))):
        h.update(array.tobytes())
    return h.hexdigest()[:16]


def _one(way: str, path: str) -> None:
    """One way, then its rows' digest and this process's peak resident MB."""
    if way == "whole":
        from edge.nilm.days import chosen_days

        house = chosen_days(read_house(Path(path), need_truth=True), MAX_DAYS)
    else:
        from edge.nilm.days import read_within

        [house] = read_within([Path(path)], MAX_DAYS)
    print(digest(house), len(house.timestamp), peak_rss_mb())


def run(way: str, path: Path) -> tuple[float, float, str, int]:
    """(seconds, peak resident MB, digest, rows) of one way, in a process of its own."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.nilm_learn_read", "--one", way, str(path)],
                          check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    digest_, rows, peak = done.stdout.split()
    return seconds, float(peak), digest_, int(rows)


def main(days: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ohmni-bench-learn-read-") as tmp:
        folder = Path(tmp)
        day = folder / "house_9.csv"
        convert_refit(nilm_data() / "refit_1day_2015-01-08/house_9_day.csv",
                      nilm_data() / "refit_1day_2015-01-08/labels.csv", 9, day)
        house = days_of(read_house(day), days)
        path = folder / f"house_9_{days}_days.csv"
        write_house(path, house.timestamp, house.mains, house.appliances)
        print(f"{days} days at 8 s: {len(house.timestamp):,} rows, mains + {', '.join(house.appliances)}, "
              f"{path.stat().st_size / 1e6:.0f} MB of CSV; learning reads {MAX_DAYS} days of it", flush=True)
        del house
        figures = {}
        for way in WAYS:
            figures[way] = run(way, path)
            seconds, peak, _, rows = figures[way]
            print(f"  {way:9} {seconds:6.1f} s {peak:7.0f} MB peak, {rows:,} rows kept", flush=True)
    (ws, wm, wd, _), (ss, sm, sd, _) = figures["whole"], figures["streamed"]
    same = wd == sd
    print(f"same rows: {'yes' if same else 'NO'}; memory {sm / wm:.2f}x, time {ss / ws:.2f}x the whole way's")
    print(f"days={days} max_days={MAX_DAYS} whole_seconds={ws:.1f} whole_peak_mb={wm:.0f} streamed_seconds={ss:.1f} "
          f"streamed_peak_mb={sm:.0f} memory_ratio={sm / wm:.2f} time_ratio={ss / ws:.2f} same_rows={int(same)}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        _one(*sys.argv[2:4])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 365)
