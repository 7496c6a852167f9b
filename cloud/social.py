"""The utility's social channel, composed from the same data the households see.

- Incident posts: an outage found by cloud/community.py becomes a post for its district.
- Tip posts: the cheap bands of the time-of-use tariffs in the catalogue, one a day.
Posts are published as an Atom feed (/social/feed.atom) and POSTed, signed like the
notification webhook, to the utility's social webhook when one is set.

Mentions of the utility come in through a webhook (signed with the mentions secret), are
matched to a household when its householder has linked that handle, and wait in a queue
for agents with the household's context.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, date, datetime
from urllib.parse import quote
from xml.etree import ElementTree as ET

import httpx
from pydantic import BaseModel, Field

from cloud.community import AreaStatus, check_and_notify
from cloud.settings import CloudSettings
from cloud.storage.base import Storage
from cloud.storage.people import PeopleStore
from cloud.tariffs.model import Tariff, WindowRates, catalogue

ATOM = "http://www.w3.org/2005/Atom"


class Post(BaseModel):
    id: str
    ts: float
    kind: str  # incident | tip
    title: str
    body: str


class Mention(BaseModel):
    """What the social platform's webhook sends for a post that names the utility."""

    id: str = Field(max_length=100)
    handle: str = Field(max_length=100)
    text: str = Field(max_length=5000)
    url: str = Field(default="", max_length=1000)
    ts: float | None = None


def normalise_handle(handle: str) -> str:
    return handle.strip().lstrip("@").lower()


def incident_post(area: AreaStatus, now: float) -> Post:
    since = datetime.fromtimestamp(area.since, UTC).strftime("%H:%M UTC") if area.since else "just now"
    return Post(id=f"incident:{area.district}:{area.since}", ts=now, kind="incident",
                title=f"Power cut in {area.district}",
                body=(f"We can see a loss of supply in {area.district} since {since}: {area.homes_affected} of "
                      f"{area.homes_reporting} homes with an Ohmni hub there are affected. If you are in "
                      f"{area.district}, it is not just you — see /community for updates."))


def tip_posts(day: date, now: float, tariffs: list[Tariff] | None = None) -> list[Post]:
    """One tip per time-of-use tariff: when its cheapest band is and what it saves per kWh."""
    out = []
    for tariff in tariffs if tariffs is not None else catalogue():
        rates = tariff.versions[-1].unit_rates
        if not isinstance(rates, WindowRates) or not rates.windows:
            continue
        cheap = min(rates.windows, key=lambda w: w.rate)
        saving = rates.default_rate - cheap.rate
        if saving <= 0:
            continue
        unit = "p" if tariff.currency == "GBP" else f" {tariff.currency} "
        scale = 100 if tariff.currency == "GBP" else 1
        out.append(Post(id=f"tip:{day.isoformat()}:{tariff.name}", ts=now, kind="tip",
                        title=f"Tip: the cheap hours on {tariff.name}",
                        body=(f"On {tariff.name}, energy from {cheap.start:%H:%M} to {cheap.end:%H:%M} costs "
                              f"{cheap.rate * scale:.2f}{unit}/kWh instead of {rates.default_rate * scale:.2f}{unit}"
                              f"/kWh. Washing machines, dishwashers and car charging on a timer save "
                              f"{saving * scale:.2f}{unit} on every kWh.")))
    return out


def atom(posts: list[Post], base_url: str) -> bytes:
    """An Atom 1.0 feed (RFC 4287) of the posts, newest first."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        element.text = text
        return element

    def stamp(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")

    sub(feed, "id", f"{base_url}/social/feed.atom")
    sub(feed, "title", "Ohmni: power in your area, and ways to save")
    sub(feed, "updated", stamp(max((p.ts for p in posts), default=0)))
    sub(feed, "link", href=f"{base_url}/social/feed.atom", rel="self")
    author = sub(feed, "author")
    sub(author, "name", "Ohmni")
    for post in sorted(posts, key=lambda p: -p.ts):
        entry = sub(feed, "entry")
        # an Atom id is an IRI: a tip's id holds its tariff's name, spaces and all ("Economy 7 (example)")
        sub(entry, "id", f"{base_url}/social/posts/{quote(post.id, safe=':')}")
        sub(entry, "title", post.title)
        sub(entry, "updated", stamp(post.ts))
        sub(entry, "category", term=post.kind)
        sub(entry, "content", post.body, type="text")
    return ET.tostring(feed, xml_declaration=True, encoding="utf-8")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def publish(store: PeopleStore, posts: list[Post], webhook_url: str | None, secret: str,
                  client: httpx.AsyncClient | None = None) -> int:
    """Store new posts; POST the ones not yet published to the social webhook. How many went out."""
    for post in posts:
        await store.add_post(post.id, post.ts, post.kind, post.title, post.body)
    if not webhook_url:
        return 0
    sent = 0
    async with client or httpx.AsyncClient(timeout=10) as http:
        for row in await store.unpublished_posts():
            body = json.dumps(row).encode()
            try:
                resp = await http.post(webhook_url, content=body, headers={
                    "Content-Type": "application/json", "X-Ohmni-Signature": signature(secret, body)})
            except httpx.HTTPError:
                continue  # the next pass tries again
            if resp.is_success:
                await store.mark_published(row["id"], time.time())
                sent += 1
    return sent


def verify_mention(secret: str, body: bytes, sent: str | None) -> bool:
    return bool(secret) and sent is not None and hmac.compare_digest(sent, signature(secret, body))


async def community_pass(store: Storage, settings: CloudSettings, now: float | None = None) -> list[AreaStatus]:
    """One look at the areas: notify households in an outage, post it, post the day's tips."""
    now = time.time() if now is None else now
    found = await check_and_notify(store)
    assert isinstance(store, PeopleStore)
    posts = [incident_post(a, now) for a in found if a.status == "outage"]
    await publish(store, posts + tip_posts(datetime.fromtimestamp(now, UTC).date(), now),
                  settings.social_webhook_url, settings.social_webhook_secret)
    return found
