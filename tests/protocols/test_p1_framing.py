"""Framing survives the real line: garbage, cut-off streams, truncated frames, odd CRCs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from protocols.crc16 import crc16_arc
from protocols.p1 import CrcStatus, DecodeError, FrameError, P1Framer, encode_dsmr, encode_dsmr5, split_frames
from protocols.p1_normalise import decode_reading, normalise
from protocols.readings import MeterReading


def reading(ts: int = 1_764_072_000, power_w: int = 2345) -> MeterReading:
    return MeterReading(ts=ts, meter_id="E0012345678901234", import_t1_wh=1_234_567, import_t2_wh=7_654_321,
                        export_t1_wh=0, export_t2_wh=5, power_import_w=power_w, power_export_w=0,
                        voltage_l1_v=231.2, tariff=2, power_failures=0, long_power_failures=0)


def test_encoded_telegram_has_a_correct_crc_and_decodes_to_the_same_reading():
    telegram = encode_dsmr5(reading())
    body, _, crc = telegram.rpartition(b"!")
    assert int(crc.strip(), 16) == crc16_arc(body + b"!")
    [frame] = split_frames(telegram)
    assert frame.crc is CrcStatus.VALID and frame.error is None
    assert decode_reading(frame.raw) == reading()


def test_a_simulated_dsmr_4_2_telegram_is_read_as_one_with_no_voltage():
    """The simulator's 10 s meter sends what a DSMR 4.2 meter sends: version 42, a text message code, no voltage
    (5.0 added it). The hub reads it through the DSMR 4 variant, to the same registers and power, voltage unknown;
    the 5.0 telegram of the same reading is the one every other test sends."""
    telegram = encode_dsmr(reading(), "42")
    [frame] = split_frames(telegram)
    assert frame.crc is CrcStatus.VALID and frame.error is None
    assert b"\r\n1-3:0.2.8(42)\r\n" in telegram and b"0-0:96.13.1()" in telegram and b"1-0:32.7.0" not in telegram
    out = normalise(frame)
    assert out["variant"] == "dsmr4" and out["version"] == "4.2"
    assert decode_reading(frame.raw) == replace(reading(), voltage_l1_v=None)
    five = encode_dsmr(reading())
    assert five == encode_dsmr5(reading()) and b"1-0:32.7.0(231.2*V)" in five and b"96.13.1" not in five
    with pytest.raises(ValueError, match="DSMR version '31'"):
        encode_dsmr(reading(), "31")


def test_a_simulated_dsmr_2_2_telegram_has_no_crc_nor_clock_and_its_reader_stamps_it():
    """A 7E1 line's meter (DSMR 2.2/3) sends no CRC and no timestamp, five-digit kWh and kW to 10 W. The hub takes it
    through the 2.2/3 variant and stamps it with its own clock; without one there is no time to store it by. A DSMR 5
    telegram that lost its timestamp is still refused: its meter has a clock, and one gone wrong is no time to trust."""
    from protocols.p1_normalise import to_reading
    from protocols.p1_variants import BY_NAME

    sent = replace(reading(power_w=2340), voltage_l1_v=None, power_failures=None, long_power_failures=None)
    telegram = encode_dsmr(sent, "22")
    assert telegram.endswith(b"\r\n0-0:96.13.0()\r\n!\r\n")
    assert b"1-0:1.8.1(01234.567*kWh)" in telegram and b"1-0:1.7.0(0002.34*kW)" in telegram
    assert b"0-0:1.0.0" not in telegram and b"1-3:0.2.8" not in telegram
    [frame] = split_frames(telegram)
    assert frame.crc is CrcStatus.ABSENT and frame.error is None and not BY_NAME["dsmr2.2-3"].has_crc
    out = normalise(frame)
    assert (out["variant"], out["version"], out["timestamp"]) == ("dsmr2.2-3", "2.2/3.0", None)
    assert to_reading(out, received_at=1_764_072_007) == replace(sent, ts=1_764_072_007)
    with pytest.raises(DecodeError, match="no valid timestamp"):
        to_reading(out)
    five = encode_dsmr(reading()).replace(b"0-0:1.0.0(251125130000W)\r\n", b"")
    body = five[:five.rindex(b"!") + 1]
    [clockless_five] = split_frames(body + f"{crc16_arc(body):04X}\r\n".encode())
    assert clockless_five.crc is CrcStatus.VALID and b"0-0:1.0.0" not in body
    with pytest.raises(DecodeError, match="no valid timestamp"):
        to_reading(normalise(clockless_five), received_at=1_764_072_007)


def test_a_simulated_dsmr_3_0_telegram_is_an_iskra_mt382s_of_3_0_and_read_as_one():
    """DSMR 3.0 as an Iskra MT382 of 3.0 writes it (the recorded ndokter_v3_iskra-mt382 telegram): as 2.2, but kW to
    three digits before the point and the threshold in amps. The hub reads it through the same 2.2/3 variant."""
    from protocols.p1_normalise import to_reading

    sent = replace(reading(power_w=2340), voltage_l1_v=None, power_failures=None, long_power_failures=None)
    telegram = encode_dsmr(sent, "30")
    assert b"1-0:1.7.0(002.34*kW)" in telegram and b"0-0:17.0.0(016*A)" in telegram
    assert b"1-0:1.8.1(01234.567*kWh)" in telegram and b"0-0:1.0.0" not in telegram
    assert telegram.endswith(b"\r\n!\r\n")
    [frame] = split_frames(telegram)
    assert frame.crc is CrcStatus.ABSENT and frame.error is None
    out = normalise(frame)
    assert (out["variant"], out["timestamp"]) == ("dsmr2.2-3", None)
    assert to_reading(out, received_at=1_764_072_007) == replace(sent, ts=1_764_072_007)


def test_a_simulated_easymeter_q3d_telegram_has_the_recorded_ones_lines_and_is_read_as_one(data_dir):
    """The EasyMeter Q3D (German D0, not DSMR): the same identification, OBIS codes in the same order and the same
    number formats as the recorded Q3DA1004 telegram, no CRC, no clock, no tariff; the hub reads it through its
    ``easymeter-q3d`` variant, the one total as T1, stamped by its own clock."""
    import re

    from protocols.p1_normalise import to_reading

    sent = replace(reading(power_w=1688), import_t2_wh=0, export_t1_wh=0, export_t2_wh=0, voltage_l1_v=None,
                   tariff=None, power_failures=None, long_power_failures=None)
    telegram = encode_dsmr(sent, "q3d")
    recorded = (data_dir / "dsmr/ndokter_easymeter-q3da1004-v304_com1-gateway.txt").read_bytes()
    recorded = recorded[:recorded.index(b"\n!") + 2]  # the gateway's own lines after "!" are not the meter's

    def shape(raw: bytes) -> list[str]:  # each line with its digits as 9s: codes, widths and units, not values
        return [re.sub(r"(?<=\()[^)]*?(?=[*)])", lambda m: re.sub(r"\d", "9", m.group()), line)
                for line in raw.decode("latin-1").splitlines()]

    assert telegram.startswith(b"/ESY5Q3DA1004 V3.04\r\n\r\n") and telegram.endswith(b"\r\n!\r\n")
    got, want = shape(telegram), shape(recorded)
    assert [line.split("(")[0] for line in got] == [line.split("(")[0] for line in want]
    assert [g for g, w in zip(got, want, strict=True) if g != w and "0.0.0" not in g and "96.1.255" not in g] == []
    [frame] = split_frames(telegram)
    assert frame.crc is CrcStatus.ABSENT and frame.error is None
    out = normalise(frame)
    assert (out["variant"], out["timestamp"], out["tariff"]) == ("easymeter-q3d", None, None)
    assert to_reading(out, received_at=1_764_072_007) == replace(sent, ts=1_764_072_007)


def test_garbage_before_between_and_after_frames_is_skipped_and_counted():
    a, b = encode_dsmr5(reading(1)), encode_dsmr5(reading(2))
    framer = P1Framer()
    frames = framer.feed(b"\x00\xffnoise(" + a + b"junk after crc\r\n\xfe" + b) + framer.flush()
    assert [decode_reading(f.raw).ts for f in frames] == [1, 2]
    assert framer.stats.skipped_bytes > 0


def test_stream_starting_mid_telegram_drops_the_partial_block():
    a, b = encode_dsmr5(reading(1)), encode_dsmr5(reading(2))
    frames = split_frames(a[len(a) // 2:] + b)
    assert [decode_reading(f.raw).ts for f in frames if f.error is None] == [2]


def test_truncated_frame_followed_by_a_full_one():
    a, b = encode_dsmr5(reading(1)), encode_dsmr5(reading(2))
    for cut in (25, 100, len(a) // 2, len(a) - 12):
        frames = split_frames(a[:cut] + b)
        assert [f.error for f in frames] == [FrameError.TRUNCATED, None], cut
        assert decode_reading(frames[1].raw).ts == 2


def test_bad_crc_is_flagged_but_still_framed():
    a = bytearray(encode_dsmr5(reading()))
    a[a.index(b"02.345")] = ord("9")
    [frame] = split_frames(bytes(a))
    assert frame.crc is CrcStatus.INVALID and frame.error is FrameError.BAD_CRC


@pytest.mark.parametrize("transform", [
    lambda t: t.replace(b"\r\n", b"\n"),  # LF-only endings, CRC recomputed below
])
def test_lf_only_endings(transform):
    body = transform(encode_dsmr5(reading())).rpartition(b"!")[0] + b"!"
    telegram = body + f"{crc16_arc(body):04X}\n".encode()
    [frame] = split_frames(telegram)
    assert frame.crc is CrcStatus.VALID
    assert decode_reading(frame.raw).power_import_w == 2345


def test_lowercase_and_three_digit_crcs_are_valid():
    body = encode_dsmr5(reading()).rpartition(b"!")[0] + b"!"
    crc = crc16_arc(body)
    [frame] = split_frames(body + f"{crc:04x}\r\n".encode())
    assert frame.crc is CrcStatus.VALID
    # find a telegram whose CRC has a leading zero nibble, written with three digits
    for power in range(1000, 6000):
        body = encode_dsmr5(reading(power_w=power)).rpartition(b"!")[0] + b"!"
        if crc16_arc(body) < 0x1000:
            [frame] = split_frames(body + f"{crc16_arc(body):X}\r\n".encode())
            assert frame.crc is CrcStatus.VALID
            return
    pytest.fail("no telegram with a three-digit CRC found")


def test_a_slash_inside_a_value_is_not_a_frame_start():
    text = encode_dsmr5(reading()).replace(b"0-0:96.13.0()", b"0-0:96.13.0(see /ABC5 here)")
    body = text.rpartition(b"!")[0] + b"!"
    [frame] = split_frames(body + f"{crc16_arc(body):04X}\r\n".encode())
    assert frame.crc is CrcStatus.VALID


def test_frames_split_across_many_small_reads():
    stream = b"".join(encode_dsmr5(reading(ts)) for ts in range(5))
    framer = P1Framer()
    frames = []
    for i in range(0, len(stream), 7):
        frames += framer.feed(stream[i:i + 7])
    assert [decode_reading(f.raw).ts for f in frames] == list(range(5))


def test_oversized_frame_without_end_is_dropped():
    framer = P1Framer()
    frames = framer.feed(b"/ABC5 huge\r\n" + b"1-0:1.8.1(1)\r\n" * 2000)
    assert frames and frames[0].error is FrameError.OVERSIZED
