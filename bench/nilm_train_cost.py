"""What learning costs as houses get longer: `python -m bench.nilm_train_cost`.

`ohmni nilm train` in a process of its own on four REFIT houses (1, 2, 3 and 5), each its real day repeated
1, 7 and 90 times, side by side in one run: time and peak resident memory. Seven days of four houses is the
learner's default budget (`--max-days 28`), so 90-day houses should cost what 7-day ones do; the 1-day houses
are the baseline each grows from. About 16 minutes. Prints a table and a last key=value line.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import nilm_data, peak_rss_mb
from edge.nilm.convert import convert_refit
from edge.nilm.house_csv import read_house, write_house
from tests.edge.long_house import days_of

HOUSES = (1, 2, 3, 5)
DAYS = (1, 7, 90)
TREES = 20  # per booster: the default 80 takes four times as long and costs the same memory


def train(paths: list[Path], model: Path) -> tuple[float, float]:
    """(seconds, peak resident MB) of one `ohmni nilm train`, in a process of its own (``_one``)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.nilm_train_cost", "--one", str(model), *map(str, paths)],
                          check=True, capture_output=True, text=True)
    return time.perf_counter() - start, float(done.stdout.split()[-1])


def _one(model: str, paths: list[str]) -> None:
    """Train as the command does, then print this process's peak resident MB."""
    from ohmni.cli import app

    try:
        app(["nilm", "train", *paths, "--out", model, "--trees", str(TREES)])
    except SystemExit as stop:
        if stop.code:
            raise
    print(peak_rss_mb())


def main() -> None:
    folder = nilm_data() / "refit_1day_2015-01-08"
    figures: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ohmni-bench-train-") as tmp:
        for n in HOUSES:
            convert_refit(folder / f"house_{n}_day.csv", folder / "labels.csv", n, Path(tmp) / f"house_{n}.csv")
        for days in DAYS:
            paths = [Path(tmp) / f"house_{n}_{days}d.csv" for n in HOUSES]
            for n, path in zip(HOUSES, paths, strict=True):
                long = days_of(read_house(Path(tmp) / f"house_{n}.csv"), days)
                write_house(path, long.timestamp, long.mains, long.appliances)
            figures[days] = train(paths, Path(tmp) / f"model_{days}.json")
            print(f"{len(HOUSES)} houses of {days:>3} days: {figures[days][0]:7.1f} s, peak {figures[days][1]:7.0f} MB",
                  flush=True)
    print(" ".join(f"days_{d}_seconds={s:.1f} days_{d}_peak_mb={m:.0f}" for d, (s, m) in figures.items()))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        _one(sys.argv[2], sys.argv[3:])
    else:
        main()
