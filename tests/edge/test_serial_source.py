"""The hub's P1 source on a real pseudo-terminal, as it would read /dev/ttyUSB0."""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from edge.sources.serial_p1 import SerialP1Source
from firmware_sim.meter import SimMeter
from firmware_sim.pty_port import PtyPort
from firmware_sim.run import FAULTS
from protocols.crc16 import crc16_arc

START = 1_764_072_000


async def _collect(source: SerialP1Source, want: int, timeout: float = 10.0) -> list:
    got: list = []
    task = asyncio.create_task(source.run(got.extend))
    try:
        async with asyncio.timeout(timeout):
            while len(got) < want:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return got


async def _through_a_pty(stream: bytes, want: int) -> tuple[SerialP1Source, list]:
    """``stream`` written to a real pseudo-terminal once the hub's P1 source has it open; the source and the
    ``want`` readings it gave."""
    port = PtyPort()
    source = SerialP1Source(port.path)
    collecting = asyncio.create_task(_collect(source, want))
    await asyncio.to_thread(port.wait_for_reader, lambda: False)
    port.write(stream)
    got = await collecting
    port.close()
    return source, got


async def test_corrupt_frames_are_counted_and_the_readings_around_them_arrive():
    meter = SimMeter()
    rng = random.Random(3)
    good = [meter.tick(START + i, 400.0 + i) for i in range(9)]
    stream = b""
    for i, reading in enumerate(good):
        telegram = meter.telegram(reading)
        stream += telegram
        if i % 3 == 0:
            stream += FAULTS["bad_crc"](telegram, rng)
        elif i % 3 == 1:
            stream += FAULTS["truncated"](telegram, rng)
        else:
            stream += FAULTS["garbage"](telegram, rng)
    source, got = await _through_a_pty(stream, len(good))
    assert got == good
    assert source.counters["rejected_bad_crc"] == 3
    assert source.counters["rejected_truncated"] == 3
    assert source.counters["skipped_bytes"] > 0


async def test_telegrams_with_impossible_values_are_refused_and_the_readings_around_them_arrive():
    """A valid CRC only says the line carried the meter's bytes: a register of NaN, of 1e400 kWh, a negative
    power or a tariff that is no number (each once ended the hub's P1 source) is counted and refused."""
    meter = SimMeter()
    good = [meter.tick(START + 10 * i, 400.0 + i) for i in range(5)]
    impossible = [(b"1-0:1.8.1(", b"nan*kWh"), (b"1-0:1.8.2(", b"1e400*kWh"), (b"1-0:1.7.0(", b"-0.5*kW"),
                  (b"0-0:96.14.0(", b"abc")]
    stream = b""
    for reading, (obis, value) in zip(good, [*impossible, (None, None)], strict=True):
        telegram = meter.telegram(reading)
        stream += telegram
        if obis is not None and value is not None:
            stream += with_value(meter.telegram(meter.tick(reading.ts + 5, 400.0)), obis, value)
    source, got = await _through_a_pty(stream, len(good))
    assert got == good
    assert source.counters["rejected_undecodable"] == len(impossible)
    assert source.counters["decoder_errors"] == 0


def with_value(telegram: bytes, obis: bytes, value: bytes) -> bytes:
    """``telegram`` with the value of its ``obis`` line replaced, and its CRC made valid again."""
    start = telegram.index(obis) + len(obis)
    body = telegram[:start] + value + telegram[telegram.index(b")", start):telegram.rindex(b"!") + 1]
    return body + b"%04X\r\n" % crc16_arc(body)


async def test_port_that_vanishes_is_reopened():
    port = PtyPort()
    link = port.path
    source = SerialP1Source("/nonexistent/ttyOHMNI", max_backoff_s=0.2)
    got: list = []
    task = asyncio.create_task(source.run(got.extend))
    await asyncio.sleep(0.5)
    assert not source.connected and source.counters["port_errors"] >= 1
    assert "ttyOHMNI" in (source.last_error or "")
    # the installer plugs the meter in: the same path now exists (a symlink, like udev's)
    tmp = f"/tmp/ohmni-test-tty-{os.getpid()}"
    os.symlink(link, tmp)
    source.port = tmp
    try:
        await asyncio.to_thread(port.wait_for_reader, lambda: False)
        meter = SimMeter()
        reading = meter.tick(START, 123.0)
        port.write(meter.telegram(reading))
        async with asyncio.timeout(10):
            while not got:
                await asyncio.sleep(0.02)
        assert got == [reading] and source.connected
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        os.unlink(tmp)
        port.close()


async def test_seven_bit_even_parity_line_is_read():
    from firmware_sim.run import with_parity

    port = PtyPort()
    meter = SimMeter()
    readings = [meter.tick(START + i, 300.0) for i in range(3)]
    source = SerialP1Source(port.path, baudrate=9600, bytesize=7, parity="E")
    collecting = asyncio.create_task(_collect(source, 3))
    await asyncio.to_thread(port.wait_for_reader, lambda: False)
    port.write(with_parity(b"".join(meter.telegram(r) for r in readings)))
    assert await collecting == readings
    port.close()


@pytest.mark.parametrize("version", ["22", "30", "q3d"])
async def test_a_clockless_meter_on_a_7e1_line_is_stored_by_the_hubs_clock_and_none_is_lost(version):
    """What a 7E1 line really carries: DSMR 2.2 or 3.0 telegrams, or an EasyMeter Q3D's, no CRC and no timestamp.
    The hub stamps each with its own clock as it reads it; three that come at once (a backlog the port held while
    the hub was away) take the seconds after it, so each is its own reading and none is stored over another."""
    import time
    from dataclasses import replace

    from firmware_sim.run import with_parity

    port = PtyPort()
    meter = SimMeter(version=version)
    sent = [meter.tick(START + 10 * i, 300.0 + 1000 * i) for i in range(3)]
    source = SerialP1Source(port.path, baudrate=9600, bytesize=7, parity="E")
    collecting = asyncio.create_task(_collect(source, 3))
    await asyncio.to_thread(port.wait_for_reader, lambda: False)
    before = int(time.time())
    port.write(with_parity(b"".join(meter.telegram(r) for r in sent)))
    got = await collecting
    after = int(time.time())
    port.close()
    assert [r.power_import_w for r in got] == [300, 1300, 2300]
    assert got == [replace(r, ts=g.ts) for r, g in zip(sent, got, strict=True)]
    stamps = [r.ts for r in got]
    assert before <= stamps[0] <= after and stamps == sorted(set(stamps)), stamps
    assert stamps[-1] - stamps[0] <= 2 + (after - before)
    assert source.counters["readings"] == 3 and source.counters["rejected_undecodable"] == 0
