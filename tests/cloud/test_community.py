"""Loss of supply by area: simulated hubs in one district fall silent together; the community
page says so within a minute of simulated time and the households there are told once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloud.app import create_app
from cloud.auth import Principal, Role, hash_secret, new_secret
from cloud.bootstrap import DEMO_HOUSEHOLD
from cloud.community import check_and_notify, district
from cloud.settings import CloudSettings
from cloud.storage.base import Household
from protocols.uplink import ReadingV1, UplinkBatch
from tests.cloud.test_api import DAY, fresh_database

HOMES = {**{f"sw{i}": f"SW1A {i}AA" for i in range(5)}, **{f"m{i}": f"M1 {i}AE" for i in range(3)},
         "lone": "EH1 1YZ"}  # Edinburgh has one hub: never shown on its own


@pytest.fixture(params=["sqlite", "postgres"])
def area(request, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    database = fresh_database(request.getfixturevalue("postgres")) if request.param == "postgres" else None
    app = create_app(CloudSettings(data_dir=tmp_path / "cloud", database_url=database, outage_check_s=0))
    tokens = {name: new_secret() for name in HOMES}
    with TestClient(app) as client:
        store = app.state.storage

        async def setup() -> None:
            for name, postcode in HOMES.items():
                await store.upsert_household(Household(f"hh-{name}", name.title(), f"A-{name}", postcode,
                                                       "Europe/London", DEMO_HOUSEHOLD.tariff_json))
                await store.upsert_hub(f"hub-{name}", f"hh-{name}")
                await store.add_credential(hash_secret(tokens[name]), Principal(Role.HUB, f"hub-{name}",
                                                                                 f"hh-{name}"))
                await store.add_credential(hash_secret("key-" + tokens[name]),
                                           Principal(Role.HOUSEHOLDER, f"hh-{name}", f"hh-{name}"))
        assert client.portal is not None  # set inside `with TestClient(...)`
        client.portal.call(setup)
        yield client, tokens


class Homes:
    """Each hub uploads ten 1-second readings every ten simulated seconds, as a real one does."""

    def __init__(self, client: TestClient, tokens: dict[str, str]) -> None:
        self.client, self.tokens, self.seq = client, tokens, dict.fromkeys(tokens, 0)

    def upload(self, names, start: int, failures: int = 2) -> None:
        for name in names:
            self.seq[name] += 1
            readings = [ReadingV1(ts=DAY + start + i, meter_id=f"E-{name}", import_t1_wh=10_000 + start + i,
                                  import_t2_wh=0, export_t1_wh=0, export_t2_wh=0, power_import_w=400,
                                  power_export_w=0, voltage_l1_v=231.0, power_failures=failures)
                        for i in range(10)]
            resp = self.client.post("/api/v1/hub/batches", headers={"Authorization": f"Bearer {self.tokens[name]}"},
                                    content=UplinkBatch(hub_id=f"hub-{name}", seq=self.seq[name],
                                                        readings=readings).model_dump_json())
            assert resp.status_code == 200, resp.text

    def run(self, names, start: int, end: int) -> None:
        for t in range(start, end, 10):
            self.upload(names, t)


def status(client: TestClient) -> dict[str, dict]:
    return {a["district"]: a for a in client.get("/api/v1/community/areas").json()["areas"]}


def test_postcode_districts() -> None:
    assert [district(p) for p in ("SW1A 1AA", "sw1a1aa", "M1 1AE", "EH1 1YZ", "B33 8TH")] == [
        "SW1A", "SW1A", "M1", "EH1", "B33"]


def test_a_cut_in_one_district_shows_within_a_minute_and_its_homes_are_told_once(area):
    client, tokens = area
    homes = Homes(client, tokens)
    homes.run(HOMES, 0, 300)  # five minutes of normal life
    assert {d: a["status"] for d, a in status(client).items()} == {"SW1A": "normal", "M1": "normal"}

    cut = [f"sw{i}" for i in range(4)]  # four of the five SW1A homes lose supply at 300 s
    still = [n for n in HOMES if n not in cut]
    homes.run(still, 300, 330)
    assert status(client)["SW1A"]["status"] != "outage"  # 30 s of quiet is not yet a cut
    homes.run(still, 330, 360)  # a minute after the cut
    sw1a = status(client)["SW1A"]
    assert (sw1a["status"], sw1a["homes_affected"], sw1a["homes_reporting"], sw1a["confidence"]) == (
        "outage", 4, 5, 0.8)
    assert sw1a["since"] == DAY + 299 and status(client)["M1"]["status"] == "normal"
    page = client.get("/community").text
    assert 'data-district="SW1A"' in page and "SW1A: outage" in page and "80%" in page
    assert "EH1" not in page  # a district with one hub would point at one home

    for _ in range(2):  # the watcher runs again and again: one notification per home and outage
        client.portal.call(check_and_notify, client.app.state.storage)
    for name in HOMES:
        sent = client.get("/api/v1/household/notifications",
                          headers={"Authorization": f"Bearer key-{tokens[name]}"}).json()
        outages = [n for n in sent if n["kind"] == "outage"]
        assert len(outages) == (1 if name.startswith("sw") else 0), name
        if outages:
            assert "It is not just you" in outages[0]["message"]


def test_one_quiet_home_is_just_that_home(area):
    client, tokens = area
    homes = Homes(client, tokens)
    homes.run(HOMES, 0, 300)
    homes.run([n for n in HOMES if n != "sw0"], 300, 420)
    sw1a = status(client)["SW1A"]
    assert (sw1a["status"], sw1a["homes_affected"]) == ("some homes silent", 1)
    assert client.portal.call(check_and_notify, client.app.state.storage)
    sent = client.get("/api/v1/household/notifications", headers={"Authorization": f"Bearer key-{tokens['sw0']}"})
    assert [n for n in sent.json() if n["kind"] == "outage"] == []
