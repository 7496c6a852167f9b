"""NILM data: converters on the real REFIT and REDD files, house CSV checks, scores against the shared scorer."""

from __future__ import annotations

import csv
import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import edge.nilm
from edge.nilm.house_csv import HouseCsvError, interval_note, read_house, write_house
from ohmni.cli import app

runner = CliRunner()
SHIPPED = Path(edge.nilm.__file__).parent / "pretrained.json"


def test_refit_house_2_converts_with_its_five_appliances(data_dir, tmp_path):
    """As the data are laid out, the labels beside the day file and the house number in its name will do."""
    folder = data_dir / "nilm/refit_1day_2015-01-08"
    out = tmp_path / "refit2.csv"
    result = runner.invoke(app, ["nilm", "convert", "refit", str(folder / "house_2_day.csv"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "house 2," in result.output
    named = tmp_path / "named.csv"
    result = runner.invoke(app, ["nilm", "convert", "refit", str(folder / "house_2_day.csv"), "--labels",
                                 str(folder / "labels.csv"), "--house", "2", "--out", str(named)])
    assert result.exit_code == 0 and named.read_bytes() == out.read_bytes(), result.output
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


def test_converters_refuse_what_they_cannot_read(data_dir, tmp_path):
    """The wrong file, a house the labels do not list, a corrupt value: exit 2 and what was expected, no file."""
    folder = data_dir / "nilm/refit_1day_2015-01-08"
    day, labels = folder / "house_2_day.csv", folder / "labels.csv"
    lines = day.read_text().splitlines(keepends=True)[:6]
    corrupt = tmp_path / "corrupt.csv"
    assert ",457," in lines[2]  # the mains of its second row
    corrupt.write_text("".join(lines[:2]) + lines[2].replace(",457,", ",4x7,") + "".join(lines[3:]))
    house_csv = tmp_path / "house.csv"
    house_csv.write_text("timestamp,mains\n1,2\n")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, power=np.array([{"a": 1}], dtype=object), columns=np.array(["main"]), chunk=np.zeros(1))
    cases = [
        (["refit", str(house_csv), "--labels", str(labels), "--house", "2"], "line 1: not a REFIT house file"),
        (["refit", str(day), "--labels", str(labels), "--house", "14"], r"no house 14 \(it labels houses 1, 2"),
        (["refit", str(day), "--labels", str(house_csv), "--house", "2"], "not REFIT's labels.csv"),
        (["refit", str(corrupt), "--labels", str(labels), "--house", "2"], "'4x7' to float64 on line 3, column 3"),
        (["refit", str(corrupt), "--labels", str(labels)], "corrupt.csv: no house number in its name.*give --house"),
        (["refit", str(corrupt), "--house", "2"], "labels.csv: cannot read REFIT's labels.*give --labels"),
        (["redd", str(house_csv)], "not a .npz archive"),
        (["redd", str(pickled)], "not a REDD .* with the arrays power, columns, chunk"),
    ]
    for args, message in cases:
        out = tmp_path / "out.csv"
        result = runner.invoke(app, ["nilm", "convert", *args, "--out", str(out)])
        assert result.exit_code == 2 and re.search(message, result.output), (args, result.output)
        assert not out.exists()


@pytest.mark.parametrize("body, message", [
    ("time,mains\n1,2\n", "no 'timestamp' column \\(found time, mains\\)$"),
    # a European spreadsheet's export, and a column named in capitals: the slip is named
    ("timestamp;mains\n1;2,5\n", "no 'timestamp' column .*separated by semicolons: a house CSV's are commas"),
    ("timestamp\tmains\n1\t2\n", "separated by tabs"),
    ("Timestamp,Mains\n1,2\n", "rename 'Timestamp' to 'timestamp'"),
    ("timestamp,Mains\n1,2\n", "no 'mains' column .*rename 'Mains' to 'mains'"),
    ("timestamp,mains\n1,abc\n", "line 2: 'mains' is 'abc'"),
    ("timestamp,mains\n1,5\n2,nan\n", "line 3: 'mains' is 'nan'"),
    ("timestamp,mains\n1,-5\n", "line 2: 'mains' is negative"),
    ("timestamp,mains\n5,1\n3,1\n", "line 3: timestamp 3 goes back in time"),
    ("timestamp,mains\n5,1\n5,1\n", "line 3: timestamp 5 repeats"),
    ("timestamp,mains,kettle\n1,5\n", "line 2: no value for 'kettle'"),
    # a thousands separator: read as it stands, 1,234 W was 1 W and the kettle's column took 234
    ("timestamp,mains,kettle\n1,5,0\n2,1,234,0\n", "line 3: 4 values, but the header names 3 columns.*'1,234'"),
    # a column in mW, or a corrupt value: no home draws a gigawatt
    ("timestamp,mains\n1,5\n2,1e9\n", "line 3: 'mains' is 1e\\+09 W, more than any home draws"),
    ("timestamp,mains,fridge\n1,5,250000\n", "line 2: 'fridge' is 250000 W"),
    # the usual slip: a logger's milliseconds
    ("timestamp,mains\n1420675200000,5\n", "line 2: 'timestamp' is 1420675200000, not in Unix seconds.*milliseconds"),
    ("timestamp,mains\n-7,5\n", "line 2: 'timestamp' is -7, not in Unix seconds"),
])
def test_malformed_house_csv_names_the_line(tmp_path, body, message):
    path = tmp_path / "house.csv"
    path.write_text(body)
    with pytest.raises(HouseCsvError, match=message):
        read_house(path)


def test_bytes_that_are_not_utf8_name_their_own_line(tmp_path):
    """A Latin-1 byte deep in a file is named on its line (a strict decoder fails a whole 8 KB chunk early),
    and the command says so without a traceback."""
    lines = ["timestamp,mains"] + [f"{1420675200 + 7 * i},{400 + i % 50}" for i in range(3000)]
    lines[2500] += "\xb0"  # a degree sign from a Windows spreadsheet
    path = tmp_path / "latin1.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    with pytest.raises(HouseCsvError, match="line 2501: 'mains' is .*bytes that are not UTF-8"):
        read_house(path)
    header = tmp_path / "header.csv"
    header.write_bytes("timestamp,mains \xb0\n1,5\n".encode("latin-1"))
    with pytest.raises(HouseCsvError, match="line 1: bytes that are not UTF-8"):
        read_house(header)
    result = runner.invoke(app, ["nilm", "disaggregate", "--model", str(SHIPPED), str(path), "--out",
                                 str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "line 2501" in result.output, result.output
    assert not (tmp_path / "x.csv").exists()


def test_a_byte_order_mark_and_gzip_are_read_as_the_csv_they_hold(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte-order mark, and day files travel gzipped: both read as plain CSV,
    the same rows; a gzip file cut short or corrupt is refused with its line."""
    body = "timestamp,mains,kettle\n" + "".join(f"{1420675200 + 7 * i},{300 + i},{0}\n" for i in range(2000))
    plain, bom, packed = tmp_path / "plain.csv", tmp_path / "bom.csv", tmp_path / "day.csv.gz"
    plain.write_text(body)
    bom.write_bytes(b"\xef\xbb\xbf" + body.encode())
    packed.write_bytes(gzip.compress(body.encode()))
    want = read_house(plain, need_truth=True)
    for path in (bom, packed):
        got = read_house(path, need_truth=True)
        assert np.array_equal(got.timestamp, want.timestamp) and np.array_equal(got.mains, want.mains)
        assert np.array_equal(got.appliances["kettle"], want.appliances["kettle"])
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gzip.compress(body.encode(), compresslevel=0)[:20_000])
    with pytest.raises(HouseCsvError, match=r"cut.csv.gz: line \d+: Compressed file ended"):
        read_house(cut)
    # bytes flipped inside the packed stream (a bad disk, a bad copy): zlib's own words, on the line it reached
    packed_bytes = bytearray(gzip.compress(body.encode()))
    packed_bytes[200:260] = bytes(b ^ 0xFF for b in packed_bytes[200:260])
    corrupt = tmp_path / "corrupt.csv.gz"
    corrupt.write_bytes(bytes(packed_bytes))
    with pytest.raises(HouseCsvError, match=r"corrupt.csv.gz: line \d+: Error -3 while decompressing"):
        read_house(corrupt)


def test_estimates_keep_the_input_timestamps_to_the_fraction(tmp_path):
    """``disaggregate`` writes one row per input row with the input's own timestamp, fractions of a second kept,
    so its rows join back to the user's file."""
    ts = 1420675200 + np.cumsum(np.r_[0, np.full(299, 1.25)])  # a meter every 1.25 s
    path = tmp_path / "frac.csv"
    path.write_text("timestamp,mains\n" + "".join(f"{float(t)!r},250.0\n" for t in ts))
    out = tmp_path / "est.csv"
    result = runner.invoke(app, ["nilm", "disaggregate", "--model", str(SHIPPED), str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with out.open() as f:
        written = [float(r["timestamp"]) for r in csv.DictReader(f)]
    assert written == list(ts)


def _noisy_estimates(truth: Path, out: Path, seed: int) -> None:
    """Estimates of ``truth``'s appliances: the truth, zeroed at random one time in five; timestamps in whole
    seconds, as a user's tool might write them."""
    house = read_house(truth, need_truth=True)
    rng = np.random.default_rng(seed)
    estimates = {k: np.where(rng.random(len(v)) < 0.8, v, 0.0) for k, v in house.appliances.items()}
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", *estimates])
        for i, ts in enumerate(house.timestamp):
            w.writerow([int(ts), *(estimates[k][i] for k in estimates)])


def test_scores_agree_with_the_shared_scorer(data_dir, tmp_path):
    """Two houses' estimates scored pooled, by `ohmni nilm score` and by the shared scorer: every appliance's F1
    and the mean agree."""
    folder = data_dir / "nilm/refit_1day_2015-01-08"
    pairs = []
    for n in (2, 9):
        truth, est = tmp_path / f"truth_{n}.csv", tmp_path / f"est_{n}.csv"
        runner.invoke(app, ["nilm", "convert", "refit", str(folder / f"house_{n}_day.csv"), "--labels",
                            str(folder / "labels.csv"), "--house", str(n), "--out", str(truth)])
        _noisy_estimates(truth, est, seed=n)
        pairs += [str(truth), str(est)]
    shared = subprocess.run([sys.executable, str(data_dir.parent / "tools/nilm_score.py"), *pairs],
                            capture_output=True, text=True, timeout=120)
    assert shared.returncode == 0, shared.stderr
    cli = runner.invoke(app, ["nilm", "score", *pairs])
    assert cli.exit_code == 0, cli.output
    assert cli.stdout.strip().splitlines()[-1].split()[0] == shared.stdout.splitlines()[-1].split()[0]  # mean_f1=
    theirs = dict(re.findall(r"^(\w+)\s+F1 ([\d.]+)", shared.stdout, re.M))
    assert len(theirs) == 5, shared.stdout
    for name, f1 in theirs.items():
        row = next(line for line in cli.stdout.splitlines() if line.strip("│ ").startswith(name))
        assert f"│ {f1} " in row, (name, f1, row)
    one = runner.invoke(app, ["nilm", "score", *pairs[:2]])  # one pair is not the two pooled
    assert one.exit_code == 0 and one.stdout.strip().splitlines()[-1] != cli.stdout.strip().splitlines()[-1]


def _truth_and_estimates(tmp_path: Path, est_lines: list[str]) -> tuple[Path, Path]:
    truth, est = tmp_path / "truth.csv", tmp_path / "est.csv"
    truth.write_text("timestamp,mains,kettle\n1420675200,456,0\n1420675207,2960,2500\n1420675214,460,0\n")
    est.write_text("".join(line + "\n" for line in est_lines))
    return truth, est


@pytest.mark.parametrize(("est_lines", "said"), [
    (["timestamp,kettle", "1420675200,0", "1420675207,2500"], "est.csv: 2 rows for 3 in"),
    (["timestamp,kettle", "1420675200,0", "1420675207,2500", "1420675214,0", "1420675221,0"],
     "est.csv: 4 rows for 3 in"),
    (["timestamp,kettle", "1420675200,0", "1420675214,2500", "1420675221,0"],
     "est.csv: line 3: timestamp 1420675214, where the truth's row 2 has 1420675207"),
    (["timestamp,microwave", "1420675200,0", "1420675207,0", "1420675214,0"],
     "est.csv: line 1: no 'kettle' column, which truth.csv has (found microwave)"),
])
def test_score_refuses_estimates_that_are_not_the_truths_rows(tmp_path, est_lines, said):
    """Estimates cut short, run on, of another stretch of time or without an appliance the truth has would score
    something else: named, exit 2, nothing printed as a score."""
    truth, est = _truth_and_estimates(tmp_path, est_lines)
    result = runner.invoke(app, ["nilm", "score", str(truth), str(est)])
    assert result.exit_code == 2 and said in result.stderr, result.output
    assert "mean_f1" not in result.stdout and "Traceback" not in result.output
    odd = runner.invoke(app, ["nilm", "score", str(truth), str(est), str(truth)])
    assert odd.exit_code == 2 and "give them in pairs" in odd.stderr, odd.output


def test_train_refuses_houses_it_can_learn_nothing_from(tmp_path):
    """One house (each appliance needs two with its channel and runs in them): exit 2 and no model file, not a
    model that would detect nothing."""
    path = tmp_path / "one_house.csv"
    path.write_text("timestamp,mains,kettle\n" + "".join(f"{1420675200 + 7 * i},{300},{0}\n" for i in range(500)))
    out = tmp_path / "model.json"
    result = runner.invoke(app, ["nilm", "train", str(path), "--out", str(out), "--trees", "5"])
    assert result.exit_code == 2 and "no appliance learned" in result.output, result.output
    assert "use 'ohmni nilm adapt'" in result.output  # what one home's data is for
    assert not out.exists()


@pytest.mark.parametrize(("value", "said"), [("nan", "'nan', not a finite number"), ("-5", "negative (-5 W)"),
                                             ("inf", "'inf', not a finite number"),
                                             ("2e6", "2e+06 W, more than any home draws")])
def test_score_refuses_estimates_that_are_not_power(tmp_path, value, said):
    """An estimate of NaN would make the appliance's MAE NaN, a negative one would flatter it, one of megawatts is
    in the wrong unit: named, exit 2."""
    truth, est = _truth_and_estimates(tmp_path, ["timestamp,kettle", "1420675200,0", "1420675207,2500",
                                                 f"1420675214,{value}"])
    result = runner.invoke(app, ["nilm", "score", str(truth), str(est)])
    assert result.exit_code == 2 and f"line 4: 'kettle' is {said}" in result.output, result.output


def test_without_a_model_the_commands_use_the_shipped_one(data_dir, tmp_path):
    """A user with no model of their own can still run `disaggregate` and `evaluate`: the shipped model, the same
    estimates as naming it; `evaluate` says a REFIT house is no unseen home for it."""
    folder = data_dir / "nilm/refit_1day_2015-01-08"
    house = tmp_path / "house2.csv"
    converted = runner.invoke(app, ["nilm", "convert", "refit", str(folder / "house_2_day.csv"), "--labels",
                                    str(folder / "labels.csv"), "--house", "2", "--out", str(house)])
    assert converted.exit_code == 0, converted.output
    named, shipped = tmp_path / "named.csv", tmp_path / "shipped.csv"
    assert runner.invoke(app, ["nilm", "disaggregate", "--model", str(SHIPPED), str(house), "--out",
                               str(named)]).exit_code == 0
    result = runner.invoke(app, ["nilm", "disaggregate", str(house), "--out", str(shipped)])
    assert result.exit_code == 0, result.output
    assert shipped.read_bytes() == named.read_bytes()
    with shipped.open() as f:
        assert sum(float(r["kettle"]) > 0 for r in csv.DictReader(f)) > 0  # it found house 2's kettle
    evaluated = runner.invoke(app, ["nilm", "evaluate", str(house)])
    assert evaluated.exit_code == 0, evaluated.output
    assert "learned on all 20 REFIT houses" in evaluated.output and "mean_f1=" in evaluated.output


def test_the_truth_check_sees_a_kettle_whole_and_a_channel_the_mains_do_not_count(data_dir, tmp_path):
    """`bench.nilm_truth`: REFIT house 2's kettle moves its mains by its whole step, at the channel's own time;
    with 60% of the kettle taken out of the mains, the check says 0.4 of it; five minutes off, nothing."""
    from bench.nilm_truth import shares
    from edge.nilm.convert import convert_refit
    from edge.nilm.house_csv import House

    folder = data_dir / "nilm/refit_1day_2015-01-08"
    convert_refit(folder / "house_2_day.csv", folder / "labels.csv", 2, tmp_path / "h2.csv")
    house = read_house(tmp_path / "h2.csv")
    whole = shares(house, "kettle", 0)
    assert len(whole) >= 10 and 0.9 < np.median(whole) < 1.2
    assert abs(np.median(shares(house, "kettle", 300))) < 0.05
    kettle = house.appliances["kettle"]
    partly = House("h2", house.timestamp, house.mains - 0.6 * kettle, {"kettle": kettle})
    assert 0.3 < np.median(shares(partly, "kettle", 0)) < 0.5


@pytest.mark.parametrize("step_s, warned", [(1.0, False), (7.0, False), (8.0, False), (10.0, True), (12.0, True),
                                             (35.0, True), (float("nan"), True)])
def test_each_meter_interval_draws_the_warning_of_its_band(step_s, warned):
    """DSMR 5's 1 s and REFIT's 7 s as the models were made for; DSMR 4's 10 s warned of; an interval no band holds
    (NaN) warned of as the sparsest, never passed in silence."""
    assert (interval_note(step_s) is not None) == warned


def test_a_house_read_sparser_than_a_meter_reads_is_warned_of(data_dir, tmp_path):
    """A logger's file at 35 s (REFIT house 2, every fifth row) is still disaggregated and scored, but both commands
    say the readings are sparser than the models are made for; at a DSMR 4 meter's 10 s they say which appliances
    are found less well; the day as REFIT read it (6-8 s) and held at DSMR 5's 1 s draw no warning."""
    folder = data_dir / "nilm/refit_1day_2015-01-08"
    house = tmp_path / "house2.csv"
    converted = runner.invoke(app, ["nilm", "convert", "refit", str(folder / "house_2_day.csv"), "--out", str(house)])
    assert converted.exit_code == 0, converted.output
    lines = house.read_text().splitlines()
    sparse = tmp_path / "sparse.csv"
    sparse.write_text("\n".join([lines[0], *lines[1::5]]) + "\n")
    read = read_house(house, need_truth=True)
    held = {step: tmp_path / f"held_{step}s.csv" for step in (1, 10)}
    for step, path in held.items():
        h = read.held_at(step)
        write_house(path, h.timestamp, h.mains, h.appliances)
    # the file, the median interval it is warned at (None: not warned), and what the warning names
    for path, interval, named in ((house, None, ""), (held[1], None, ""), (held[10], (10, 10), "washing machine"),
                                  (sparse, (30, 40), "short runs")):
        out = tmp_path / f"{path.stem}_est.csv"
        result = runner.invoke(app, ["nilm", "disaggregate", str(path), "--out", str(out)])
        assert result.exit_code == 0 and out.exists(), result.output
        said = re.search(rf"warning: {re.escape(str(path))}: readings a median (\d+) s apart", result.output)
        assert bool(said) == bool(interval), result.output
        if said and interval:
            assert interval[0] <= int(said.group(1)) <= interval[1]
            assert named in " ".join(result.output.split()), result.output
        evaluated = runner.invoke(app, ["nilm", "evaluate", str(path)])
        assert evaluated.exit_code == 0 and "mean_f1=" in evaluated.output, evaluated.output
        assert ("readings a median" in evaluated.output) == bool(interval), evaluated.output


@pytest.mark.parametrize("bench", ["bench.nilm", "bench.nilm_sampling"])
def test_a_nilm_bench_without_the_shared_data_says_where_it_looked(bench, tmp_path):
    """A user's clone has no ../shared/data: the bench says where it looked and how to point it, not a traceback
    from deep in a converter."""
    env = {**os.environ, "OHMNI_DATA": str(tmp_path / "nowhere")}
    result = subprocess.run([sys.executable, "-m", bench], capture_output=True, text=True, timeout=120, env=env,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"no NILM data at {tmp_path / 'nowhere' / 'nilm'}: set OHMNI_DATA" in result.stderr


def test_a_trailing_comma_is_not_a_stray_value(tmp_path):
    """A spreadsheet that ends each row with a comma leaves a blank value after the last column: read as it is."""
    path = tmp_path / "house.csv"
    path.write_text("timestamp,mains,kettle,\n1,5,0,\n2,2400,2300,\n")
    house = read_house(path)
    assert list(house.mains) == [5, 2400] and list(house.appliances["kettle"]) == [0, 2300]
