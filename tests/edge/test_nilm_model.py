"""The disaggregator on real REFIT houses it never saw: train, disaggregate, evaluate, and live on the hub."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from edge.nilm.convert import convert_refit
from edge.nilm.disaggregate import disaggregate
from edge.nilm.house_csv import read_house
from edge.nilm.metrics import score
from edge.nilm.model import learn
from ohmni.cli import app

runner = CliRunner()
TRAIN, TEST = (1, 3, 4, 6, 8, 10, 13, 16, 19, 21), (2, 5, 9, 20)


@pytest.fixture(scope="module")
def refit(data_dir, tmp_path_factory):
    folder = data_dir / "nilm/refit_1day_2015-01-08"
    out = tmp_path_factory.mktemp("refit")
    paths = {}
    for n in (*TRAIN, *TEST):
        paths[n] = out / f"house_{n}.csv"
        convert_refit(folder / f"house_{n}_day.csv", folder / "labels.csv", n, paths[n])
    return paths


@pytest.fixture(scope="module")
def model(refit):
    return learn([read_house(refit[n]) for n in TRAIN], trees=30)


def test_appliances_are_found_in_unseen_houses(refit, model):
    """A small model (10 houses, 30 trees a booster) on four houses it never saw, scored pooled as the bench
    scores. The washing machine needs more houses than this to be found; `python -m bench.nilm` measures it."""
    assert all(model.signatures[name].runs > 0 for name in ("kettle", "fridge"))  # learned from data, not typed in
    assert set(model.appliances) == {"kettle", "microwave", "fridge", "washing_machine", "dishwasher"}
    pooled: dict[str, tuple[list, list]] = {}
    for n in TEST:
        house = read_house(refit[n], need_truth=True)
        est = disaggregate(house.timestamp, house.mains, model)
        assert all(len(e) == len(house.mains) for e in est.values())
        for name, truth in house.appliances.items():
            pooled.setdefault(name, ([], []))[0].append(truth)
            pooled[name][1].append(est[name])
    scores = {name: score(name, np.concatenate(t), np.concatenate(e)) for name, (t, e) in pooled.items()}
    for name in ("kettle", "microwave", "fridge", "dishwasher"):
        assert scores[name].f1 is not None and scores[name].f1 > scores[name].always_on_f1, scores[name]
    assert scores["kettle"].f1 > 0.5 and scores["fridge"].f1 > 0.65
    for name in ("kettle", "fridge", "dishwasher"):
        assert scores[name].mae_w < scores[name].always_off_mae_w, scores[name]


def test_train_disaggregate_evaluate_commands(refit, tmp_path):
    model = tmp_path / "model.json"
    trained = runner.invoke(app, ["nilm", "train", *(str(refit[n]) for n in TRAIN[:4]), "--out", str(model),
                                  "--trees", "5"])
    assert trained.exit_code == 0, trained.output
    assert model.stat().st_size < 1_000_000
    out = tmp_path / "est.csv"
    done = runner.invoke(app, ["nilm", "disaggregate", "--model", str(model), str(refit[2]), "--out", str(out)])
    assert done.exit_code == 0, done.output
    with out.open() as f:
        rows = list(csv.DictReader(f))
    house = read_house(refit[2])
    assert len(rows) == len(house.timestamp) and [int(r["timestamp"]) for r in rows[:3]] == list(
        house.timestamp[:3].astype(int))
    assert set(rows[0]) == {"timestamp", "kettle", "microwave", "fridge", "washing_machine", "dishwasher"}
    evaluated = runner.invoke(app, ["nilm", "evaluate", "--model", str(model), str(refit[2]), str(refit[9])])
    assert evaluated.exit_code == 0, evaluated.output
    assert "kettle" in evaluated.stdout and evaluated.stdout.strip().splitlines()[-1].startswith("mean_f1=")
    assert np.isfinite(float(evaluated.stdout.strip().splitlines()[-1].split()[0].split("=")[1]))


def test_a_missing_model_is_a_clear_error(refit, tmp_path):
    result = runner.invoke(app, ["nilm", "disaggregate", "--model", str(tmp_path / "none.json"), str(refit[2]),
                                 "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "cannot read the model" in result.output


def test_the_live_path_gives_the_batch_path_runs_and_half_hours(refit):
    from edge.nilm.live import LiveDisaggregator, half_hour_energy, runs_from
    from edge.nilm.model import pretrained

    model = pretrained()  # the model the hub ships with
    house = read_house(refit[9])
    ts = house.timestamp
    estimates = disaggregate(ts, house.mains, model)
    live = LiveDisaggregator(model)  # the hub's own window: eight hours, settled two hours inside both ends
    runs, half_hours = [], []
    for t, watts in zip(ts, house.mains, strict=True):
        runs += live.feed(t, watts)
        half_hours += live.take_half_hours()
    runs += live.flush()
    half_hours += live.take_half_hours()
    assert len(runs) == len({(r.appliance, r.start) for r in runs})  # each run once
    assert len(live._ts) <= live._ts.maxlen  # bounded
    # every run of the batch path that lasts at most four hours (the live window less both margins): the same
    # and that ended before the day did
    reach = {(r.appliance, r.start, round(r.energy_wh, 3)) for r in runs_from(ts, estimates)
             if r.end - r.start <= live.window_s - 2 * live.margin_s and r.end <= ts[-1]}
    assert reach == {(r.appliance, r.start, round(r.energy_wh, 3)) for r in runs}
    assert any(r.appliance == "kettle" for r in runs) and any(r.appliance == "fridge" for r in runs)
    # and the energy of each settled half hour, appliance by appliance
    batch = half_hour_energy(ts, estimates)
    assert len(half_hours) == len({(h.appliance, h.start) for h in half_hours}) > 5 * 30
    for h in half_hours:
        assert h.start % 1800 == 0 and h.energy_wh == pytest.approx(batch[(h.appliance, h.start)], abs=0.01)
    fridge = sum(h.energy_wh for h in half_hours if h.appliance == "fridge")
    assert fridge > 0


def test_numpy_filters_match_scipy_without_its_memory_cost():
    from scipy.ndimage import median_filter, minimum_filter1d

    from edge.nilm.events import median3, running_min

    x = np.random.default_rng(0).random(3000) * 100
    assert np.allclose(median3(x), median_filter(x, 3, mode="nearest"))
    for width in (1, 2, 3, 10, 11, 400):
        assert np.allclose(running_min(x, width), minimum_filter1d(x, width, mode="nearest")), width
