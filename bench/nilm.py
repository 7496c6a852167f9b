"""Disaggregation across houses: `python -m bench.nilm`.

Train on some houses, test on houses the model never saw — REFIT (three splits of the 20
one-day houses) and REDD (leave-one-house-out over houses 1–3, whose channels match) — beside the
NILMTK baselines implemented here and run on the same splits: Mean (each appliance's
training mean, always) and combinatorial optimisation (each appliance's on/off levels,
learned by clustering, the combination closest to the mains at every sample). Exact FHMM
is left out: its joint state space over five multi-state appliances does not fit the
hub's memory budget. Prints the per-appliance table; the last line holds key=value figures.
"""

from __future__ import annotations

import atexit
import itertools
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.cluster.vq import kmeans2

from edge.nilm.appliances import NAMES, THRESHOLDS
from edge.nilm.convert import convert_redd, convert_refit
from edge.nilm.disaggregate import disaggregate
from edge.nilm.house_csv import House, read_house
from edge.nilm.model import learn
from tests.conftest import shared_data

REFIT_HOUSES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18, 19, 20, 21)
REFIT_SPLITS = ((2, 5, 9, 15, 20), (1, 3, 8, 13, 19), (4, 6, 10, 16, 21))


def mean_baseline(train: list[House]) -> callable:
    means = {n: float(np.mean(np.concatenate([h.appliances[n] for h in train if n in h.appliances])))
             for n in NAMES if any(n in h.appliances for h in train)}
    return lambda ts, mains: {n: np.full(len(mains), m) for n, m in means.items()}


def co_baseline(train: list[House], states: int = 2) -> callable:
    levels: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(0)
    for n in NAMES:
        values = [h.appliances[n] for h in train if n in h.appliances]
        if not values:
            continue
        x = np.concatenate(values)
        x = x[rng.choice(len(x), size=min(len(x), 20000), replace=False)]
        centroids, _ = kmeans2(x.reshape(-1, 1), states, seed=0, minit="++")
        levels[n] = np.sort(np.append(centroids.ravel(), 0.0))[: states + 1]
    names = list(levels)
    combos = np.array(list(itertools.product(*(levels[n] for n in names))))  # (k, appliances)
    totals = combos.sum(axis=1)

    def run(ts: np.ndarray, mains: np.ndarray) -> dict[str, np.ndarray]:
        base = np.percentile(mains, 5)
        target = np.clip(mains - base, 0, None)
        best = np.empty(len(mains), dtype=np.int64)
        for i in range(0, len(mains), 4096):
            chunk = target[i:i + 4096]
            best[i:i + 4096] = np.argmin(np.abs(chunk[:, None] - totals[None, :]), axis=1)
        return {n: combos[best, k] for k, n in enumerate(names)}
    return run


def ours(train: list[House]) -> callable:
    model = learn(train)
    return lambda ts, mains: disaggregate(ts, mains, model)


METHODS = {"ohmni": ours, "mean": mean_baseline, "co": co_baseline}


def evaluate(method: callable, test: list[House], acc: dict) -> None:
    for h in test:
        est = method(h.timestamp, h.mains)
        for n, truth in h.appliances.items():
            e = est.get(n, np.zeros(len(truth)))
            s = acc.setdefault(n, {"tp": 0, "fp": 0, "fn": 0, "ae": 0.0, "zero": 0.0, "n": 0, "on": 0})
            ot, oe = truth >= THRESHOLDS[n], e >= THRESHOLDS[n]
            s["tp"] += int(np.sum(ot & oe))
            s["fp"] += int(np.sum(~ot & oe))
            s["fn"] += int(np.sum(ot & ~oe))
            s["ae"] += float(np.sum(np.abs(e - truth)))
            s["zero"] += float(np.sum(truth))
            s["n"] += len(truth)
            s["on"] += int(np.sum(ot))


