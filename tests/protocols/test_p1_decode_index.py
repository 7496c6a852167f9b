"""Every telegram in ../shared/data/dsmr decodes as its index says (the test reads the index)."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from edge.sources.serial_p1 import crc_acceptable
from ohmni.cli import app
from protocols.crc16 import crc16_arc
from protocols.p1 import CrcStatus, split_frames
from protocols.p1_normalise import normalise

runner = CliRunner()
FIELDS = [("e_import_t1_kwh", ("import_kwh", "t1"), 1), ("e_import_t2_kwh", ("import_kwh", "t2"), 1),
          ("e_export_t1_kwh", ("export_kwh", "t1"), 1), ("e_export_t2_kwh", ("export_kwh", "t2"), 1),
          ("e_import_total_kwh", ("import_kwh", "total"), 1), ("e_export_total_kwh", ("export_kwh", "total"), 1),
          ("power_import_kw", ("power_import_w",), 1000), ("power_export_kw", ("power_export_w",), 1000),
          ("gas_m3", ("gas_m3",), 1), ("voltage_l1_v", ("voltage_v", "l1"), 1),
          ("voltage_l2_v", ("voltage_v", "l2"), 1), ("voltage_l3_v", ("voltage_v", "l3"), 1)]
CRC = {"valid": "valid", "INVALID": "invalid", "no-crc": "absent"}


def rows(data_dir):
    with (data_dir / "dsmr/index.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def dig(obj, path):
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def test_every_indexed_telegram_decodes_as_asserted_or_is_rejected_for_its_error(data_dir):
    checked = 0
    for row in rows(data_dir):
        frames = [normalise(f) for f in split_frames((data_dir / "dsmr" / row["file"]).read_bytes())]
        status = row["crc_status"]
        assert frames, row["file"]
        if status.startswith("stream"):
            assert frames[0]["error"] and frames[0]["error"].startswith("truncated"), row["file"]
            frame = frames[-1]
        elif status.startswith("no-terminator"):
            # no "!" line: the frame is cut short and the hub must not take it
            assert all(f["error"] for f in frames), row["file"]
            checked += 1
            continue
        else:
            frame = frames[0]
            assert frame["crc"] == CRC[status], row["file"]
        if row["peer_asserted_values"] == "yes":
            for column, path, scale in FIELDS:
                if row[column]:
                    got = dig(frame, path)
                    assert got is not None and abs(got - float(row[column]) * scale) <= 0.0005 * scale, (
                        row["file"], column, got)
        checked += 1
    assert checked == 64


def test_the_hub_accepts_only_valid_or_absent_by_design_crcs(data_dir):
    for row in rows(data_dir):
        for frame in split_frames((data_dir / "dsmr" / row["file"]).read_bytes()):
            if frame.error is not None:
                continue
            accepted = crc_acceptable(frame)
            if frame.crc is CrcStatus.INVALID:
                assert not accepted, row["file"]
            elif frame.crc is CrcStatus.VALID:
                assert accepted, row["file"]
            elif row["dsmr_version"].startswith(("4", "5")):
                assert not accepted, row["file"]  # a DSMR 4/5 telegram lost its CRC line


def test_decode_command_on_the_566_telegram_capture(data_dir):
    path = data_dir / "dsmr/streams/nielsbasjes_iskra-am550-dsmr5_ttyUSB0-raw_stream.txt"
    result = runner.invoke(app, ["p1", "decode", str(path)])
    assert result.exit_code == 0
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(frames) == 566 and all(f["crc"] == "valid" and f["error"] is None for f in frames)
    assert all(f["import_kwh"]["total"] is not None and f["power_import_w"] is not None for f in frames)
    assert "566 frame(s), 0 rejected" in result.stderr
    via_stdin = runner.invoke(app, ["p1", "decode", "-"], input=path.read_bytes())
    assert via_stdin.stdout == result.stdout


@pytest.mark.parametrize("name, variant, version", [
    ("ndokter_sagemcom-t210-d-r_austria-plain.txt", "austria", "5.0"),
    ("ndokter_fluvius-emucs_v171.txt", "belgium", "5.0 (e-MUCS 50217)"),
    ("dsmrreader_luxembourg-smarty.txt", "luxembourg", "4.2"),
    ("dsmrreader_sweden-kamstrup.txt", "sweden", None),
    ("ndokter_v5_eon-hungary_sagemcom.txt", "hungary", None),
    ("ndokter_iskra-ie5t-200_ireland.txt", "ireland", None),
    ("ndokter_v2-2_iskra-mt382.txt", "dsmr2.2-3", "2.2/3.0"),
    ("ndokter_easymeter-q3da1004-v304_com1-gateway.txt", "easymeter-q3d", None),  # its W once read it as Austria's
])
def test_variants_are_recognised(data_dir, name, variant, version):
    [frame, *_] = split_frames((data_dir / "dsmr" / name).read_bytes())
    out = normalise(frame)
    assert out["variant"] == variant and out["version"] == version


def test_austrian_wh_units_become_kwh_and_w(data_dir):
    [frame] = split_frames((data_dir / "dsmr/ndokter_sagemcom-t210-d-r_austria-plain.txt").read_bytes())
    out = normalise(frame)
    assert out["import_kwh"] == {"t1": 5017.12, "t2": 1528.646, "total": 6545.766}
    assert out["power_import_w"] == 286


def test_garbage_only_input_prints_no_frames_and_says_so():
    result = runner.invoke(app, ["p1", "decode", "-"], input=b"\x00\xff garbage without telegrams\r\n" * 10)
    assert result.exit_code == 0 and result.stdout == ""
    assert "0 frame(s)" in result.stderr


def test_impossible_values_are_named_in_error_and_the_output_stays_json(data_dir):
    """A CRC-valid telegram whose import register says NaN: `p1 decode` prints strict JSON (no NaN token) with the
    register null and the error naming it, so a script reading the output sees why the hub refused it."""
    raw = (data_dir / "dsmr/dsmrreader_example-dsmr50.txt").read_bytes()
    body = raw[:raw.rindex(b"!") + 1].replace(b"1-0:1.8.1(123456.789*kWh)", b"1-0:1.8.1(nan*kWh)")
    result = runner.invoke(app, ["p1", "decode", "-"], input=body + b"%04X\r\n" % crc16_arc(body))
    assert result.exit_code == 0, result.output

    def no_nan(token: str) -> None:
        raise AssertionError(f"{token} in the output")

    [line] = result.stdout.splitlines()
    out = json.loads(line, parse_constant=no_nan)
    assert out["crc"] == "valid" and out["import_kwh"]["t1"] is None
    assert out["error"] == "import register t1 (kWh) is nan, not a reading a meter gives (0 to 1e+09)"


def test_missing_file_is_a_clear_error():
    result = runner.invoke(app, ["p1", "decode", "/nonexistent/p1.txt"])
    assert result.exit_code == 2 and "no such file" in result.output
