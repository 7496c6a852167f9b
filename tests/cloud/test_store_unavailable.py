"""The cloud while its PostgreSQL is down and when it is back: a cluster of the test's own, stopped and started."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from cloud.app import create_app
from cloud.auth import new_secret
from cloud.settings import CloudSettings
from protocols.uplink import UplinkBatch
from tests.cloud.test_api import post, reading
from tests.fixtures.postgres import start_postgres


def test_a_database_that_goes_away_is_a_503_until_it_is_back(tmp_path: Path, caplog):
    """PostgreSQL restarting (an upgrade, a failover, a crash): every request was a 500 with a traceback in the log.
    It is now a 503 problem with Retry-After (the hub keeps its batch and retries; a page can say "try again"), the
    log says it once, and the cloud answers as before once the database is back, without a restart."""
    folder = Path(tempfile.mkdtemp(prefix="ohmni-pg-"))  # not under pytest's folder: the server runs as postgres
    pg = start_postgres(folder)
    try:
        secrets = {"hub": new_secret(), "key": new_secret()}
        for name, secret in secrets.items():
            (tmp_path / name).write_text(secret)
        settings = CloudSettings(data_dir=tmp_path / "cloud", bootstrap_demo=True, database_url=pg.url,
                                 demo_hub_token_file=tmp_path / "hub", demo_householder_key_file=tmp_path / "key",
                                 notify_every_s=0, outage_check_s=0)
        householder = {"Authorization": f"Bearer {secrets['key']}"}
        day = 1_764_028_800
        with TestClient(create_app(settings)) as client:
            assert client.get("/api/v1/household/summary", headers=householder).status_code == 200
            assert client.get("/readyz").json() == {"status": "ok", "store": "ok"}
            assert post(client, secrets["hub"], UplinkBatch(hub_id="hub-demo", seq=1, readings=[
                reading(day, 1_000)])).status_code == 200

            pg.stop()
            caplog.set_level(logging.ERROR, logger="ohmni.cloud")
            answers = [client.get("/api/v1/household/summary", headers=householder) for _ in range(3)]
            answers.append(client.get("/readyz"))  # a load balancer's readiness check says so too
            assert client.get("/healthz").status_code == 200  # the process is up: not one to restart
            answers.append(post(client, secrets["hub"], UplinkBatch(hub_id="hub-demo", seq=2, readings=[
                reading(day + 10, 1_001)])))
            for answer in answers:
                assert answer.status_code == 503, answer.text
                assert answer.headers["retry-after"] == "5"
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.json()["title"] == "Store unavailable"
            said = [r for r in caplog.records if r.levelno >= logging.WARNING]
            assert [r.getMessage()[:26] for r in said] == ["the store is unavailable ("], caplog.text
            assert said[0].exc_info is None

            pg.start()
            deadline = time.monotonic() + 20
            while (again := post(client, secrets["hub"], UplinkBatch(hub_id="hub-demo", seq=2, readings=[
                    reading(day + 10, 1_001)]))).status_code == 503 and time.monotonic() < deadline:
                time.sleep(0.2)  # the pool's connections from before the stop are found closed and replaced
            assert again.status_code == 200 and again.json()["stored"] == 1, again.text
            assert client.get("/readyz").status_code == 200
            stored = client.get("/api/v1/household/readings", headers=householder).json()
            assert [r["ts"] for r in stored] == [day, day + 10]
    finally:
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)
