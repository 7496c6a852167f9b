"""`ohmni p1 decode --port` on a real pseudo-terminal: what an installer sees of a meter, live."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from datetime import datetime

from firmware_sim.meter import SimMeter
from firmware_sim.pty_port import PtyPort
from firmware_sim.run import with_parity

START = 1_764_072_000


def test_a_clockless_meter_read_from_a_port_has_each_frame_stamped_as_it_was_read():
    """A DSMR 2.2 meter on 9600 7E1: its telegrams carry no time, so each printed frame says when it was read
    ("received_at", as the hub stamps such a meter), and Ctrl-C ends the command with its summary, not a
    traceback."""
    port = PtyPort()
    meter = SimMeter(version="22")
    proc = subprocess.Popen([sys.executable, "-m", "ohmni", "p1", "decode", "--port", port.path, "--baudrate", "9600",
                             "--bytesize", "7", "--parity", "E"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert port.wait_for_reader(lambda: proc.poll() is not None), proc.stderr.read() if proc.stderr else ""
        before = time.time()
        lines: list[dict] = []
        for i in range(3):
            port.write(with_parity(meter.telegram(meter.tick(START + 10 * i, 300.0 + 1000 * i))))
            ready, _, _ = select.select([proc.stdout], [], [], 15)
            assert ready, "no frame printed within 15 s"
            assert proc.stdout is not None
            lines.append(json.loads(proc.stdout.readline()))
        after = time.time()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        port.close()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "3 frame(s), 0 rejected" in err, err
    assert [(f["variant"], f["timestamp"], f["power_import_w"]) for f in lines] == [
        ("dsmr2.2-3", None, 300), ("dsmr2.2-3", None, 1300), ("dsmr2.2-3", None, 2300)]
    stamps = [datetime.fromisoformat(f["received_at"]).timestamp() for f in lines]
    assert int(before) <= stamps[0] <= stamps[-1] <= after + 1, (before, stamps, after)
