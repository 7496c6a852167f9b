"""What plugs cost the hub's live disaggregation: `python -m bench.nilm_metered [--passes N]`.

The hub re-runs the disaggregator over its 8-hour window every 5 minutes. With plugs mapped to
appliances (`[nilm.plugs]`), each pass also reads those plugs' reports over the window from the
hub's SQLite store and puts their watts in (`HubAgent.metered`). This times a pass over a full
window of REFIT house 9 (its mains as meter readings, its washer, kettle and dishwasher channels as
Shelly-like plugs reporting on a 5 W change or every minute) with those three plugs and without,
alternating in one run, and prints the times, their ratio and the last key=value line.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench import nilm_data
from edge.agent import HubAgent
from edge.config import HubConfig
from edge.nilm.convert import convert_refit
from edge.nilm.house_csv import read_house
from edge.nilm.live import LiveDisaggregator
from tests.edge.test_nilm_own_home import meter_readings, plug_reports

PLUGS = {"shelly:washer:0": "washing_machine", "shelly:kettle:0": "kettle", "shelly:dishwasher:0": "dishwasher"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=10, help="timed passes each way (default 10)")
    args = parser.parse_args()
    folder = nilm_data() / "refit_1day_2015-01-08"
    with tempfile.TemporaryDirectory(prefix="ohmni-bench-metered-") as tmp:
        path = Path(tmp) / "house_9.csv"
        convert_refit(folder / "house_9_day.csv", folder / "labels.csv", 9, path)
        house = read_house(path, need_truth=True)
        window = house.subset((house.timestamp >= house.timestamp[0] + 12 * 3600)
                              & (house.timestamp < house.timestamp[0] + 20 * 3600))  # 12:00-20:00: washes, boils
        cfg = HubConfig.model_validate({"hub": {"data_dir": str(Path(tmp) / "hub")}, "mqtt": {"enabled": False},
                                        "nilm": {"plugs": PLUGS}})
        agent = HubAgent(cfg)
        agent.store.add_readings(meter_readings(window))
        reports = [r for device, name in PLUGS.items()
                   for r in plug_reports(device, window.timestamp, window.appliances[name])]
        agent.store.add_device_readings(reports, 0)
        assert agent.nilm is not None
        model = agent.nilm.model
        lives = {"without plugs": LiveDisaggregator(model), "with 3 plugs": LiveDisaggregator(model,
                                                                                           metered=agent.metered)}
        for live in lives.values():
            for t, w in zip(window.timestamp, window.mains, strict=True):
                live._ts.append(float(t))
                live._w.append(float(w))
        times: dict[str, list[float]] = {name: [] for name in lives}
        for _ in range(args.passes):
            for name, live in lives.items():
                began = time.perf_counter()
                live.flush(final=False)
                times[name].append(time.perf_counter() - began)
        agent.store.close()
    base, plugged = (statistics.median(times[name]) for name in lives)
    print(f"one pass over an 8-hour window of REFIT house 9 ({len(window.timestamp)} readings, "
          f"{len(reports)} plug reports), median of {args.passes}:")
    for name in lives:
        print(f"  {name:14} {statistics.median(times[name]):.3f} s")
    print(f"pass_s={base:.3f} pass_with_plugs_s={plugged:.3f} ratio={plugged / base:.3f}")


if __name__ == "__main__":
    main()
