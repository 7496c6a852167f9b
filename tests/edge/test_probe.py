"""`ohmni hub probe` on a real pseudo-terminal fed by the simulated meter."""

from __future__ import annotations

import subprocess
import sys
import time

from edge.probe import _interval

START = "1764057600"  # 2025-11-25 08:00 UTC: a 10 s meter's first telegram goes out at once


def run_probe(tmp_path, line: str | None, every: int | None = 1, speed: float = 1,
              listen: float = 5, dsmr: str | None = None) -> subprocess.CompletedProcess:
    every_flag = ["--every", str(every)] if every is not None else []  # None: the sim's default for the line
    line_flag = ["--line", line] if line is not None else []  # None: the sim's default for the version
    dsmr_flag = ["--dsmr", dsmr] if dsmr is not None else []
    sim = subprocess.Popen([sys.executable, "-m", "ohmni", "sim", "run", "--speed", str(speed), "--duration", "30",
                            "--out", str(tmp_path), "--link", str(tmp_path / "tty"), *line_flag, *dsmr_flag,
                            *every_flag, "--start", START],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not (tmp_path / "tty").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return subprocess.run([sys.executable, "-m", "ohmni", "hub", "probe", "--port", str(tmp_path / "tty"),
                               "--listen", str(listen)], capture_output=True, text=True, timeout=60)
    finally:
        sim.terminate()
        sim.wait(10)


def test_probe_finds_a_dsmr5_meter_at_8n1(tmp_path):
    result = run_probe(tmp_path, "8N1")
    assert result.returncode == 0, result.stderr
    assert "115200 baud 8N1, dsmr5 (DSMR 5.0)" in result.stdout and "CRC valid" in result.stdout
    assert "a telegram every 1 s" in result.stdout
    assert 'parity = "N"' in result.stdout
    assert "note:" not in result.stderr  # a DSMR 5 meter's 1 s is what the models are made for


def test_probe_names_a_ten_second_meters_interval_by_its_clock_and_what_it_costs(tmp_path):
    # 10 simulated seconds a real second: by their arrival the telegrams come a second apart, by the meter's clock 10
    result = run_probe(tmp_path, "8N1", every=10, speed=10)
    assert result.returncode == 0, result.stderr
    assert "a telegram every 10 s" in result.stdout
    assert "dsmr4 (DSMR 4.2)" in result.stdout  # a meter that sends every 10 s is a DSMR 4 meter, and says so
    assert "note: a telegram every 10 s" in result.stderr and "washing machine" in result.stderr


def test_probe_waits_past_its_listening_time_for_a_second_telegram(tmp_path):
    # a telegram every 10 real seconds and 4 s to listen: the first telegram, at once, extends the wait for the next
    result = run_probe(tmp_path, "8N1", every=10, speed=1, listen=4)
    assert result.returncode == 0, result.stderr
    assert "a telegram every 10 s" in result.stdout


def test_probe_recognises_a_dsmr_2_2_meter_on_seven_bit_even_parity(tmp_path):
    # a 7E1 line's meter: DSMR 2.2, no CRC, no timestamp, every 10 s (the sim's default there), timed by arrival
    result = run_probe(tmp_path, "7E1", every=None)
    assert result.returncode == 0, result.stderr
    assert "7E1, dsmr2.2-3 (DSMR 2.2/3.0)" in result.stdout and "CRC absent" in result.stdout
    assert "a telegram every 10 s" in result.stdout and "bytesize = 7" in result.stdout


def test_probe_recognises_a_dsmr_3_meter_the_sim_puts_on_its_own_line(tmp_path):
    # `sim run --dsmr 3.0` alone: a 7E1 line (a DSMR 3 meter's), every 10 s, no CRC; the probe finds it as it finds 2.2
    result = run_probe(tmp_path, None, every=None, dsmr="3.0")
    assert result.returncode == 0, result.stderr
    assert "7E1, dsmr2.2-3 (DSMR 2.2/3.0)" in result.stdout and "CRC absent" in result.stdout
    assert "a telegram every 10 s" in result.stdout and "bytesize = 7" in result.stdout


def test_probe_recognises_an_easymeter_q3d_and_does_not_call_it_dsmr(tmp_path):
    # `sim run --dsmr Q3D`: a German D0 meter on 7E1, every 2 s, no CRC or clock; named for what it is
    result = run_probe(tmp_path, None, every=None, dsmr="Q3D")
    assert result.returncode == 0, result.stderr
    assert "7E1, easymeter-q3d (EasyMeter D0, not DSMR)" in result.stdout and "CRC absent" in result.stdout
    assert "a telegram every 2 s" in result.stdout and "bytesize = 7" in result.stdout
    assert "meter E0099000012345678" in result.stdout


def test_probe_on_a_silent_port_says_what_to_check(tmp_path):
    import os
    master, slave = os.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "ohmni", "hub", "probe", "--port", os.ttyname(slave),
                                 "--listen", "1"], capture_output=True, text=True, timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert result.returncode == 1 and "no P1 telegram" in result.stderr


