"""A simulated home run again into the same folder goes on from where it stopped, on the wire and in its CSVs."""

from __future__ import annotations

import csv
import os
import threading
from pathlib import Path

import pytest

from firmware_sim.pty_port import PtyPort
from firmware_sim.run import SimConfig, SimResumeError, run
from protocols.p1 import split_frames
from protocols.p1_normalise import decode_reading

START = 1_764_057_600  # 2025-11-25 08:00 UTC


def _wire(cfg: SimConfig) -> bytes:
    """Run the sim on ``cfg`` with a reader on its pty, as the hub is; every byte that reader got."""
    port = PtyPort()
    fd = os.open(port.path, os.O_RDONLY | os.O_NOCTTY)
    got = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the master closed
                return
            if not chunk:
                return
            got.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        run(cfg, port=port)
        port.drain()
    finally:
        port.close()
        reader.join(5)
        os.close(fd)
    return bytes(got)


def _simulate(folder: Path, seconds: int, resume: bool, start: int = START, every: int = 1, fault_every: int = 0,
              frames: list[bytes] | None = None) -> list:
    """Run the sim for ``seconds`` simulated seconds into ``folder``; the readings its pty's reader decoded (a corrupt
    frame is no reading), their raw frames added to ``frames``."""
    got = _wire(SimConfig(start_ts=start, seconds=seconds, speed=1000, truth_csv=folder / "truth.csv",
                          meter_csv=folder / "meter.csv", resume=resume, every_s=every, fault_every=fault_every))
    good = [f.raw for f in split_frames(got) if f.error is None]
    if frames is not None:
        frames.extend(good)
    return [decode_reading(raw) for raw in good]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_second_run_goes_on_from_the_first(tmp_path):
    frames: list[bytes] = []
    first = _simulate(tmp_path, 120, resume=True, frames=frames)  # nothing to go on from: starts at START
    assert [r.ts for r in first] == list(range(START, START + 120))
    assert all(b"\r\n1-3:0.2.8(50)\r\n" in f for f in frames) and all(r.voltage_l1_v for r in first)  # a 1 s meter
    # cut the meter's last row short, as a kill mid-write would: the run after goes on from the whole row before it
    meter_csv = tmp_path / "meter.csv"
    meter_csv.write_bytes(meter_csv.read_bytes()[:-20])
    second = _simulate(tmp_path, 60, resume=True)
    assert [r.ts for r in second] == list(range(START + 119, START + 179))  # the second after the last whole row
    before = first[118]
    assert second[0].import_t1_wh >= before.import_t1_wh and second[0].import_t2_wh >= before.import_t2_wh
    assert (second[0].import_t1_wh + second[0].import_t2_wh) - (before.import_t1_wh + before.import_t2_wh) <= 2
    rows = _rows(meter_csv)
    assert [int(r["timestamp"]) for r in rows] == list(range(START, START + 179))  # one file, one header
    assert [int(r["timestamp"]) for r in _rows(tmp_path / "truth.csv")] == list(range(START, START + 179))
    later = _simulate(tmp_path, 10, resume=True, start=START + 3600)  # a later --start stands: the meter skips on
    assert [r.ts for r in later] == list(range(START + 3600, START + 3610))
    assert later[0].import_t1_wh + later[0].import_t2_wh - (second[-1].import_t1_wh + second[-1].import_t2_wh) <= 2
    assert [int(r["timestamp"]) for r in _rows(meter_csv)][-11:] == [START + 178, *range(START + 3600, START + 3610)]
    fresh = _simulate(tmp_path, 30, resume=False)  # without --resume: written afresh, from --start
    assert fresh[0].ts == START and fresh[0].import_t1_wh == first[0].import_t1_wh
    assert len(_rows(meter_csv)) == 30


def test_a_ten_second_meter_sends_on_its_clock_and_counts_every_second(tmp_path):
    """A DSMR 4 meter's interval: a telegram on each tenth second of the clock, registers that count the seconds
    between, the truth a row a second, and a resumed run on the same clock. The telegrams are DSMR 4.2's, which
    carry no voltage, and the meter's CSV, what the hub could receive, has none either."""
    frames: list[bytes] = []
    readings = _simulate(tmp_path, 605, resume=False, start=START + 3, every=10, fault_every=2, frames=frames)
    assert [r.ts for r in readings] == list(range(START + 10, START + 601, 10))  # faults between them lose none
    assert all(b"\r\n1-3:0.2.8(42)\r\n" in f and b"1-0:32.7.0" not in f for f in frames)
    assert {r.voltage_l1_v for r in readings} == {None}
    assert {r["voltage_l1_v"] for r in _rows(tmp_path / "meter.csv")} == {""}
    truth = {int(r["timestamp"]): float(r["mains_w"]) for r in _rows(tmp_path / "truth.csv")}
    assert list(truth) == list(range(START + 3, START + 608))
    assert [int(r["timestamp"]) for r in _rows(tmp_path / "meter.csv")] == [r.ts for r in readings]
    first, last = readings[0], readings[-1]
    counted = (last.import_t1_wh + last.import_t2_wh) - (first.import_t1_wh + first.import_t2_wh)
    lived = sum(truth[ts] for ts in range(first.ts + 1, last.ts + 1)) / 3600
    assert lived > 20 and abs(counted - lived) < 2  # each register rounds down once at each end
    assert all(r.power_import_w == round(truth[r.ts]) for r in readings)  # the power of the second it stamps
    more = _simulate(tmp_path, 30, resume=True, every=10)  # goes on from START + 601, the second after the last
    assert [r.ts for r in more] == [START + 610, START + 620, START + 630]
    assert [int(r["timestamp"]) for r in _rows(tmp_path / "truth.csv")] == list(range(START + 3, START + 631))


