"""Real telegrams from real meters (../shared/data/dsmr)."""

from __future__ import annotations

import csv

from protocols.p1 import CrcStatus, split_frames
from protocols.p1_normalise import decode_reading


def test_real_stream_capture_yields_566_valid_readings(data_dir):
    raw = (data_dir / "dsmr/streams/nielsbasjes_iskra-am550-dsmr5_ttyUSB0-raw_stream.txt").read_bytes()
    frames = split_frames(raw)
    valid = [f for f in frames if f.error is None and f.crc is CrcStatus.VALID]
    assert len(valid) == 566
    stamps = [decode_reading(f.raw).ts for f in valid]
    assert stamps == sorted(stamps) and len(set(stamps)) == 566


def test_crc_status_matches_the_index_for_single_telegram_files(data_dir):
    expected = {"valid": CrcStatus.VALID, "INVALID": CrcStatus.INVALID}
    checked = 0
    with (data_dir / "dsmr/index.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            status = expected.get(row["crc_status"])
            if status is None:
                continue
            frames = split_frames((data_dir / "dsmr" / row["file"]).read_bytes())
            complete = [fr for fr in frames if fr.error is None or fr.crc is CrcStatus.INVALID]
            assert complete, row["file"]
            assert complete[-1].crc is status, row["file"]
            checked += 1
    assert checked >= 40
