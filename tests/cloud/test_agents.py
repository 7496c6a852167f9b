"""The call-centre console: staff sign-in (argon2, sessions, CSRF, rate limit), search, the
household's context, notes, and the audit log — on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloud import staff
from cloud.app import create_app
from cloud.auth import Principal, Role, hash_secret
from cloud.bootstrap import DEMO_HOUSEHOLD, DEMO_METER
from cloud.storage.base import Household
from protocols.uplink import UplinkBatch
from tests.cloud.test_api import DAY, demo_settings, post, reading

PASSWORDS = {"alice": "correct horse battery", "root": "admin staple battery", "bob": "agent two password"}


@pytest.fixture(params=["sqlite", "postgres"])
def console(request, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings, secrets = demo_settings(request, tmp_path)
    app = create_app(settings)
    with TestClient(app) as client:
        store = app.state.storage

        async def setup() -> None:
            await staff.add_staff(store, "alice", Role.AGENT, PASSWORDS["alice"])
            await staff.add_staff(store, "bob", Role.AGENT, PASSWORDS["bob"])
            await staff.add_staff(store, "root", Role.ADMIN, PASSWORDS["root"])
            await store.upsert_household(Household("hh-other", "Jones Family", "100000002", "M1 1AA",
                                                   "Europe/London", DEMO_HOUSEHOLD.tariff_json))
            await store.add_credential(hash_secret(secrets["key"] + "x"),
                                       Principal(Role.HOUSEHOLDER, "hh-other", "hh-other"))
        assert client.portal is not None  # set inside `with TestClient(...)`
        client.portal.call(setup)
        yield client, secrets


def sign_in(client: TestClient, user: str, password: str | None = None) -> str:
    """Sign in through the form; the CSRF token as the console page carries it."""
    resp = client.post("/agent/login", data={"username": user, "password": password or PASSWORDS[user]},
                       follow_redirects=False)
    assert resp.status_code == 303, resp.text
    cookie = resp.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = client.get("/agent")
    return page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


def test_staff_passwords_are_stored_as_argon2_hashes(console):
    client, _ = console
    found = client.portal.call(client.app.state.storage.staff, "alice")
    assert found is not None and found[0] == Role.AGENT
    assert found[1].startswith("$argon2id$") and PASSWORDS["alice"] not in found[1]


def test_an_agent_finds_a_household_by_each_key_and_every_look_up_is_audited(console):
    client, secrets = console
    post(client, secrets["hub"], UplinkBatch(hub_id="hub-demo", seq=1,
                                             readings=[reading(DAY + i * 60, 1000 + i) for i in range(5)]))
    sign_in(client, "alice")
    for q in ("100000001", DEMO_METER, "sw1a", "SW1A 1AA", "demo house"):
        found = client.get("/api/v1/agent/search", params={"q": q, "reason": "billing query"}).json()
        assert [h["id"] for h in found] == ["hh-demo"], q
    assert client.get("/api/v1/agent/search", params={"q": "jones", "reason": "other"}).json()[0]["id"] == "hh-other"
    assert client.get("/api/v1/agent/search", params={"q": "x"}).status_code == 422  # a reason is required

    ctx = client.get("/api/v1/agent/households/hh-demo", params={"reason": "billing query"}).json()
    # the agent sees what the household saw
    mine = client.get("/api/v1/household/summary", headers={"Authorization": f"Bearer {secrets['key']}"}).json()
    assert ctx["summary"]["today"] == mine["today"] and ctx["summary"]["power_w"] == mine["power_w"]
    assert ctx["household"]["meters"] == [DEMO_METER] and ctx["last_reading_ts"] == DAY + 240
    assert [(h["hub_id"], h["last_ts"], h["verdict"]) for h in ctx["hubs"]] == [
        ("hub-demo", DAY + 240, "reporting normally")]
    assert [p[0] for p in ctx["power_24h"]] == [DAY + i * 60 for i in range(5)]

    client.cookies.clear()
    sign_in(client, "root")
    log = client.get("/api/v1/admin/audit").json()
    assert [(e["actor"], e["household_id"], e["action"], e["reason"]) for e in reversed(log)] == [
        *[("alice", "*", "search", "billing query")] * 5, ("alice", "*", "search", "other"),
        ("alice", "hh-demo", "view", "billing query")]
    assert client.get("/api/v1/admin/audit", params={"household_id": "hh-demo"}).json()[0]["action"] == "view"


def test_gaps_in_the_readings_are_shown(console):
    client, secrets = console
    times = [DAY, DAY + 10, DAY + 20, DAY + 1020, DAY + 1030]  # a 1000-second hole
    post(client, secrets["hub"], UplinkBatch(hub_id="hub-demo", seq=1,
                                             readings=[reading(t, 1000 + i) for i, t in enumerate(times)]))
    sign_in(client, "alice")
    ctx = client.get("/api/v1/agent/households/hh-demo", params={"reason": "outage report"}).json()
    assert ctx["gaps_24h"] == [{"start": DAY + 20, "end": DAY + 1020, "seconds": 1000}]


def test_notes_need_the_csrf_token_and_are_audited(console):
    client, _ = console
    csrf = sign_in(client, "alice")
    note = {"text": "Customer asked about the January bill", "reason": "billing query"}
    assert client.post("/api/v1/agent/households/hh-demo/notes", json=note).status_code == 403
    assert client.post("/api/v1/agent/households/hh-demo/notes", json=note,
                       headers={"X-CSRF-Token": "forged"}).status_code == 403
    resp = client.post("/api/v1/agent/households/hh-demo/notes", json=note, headers={"X-CSRF-Token": csrf})
    assert resp.status_code == 201
    ctx = client.get("/api/v1/agent/households/hh-demo", params={"reason": "billing query"}).json()
    assert [(n["author"], n["text"]) for n in ctx["notes"]] == [("alice", note["text"])]


def test_who_may_reach_the_console(console):
    client, secrets = console
    # nobody signed in, a householder's key, a hub's credential: refused
    assert client.get("/api/v1/agent/search", params={"q": "a", "reason": "other"}).status_code == 401
    for token in (secrets["key"], secrets["hub"]):
        resp = client.get("/api/v1/agent/households/hh-demo", params={"reason": "other"},
                          headers={"Authorization": f"Bearer {token}"}, cookies={"ohmni_session": token})
        assert resp.status_code == 401
    # an agent may not read the audit log; an admin may
    sign_in(client, "alice")
    assert client.get("/api/v1/admin/audit").status_code == 403
    # a householder's session does not open the console and the console's session is not a householder's
    assert client.get("/api/v1/household/summary").status_code == 401
    assert "Agent console" in client.get("/agent").text


def test_wrong_passwords_are_rate_limited_and_sign_out_ends_the_session(console):
    client, _ = console
    for _ in range(staff.MAX_FAILURES):
        resp = client.post("/agent/login", data={"username": "bob", "password": "wrong password!"})
        assert resp.status_code == 401 and "wrong user name or password" in resp.text
    resp = client.post("/agent/login", data={"username": "bob", "password": PASSWORDS["bob"]})
    assert resp.status_code == 429  # even the right password waits out the window
    assert client.post("/agent/login", data={"username": "nobody", "password": "whatever it is"}).status_code == 401

    csrf = sign_in(client, "alice")
    assert client.get("/api/v1/agent/reasons").status_code == 200
    cookie = client.cookies.get(staff.STAFF_COOKIE)
    client.post("/agent/logout", data={"csrf": csrf}, follow_redirects=False)
    assert client.get("/api/v1/agent/reasons", cookies={staff.STAFF_COOKIE: cookie}).status_code == 401


def test_old_sign_in_attempts_and_ended_sessions_are_dropped_and_the_rate_limit_still_holds(console):
    """Sign-in attempts (wrong passwords, keys, refused claim codes) and sessions were kept for ever: a stream of
    guesses grew the store without bound. Those older than a day, and sessions past their end, are dropped (the
    cloud does it at start and hourly); the attempts inside the rate limit's window still count."""
    import time

    from cloud.storage.people import ATTEMPTS_KEPT_S

    client, _ = console
    store = client.app.state.storage
    now = time.time()

    async def fill() -> None:
        for i in range(3):
            await store.record_login("claim-code:203.0.113.7", False, now - ATTEMPTS_KEPT_S - 60 * (i + 1))
        for _ in range(staff.MAX_FAILURES):
            await store.record_login("bob", False, now - 60)
        await store.add_session(hash_secret("ended"), Principal(Role.AGENT, "alice", "*"), "csrf", now - 1)
        await store.add_session(hash_secret("live"), Principal(Role.AGENT, "alice", "*"), "csrf", now + 3600)

    async def count(sql: str) -> int:
        return int((await store._fetch(sql))[0][0])

    client.portal.call(fill)
    dropped = client.portal.call(store.forget_stale, now)
    assert dropped == (3, 1)
    assert client.portal.call(count, "SELECT count(*) FROM login_attempts WHERE ts < "
                              f"{now - ATTEMPTS_KEPT_S}") == 0
    assert client.portal.call(store.session, hash_secret("live"), now) is not None
    resp = client.post("/agent/login", data={"username": "bob", "password": PASSWORDS["bob"]})
    assert resp.status_code == 429  # the minute-old failures are kept and still hold bob back


