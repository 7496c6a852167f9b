"""`ohmni hub probe` on a real pseudo-terminal fed by the simulated meter."""

from __future__ import annotations

import subprocess
import sys
import time


def run_probe(tmp_path, line: str) -> subprocess.CompletedProcess:
    sim = subprocess.Popen([sys.executable, "-m", "ohmni", "sim", "run", "--speed", "1", "--duration", "30",
                            "--out", str(tmp_path), "--link", str(tmp_path / "tty"), "--line", line],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not (tmp_path / "tty").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return subprocess.run([sys.executable, "-m", "ohmni", "hub", "probe", "--port", str(tmp_path / "tty"),
                               "--listen", "5"], capture_output=True, text=True, timeout=60)
    finally:
        sim.terminate()
        sim.wait(10)


def test_probe_finds_a_dsmr5_meter_at_8n1(tmp_path):
    result = run_probe(tmp_path, "8N1")
    assert result.returncode == 0, result.stderr
    assert "115200 baud 8N1, dsmr5 (DSMR 5.0)" in result.stdout and "CRC valid" in result.stdout
    assert "a telegram every 1 s" in result.stdout
    assert 'parity = "N"' in result.stdout


def test_probe_recognises_seven_bit_even_parity(tmp_path):
    result = run_probe(tmp_path, "7E1")
    assert result.returncode == 0, result.stderr
    assert "7E1" in result.stdout and "bytesize = 7" in result.stdout


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
