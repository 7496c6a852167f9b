"""Shared fixtures: the real-data folder, free ports, and helpers to run our own processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_data() -> Path:
    return Path(os.environ.get("OHMNI_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data (or $OHMNI_DATA). Absent on a user's clone: skip there, fail in CI."""
    path = shared_data()
    if not path.is_dir():
        from tests.fixtures import missing

        missing(f"real meter data not found at {path} (set OHMNI_DATA)")
    return path


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory):
    """A real Mosquitto 2 (MQTT 5, password + ACL, TLS with client certificates) for the session."""
    from tests.fixtures.mosquitto import start_broker

    broker = start_broker(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory):
    """A real PostgreSQL, started with initdb + pg_ctl on a free port, stopped after the session."""
    import shutil
    import tempfile

    from tests.fixtures.postgres import start_postgres

    # not under pytest's own folder: that one is private to root, and the server runs as postgres
    folder = Path(tempfile.mkdtemp(prefix="ohmni-pg-"))
    server = start_postgres(folder)
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory):
    """A real VictoriaMetrics for the session (it takes influxdb-client's line protocol writes)."""
    from tests.fixtures.victoria import start_victoria

    server = start_victoria(tmp_path_factory.mktemp("victoria") / "data")
    yield server
    server.stop()


from tests.home import running_home  # noqa: E402,F401  (session-wide: e2e and browser tests share it)