def test_the_cloud_drops_old_sign_in_attempts_as_it_starts(tmp_path):
    import asyncio
    import time

    from cloud.settings import CloudSettings
    from cloud.storage.people import ATTEMPTS_KEPT_S
    from cloud.storage.sqlite import SqliteStorage

    async def old_rows() -> int:
        store = SqliteStorage(tmp_path / "cloud.sqlite3")
        await store.init()
        try:
            return int((await store._fetch("SELECT count(*) FROM login_attempts WHERE ts < ?",
                                            time.time() - ATTEMPTS_KEPT_S))[0][0])
        finally:
            await store.close()

    async def guess() -> None:
        store = SqliteStorage(tmp_path / "cloud.sqlite3")
        await store.init()
        await store.record_login("claim-code:203.0.113.7", False, time.time() - 2 * ATTEMPTS_KEPT_S)
        await store.close()

    asyncio.run(guess())
    assert asyncio.run(old_rows()) == 1
    with TestClient(create_app(CloudSettings(data_dir=tmp_path))):
        deadline = time.monotonic() + 10
        while asyncio.run(old_rows()) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert asyncio.run(old_rows()) == 0


def test_the_agents_appliance_figures_are_the_half_hours_the_hub_sent(console):
    """An agent's 30-day kWh per appliance are counted as the coach counts them: from the hub's half hours (its plug
    where it has one), from runs only where it sent none. Before, they were the runs' own energy: a wash its plug
    measured at 832 Wh, sent as 43 Wh of disaggregated runs, was 0.043 kWh to the agent and 0.83 to the home."""
    from protocols.uplink import ApplianceEnergyV1, ApplianceRunV1

    client, secrets = console
    runs = [ApplianceRunV1(appliance="washing_machine", start=DAY + 3600 + 600 * i, end=DAY + 3900 + 600 * i,
                           energy_wh=43 / 4, peak_w=500) for i in range(4)]
    runs.append(ApplianceRunV1(appliance="fridge", start=DAY + 600, end=DAY + 1500, energy_wh=20.0, peak_w=82))
    energy = [ApplianceEnergyV1(appliance="washing_machine", start=DAY + 3600, energy_wh=500.0),
              ApplianceEnergyV1(appliance="washing_machine", start=DAY + 5400, energy_wh=332.0),
              ApplianceEnergyV1(appliance="kettle", start=DAY + 3600, energy_wh=0.0)]
    post(client, secrets["hub"], UplinkBatch(hub_id="hub-demo", seq=1, runs=runs, energy=energy,
                                             readings=[reading(DAY + i * 60, 1000 + i) for i in range(150)]))
    sign_in(client, "alice")
    ctx = client.get("/api/v1/agent/households/hh-demo", params={"reason": "billing query"}).json()
    assert ctx["appliances"] == {"washing_machine": 0.832, "fridge": 0.02}  # no kettle ran: not a 0.0
    assert list(ctx["appliances"]) == ["washing_machine", "fridge"]  # most first
    shown = {a["appliance"]: a["kwh"] for a in ctx["coach"]["appliances"]}
    assert shown == {"washing_machine": "0.83", "fridge": "0.02"}  # the householder's table, to the hundredth
