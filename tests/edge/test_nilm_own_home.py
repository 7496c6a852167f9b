"""A home's own submetered truth from the hub's store: a real REFIT house's mains as meter readings, its
appliance channels as plugs that report the way Shelly plugs do (on a change, else every minute)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from edge.nilm.convert import convert_refit
from edge.nilm.features import GRID_S
from edge.nilm.house_csv import House, read_house
from edge.nilm.model import load, pretrained
from edge.nilm.own_home import PLUG_HOLD_S, own_home
from edge.store import HubStore
from ohmni.cli import app
from protocols.devices import DeviceReading
from protocols.readings import MeterReading

runner = CliRunner()


def plug_reports(device: str, ts: np.ndarray, power: np.ndarray, every_s: float = 60.0,
                 change_w: float = 5.0) -> list[DeviceReading]:
    """What a plug sends: a report when its power moved by ``change_w`` or ``every_s`` passed."""
    out: list[DeviceReading] = []
    last_t, last_p = -np.inf, -np.inf
    for t, p in zip(ts, power, strict=True):
        if abs(p - last_p) >= change_w or t - last_t >= every_s:
            out.append(DeviceReading(device, "shelly", power_w=float(p), ts=float(t)))
            last_t, last_p = t, p
    return out


def meter_readings(house: House) -> list[MeterReading]:
    return [MeterReading(int(t), "E0000", 0, 0, 0, 0, int(round(p)), 0) for t, p in
            zip(house.timestamp, house.mains, strict=True)]


def fill_store(store: HubStore, house: House, plugs: dict[str, str], offline: tuple[float, float] = (0, 0)) -> None:
    store.add_readings(meter_readings(house))
    for device, appliance in plugs.items():
        keep = (house.timestamp < offline[0]) | (house.timestamp >= offline[1])
        store.add_device_readings(plug_reports(device, house.timestamp[keep], house.appliances[appliance][keep]), 0)


@pytest.fixture(scope="module")
def house_2(data_dir, tmp_path_factory) -> House:
    folder = data_dir / "nilm/refit_1day_2015-01-08"
    path = tmp_path_factory.mktemp("refit") / "house_2.csv"
    convert_refit(folder / "house_2_day.csv", folder / "labels.csv", 2, path)
    return read_house(path)


def _cells(house: House) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start of each 6-second cell with a reading, its last reading as the meter rounds it (what the
    disaggregator reads of a cell), the index of that reading)."""
    cell = np.floor(house.timestamp / GRID_S)
    starts, first, count = np.unique(cell, return_index=True, return_counts=True)
    last = first + count - 1
    return starts * GRID_S, np.round(house.mains)[last], last


def test_plugs_become_the_homes_submetered_truth(house_2, tmp_path):
    store = HubStore(tmp_path / "hub.sqlite3")
    t0 = house_2.timestamp[0]
    plugs = {"shelly:fridge-plug:0": "fridge", "zigbee2mqtt:kettle_plug": "kettle"}
    fill_store(store, house_2, plugs, offline=(t0 + 3600, t0 + 7200))  # both plugs off the network for an hour
    home = own_home(store, plugs)
    store.close()
    assert home is not None and set(home.appliances) == {"fridge", "kettle"}
    starts, mains, last = _cells(house_2)
    # the hour the plugs were away is left out, beyond what their last report (a minute before, at most) still
    # tells; every other cell is kept, with its last meter reading
    kept = np.isin(starts, home.timestamp)
    assert starts[~kept].min() >= t0 + 3600 - 60 + PLUG_HOLD_S - GRID_S and starts[~kept].max() < t0 + 7200
    assert np.all(~kept[(starts >= t0 + 3600 + PLUG_HOLD_S) & (starts < t0 + 7200)])
    np.testing.assert_allclose(home.mains, mains[kept])
    for name in ("fridge", "kettle"):  # the plug's last report in a cell: within its 5 W of the truth there
        assert np.max(np.abs(home.appliances[name] - house_2.appliances[name][last[kept]])) < 5.0
        assert home.appliances[name].max() > {"fridge": 50, "kettle": 2000}[name]


def test_two_plugs_on_one_appliance_add_up_and_no_plug_is_no_truth(house_2, tmp_path):
    store = HubStore(tmp_path / "hub.sqlite3")
    half = house_2.appliances["fridge"] / 2
    two = House("x", house_2.timestamp, house_2.mains, {"fridge": half, "kettle": half})
    store.add_readings(meter_readings(two))
    store.add_device_readings(plug_reports("a", two.timestamp, half, change_w=1), 0)
    store.add_device_readings(plug_reports("b", two.timestamp, half, change_w=1), 0)
    home = own_home(store, {"a": "fridge", "b": "fridge"})
    assert home is not None
    assert np.max(np.abs(home.appliances["fridge"] - house_2.appliances["fridge"][_cells(house_2)[2]])) < 2.0
    assert own_home(store, {}) is None and own_home(store, {"never-seen": "kettle"}) is None
    store.close()


def test_export_command_writes_a_house_csv_the_nilm_commands_read(house_2, tmp_path):
    data = tmp_path / "hub"
    data.mkdir()
    store = HubStore(data / "hub.sqlite3")
    fill_store(store, house_2, {"shelly:fridge-plug:0": "fridge"})
    store.close()
    config = tmp_path / "hub.toml"
    config.write_text(f'[hub]\ndata_dir = "{data}"\n[nilm.plugs]\n"shelly:fridge-plug:0" = "fridge"\n')
    out = tmp_path / "own.csv"
    done = runner.invoke(app, ["hub", "nilm-export", "--config", str(config), "--out", str(out), "--days", "2"])
    assert done.exit_code == 0, done.output
    home = read_house(out, need_truth=True)
    assert set(home.appliances) == {"fridge"} and len(home.timestamp) == len(_cells(house_2)[0])
    # ... which `ohmni nilm adapt` turns into this home's model (from the shipped one by default)
    adapted = tmp_path / "own.json"
    done = runner.invoke(app, ["nilm", "adapt", str(out), "--out", str(adapted)])
    assert done.exit_code == 0, done.output
    assert "fridge:" in done.output and "on-power" in done.output
    mine, shipped = load(adapted), pretrained()
    assert mine.appliances["fridge"].to_json() != shipped.appliances["fridge"].to_json()
    assert mine.appliances["kettle"].to_json() == shipped.appliances["kettle"].to_json()  # no plug: as it was
    # a hub that never ran there: said so, and no empty store left behind
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text(f'[hub]\ndata_dir = "{tmp_path / "none"}"\n[nilm.plugs]\n"p" = "fridge"\n')
    refused = runner.invoke(app, ["hub", "nilm-export", "--config", str(elsewhere), "--out", str(out)])
    assert refused.exit_code == 1 and "no hub store" in refused.output and not (tmp_path / "none").exists()
    # without a mapped plug: a clear error that says what to add
    bare = tmp_path / "bare.toml"
    bare.write_text(f'[hub]\ndata_dir = "{data}"\n')
    refused = runner.invoke(app, ["hub", "nilm-export", "--config", str(bare), "--out", str(out)])
    assert refused.exit_code == 2 and "[nilm.plugs]" in refused.output
    assert "plugs this hub has seen: shelly:fridge-plug:0" in refused.output  # the ids to map
    # a plug mapped to something that is not an appliance the hub names
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(f'[hub]\ndata_dir = "{data}"\n[nilm.plugs]\n"p" = "toaster"\n')
    refused = runner.invoke(app, ["hub", "nilm-export", "--config", str(wrong), "--out", str(out)])
    assert refused.exit_code != 0 and "toaster" in refused.output