def test_a_7e1_meter_is_a_dsmr_2_2_meter_sent_only_the_faults_a_reader_can_see(tmp_path):
    """On a 7E1 line the meter is a DSMR 2.2 meter: no CRC, no timestamp, kW to 10 W. A corrupt digit in a telegram
    with no CRC is a reading nobody can refuse, so it is not sent the bad-CRC fault; every other fault is refused by
    the hub's decoder, and each telegram the meter's CSV holds is a reading there, stamped by the decoder's clock."""
    from edge.sources.serial_p1 import STRIP_PARITY, P1Decoder

    cfg = SimConfig(start_ts=START, seconds=200, speed=1000, truth_csv=tmp_path / "truth.csv",
                    meter_csv=tmp_path / "meter.csv", every_s=10, fault_every=1, line="7E1")
    assert cfg.dsmr_version == "22"
    wire = _wire(cfg)
    assert any(b >= 0x80 for b in wire)  # parity in the top bit
    decoder = P1Decoder(clock=lambda: START)  # the hub's clock stands still: each reading a second after the last
    readings = decoder.feed(wire.translate(STRIP_PARITY))
    rows = _rows(tmp_path / "meter.csv")
    assert len(rows) == 20 and len(readings) == 20
    assert [r.ts for r in readings] == list(range(START, START + 20))
    for reading, row in zip(readings, rows, strict=True):
        assert (reading.import_t1_wh, reading.import_t2_wh, reading.power_import_w) == (
            int(row["import_t1_wh"]), int(row["import_t2_wh"]), int(row["power_import_w"]))
        assert reading.power_import_w % 10 == 0 and reading.voltage_l1_v is None and reading.power_failures is None
    assert {r["power_failures"] for r in rows} == {""}
    refused = {k: v for k, v in decoder.counters.items() if k.startswith("rejected_")}
    assert refused.keys() <= {"rejected_truncated"} and "rejected_bad_crc" not in decoder.counters
    assert decoder.counters["frames"] - 20 == sum(refused.values()) > 0


def test_another_households_csvs_are_not_gone_on_from(tmp_path):
    _simulate(tmp_path, 10, resume=False)
    (tmp_path / "truth.csv").write_text("timestamp,mains_w,heat_pump\n")
    cfg = SimConfig(start_ts=START, seconds=10, truth_csv=tmp_path / "truth.csv", meter_csv=tmp_path / "meter.csv",
                    resume=True)
    port = PtyPort()
    try:
        with pytest.raises(SimResumeError, match="another household"):
            run(cfg, port=port)
        (tmp_path / "meter.csv").write_text("not,a,meter\n")
        with pytest.raises(SimResumeError, match="not a simulated meter's CSV"):
            run(cfg, port=port)
    finally:
        port.close()


def test_the_demo_will_not_go_on_from_a_home_that_would_run_a_day_ahead(tmp_path):
    """Run again and again sped up, a demo folder's simulated time runs ahead of now; the cloud refuses readings a
    day ahead, so the demo says so before it starts anything, rather than failing its check at the end."""
    import time

    from typer.testing import CliRunner

    from firmware_sim.run import METER_COLUMNS
    from ohmni.cli import app

    sim = tmp_path / "demo" / "sim"
    sim.mkdir(parents=True)
    ahead = int(time.time()) + 23 * 3600
    (sim / "meter.csv").write_text(",".join(METER_COLUMNS) + "\n"
                                   + f"{ahead},E0099000012345678,4211000,3907000,0,0,160,0,230.5,2,,,,,3,1\n")
    result = CliRunner().invoke(app, ["demo", "--data-dir", str(tmp_path / "demo"), "--duration", "60", "--speed",
                                      "100", "--cloud-port", "0", "--display-port", "0"])
    assert result.exit_code == 2, result.output
    assert "more than a day ahead of now" in result.output and not (tmp_path / "demo" / "cloud").exists()


def test_a_failed_childs_tail_is_this_runs_not_an_earlier_runs(tmp_path):
    """A demo folder run again keeps its logs; a failure shows what this run of the child wrote."""
    from ohmni.demo import spawn

    (tmp_path / "sim.log").write_text("Traceback (most recent call last):\n  an earlier run's failure\n")
    child = spawn("sim", ["sim", "run", "--household", str(tmp_path / "missing.toml")], tmp_path)
    assert child.proc.wait(60) == 2
    unwrapped = "".join(c for c in child.tail() if not c.isspace() and c != "│")  # Rich's panel wraps a long path
    assert "Traceback" not in child.tail() and f"{tmp_path}/missing.toml".replace(" ", "") in unwrapped, child.tail()
    assert "an earlier run's failure" in (tmp_path / "sim.log").read_text()  # kept, not shown
