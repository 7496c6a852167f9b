"""How closely the hub's live path follows the batch path: `python -m bench.nilm_live`.

Every REFIT day of the shared data fed to `LiveDisaggregator` a reading at a time, as the hub
feeds it, beside the batch disaggregator on the whole day (the shipped model both ways): the
runs the live path sent that the batch path does not have (or the other way round) and the
half hours whose energy differs by more than 0.01 Wh. The hub's own settings (an 8-hour window
settled 2 hours inside both ends) beside a wider one (12 hours, 4 hours inside) in the same
run: what a longer wait for each run would buy. Prints a table and a last key=value line.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import tempfile
from pathlib import Path

from bench import nilm_data
from edge.nilm.convert import convert_refit
from edge.nilm.disaggregate import disaggregate_with_confidence
from edge.nilm.house_csv import read_house
from edge.nilm.live import LiveDisaggregator, Run, half_hour_energy, runs_from
from edge.nilm.model import pretrained

SETTINGS = {"hub": (8 * 3600, 7200), "wider": (12 * 3600, 4 * 3600)}  # (window_s, margin_s)


def _house(job: tuple[str, Path]) -> tuple[str, str, int, int, int, int]:
    """(setting, house, runs differing, runs, half hours differing, half hours) for one REFIT day."""
    setting, path = job
    window_s, margin_s = SETTINGS[setting]
    model = pretrained()
    house = read_house(path)
    ts = house.timestamp
    estimates, confidence = disaggregate_with_confidence(ts, house.mains, model)
    live = LiveDisaggregator(model, window_s=window_s, margin_s=margin_s)
    runs, half_hours = live.replay(ts, house.mains)

    def key(r: Run) -> tuple[str, int, int, float]:
        return r.appliance, r.start, r.end, round(r.energy_wh, 6)

    batch = {key(r) for r in runs_from(ts, estimates, confidence) if r.end <= ts[-1]}
    live_runs = {key(r) for r in runs}
    energy = half_hour_energy(ts, estimates)
    off = sum(abs(h.energy_wh - energy.get((h.appliance, h.start), 0.0)) > 0.01 for h in half_hours)
    return setting, path.stem, len(batch ^ live_runs), len(batch | live_runs), off, len(half_hours)


def main() -> None:
    folder = nilm_data() / "refit_1day_2015-01-08"
    days = sorted(folder.glob("house_*_day.csv"), key=lambda p: int(re.findall(r"\d+", p.name)[0]))
    with tempfile.TemporaryDirectory(prefix="ohmni-bench-live-") as tmp:
        paths = []
        for day in days:
            n = int(re.findall(r"\d+", day.name)[0])
            paths.append(Path(tmp) / f"house_{n}.csv")
            convert_refit(day, folder / "labels.csv", n, paths[-1])
        jobs = [(setting, path) for setting in SETTINGS for path in paths]
        with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
            rows = pool.map(_house, jobs, chunksize=1)
    print(f"{'house':<10}" + "".join(f"{s + ': runs differing':>26}{'half hours':>12}" for s in SETTINGS))
    for stem in dict.fromkeys(r[1] for r in rows):
        cells = {r[0]: r for r in rows if r[1] == stem}
        print(f"{stem:<10}" + "".join(f"{cells[s][2]:>18} of {cells[s][3]:>4}{cells[s][4]:>6} of {cells[s][5]:>3}"
                                      for s in SETTINGS))
    figures = []
    for s in SETTINGS:
        mine = [r for r in rows if r[0] == s]
        figures += [f"{s}_runs_differing={sum(r[2] for r in mine)}", f"{s}_runs={sum(r[3] for r in mine)}",
                    f"{s}_half_hours_differing={sum(r[4] for r in mine)}", f"{s}_half_hours={sum(r[5] for r in mine)}"]
    print(" ".join(figures))


if __name__ == "__main__":
    main()
