"""Disaggregation across houses: `python -m bench.nilm`.

Train on some houses, test on houses the model never saw — REFIT (three splits of the 20
one-day houses) and REDD (leave-one-house-out over houses 1–3, whose channels match) — beside the
NILMTK baselines implemented here and run on the same splits: Mean (each appliance's
training mean, always), combinatorial optimisation (each appliance's on/off levels, learned
by clustering, the combination closest to the mains at every sample) and exact FHMM (the
appliances' HMMs multiplied into one chain of 3^5 states, decoded by Viterbi: it fits).
Splits run in parallel, one per core. Prints the per-appliance table with the trivial floors
("always on" F1, "always off" MAE); the last line holds key=value figures.
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from scipy.cluster.vq import kmeans2

from bench import nilm_data
from edge.nilm.adapt import adapt
from edge.nilm.appliances import NAMES, THRESHOLDS
from edge.nilm.convert import convert_redd, convert_refit
from edge.nilm.disaggregate import disaggregate, disaggregate_with_confidence
from edge.nilm.features import cells_of
from edge.nilm.house_csv import House, read_house
from edge.nilm.live import stretches
from edge.nilm.metrics import Tally
from edge.nilm.model import Model, learn

REFIT_HOUSES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18, 19, 20, 21)
REFIT_SPLITS = ((2, 5, 9, 15, 20), (1, 3, 8, 13, 19), (4, 6, 10, 16, 21))


def refit_houses(data: Path, folder: Path) -> dict[int, House]:
    """The 20 REFIT one-day houses in ``data``, converted into house CSVs in ``folder`` (``refit_N.csv``) and read."""
    houses: dict[int, House] = {}
    for n in REFIT_HOUSES:
        path = folder / f"refit_{n}.csv"
        convert_refit(data / f"house_{n}_day.csv", data / "labels.csv", n, path)
        houses[n] = read_house(path)
    return houses


Estimates = dict[str, np.ndarray]
#: A method disaggregates (timestamps, mains): its watts per appliance, or those and their confidence (ours).
Method = Callable[[np.ndarray, np.ndarray], Estimates | tuple[Estimates, Estimates]]


def mean_baseline(train: list[House]) -> Method:
    means = {n: float(np.mean(np.concatenate([h.appliances[n] for h in train if n in h.appliances])))
             for n in NAMES if any(n in h.appliances for h in train)}
    return lambda ts, mains: {n: np.full(len(mains), m) for n, m in means.items()}


def co_baseline(train: list[House], states: int = 2) -> Method:
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


FHMM_STEP_S = 60  # NILMTK runs its FHMM on one-minute means; so does this one


def fhmm_baseline(train: list[House], states: int = 2) -> Method:
    """Exact factorial HMM as NILMTK builds it: each appliance an HMM over its clustered power levels (off and
    ``states`` on levels) with transitions counted in training, the joint chain their product (3^5 = 243 states:
    it fits), Gaussian emissions whose means and variances add, decoded exactly by Viterbi on one-minute means."""
    rng = np.random.default_rng(0)
    names, levels, var, trans, start = [], [], [], [], []
    for n in NAMES:
        if not any(n in h.appliances for h in train):
            continue
        x = np.concatenate([_minutes(h.timestamp, h.appliances[n])[1] for h in train if n in h.appliances])
        pick = x[rng.choice(len(x), size=min(len(x), 20000), replace=False)]
        centroids, _ = kmeans2(pick.reshape(-1, 1), states, seed=0, minit="++")
        mu = np.sort(np.append(centroids.ravel(), 0.0))
        label = np.argmin(np.abs(x[:, None] - mu[None, :]), axis=1)
        counts = np.ones((len(mu), len(mu)))  # one pseudo-count each: no transition is impossible
        np.add.at(counts, (label[:-1], label[1:]), 1)
        names.append(n)
        levels.append(mu)
        var.append(np.array([np.var(x[label == k]) if np.any(label == k) else 1.0 for k in range(len(mu))]) + 25.0)
        trans.append(np.log(counts / counts.sum(axis=1, keepdims=True)))
        start.append(np.log(np.bincount(label, minlength=len(mu)) + 1.0) - np.log(len(label) + len(mu)))
    grids = np.array(list(itertools.product(*(range(len(m)) for m in levels))))  # (joint states, appliances)
    mean = sum(levels[k][grids[:, k]] for k in range(len(names)))
    variance = sum(var[k][grids[:, k]] for k in range(len(names)))
    log_t = sum(trans[k][grids[:, k][:, None], grids[:, k][None, :]] for k in range(len(names)))
    log_start = sum(start[k][grids[:, k]] for k in range(len(names)))

    def run(ts: np.ndarray, mains: np.ndarray) -> dict[str, np.ndarray]:
        minute, y = _minutes(ts, mains)
        y = np.clip(y - np.percentile(y, 5), 0, None)  # the always-on rest is not among the appliances
        emit = -0.5 * ((y[:, None] - mean[None, :]) ** 2 / variance[None, :] + np.log(variance)[None, :])
        score = log_start + emit[0]
        back = np.empty((len(y), len(mean)), dtype=np.int16)
        for t in range(1, len(y)):
            step = score[:, None] + log_t
            back[t] = np.argmax(step, axis=0)
            score = step[back[t], np.arange(len(mean))] + emit[t]
        path = np.empty(len(y), dtype=np.int64)
        path[-1] = int(np.argmax(score))
        for t in range(len(y) - 1, 0, -1):
            path[t - 1] = back[t, path[t]]
        return {n: levels[k][grids[path, k]][minute] for k, n in enumerate(names)}
    return run


def _minutes(ts: np.ndarray, power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(minute of each sample, mean power of each minute from the first to the last; empty minutes repeat)."""
    m = (ts // FHMM_STEP_S).astype(np.int64)
    return m - m[0], cells_of(m - m[0], power)


class Ours:
    """Ohmni's model learned on the training houses; the own-home measure adapts its ``model``."""

    def __init__(self, train: list[House]) -> None:
        self.model = learn(train, progress=lambda msg: print(f"  {msg}", flush=True))

    def __call__(self, ts: np.ndarray, mains: np.ndarray) -> tuple[Estimates, Estimates]:
        return disaggregate_with_confidence(ts, mains, self.model)


def own_home_parts(dataset: str, house: House) -> tuple[list[House], list[House]]:
    """(what the hub learns from, what it is scored on) of one unseen house. REFIT's single day: its quarters,
    00-06 and 12-18 h to learn, 06-12 and 18-24 h to score (so both hold daytime). REDD's days: the first half
    of its rows to learn, the second to score."""
    if dataset == "redd":
        half = len(house.timestamp) // 2
        first = np.arange(len(house.timestamp)) < half
        return [house.subset(first)], [house.subset(~first)]
    hour = (house.timestamp - house.timestamp[0]) // 3600
    quarter = [house.subset((hour >= a) & (hour < a + 6)) for a in (0, 6, 12, 18)]
    return [quarter[0], quarter[2]], [quarter[1], quarter[3]]


def own_home(model: Model, dataset: str, test: list[House], before: dict, after: dict) -> None:
    """How the model does on a home before and after it adapts to the home's own plugs (``adapt``)."""
    for house in test:
        learn_from, scored = own_home_parts(dataset, house)
        mine = adapt(model, learn_from)
        evaluate(partial(disaggregate, model=model), scored, before)
        evaluate(partial(disaggregate, model=mine), scored, after)


METHODS: dict[str, Callable[[list[House]], Method]] = {"ohmni": Ours, "mean": mean_baseline, "co": co_baseline,
                                                       "fhmm": fhmm_baseline}


@dataclass
class Pooled:
    """One appliance's scores pooled over test houses (``metrics.Tally``, as the commands pool them) and, for a
    method that gives each sample's confidence, its runs' confidence against the share of each run that was right
    (Brier), beside a constant 0.6's."""

    tally: Tally
    runs: int = 0
    brier: float = 0.0
    brier_06: float = 0.0

    def __add__(self, other: Pooled) -> Pooled:
        return Pooled(self.tally + other.tally, self.runs + other.runs, self.brier + other.brier,
                      self.brier_06 + other.brier_06)


def evaluate(method: Method, test: list[House], acc: dict[str, Pooled]) -> None:
    """Pool each appliance's scores over the test houses into ``acc``."""
    for h in test:
        est = method(h.timestamp, h.mains)
        est, sure = est if isinstance(est, tuple) else (est, {})
        for n, truth in h.appliances.items():
            e = est.get(n, np.zeros(len(truth)))
            s = acc.setdefault(n, Pooled(Tally(n)))
            s.tally.add(truth, e, sure.get(n))
            if n in sure:  # each run's confidence against the share of it that was right, and a constant 0.6's
                on_truth = truth >= THRESHOLDS[n]
                for a, b in stretches(e >= THRESHOLDS[n]):
                    right = float(np.mean(on_truth[a:b]))
                    s.runs += 1
                    s.brier += (float(np.mean(sure[n][a:b])) - right) ** 2
                    s.brier_06 += (0.6 - right) ** 2


def _f1(s: Pooled) -> float:
    f1 = s.tally.score().f1
    return float("nan") if f1 is None else f1


def table(dataset: str, results: dict[str, dict], goals: bool = True) -> dict[str, float]:
    """Print F1 (MAE) per appliance and method beside the trivial floors, then (``goals``) how the first method
    stands against the goals: F1 above "always on", MAE below "always off", margin over the best baseline."""
    print(f"\n{dataset}: F1 (MAE W) per appliance, pooled over the test houses")
    header = "".join(f"{m:>18s}" for m in results)
    print(f"{'appliance':16s}{header}{'always-on F1':>16s}{'always-off MAE':>16s}")
    ours, *baselines = results
    checks = []
    for n in NAMES:
        cells, floor = [], None
        for acc in results.values():
            s = acc.get(n)
            if not s or not s.tally.samples:
                cells.append(f"{'—':>18s}")
                continue
            got = s.tally.score()
            cells.append(f"{_f1(s):>10.3f} ({got.mae_w:>5.1f})")
            floor = (got.always_on_f1, got.always_off_mae_w)
        if floor:
            print(f"{n:16s}" + "".join(cells) + f"{floor[0]:>16.3f}{floor[1]:>16.1f}")
            s = results[ours][n]
            best = max(_f1(results[b][n]) for b in baselines if n in results[b])
            checks.append(f"{n}: F1 {'>' if _f1(s) > floor[0] else '<='} always-on, MAE "
                          f"{'<' if s.tally.score().mae_w < floor[1] else '>='} always-off, F1 {_f1(s) - best:+.3f} "
                          f"over the best baseline")
    means = {m: float(np.nanmean([_f1(s) for s in acc.values()])) for m, acc in results.items()}
    print(f"{'mean F1':16s}" + "".join(f"{means[m]:>18.3f}" for m in results))
    if goals:
        print(f"{ours} against the goals:\n  " + "\n  ".join(checks))
    return means


def confidence_table(dataset: str, acc: dict) -> tuple[float, float]:
    """Per appliance, how often its calls were right on the unseen houses beside the confidence it gave them, and
    how well its runs' confidence (their calls' mean) foretold the share of each run that was right, beside a
    constant 0.6 (what runs said before); returns both Brier scores, averaged over the appliances."""
    print(f"\n{dataset}, ohmni's calls: right (the confidence it gave them), pooled over the test houses; its runs'"
          f" confidence against the share of each run that was right (Brier score, lower is better) beside a "
          f"constant 0.6's")
    briers = []
    for n, s in acc.items():
        right, said = s.tally.calls_right()
        if right is not None and said is not None and s.runs:
            briers.append((s.brier / s.runs, s.brier_06 / s.runs))
            print(f"{n:16s}{right:>10.2f} ({said:.2f}) over {s.tally.tp + s.tally.fp} samples called on; "
                  f"{s.runs} runs, Brier {briers[-1][0]:.3f} (0.6: {briers[-1][1]:.3f})")
    if not briers:
        return float("nan"), float("nan")
    ours, constant = np.mean(briers, axis=0)
    return float(ours), float(constant)


def _split(job: tuple[str, tuple[int, ...]]) -> dict[str, dict]:
    """One split, every method on it: run in a worker process, so splits share the machine's cores."""
    dataset, test = job
    houses = HOUSES[dataset]
    train = [houses[n] for n in houses if n not in test]
    results: dict[str, dict] = {}
    for m, make in METHODS.items():
        method = make(train)
        evaluate(method, [houses[n] for n in test], results.setdefault(m, {}))
        if isinstance(method, Ours):
            own_home(method.model, dataset, [houses[n] for n in test], results.setdefault("before", {}),
                     results.setdefault("adapted", {}))
    print(f"{dataset}: split {test} done", flush=True)
    return results


def _merge(parts: list[dict[str, dict]]) -> dict[str, dict]:
    merged: dict[str, dict] = {}
    for part in parts:
        for m, acc in part.items():
            for n, s in acc.items():
                into = merged.setdefault(m, {})
                into[n] = into[n] + s if n in into else s
    return merged


HOUSES: dict[str, dict[int, House]] = {}


def main() -> None:
    data = nilm_data()
    folder = Path(tempfile.mkdtemp(prefix="ohmni-bench-nilm-"))
    atexit.register(shutil.rmtree, folder, True)  # the working files go when the bench ends
    HOUSES["refit"] = refit_houses(data / "refit_1day_2015-01-08", folder)
    redd = HOUSES.setdefault("redd", {})
    for n in (1, 2, 3):
        path = folder / f"redd_{n}.csv"
        convert_redd(data / f"redd_sgn_preprocessed/redd_sgn_house{n}.npz", path)
        redd[n] = read_house(path)
    jobs = [("refit", test) for test in REFIT_SPLITS] + [("redd", (n,)) for n in redd]
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        parts = pool.map(_split, jobs, chunksize=1)
    refit_results, redd_results = _merge(parts[:len(REFIT_SPLITS)]), _merge(parts[len(REFIT_SPLITS):])
    own = {name: {m: results.pop(m) for m in ("adapted", "before")} for name, results in
           (("refit", refit_results), ("redd", redd_results))}
    refit_means = table("REFIT (3 splits, unseen houses)", refit_results)
    redd_means = table("REDD (leave one house out, houses 1-3)", redd_results)
    refit_said = confidence_table("REFIT", refit_results["ohmni"])
    redd_said = confidence_table("REDD", redd_results["ohmni"])
    own_refit = table("REFIT, own home: the model above before and after adapting to each unseen house's plugs "
                      "(learns 00-06 and 12-18 h, scored 06-12 and 18-24 h)", own["refit"], goals=False)
    own_redd = table("REDD, own home: before and after adapting (learns the first half of each house's rows, "
                     "scored on the second)", own["redd"], goals=False)
    from importlib import resources

    shipped = Path(str(resources.files("edge.nilm").joinpath("pretrained.json")))
    cost = subprocess.run([sys.executable, "-m", "bench.nilm_cost", str(folder / "refit_2.csv"), str(shipped)],
                          check=True, capture_output=True, text=True).stdout.strip()
    adapt_cost = subprocess.run([sys.executable, "-m", "bench.nilm_adapt_cost", str(folder / "refit_2.csv"),
                                 str(shipped)], check=True, capture_output=True, text=True).stdout.strip()
    figures = dict(kv.split("=") for kv in f"{cost} {adapt_cost}".split())
    print(f"\ncost (the shipped model, in a process of its own): one day at 1 s (86,400 samples) in "
          f"{figures['day_1s_seconds']} s on one core (resampling it: {figures['interp_seconds']} s), peak resident "
          f"{figures['peak_rss_mb']} MB; model {shipped.stat().st_size} bytes (goals: < 2 s, < 100 MB, < 1 MB)")
    print(f"adapting to a home (a week of its history on the 6 s grid, every appliance a plug): "
          f"{figures['adapt_week_seconds']} s (disaggregating that week: {figures['disaggregate_week_seconds']} s), "
          f"peak resident {figures['adapt_peak_rss_mb']} MB")
    print(f"mean_f1={refit_means['ohmni']:.3f} mean_f1_mean={refit_means['mean']:.3f} "
          f"mean_f1_co={refit_means['co']:.3f} mean_f1_fhmm={refit_means['fhmm']:.3f} "
          f"redd_mean_f1={redd_means['ohmni']:.3f} redd_mean_f1_mean={redd_means['mean']:.3f} "
          f"redd_mean_f1_co={redd_means['co']:.3f} redd_mean_f1_fhmm={redd_means['fhmm']:.3f} "
          f"own_home_mean_f1_before={own_refit['before']:.3f} own_home_mean_f1_adapted={own_refit['adapted']:.3f} "
          f"redd_own_home_mean_f1_before={own_redd['before']:.3f} "
          f"redd_own_home_mean_f1_adapted={own_redd['adapted']:.3f} run_confidence_brier={refit_said[0]:.3f} "
          f"run_confidence_brier_06={refit_said[1]:.3f} redd_run_confidence_brier={redd_said[0]:.3f} "
          f"redd_run_confidence_brier_06={redd_said[1]:.3f} {cost} {adapt_cost} "
          f"model_bytes={shipped.stat().st_size}")


if __name__ == "__main__":
    main()
