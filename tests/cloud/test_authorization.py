"""Every endpoint in the OpenAPI schema, as every identity: only those allowed get in.

ACCESS classifies each operation; a new endpoint fails the first test until it is
classified here, so nothing reaches production without someone deciding who may call it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloud import staff
from cloud.app import create_app
from cloud.auth import ALL_HOUSEHOLDS, Principal, Role, hash_secret, new_secret
from cloud.bootstrap import DEMO_HOUSEHOLD
from cloud.storage.base import Household
from protocols.uplink import UplinkBatch
from tests.cloud.test_api import DAY, demo_settings, reading

EVERYONE = frozenset({"anonymous", "hub", "other_hub", "householder", "other_householder", "installer", "agent",
                      "admin"})
HUBS, HOUSEHOLDERS, STAFF = frozenset({"hub", "other_hub"}), frozenset({"householder", "other_householder"}), \
    frozenset({"agent", "admin"})

#: (method, path) -> who may call it. "hub" posts as hub-demo, so the other hub is refused.
ACCESS: dict[tuple[str, str], frozenset[str]] = {
    ("POST", "/api/v1/hub/batches"): frozenset({"hub"}),
    ("POST", "/api/v1/hub/ping"): HUBS,
    ("POST", "/api/v1/installer/claim-codes"): frozenset({"installer"}),
    ("POST", "/api/v1/installer/hubs/{hub_id}/revoke"): frozenset({"installer"}),
    ("POST", "/api/v1/hubs/register"): frozenset(),  # the claim code is the credential: nobody here holds one
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/readyz"): EVERYONE,  # says only whether the store answers, for a load balancer
    ("GET", "/api/v1/community/areas"): EVERYONE,
    ("GET", "/metrics"): EVERYONE,  # on this machine (as the test client is), or with the metrics token
    ("GET", "/api/v1/agent/reasons"): STAFF,
    ("GET", "/api/v1/agent/search"): STAFF,
    ("GET", "/api/v1/agent/households/{household_id}"): STAFF,
    ("POST", "/api/v1/agent/households/{household_id}/notes"): STAFF,
    ("GET", "/api/v1/admin/audit"): frozenset({"admin"}),
    ("GET", "/api/v1/household/summary"): HOUSEHOLDERS,
    ("GET", "/api/v1/household/coach"): HOUSEHOLDERS,
    ("GET", "/api/v1/household/notifications"): HOUSEHOLDERS,
    ("GET", "/api/v1/household/readings"): HOUSEHOLDERS,
    ("POST", "/api/v1/household/nudges/{nudge_id}"): HOUSEHOLDERS,
    ("GET", "/api/v1/household/export/costs.csv"): HOUSEHOLDERS,
    ("GET", "/api/v1/household/export/readings.csv"): HOUSEHOLDERS,
    ("GET", "/api/v1/household/notification-prefs"): HOUSEHOLDERS,
    ("PUT", "/api/v1/household/notification-prefs"): HOUSEHOLDERS,
    ("POST", "/api/v1/household/push-subscriptions"): HOUSEHOLDERS,
    ("GET", "/api/v1/household/deliveries"): HOUSEHOLDERS,
    ("GET", "/api/v1/push/vapid-public-key"): EVERYONE,
    ("PUT", "/api/v1/household/social-handle"): HOUSEHOLDERS,
    ("GET", "/api/v1/household/history"): HOUSEHOLDERS,
    ("GET", "/api/v1/agent/mentions"): STAFF,
    ("POST", "/api/v1/social/mentions"): frozenset(),  # the platform's signature is the credential
}
PATH_VALUES = {"hub_id": "hub-demo", "household_id": "hh-demo", "nudge_id": "0123456789abcdef"}
QUERY = {"/api/v1/agent/search": {"q": "demo", "reason": "other"},
         "/api/v1/agent/households/{household_id}": {"reason": "other"}}
_seq = iter(range(1, 10_000))
BODIES = {
    "/api/v1/hub/batches": lambda: UplinkBatch(hub_id="hub-demo", seq=int(DAY % 100_000) + next(_seq),
                                               readings=[reading(DAY, 1)]).model_dump(),
    "/api/v1/installer/claim-codes": lambda: {"household_id": "hh-demo"},
    "/api/v1/hubs/register": lambda: {"code": "AAAA-BBBB-CCCC", "hub_id": "hub-new"},
    "/api/v1/agent/households/{household_id}/notes": lambda: {"text": "checked", "reason": "other"},
    "/api/v1/household/nudges/{nudge_id}": lambda: {"decision": "accept"},
    "/api/v1/household/notification-prefs": lambda: {"quiet_start": "22:00", "quiet_end": "07:00"},
    "/api/v1/household/social-handle": lambda: {"handle": "@someone"},
    "/api/v1/social/mentions": lambda: {"id": "m", "handle": "@x", "text": "hi"},
    "/api/v1/household/push-subscriptions": lambda: {"endpoint": "https://push.example/abc",
                                                     "keys": {"p256dh": "x", "auth": "y"}},
}


@pytest.fixture
def world(request, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, dict]]]:
    settings, secrets = demo_settings(request, tmp_path, outage_check_s=0)
    app = create_app(settings)
    other_hub, other_key, installer = new_secret(), new_secret(), new_secret()
    with TestClient(app) as client:
        store = app.state.storage

        async def setup() -> dict[str, staff.Session]:
            await store.upsert_household(Household("hh-other", "Other", "100000002", "M1 1AA", "Europe/London",
                                                   DEMO_HOUSEHOLD.tariff_json))
            await store.upsert_hub("hub-other", "hh-other")
            await store.add_credential(hash_secret(other_hub), Principal(Role.HUB, "hub-other", "hh-other"))
            await store.add_credential(hash_secret(other_key), Principal(Role.HOUSEHOLDER, "hh-other", "hh-other"))
            await store.add_credential(hash_secret(installer), Principal(Role.INSTALLER, "ivy", ALL_HOUSEHOLDS))
            await staff.add_staff(store, "alice", Role.AGENT, "agent password one")
            await staff.add_staff(store, "root", Role.ADMIN, "admin password one")
            return {name: await staff.sign_in(store, name, password)
                    for name, password in (("alice", "agent password one"), ("root", "admin password one"))}
        assert client.portal is not None  # set inside `with TestClient(...)`
        sessions = client.portal.call(setup)
        bearer = lambda token: {"headers": {"Authorization": f"Bearer {token}"}}  # noqa: E731
        session = lambda s: {"cookies": {staff.STAFF_COOKIE: s.token}, "headers": {"X-CSRF-Token": s.csrf}}  # noqa: E731
        identities = {"anonymous": {}, "hub": bearer(secrets["hub"]), "other_hub": bearer(other_hub),
                      "householder": bearer(secrets["key"]), "other_householder": bearer(other_key),
                      "installer": bearer(installer), "agent": session(sessions["alice"]),
                      "admin": session(sessions["root"])}
        yield client, identities


def call(client: TestClient, method: str, path: str, who: dict) -> int:
    url = path.format(**PATH_VALUES)
    body = BODIES.get(path)
    client.cookies.clear()
    resp = client.request(method, url, params=QUERY.get(path), json=body() if body else None,
                          headers=who.get("headers"), cookies=who.get("cookies"))
    return resp.status_code


def test_every_operation_in_the_schema_is_classified(world):
    client, _ = world
    operations = {(m.upper(), p) for p, ops in client.app.openapi()["paths"].items() for m in ops}
    assert operations == set(ACCESS)


@pytest.mark.parametrize(("method", "path"), sorted(ACCESS))
def test_only_those_allowed_get_in(world, method, path):
    client, identities = world
    for name, who in identities.items():
        status = call(client, method, path, who)
        if name in ACCESS[(method, path)]:
            assert status not in (401, 403), (name, status)
            assert status < 500, (name, status)
        else:
            assert status in (401, 403), (name, status)


def test_a_householder_only_ever_sees_their_own_household(world):
    client, identities = world
    for name, own in (("householder", "hh-demo"), ("other_householder", "hh-other")):
        who = identities[name]
        client.cookies.clear()
        assert client.get("/api/v1/household/summary", headers=who["headers"]).json()["household_id"] == own
    # the demo hub's readings are the demo household's alone
    client.post("/api/v1/hub/batches", headers=identities["hub"]["headers"],
                content=UplinkBatch(hub_id="hub-demo", seq=1, readings=[reading(DAY, 5)]).model_dump_json())
    other = client.get("/api/v1/household/readings", headers=identities["other_householder"]["headers"]).json()
    mine = client.get("/api/v1/household/readings", headers=identities["householder"]["headers"]).json()
    assert other == [] and [r["ts"] for r in mine] == [DAY]


def test_pages_show_nothing_private_without_a_session(world):
    client, _ = world
    client.cookies.clear()
    assert "Access key" in client.get("/").text  # the sign-in form, not the dashboard
    agent = client.get("/agent").text
    assert "agent sign in" in agent.lower() and "csrf-token" not in agent
    assert "The Demo Household" not in client.get("/community").text


def test_wrong_access_keys_are_rate_limited(world):
    client, identities = world
    key = identities["householder"]["headers"]["Authorization"].removeprefix("Bearer ")
    client.cookies.clear()
    for _ in range(5):
        assert client.get("/login", params={"key": "not-a-key"}, follow_redirects=False).status_code == 401
    resp = client.post("/login", data={"key": key}, follow_redirects=False)
    assert resp.status_code == 429 and "Too many wrong keys" in resp.text  # even the right key waits
