from __future__ import annotations

import tomllib

from firmware_sim.household import Household
from firmware_sim.meter import SimMeter
from protocols.p1 import split_frames
from protocols.p1_normalise import decode_reading

START = 1_764_057_600  # 2025-11-25 08:00 UTC


def test_same_seed_same_day():
    a = Household.load(None, START)
    b = Household.load(None, START)
    assert [a.step(START + i) for i in range(3000)] == [b.step(START + i) for i in range(3000)]


def test_washing_machine_heats_then_spins_and_fridge_cycles():
    spec = tomllib.loads("""
seed = 1
[[appliance]]
name = "fridge"
kind = "cycling"
power_w = 90
on_s = 600
off_s = 900
[[appliance]]
name = "washing_machine"
kind = "program"
phases = [[60, 10], [600, 2000], [900, 150], [300, 500]]
runs_at_s = [100]
""")
    house = Household(spec, START)
    series = [house.step(START + i) for i in range(4000)]
    washer = [s["washing_machine"] for s in series]
    assert washer[99] == 0 and washer[100] == 10 and washer[200] == 2000 and washer[1000] == 150
    assert washer[100 + 60 + 600 + 900 + 10] == 500 and washer[100 + 1860] == 0
    fridge_on = [s["fridge"] > 0 for s in series]
    switches = sum(1 for x, y in zip(fridge_on, fridge_on[1:], strict=False) if x != y)
    assert switches >= 4  # on/off cycles in a bit over an hour


def test_meter_registers_integrate_power_and_telegrams_decode():
    meter = SimMeter(import_t1_wh=0, import_t2_wh=0)
    readings = [meter.tick(START + i, 3600.0) for i in range(10)]  # 3600 W = 1 Wh per second
    assert readings[-1].import_t1_wh + readings[-1].import_t2_wh == 10
    decoded = [decode_reading(f.raw) for f in split_frames(b"".join(meter.telegram(r) for r in readings))]
    assert decoded == readings


def test_a_household_file_the_sim_cannot_run_is_named_with_what_is_wrong(tmp_path):
    """A TOML slip, a missing field or a plug on an appliance the home lacks: the sim and the demo say which file
    and what, and exit 2 (the demo before it starts anything), instead of a traceback."""
    from typer.testing import CliRunner

    from ohmni.cli import app

    runner = CliRunner()
    cases = {"seed = 1\n[[appliance\n": "Expected ']]'",
             'seed = 1\n[[appliance]]\nkind = "constant"\npower_w = 50\n': "no 'name'",
             'seed = 1\n[[appliance]]\nname = "fridge"\nkind = "constant"\npower_w = 50\n'
             '[[plug]]\nkind = "shelly"\nname = "p"\nappliance = "kettle"\n':
                 "plugs meter appliances the household does not have: kettle"}
    for i, (text, says) in enumerate(cases.items()):
        bad = tmp_path / f"home_{i}.toml"
        bad.write_text(text)
        sim = runner.invoke(app, ["sim", "run", "--household", str(bad), "--duration", "1", "--out", str(tmp_path)])
        assert sim.exit_code == 2 and f"{bad}: " in sim.output and says in sim.output, sim.output
        assert sim.exception is None or isinstance(sim.exception, SystemExit), sim.exception
        demo = runner.invoke(app, ["demo", "--household", str(bad), "--duration", "5", "--data-dir",
                                   str(tmp_path / "demo"), "--cloud-port", "0", "--display-port", "0"])
        assert demo.exit_code == 2 and says in demo.output, demo.output
        assert not (tmp_path / "demo" / "cloud").exists()
