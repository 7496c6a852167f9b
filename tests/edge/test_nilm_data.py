"""NILM data: converters on the real REFIT and REDD files, house CSV checks, scores against the shared scorer."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from edge.nilm.house_csv import HouseCsvError, read_house
from edge.nilm.metrics import score
from ohmni.cli import app

runner = CliRunner()


def test_refit_house_2_converts_with_its_five_appliances(data_dir, tmp_path):
    folder = data_dir / "nilm/refit_1day_2015-01-08"
    out = tmp_path / "refit2.csv"
    result = runner.invoke(app, ["nilm", "convert", "refit", str(folder / "house_2_day.csv"), "--labels",
                                 str(folder / "labels.csv"), "--house", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    house = read_house(out, need_truth=True)
    assert sorted(house.appliances) == ["dishwasher", "fridge", "kettle", "microwave", "washing_machine"]
    raw = np.loadtxt(folder / "house_2_day.csv", delimiter=",", skiprows=1, usecols=range(1, 12))
    first = raw[np.argmin(raw[:, 0])]
    assert house.timestamp[0] == first[0] and house.mains[0] == first[1]
    assert house.appliances["kettle"].max() > 2000  # a real kettle boils in a real day
    assert np.all(np.diff(house.timestamp) > 0) and 10_000 < len(house.timestamp) <= len(raw)


def test_redd_house_1_converts_with_chunk_gaps(data_dir, tmp_path):
    out = tmp_path / "redd1.csv"
    result = runner.invoke(app, ["nilm", "convert", "redd", str(data_dir / "nilm/redd_sgn_preprocessed/"
                                                                         "redd_sgn_house1.npz"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    house = read_house(out, need_truth=True)
    z = np.load(data_dir / "nilm/redd_sgn_preprocessed/redd_sgn_house1.npz")
    assert len(house.timestamp) == len(z["power"])
    steps = np.diff(house.timestamp)
    assert set(np.unique(steps)) <= {3.0, 3603.0}  # 3 s rows, an hour between chunks
    assert "fridge" in house.appliances and "dishwasher" in house.appliances


@pytest.mark.parametrize("body, message", [
    ("time,mains\n1,2\n", "no 'timestamp' column"),
    ("timestamp,mains\n1,abc\n", "line 2: 'mains' is 'abc'"),
    ("timestamp,mains\n1,5\n2,nan\n", "line 3: 'mains' is 'nan'"),
    ("timestamp,mains\n1,-5\n", "line 2: 'mains' is negative"),
    ("timestamp,mains\n5,1\n3,1\n", "line 3: timestamp 3 goes back in time"),
    ("timestamp,mains\n5,1\n5,1\n", "line 3: timestamp 5 repeats"),
    ("timestamp,mains,kettle\n1,5\n", "line 2: no value for 'kettle'"),
])
def test_malformed_house_csv_names_the_line(tmp_path, body, message):
    path = tmp_path / "house.csv"
    path.write_text(body)
    with pytest.raises(HouseCsvError, match=message):
        read_house(path)


def test_scores_agree_with_the_shared_scorer(data_dir, tmp_path):
    folder = data_dir / "nilm/refit_1day_2015-01-08"
    truth = tmp_path / "truth.csv"
    runner.invoke(app, ["nilm", "convert", "refit", str(folder / "house_2_day.csv"), "--labels",
                        str(folder / "labels.csv"), "--house", "2", "--out", str(truth)])
    house = read_house(truth, need_truth=True)
    rng = np.random.default_rng(1)
    estimates = {k: np.where(rng.random(len(v)) < 0.8, v, 0.0) for k, v in house.appliances.items()}
    est = tmp_path / "est.csv"
    with est.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", *estimates])
        for i, ts in enumerate(house.timestamp):
            w.writerow([int(ts), *(estimates[k][i] for k in estimates)])
    ours = {k: score(k, v, estimates[k]) for k, v in house.appliances.items()}
    shared = subprocess.run([sys.executable, str(data_dir.parent / "tools/nilm_score.py"), str(truth), str(est)],
                            capture_output=True, text=True, timeout=120)
    assert shared.returncode == 0, shared.stderr
    mean = np.mean([s.f1 for s in ours.values() if s.f1 is not None])
    assert f"mean_f1={mean:.3f}" in shared.stdout.splitlines()[-1]
    cli = runner.invoke(app, ["nilm", "score", str(truth), str(est)])
    assert cli.exit_code == 0 and f"mean_f1={mean:.3f}" in cli.stdout.strip().splitlines()[-1]