def test_the_interval_is_the_meters_clock_unless_that_clock_stood_still_or_went_back():
    """Two telegrams framed as the probe frames them: their timestamps say the interval; where the second is not
    after the first (a clock set back or stuck), their arrival does."""
    from firmware_sim.meter import SimMeter
    from protocols.p1 import P1Framer

    meter = SimMeter()

    def frames(*stamps: int) -> list:
        data = b"".join(meter.telegram(meter.tick(ts, 300.0)) for ts in stamps)
        return [f for f in P1Framer().feed(data) if f.error is None]

    arrived = [100.0, 101.0]
    assert _interval(frames(1_764_057_600, 1_764_057_610), arrived) == 10.0
    assert _interval(frames(1_764_057_610, 1_764_057_600), arrived) == 1.0
    assert _interval(frames(1_764_057_600, 1_764_057_600), arrived) == 1.0
    assert _interval(frames(1_764_057_600), arrived[:1]) is None


def test_probe_and_status_name_the_port_by_its_lasting_name(tmp_path, monkeypatch):
    """A P1 cable seen as /dev/ttyUSB0 can be /dev/ttyUSB1 after a reboot that found a Zigbee stick first (a home on
    zigbee2mqtt has one): the probe's [meter] lines now name it as udev does for good (/dev/serial/by-id/…), and
    `hub status` warns of a kernel name. Here the kernel name is the simulated meter's pty, and the udev folder a
    folder of the test's own with the same kind of link."""
    import os
    import re

    from typer.testing import CliRunner

    import edge.probe as probe_module
    from edge.config import HubConfig
    from edge.provision import checks
    from ohmni.cli import app

    sim = subprocess.Popen([sys.executable, "-m", "ohmni", "sim", "run", "--duration", "30", "--out", str(tmp_path),
                            "--link", str(tmp_path / "tty"), "--start", START],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not (tmp_path / "tty").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        kernel = os.path.realpath(tmp_path / "tty")  # /dev/pts/N, standing for /dev/ttyUSB0
        by_id = tmp_path / "by-id"
        by_id.mkdir()
        lasting = by_id / "usb-FTDI_FT232R_USB_UART_A10K1234-if00-port0"
        lasting.symlink_to(kernel)
        monkeypatch.setattr(probe_module, "BY_ID", by_id)
        monkeypatch.setattr(probe_module, "KERNEL_NAMES", re.compile(r"/dev/pts/\d+"))
        result = CliRunner().invoke(app, ["hub", "probe", "--port", kernel, "--listen", "5"])
    finally:
        sim.terminate()
        sim.wait(30)
    assert result.exit_code == 0, result.output
    assert f'port = "{lasting}"' in result.output and f"its lasting name {lasting}" in result.output

    said = {c.name: c for c in checks(HubConfig.model_validate({"meter": {"port": kernel}}))}
    assert said["meter port name"].verdict == "warn" and f'port = "{lasting}"' in said["meter port name"].advice
    said = {c.name: c for c in checks(HubConfig.model_validate({"meter": {"port": str(lasting)}}))}
    assert "meter port name" not in said