def table(dataset: str, results: dict[str, dict]) -> dict[str, float]:
    print(f"\n{dataset}: F1 (MAE W) per appliance, pooled over the test houses")
    header = "".join(f"{m:>18s}" for m in results)
    print(f"{'appliance':16s}{header}{'always-on F1':>16s}{'always-off MAE':>16s}")
    means = {}
    for n in NAMES:
        cells, floor = [], None
        for acc in results.values():
            s = acc.get(n)
            if not s or not s["n"]:
                cells.append(f"{'—':>18s}")
                continue
            d = 2 * s["tp"] + s["fp"] + s["fn"]
            f1 = 2 * s["tp"] / d if d else float("nan")
            cells.append(f"{f1:>10.3f} ({s['ae'] / s['n']:>5.1f})")
            floor = (2 * s["on"] / (s["on"] + s["n"]), s["zero"] / s["n"])
        if floor:
            print(f"{n:16s}" + "".join(cells) + f"{floor[0]:>16.3f}{floor[1]:>16.1f}")
    for m, acc in results.items():
        f1s = []
        for s in acc.values():
            d = 2 * s["tp"] + s["fp"] + s["fn"]
            if d:
                f1s.append(2 * s["tp"] / d)
        means[m] = float(np.mean(f1s)) if f1s else float("nan")
    print(f"{'mean F1':16s}" + "".join(f"{means[m]:>18.3f}" for m in results))
    return means


def main() -> None:
    data = shared_data() / "nilm"
    folder = Path(tempfile.mkdtemp(prefix="ohmni-bench-nilm-"))
    atexit.register(shutil.rmtree, folder, True)  # the working files go when the bench ends
    refit = {}
    for n in REFIT_HOUSES:
        path = folder / f"refit_{n}.csv"
        convert_refit(data / f"refit_1day_2015-01-08/house_{n}_day.csv", data / "refit_1day_2015-01-08/labels.csv",
                      n, path)
        refit[n] = read_house(path)
    results = {m: {} for m in METHODS}
    for test in REFIT_SPLITS:
        train = [refit[n] for n in REFIT_HOUSES if n not in test]
        for m, make in METHODS.items():
            evaluate(make(train), [refit[n] for n in test], results[m])
    refit_means = table("REFIT (3 splits, unseen houses)", results)
    redd = {}
    for n in (1, 2, 3):
        path = folder / f"redd_{n}.csv"
        convert_redd(data / f"redd_sgn_preprocessed/redd_sgn_house{n}.npz", path)
        redd[n] = read_house(path)
    results = {m: {} for m in METHODS}
    for test in (1, 2, 3):
        train = [redd[n] for n in redd if n != test]
        for m, make in METHODS.items():
            evaluate(make(train), [redd[test]], results[m])
    redd_means = table("REDD (leave one house out, houses 1-3)", results)
    day = refit[2]
    model_path = folder / "model.json"
    from edge.nilm.model import learn as learn_model
    from edge.nilm.model import save
    model = learn_model([refit[n] for n in REFIT_HOUSES if n != 2])
    save(model, model_path)
    ts = np.arange(86_400, dtype=np.float64) + day.timestamp[0]  # one day at 1 s
    mains = np.interp(ts, day.timestamp, day.mains)
    t0 = time.perf_counter()
    disaggregate(ts, mains, model)
    seconds = time.perf_counter() - t0
    print(f"\ncost: one day at 1 s (86,400 samples) in {seconds:.2f} s on one core; model {model_path.stat().st_size} "
          f"bytes (goal: < 2 s, < 1 MB)")
    print(f"mean_f1={refit_means['ohmni']:.3f} mean_f1_mean={refit_means['mean']:.3f} "
          f"mean_f1_co={refit_means['co']:.3f} redd_mean_f1={redd_means['ohmni']:.3f} "
          f"redd_mean_f1_mean={redd_means['mean']:.3f} "
          f"redd_mean_f1_co={redd_means['co']:.3f} day_1s_seconds={seconds:.2f} "
          f"model_bytes={model_path.stat().st_size}")


if __name__ == "__main__":
    main()
