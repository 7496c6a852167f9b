"""Schemathesis against the running cloud's own OpenAPI schema: no input makes it fail with a 5xx."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from cloud.auth import new_secret
from ohmni.demo import free_port, start_cloud


@pytest.mark.parametrize("who", ["householder.key", "hub.token"])
def test_no_generated_request_causes_a_server_error(tmp_path, who):
    if importlib.util.find_spec("schemathesis") is None:
        pytest.fail("schemathesis is a dev dependency: pip install -e '.[dev]'")
    for name in ("hub.token", "householder.key"):
        (tmp_path / name).write_text(new_secret())
    port = free_port()
    cloud = start_cloud(tmp_path, port)
    try:
        token = (tmp_path / who).read_text().strip()
        # the module, not the `st` script: a fresh venv or pyenv may not have the script on PATH
        command = [sys.executable, "-m", "schemathesis.cli", "run", f"http://127.0.0.1:{port}/openapi.json",
                   "--checks", "not_a_server_error", "-H", f"Authorization: Bearer {token}",
                   "--max-examples", "30", "--seed", "1"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    finally:
        cloud.stop()
    assert result.returncode == 0, result.stdout[-3000:]
    assert "passed" in result.stdout
    assert "Traceback" not in cloud.log.read_text()
