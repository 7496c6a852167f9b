"""The whole path with real processes: sim meter -> pty -> hub -> HTTP -> cloud -> page.

These run the same `ohmni` commands a user runs, each as its own process.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import httpx
import pytest

from tests.home import KETTLE_AT_S, KETTLE_S, START_TS, TELEGRAMS

pytestmark = pytest.mark.e2e

def test_every_telegram_arrives_once_with_its_values(running_home):
    with (running_home["tmp"] / "sim" / "meter.csv").open() as f:
        written = list(csv.DictReader(f))
    assert len(written) == TELEGRAMS
    rows = httpx.get(f"{running_home['cloud']}/api/v1/household/readings",
                     headers={"Authorization": f"Bearer {running_home['key']}"}).json()
    assert [r["ts"] for r in rows] == [int(w["timestamp"]) for w in written]
    for w, r in zip(written, rows, strict=True):
        assert (r["import_t1_wh"], r["import_t2_wh"], r["power_import_w"]) == (
            int(w["import_t1_wh"]), int(w["import_t2_wh"]), int(w["power_import_w"]))


def test_hub_status_asks_after_the_meter_by_when_its_readings_arrived_and_names_its_clocks_offset(running_home):
    """The running home's meter stamps its telegrams a year ago (the simulated span starts 2025-11-25). `hub status`
    judges whether the meter is sending by when the hub last got a reading, and says how far off the meter's clock
    is: before, it said "last reading 540000 min ago … is the meter sending?" of a meter that had just sent."""
    tmp = running_home["tmp"]
    port = int(running_home["hub"].rsplit(":", 1)[1])
    (tmp / "status.toml").write_text(
        f'[hub]\ndata_dir = "{tmp / "hub"}"\n[display]\nport = {port}\n[meter]\nport = "{tmp / "meter.tty"}"\n'
        f'[mqtt]\nenabled = false\n[cloud]\nurl = "{running_home["cloud"]}"\ntoken_file = "{tmp / "hub.token"}"\n')
    meter = httpx.get(f"{running_home['hub']}/api/status").json()["meter"]
    assert meter["last_reading_ts"] == START_TS + TELEGRAMS - 1  # the last telegram, as the meter stamped it
    before = time.time()
    checks = subprocess.run([sys.executable, "-m", "ohmni", "hub", "status", "--config", str(tmp / "status.toml")],
                            capture_output=True, text=True, timeout=120)
    after = time.time()
    assert "Traceback" not in checks.stderr, checks.stderr
    table = " ".join(checks.stdout.split())
    said = re.search(r"last reading │ (ok|warn) │ arrived (\d+) (s|min) ago", table)
    assert said, checks.stdout
    age_s = int(said.group(2)) * (60 if said.group(3) == "min" else 1)
    slack = 30 if said.group(3) == "min" else 1  # said to the minute, or to the second
    assert before - meter["last_reading_at"] - slack <= age_s <= after - meter["last_reading_at"] + slack
    assert said.group(1) == ("ok" if age_s < 120 else "warn")
    days = (meter["last_reading_at"] - meter["last_reading_ts"]) / 86400
    assert days > 300  # the fixture's span is in 2025
    assert (f"meter clock │ warn │ the meter stamps its readings {days:.0f} days behind the hub's clock"
            in table), checks.stdout


def test_corrupt_frames_were_counted_and_skipped(running_home):
    counters = httpx.get(f"{running_home['hub']}/api/status").json()["meter"]["counters"]
    # a fault after every 40th telegram: 90 faults in turn bad_crc, garbage, truncated; the last
    # (truncated) has no telegram after it, so it is still waiting for its end
    assert counters["rejected_bad_crc"] == 30
    assert counters["rejected_truncated"] == 29
    assert counters["readings"] == TELEGRAMS


def test_page_shows_the_live_figures(running_home):
    with httpx.Client(base_url=running_home["cloud"], follow_redirects=True) as browser:
        assert browser.get("/login", params={"key": running_home["key"]}).status_code == 200  # redirected to /
        page = browser.get("/").text
        api = browser.get("/api/v1/household/summary").json()
    with (running_home["tmp"] / "sim" / "meter.csv").open() as f:
        written = list(csv.DictReader(f))
    last, first = written[-1], written[0]
    assert api["power_w"] == int(last["power_import_w"])
    used_wh = sum(int(last[k]) - int(first[k]) for k in ("import_t1_wh", "import_t2_wh"))
    assert api["today"]["energy_wh"] == used_wh  # the sim started at 08:00, the day's first reading
    # the demo's flat tariff: 24.50p/kWh and 60.10p a day, rounded half-up once
    expected = (Decimal(used_wh) / 1000 * Decimal("0.2450") + Decimal("0.6010")).quantize(Decimal("0.01"),
                                                                                       ROUND_HALF_UP)
    assert api["today"]["cost"] == str(expected)
    assert re.search(r'id="power-w">(\d+)<', page).group(1) == str(api["power_w"])
    assert re.search(r'id="today-kwh">([\d.]+)<', page).group(1) == api["today"]["kwh"]
    assert re.search(r'id="today-cost">([\d.]+)<', page).group(1) == api["today"]["cost"]
    assert len(api["series"]) == 60  # one point a minute
    display = httpx.get(f"{running_home['hub']}/display")
    assert display.status_code == 200 and 'id="face"' in display.text


def test_coach_previews_the_bill_and_finds_the_always_on_load(running_home):
    auth = {"Authorization": f"Bearer {running_home['key']}"}
    coach = httpx.get(f"{running_home['cloud']}/api/v1/household/coach", headers=auth).json()
    today = httpx.get(f"{running_home['cloud']}/api/v1/household/summary", headers=auth).json()["today"]
    assert coach["preview"]["covered_from"] == "2025-11-25"
    assert coach["preview"]["so_far"] == today["cost"]  # one day so far: the same money both ways
    assert Decimal(coach["preview"]["projected"]) > Decimal(today["cost"])
    floor = [n for n in coach["nudges"] if n["kind"] == "always_on"]
    assert floor, coach["nudges"]
    watts = int(re.search(r"about (\d+) W", floor[0]["message"]).group(1))
    assert 250 <= watts <= 330  # baseload 250 W plus the fridge's share of the quietest half-hour


def test_face_follows_the_kettle(running_home):
    log = httpx.get(f"{running_home['hub']}/api/face-log").json()
    kettle_on, kettle_off = START_TS + KETTLE_AT_S, START_TS + KETTLE_AT_S + KETTLE_S
    assert all(e["face"] != "frown" for e in log if e["ts"] < kettle_on), log
    frowns = [e for e in log if e["face"] == "frown"]
    assert frowns and kettle_on <= frowns[0]["ts"] < kettle_on + 30, log
    after = [e for e in log if e["ts"] > frowns[0]["ts"] and e["face"] != "frown"]
    assert after and after[0]["ts"] < kettle_off + 120, log
    assert "usual" in frowns[0]["reason"]


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                if text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(int(pid))
            except OSError:
                pass
    return found


def _assert_left_clean(demo: Path) -> None:
    """No child of the demo wrote a traceback to its log, and none is left running."""
    for log in demo.glob("*.log"):
        assert "Traceback" not in log.read_text(), log
    assert _processes_mentioning(str(demo)) == []


def _demo(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ohmni", "demo", "--cloud-port", "0", "--display-port", "0",
                             "--data-dir", str(tmp_path / "demo"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_demo_command_runs_and_accounts_for_every_reading(tmp_path):
    proc = _demo(tmp_path, "--duration", "5", "--speed", "60")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "meter wrote 300 telegrams; cloud holds 300 readings: missing=0 duplicated=0" in out
    assert "/login?key=" in out and "/display" in out
    # the three simulated plugs publish every 10 simulated seconds to the hub's embedded broker
    plugs = re.search(r"Smart plugs: (\d+) readings from 3 devices", out)
    assert plugs and int(plugs.group(1)) >= 80, out
    # the demo's hub takes those plugs as its home's submetered truth, named as it stores them
    mapped = tomllib.loads((tmp_path / "demo" / "hub.toml").read_text())["nilm"]["plugs"]
    assert mapped == {"zigbee2mqtt:kettle_plug": "kettle", "shelly:shellyplusplugs-washer:0": "washing_machine",
                      "tasmota:dishwasher": "dishwasher"}
    with sqlite3.connect(tmp_path / "demo" / "hub" / "hub.sqlite3") as db:
        assert set(mapped) <= {d for (d,) in db.execute("SELECT DISTINCT device FROM device_readings")}
    assert "not adapted to this home's plugs (dishwasher, kettle, washing_machine) yet" in out  # 5 minutes
    assert "Traceback" not in out
    _assert_left_clean(tmp_path / "demo")


def test_a_demo_on_economy_7_prices_the_home_on_it_and_a_tariff_it_lacks_is_named(tmp_path):
    """--tariff puts the demo household on a catalogue tariff, so its coach has cheap hours to shift a wash to."""
    proc = _demo(tmp_path, "--duration", "3", "--speed", "60", "--tariff", "economy7")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "Tariff: Economy 7 (example) (--tariff economy7)" in " ".join(out.split()), out
    with sqlite3.connect(tmp_path / "demo" / "cloud" / "cloud.sqlite3") as db:
        (stored,) = db.execute("SELECT tariff_json FROM households WHERE id = 'hh-demo'").fetchone()
    assert json.loads(stored)["name"] == "Economy 7 (example)"
    wrong = _demo(tmp_path / "other", "--tariff", "economy8")
    out, _ = wrong.communicate(timeout=60)
    assert wrong.returncode == 2 and "no tariff 'economy8': choose flat, economy7" in " ".join(out.split()), out
    assert "Traceback" not in out and not (tmp_path / "other" / "demo").exists()  # refused before it started


def test_a_demo_with_a_ten_second_meter_accounts_for_every_reading(tmp_path):
    """--meter-every 10, as a DSMR 4 meter sends: the hub stores each telegram at the meter's interval and the cloud
    holds every one. The simulated meter is a DSMR 4.2 meter then, which sends no voltage: stored as unknown."""
    proc = _demo(tmp_path, "--duration", "5", "--speed", "60", "--meter-every", "10")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "meter wrote 30 telegrams; cloud holds 30 readings: missing=0 duplicated=0 mismatched=0" in out, out
    with sqlite3.connect(tmp_path / "demo" / "hub" / "hub.sqlite3") as db:
        stamps = [ts for (ts,) in db.execute("SELECT ts FROM readings WHERE channel = 'electricity' ORDER BY ts")]
        voltages = {v for (v,) in db.execute("SELECT voltage_l1_v FROM readings WHERE channel = 'electricity'")}
    assert len(stamps) == 30 and {b - a for a, b in zip(stamps, stamps[1:], strict=False)} == {10}
    assert voltages == {None}
    # the demo's hub.toml is the whole config it ran on, so the installer's checks read its store and say what 10 s
    # costs; with the demo stopped, its meter, embedded broker and cloud are gone, each with the right advice
    assert f"ohmni hub status --config {tmp_path / 'demo' / 'hub.toml'}" in out
    checks = subprocess.run([sys.executable, "-m", "ohmni", "hub", "status", "--config",
                             str(tmp_path / "demo" / "hub.toml")], capture_output=True, text=True, timeout=120)
    table = " ".join(checks.stdout.split())
    assert checks.returncode == 1 and "Traceback" not in checks.stderr, checks.stderr
    assert "meter interval │ warn │ a reading every 10 s" in table and "washing machine" in table, checks.stdout
    assert "the hub runs it ([mqtt].embedded): start the hub" in table and "start Mosquitto" not in table
    _assert_left_clean(tmp_path / "demo")


def test_a_demo_run_again_in_its_folder_goes_on_from_the_home_it_simulated(tmp_path):
    """--data-dir kept, the demo run again: the cloud and the hub there already hold the first run's readings, so
    the simulated meter goes on from its registers and time (before, its registers went back and the cloud refused
    them), and the check covers every telegram of both runs."""
    for run in ("first", "second"):
        proc = _demo(tmp_path, "--duration", "3", "--speed", "60")
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{run} run: {out}"
    assert "Going on from the home simulated there before" in out
    assert ("meter wrote 360 telegrams; cloud holds 360 readings: missing=0 duplicated=0 mismatched=0 unexpected=0 "
            "(180 written this run") in out, out
    assert "disaggregation starts afresh" not in (tmp_path / "demo" / "hub.log").read_text()  # it went on
    with sqlite3.connect(tmp_path / "demo" / "hub" / "hub.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM nilm_state").fetchone()[0] == 1
    _assert_left_clean(tmp_path / "demo")


def test_demo_stops_cleanly_on_ctrl_c(tmp_path):
    proc = _demo(tmp_path, "--speed", "30")
    hub_db = tmp_path / "demo" / "hub" / "hub.sqlite3"
    deadline = time.monotonic() + 60
    while not hub_db.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    m = re.search(r"meter wrote (\d+) telegrams; cloud holds (\d+) readings: missing=0 duplicated=0", out)
    assert m and int(m.group(1)) == int(m.group(2)) > 0, out
    assert "Traceback" not in out
    assert _processes_mentioning(str(tmp_path / "demo")) == []
