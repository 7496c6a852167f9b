"""The social channel: incident and tip posts from the same data (Atom feed and a signed
webhook), and mentions matched to households and queued for agents."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from xml.etree import ElementTree as ET

import pytest
from fastapi.testclient import TestClient

from cloud.app import create_app
from cloud.settings import CloudSettings
from cloud.social import community_pass, tip_posts
from tests.cloud.test_agents import PASSWORDS, sign_in
from tests.cloud.test_api import demo_settings
from tests.cloud.test_community import HOMES, Homes, area  # noqa: F401  (the fixture, on both backends)
from tests.cloud.test_notify import Receivers

ATOM = "{http://www.w3.org/2005/Atom}"
MENTIONS_SECRET = "platform-secret"


def test_tips_come_from_the_tariffs_we_price_with():
    from datetime import date

    tips = tip_posts(date(2026, 1, 15), 0.0)
    economy7 = next(t for t in tips if "Economy 7" in t.title)
    assert "/kWh instead of" in economy7.body and economy7.id == "tip:2026-01-15:Economy 7 (example)"
    assert not any("flat" in t.title.lower() for t in tips)  # a flat rate has no cheap hours


def test_an_outage_is_posted_to_the_feed_and_the_webhook_once(area, tmp_path):  # noqa: F811
    client, tokens = area
    receivers = Receivers()
    settings = CloudSettings(data_dir=tmp_path, social_webhook_url=f"{receivers.url}/hook",
                             social_webhook_secret="webhook-shared-secret")
    homes = Homes(client, tokens)
    homes.run(HOMES, 0, 300)
    homes.run([n for n in HOMES if n not in ("sw0", "sw1", "sw2", "sw3")], 300, 360)
    for _ in range(2):
        client.portal.call(community_pass, client.app.state.storage, settings, 1_800_000_000.0)
    feed = ET.fromstring(client.get("/social/feed.atom").content)
    entries = {e.find(f"{ATOM}title").text: e for e in feed.findall(f"{ATOM}entry")}
    assert "Power cut in SW1A" in entries
    assert "4 of 5 homes" in entries["Power cut in SW1A"].find(f"{ATOM}content").text
    assert any(title.startswith("Tip:") for title in entries)
    # every id is an IRI, as Atom requires: a tip's tariff name ("Economy 7 (example)") is percent-encoded in it
    ids = [feed.find(f"{ATOM}id").text] + [e.find(f"{ATOM}id").text for e in entries.values()]
    assert all(re.fullmatch(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", i) for i in ids), ids
    assert any(i.endswith("Economy%207%20%28example%29") for i in ids), ids
    posted = [h["title"] for h in receivers.hooks]
    assert posted.count("Power cut in SW1A") == 1 and len(posted) == len(entries) and not receivers.refused
    receivers.close()


@pytest.fixture
def console_with_mentions(request, tmp_path):
    settings, secrets = demo_settings(request, tmp_path, outage_check_s=0, notify_every_s=0,
                                      social_mentions_secret=MENTIONS_SECRET)
    app = create_app(settings)
    with TestClient(app) as client:
        from cloud import staff
        from cloud.auth import Role

        client.portal.call(staff.add_staff, app.state.storage, "alice", Role.AGENT, PASSWORDS["alice"])
        yield client, {"Authorization": f"Bearer {secrets['key']}"}


def send(client: TestClient, mention: dict, secret: str = MENTIONS_SECRET):
    body = json.dumps(mention).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post("/api/v1/social/mentions", content=body, headers={"X-Ohmni-Signature": sig,
                                                                        "Content-Type": "application/json"})


def test_mentions_reach_agents_with_the_households_context(console_with_mentions):
    client, householder = console_with_mentions
    assert client.put("/api/v1/household/social-handle", json={"handle": "@DemoHome"},
                      headers=householder).json() == {"handle": "demohome"}
    mine = {"id": "m1", "handle": "@demohome", "text": "@utility why is my bill so high?", "url": "https://x/1"}
    assert send(client, mine, secret="forged").status_code == 401
    broken = client.post("/api/v1/social/mentions", content=b"{not json", headers={
        "X-Ohmni-Signature": "sha256=" + hmac.new(MENTIONS_SECRET.encode(), b"{not json", hashlib.sha256).hexdigest()})
    assert broken.status_code == 422 and broken.headers["content-type"].startswith("application/problem+json")
    assert send(client, mine).json() == {"status": "queued", "household_id": "hh-demo"}
    assert send(client, {"id": "m2", "handle": "@stranger", "text": "@utility hello"}).json()["household_id"] is None
    sign_in(client, "alice")
    queue = client.get("/api/v1/agent/mentions").json()
    assert [(m["id"], m["household"]["account_number"] if m["household"] else None) for m in queue] == [
        ("m1", "100000001"), ("m2", None)]
    ctx = client.get("/api/v1/agent/households/hh-demo", params={"reason": "complaint"}).json()
    assert [m["text"] for m in ctx["mentions"]] == [mine["text"]]
