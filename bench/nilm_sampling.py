"""How the meter's sampling interval moves the disaggregator's figures: `python -m bench.nilm_sampling`.

The models learn from REFIT (a reading every 6-8 s) and the hub reads a P1 port (1 s on DSMR 5, 10 s on DSMR 4), but
a user may hand `ohmni nilm` a logger's file at 30 s or a minute. A model learned as `bench.nilm` learns its first REFIT
split (15 houses) scores the 5 houses it never saw: their rows as recorded (the baseline, same run), held at 1 s (the
hub's meter; the model must read it as it reads 7 s) and thinned to every k-th row, as a meter that reports less often
gives (an instant's power, not a mean): per interval, each appliance's F1 and MAE pooled over the houses, scored on the
rows read. Prints the table; the last line holds key=value figures. The commands warn above
``edge.nilm.house_csv.SPARSE_S`` (docs/nilm.md, "Data decisions").
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from bench import nilm_data
from bench.nilm import REFIT_SPLITS, refit_houses
from edge.nilm.disaggregate import disaggregate
from edge.nilm.house_csv import House
from edge.nilm.metrics import Tally
from edge.nilm.model import learn


def every(house: House, k: int) -> House:
    return house.subset(np.arange(len(house.timestamp)) % k == 0)


#: How each row of the table reads the houses: held at 1 s (a DSMR 5 meter, what the hub reads: each second the last
#: REFIT reading before it), as REFIT has them (the baseline), held at 10 s (DSMR 4), and every k-th row: about 14,
#: 21, 35 and 70 s.
READS: dict[str, Callable[[House], House]] = {"held at 1 s": lambda h: h.held_at(1.0), "as recorded": lambda h: h,
                                              "held at 10 s": lambda h: h.held_at(10.0),  # a DSMR 4 meter
                                              **{f"every {k}th": partial(every, k=k) for k in (2, 3, 5, 10)}}


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="ohmni-bench-sampling-"))
    try:
        houses = refit_houses(nilm_data() / "refit_1day_2015-01-08", folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    test = REFIT_SPLITS[0]
    print(f"learning on the {len(houses) - len(test)} REFIT houses other than {test}", flush=True)
    model = learn([h for k, h in houses.items() if k not in test], progress=lambda msg: print(f"  {msg}", flush=True))
    names = list(model.appliances)
    print(f"REFIT houses {', '.join(map(str, test))}, unseen: F1 (MAE W) per appliance at each interval between "
          "readings (the median), pooled over the houses")
    print(f"{'read':>14s}{'interval':>10s}" + "".join(f"{n:>20s}" for n in names) + f"{'mean F1':>10s}")
    figures: dict[str, tuple[float, float]] = {}
    for label, read in READS.items():
        tallies = {n: Tally(n) for n in names}
        steps = []
        for h in (read(houses[k]) for k in test):
            steps.append(np.diff(h.timestamp))
            est = disaggregate(h.timestamp, h.mains, model)
            for name, truth in h.appliances.items():
                tallies[name].add(truth, est.get(name, np.zeros(len(truth))))
        step = float(np.median(np.concatenate(steps)))
        scores = {n: t.score() for n, t in tallies.items()}
        mean_f1 = float(np.mean([s.f1 or 0.0 for s in scores.values()]))
        print(f"{label:>14s}{step:>9.0f}s" + "".join(f"{s.f1 or 0.0:>12.3f} ({s.mae_w:>5.1f})" for s in scores.values())
              + f"{mean_f1:>10.3f}", flush=True)
        figures[label] = (step, mean_f1)
    base = figures["as recorded"][1]
    print(" ".join(f"mean_f1_{step:.0f}s={f1:.3f} ratio_{step:.0f}s={f1 / base:.2f}" for step, f1 in figures.values()))

if __name__ == "__main__":
    main()
