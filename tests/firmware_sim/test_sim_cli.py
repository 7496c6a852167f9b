"""`ohmni sim run`'s meter options: a version or line it cannot send is named, before any port is opened."""

from __future__ import annotations

import subprocess
import sys

import pytest

from firmware_sim.run import SimConfig


@pytest.mark.parametrize(("args", "said"), [
    (["--dsmr", "3.1"], "use 2.2, 3.0, 4.2, 5.0, Q3D"),
    (["--dsmr", "3.0", "--line", "8N1"], "DSMR 3.0 meters send on a 7E1 line"),
    (["--dsmr", "q3d", "--line", "8N1"], "EasyMeter Q3D meters send on a 7E1 line"),
    (["--line", "8E1"], "use 8N1 or 7E1"),
])
def test_a_meter_the_sim_cannot_be_is_refused_with_what_it_can(args, said, tmp_path):
    result = subprocess.run([sys.executable, "-m", "ohmni", "sim", "run", "--duration", "1", "--out", str(tmp_path),
                             *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert said in " ".join(result.stderr.replace("│", " ").split()), result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "meter.csv").exists()


def test_a_config_naming_a_version_off_its_line_is_refused():
    with pytest.raises(ValueError, match="DSMR 2.2 meters send on a 7E1 line, not 8N1"):
        SimConfig(start_ts=0, seconds=1, dsmr="22")
    assert SimConfig(start_ts=0, seconds=1, dsmr="30", line="7E1").dsmr_version == "30"
    with pytest.raises(ValueError, match="EasyMeter Q3D meters send on a 7E1 line, not 8N1"):
        SimConfig(start_ts=0, seconds=1, dsmr="q3d")
