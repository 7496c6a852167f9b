"""Real telegrams from real meters (../shared/data/dsmr)."""

from __future__ import annotations

import csv
import math
import re
from dataclasses import astuple

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.sources.serial_p1 import P1Decoder
from protocols.crc16 import crc16_arc
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


FIELD_VALUES = st.sampled_from([b"", b"-1", b"abc", b"999999999999.999", b"1e400", b"nan", b"inf", b"(", b")",
                                b"*", b"*kW", b"\xff", b"-0.5*kW", b"99", b"X", b"230101000000W", b"000000000000X",
                                b"9999999999.999*m3", b"1-0:1.8.1", b"\r\n"])


def test_any_telegram_with_a_valid_crc_gives_a_reading_or_a_counted_refusal(data_dir):
    """Real telegrams with values, anywhere in any line, replaced by what a broken meter or a bad line could put
    there, and a valid CRC made again (so the decoder, not the CRC, has to judge): each frame gives a reading whose
    numbers a meter can give, or is counted as refused; nothing escapes (NaN, 1e400 kWh and a tariff of "abc"
    once ended the hub's P1 source)."""
    telegrams = [f.raw for path in sorted((data_dir / "dsmr").glob("*.txt"))
                 for f in split_frames(path.read_bytes()) if f.error is None]
    assert len(telegrams) >= 20

    @settings(max_examples=1000, deadline=None, derandomize=True)
    @given(st.sampled_from(telegrams), st.data())
    def judged(raw: bytes, data: st.DataObject) -> None:
        lines = raw[:raw.rindex(b"!")].split(b"\r\n")
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(1, len(lines) - 2))  # the header and the "!" line as they were
            values = [m.span(1) for m in re.finditer(rb"\(([^()]*)\)", lines[i])]
            a, b = data.draw(st.sampled_from(values)) if values else (0, 0)
            lines[i] = lines[i][:a] + data.draw(FIELD_VALUES) + lines[i][b:]
        body = b"\r\n".join(lines) + b"!"
        decoder = P1Decoder()
        readings = decoder.feed(body + b"%04X\r\n" % crc16_arc(body))
        assert decoder.counters["decoder_errors"] == 0
        refused = sum(n for key, n in decoder.counters.items() if key.startswith("rejected_"))
        assert len(readings) + refused == decoder.counters["frames"] == 1
        for reading in readings:
            numbers = [v for v in astuple(reading)[2:] if isinstance(v, int | float)]
            assert all(math.isfinite(v) and 0 <= v <= 1e12 for v in numbers), reading

    judged()


def test_real_meters_without_a_clock_are_read_and_stamped_by_the_hubs(data_dir):
    """DSMR 2.2 and 3.0 meters and the EasyMeter Q3D send no timestamp and no CRC by design. Through the hub's
    decoder each real telegram of them is a reading stamped by the hub's clock, with the values the peers assert
    (2.2 and 3.0) or the telegram's own registers (the Q3D, which no peer asserts). The hub stored none before."""
    hub_now = 1_764_072_000
    checked = 0
    with (data_dir / "dsmr/index.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["crc_status"] == "no-crc" and (
            r["dsmr_version"] in ("2.2", "3.0") or r["file"].startswith("ndokter_easymeter-q3d"))]
    for row in rows:
        raw = (data_dir / "dsmr" / row["file"]).read_bytes()
        decoder = P1Decoder(clock=lambda: hub_now)
        readings = decoder.feed(raw + b"\r\n/ISK5 the next telegram's header ends this one\r\n")
        assert len(readings) == 1 and decoder.counters["readings"] == 1, (row["file"], dict(decoder.counters))
        [reading] = readings
        assert reading.ts == hub_now, row["file"]
        if row["peer_asserted_values"] == "yes":
            assert (reading.import_t1_wh, reading.import_t2_wh, reading.export_t1_wh, reading.export_t2_wh) == tuple(
                round(float(row[k]) * 1000) for k in ("e_import_t1_kwh", "e_import_t2_kwh", "e_export_t1_kwh",
                                                       "e_export_t2_kwh")), row["file"]
            assert reading.power_import_w == round(float(row["power_import_kw"]) * 1000), row["file"]
            assert reading.power_export_w == round(float(row["power_export_kw"]) * 1000), row["file"]
        else:
            total = re.search(rb"1-0:1\.8\.0\*255\(([0-9.]+)\*kWh\)", raw)
            power = re.search(rb"1-0:1\.7\.0\*255\(([0-9.]+)\*W\)", raw)
            assert total and power, row["file"]
            assert reading.import_t1_wh + reading.import_t2_wh == round(float(total.group(1)) * 1000), row["file"]
            assert reading.power_import_w == round(float(power.group(1))), row["file"]
        checked += 1
    assert checked >= 6  # four DSMR 2.2/3.0 telegrams, two Q3Ds
