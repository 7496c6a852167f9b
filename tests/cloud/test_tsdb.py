"""The time-series sink against a real VictoriaMetrics: what the API stores is what the TSDB holds."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from cloud.app import create_app
from cloud.auth import new_secret
from cloud.settings import CloudSettings
from protocols.uplink import ReadingV1, UplinkBatch

DAY = 1_764_028_800


def test_ingested_readings_reach_victoria_metrics(victoria, tmp_path):
    hub_token = new_secret()
    (tmp_path / "hub").write_text(hub_token)
    (tmp_path / "key").write_text(new_secret())
    settings = CloudSettings(data_dir=tmp_path, bootstrap_demo=True, demo_hub_token_file=tmp_path / "hub",
                             demo_householder_key_file=tmp_path / "key", tsdb_url=victoria.url)
    readings = [ReadingV1(ts=DAY + 10 * i, meter_id="E1", import_t1_wh=1000 + i, import_t2_wh=0, export_t1_wh=0,
                          export_t2_wh=0, power_import_w=200 + i, power_export_w=0, voltage_l1_v=230.5)
                for i in range(300)]
    with TestClient(create_app(settings)) as client:
        ack = client.post("/api/v1/hub/batches", content=UplinkBatch(hub_id="hub-demo", seq=1,
                                                                      readings=readings).model_dump_json(),
                          headers={"Authorization": f"Bearer {hub_token}"}).json()
        assert ack["stored"] == 300
    # leaving the app flushes the sink; VictoriaMetrics names fields measurement_field
    deadline = time.monotonic() + 10
    series: list[dict] = []
    while time.monotonic() < deadline and not series:
        series = victoria.export('electricity_power_import_w{hub="hub-demo"}')
        time.sleep(0.2)
    assert len(series) == 1 and series[0]["metric"]["household"] == "hh-demo"
    assert series[0]["values"] == [200 + i for i in range(300)]
    assert series[0]["timestamps"] == [(DAY + 10 * i) * 1000 for i in range(300)]
