"""What `ohmni nilm disaggregate` costs on a long file: `python -m bench.nilm_long [DAYS]`.

A house of DAYS days (default 45) at a reading a second — REFIT house 9's real day resampled to 1 s and repeated —
disaggregated by the command (which reads, disaggregates and writes a fortnight at a time) beside the way the command
went before, in the same run: the whole file read into memory, disaggregated a fortnight at a time, written at the
end. Each in a process of its own: time and peak resident memory; and whether the two wrote the same bytes
(estimates and runs). Then the command on a file twice as long, to show its memory does not grow with the file.
About 6 minutes at 45 days. Prints a table and a last key=value line.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import nilm_data, peak_rss_mb
from edge.nilm.convert import convert_refit
from edge.nilm.house_csv import House, read_house, write_house
from tests.edge.long_house import days_of

WAYS = ("whole", "streamed")


def run(way: str, house: Path, out: Path, runs: Path) -> tuple[float, float]:
    """(seconds, peak resident MB) of one way, in a process of its own (``_one``)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.nilm_long", "--one", way, str(house), str(out), str(runs)],
                          check=True, capture_output=True, text=True)
    return time.perf_counter() - start, float(done.stdout.split()[-1])


def _whole(house: Path, out: Path, runs: Path) -> None:
    """The command as it was: every row in memory, estimates and runs written at the end."""
    from edge.nilm.disaggregate import disaggregate_with_confidence
    from edge.nilm.live import runs_from
    from edge.nilm.model import pretrained

    h = read_house(house)
    estimates, confidence = disaggregate_with_confidence(h.timestamp, h.mains, pretrained())
    write_house(out, h.timestamp, None, estimates)
    with runs.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("appliance", "start", "end", "energy_wh", "peak_w", "confidence"))
        writer.writerows((r.appliance, r.start, r.end, f"{r.energy_wh:.1f}", f"{r.peak_w:.1f}",
                          f"{r.confidence:.3f}") for r in runs_from(h.timestamp, estimates, confidence))


def _one(way: str, house: str, out: str, runs: str) -> None:
    """One way, then this process's peak resident MB."""
    if way == "whole":
        _whole(Path(house), Path(out), Path(runs))
    else:
        from ohmni.cli import app

        try:
            app(["nilm", "disaggregate", house, "--out", out, "--runs", runs])
        except SystemExit as stop:
            if stop.code:
                raise
    print(peak_rss_mb())


def long_house(days: int, folder: Path) -> House:
    """House 9's day at 1 s (its 7 s readings interpolated), ``days`` times."""
    day = folder / "house_9.csv"
    convert_refit(nilm_data() / "refit_1day_2015-01-08/house_9_day.csv",
                  nilm_data() / "refit_1day_2015-01-08/labels.csv", 9, day)
    h = read_house(day)
    ts = np.arange(np.ceil(h.timestamp[0]), h.timestamp[0] + 86_400, 1.0)
    return days_of(House("house_9", ts, np.round(np.interp(ts, h.timestamp, h.mains), 1), {}), days)


def main(days: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ohmni-bench-long-") as tmp:
        folder = Path(tmp)
        files = {}
        for n in (days, 2 * days):
            house = long_house(n, folder)
            files[n] = folder / f"long_{n}.csv"
            write_house(files[n], house.timestamp, house.mains, {})
            print(f"{n} days at 1 s: {len(house.timestamp):,} rows, {files[n].stat().st_size / 1e6:.0f} MB of CSV",
                  flush=True)
            del house
        figures = {}
        for way, n in (("whole", days), ("streamed", days), ("streamed", 2 * days)):
            figures[way, n] = run(way, files[n], folder / f"{way}_{n}.csv", folder / f"{way}_{n}_runs.csv")
            print(f"  {way:9} {n:4} days {figures[way, n][0]:6.1f} s {figures[way, n][1]:7.0f} MB peak", flush=True)
        same = all((folder / f"whole_{days}{end}.csv").read_bytes()
                   == (folder / f"streamed_{days}{end}.csv").read_bytes() for end in ("", "_runs"))
    (ws, wm), (ss, sm), (ls, lm) = figures["whole", days], figures["streamed", days], figures["streamed", 2 * days]
    print(f"same bytes written: {'yes' if same else 'NO'}; memory {sm / wm:.2f}x, time {ss / ws:.2f}x the whole way's; "
          f"twice the days: memory {lm / sm:.2f}x, time {ls / ss:.2f}x")
    print(f"days={days} whole_seconds={ws:.1f} whole_peak_mb={wm:.0f} streamed_seconds={ss:.1f} "
          f"streamed_peak_mb={sm:.0f} memory_ratio={sm / wm:.2f} same_bytes={int(same)} "
          f"double_days_seconds={ls:.1f} double_days_peak_mb={lm:.0f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        _one(*sys.argv[2:6])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 45)
