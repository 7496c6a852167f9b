"""Delivering notifications: Web Push to the household's browsers, and a webhook for the
utility's own app or SMS gateway — per-household preferences, quiet hours, a delivery log.

Notifications are created where things are noticed (bill shock, nudges, outages, hub
notices) with a (household, kind, key) primary key, so each exists once. The dispatcher
then sends each on every channel the household wants, once: a delivery row per
(notification, channel, target) records "sent" or the failure, failures are retried up to
MAX_ATTEMPTS, and a row on channel "all" marks the notification finished. In quiet hours
(household's own time zone) nothing is sent but outages; the rest waits for the morning.

Webhook requests carry ``X-Ohmni-Signature: sha256=<HMAC of the body with the shared
secret>``. Web Push uses VAPID (RFC 8292) and aes128gcm payload encryption (RFC 8291)
through pywebpush; the VAPID key is made once and kept in the cloud's data folder.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from datetime import time as clock
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
from pydantic import BaseModel, Field

from cloud.storage.people import PeopleStore

log = logging.getLogger("ohmni.cloud.notify")
Kind = Literal["nudge", "bill_shock", "outage", "hub_notice"]
KINDS: tuple[Kind, ...] = get_args(Kind)
URGENT = ("outage",)  # sent in quiet hours too
MAX_ATTEMPTS = 5
LOOKBACK_S = 3 * 86400  # older undelivered notifications are not worth sending
#: The browsers' push services (Chrome and Edge on FCM, Firefox, Edge on WNS, Safari): the only hosts, with their
#: subdomains, the cloud sends Web Push to unless its settings say otherwise.
PUSH_HOSTS = ("fcm.googleapis.com", "push.services.mozilla.com", "notify.windows.com", "push.apple.com")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def push_endpoint_refused(endpoint: str, hosts: Sequence[str]) -> str | None:
    """Why the cloud will not POST to ``endpoint`` (None: it will). A subscription is the householder's to give,
    and the cloud sends to it: any URL would let a household make the cloud call its own network (an admin port
    on 127.0.0.1, a metadata service), so only push services' hosts are taken, over https (plain http only to
    this machine, and only where ``hosts`` names it: a test's push service)."""
    url = urlsplit(endpoint)
    host = (url.hostname or "").lower().rstrip(".")
    if not any(host == h or host.endswith("." + h) for h in hosts):
        return f"{host or endpoint!r} is not a push service this cloud sends to ({', '.join(hosts)})"
    if url.scheme != "https" and not (url.scheme == "http" and host in LOOPBACK):
        return "a push endpoint is an https:// URL"
    return None


class Prefs(BaseModel):
    """What a household wants to hear about, where, and when not."""

    kinds: list[Kind] = Field(default_factory=lambda: list(KINDS))
    webpush: bool = True
    webhook: bool = True  # the utility's app or SMS gateway
    quiet_start: clock | None = Field(default=None, description="local time quiet hours begin, e.g. 22:00")
    quiet_end: clock | None = Field(default=None, description="local time they end, e.g. 07:00")

    def quiet_at(self, when: datetime) -> bool:
        if self.quiet_start is None or self.quiet_end is None:
            return False
        t = when.time().replace(tzinfo=None)
        if self.quiet_start <= self.quiet_end:
            return self.quiet_start <= t < self.quiet_end
        return t >= self.quiet_start or t < self.quiet_end  # over midnight


async def prefs_of(store: PeopleStore, household_id: str) -> Prefs:
    raw = await store.notification_prefs(household_id)
    return Prefs.model_validate_json(raw) if raw else Prefs()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Vapid:
    """The cloud's VAPID key pair, made once and kept (0600) in the data folder."""

    def __init__(self, folder: Path, subject: str) -> None:
        from py_vapid import Vapid02

        self.path = folder / "vapid_private.pem"
        self.subject = subject
        if self.path.exists():
            self.key = Vapid02.from_file(str(self.path))
        else:
            folder.mkdir(parents=True, exist_ok=True)
            self.key = Vapid02()
            self.key.generate_keys()
            self.key.save_key(str(self.path))
            self.path.chmod(0o600)

    @property
    def public_key(self) -> str:
        """The applicationServerKey a browser subscribes with (uncompressed point, base64url)."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = self.key.public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Dispatcher:
    def __init__(self, store: PeopleStore, webhook_url: str | None = None, webhook_secret: str = "",
                 vapid: Vapid | None = None, client: httpx.AsyncClient | None = None,
                 push_hosts: Sequence[str] = PUSH_HOSTS) -> None:
        self.store, self.webhook_url, self.webhook_secret, self.vapid = store, webhook_url, webhook_secret, vapid
        self.push_hosts = push_hosts
        self.client = client or httpx.AsyncClient(timeout=10)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def run_once(self, now: float | None = None) -> int:
        """One pass over what is waiting; the number of sends made."""
        now = time.time() if now is None else now
        sent = 0
        for n in await self.store.undelivered(now - LOOKBACK_S):
            prefs = await prefs_of(self.store, n["household_id"])
            if n["kind"] in prefs.kinds and n["kind"] not in URGENT and \
                    prefs.quiet_at(datetime.fromtimestamp(now, ZoneInfo(n["tz"]))):
                continue  # quiet hours: keep it for later
            targets: list[tuple[str, str, Any]] = []
            if n["kind"] in prefs.kinds:
                if prefs.webhook and self.webhook_url:
                    targets.append(("webhook", self.webhook_url, None))
                if prefs.webpush and self.vapid is not None:
                    targets += [("webpush", s["endpoint"], s) for s in await self.store.push_subscriptions(
                        n["household_id"])]
            finished = True
            for channel, target, subscription in targets:
                status, attempts = await self.store.delivery(n["household_id"], n["kind"], n["key"], channel, target)
                if status == "sent" or attempts >= MAX_ATTEMPTS:
                    continue
                refused = push_endpoint_refused(target, self.push_hosts) if channel == "webpush" else None
                if refused:  # taken before the hosts were narrowed: never sent, and said why
                    ok, detail = False, f"not sent: {refused}"
                else:
                    ok, detail = await (self._webhook(n) if channel == "webhook" else self._push(n, subscription))
                await self.store.record_delivery(n["household_id"], n["kind"], n["key"], channel, target,
                                                 "sent" if ok else "failed", detail, now)
                sent += ok
                finished = finished and (ok or attempts + 1 >= MAX_ATTEMPTS)
            if finished:
                await self.store.record_delivery(n["household_id"], n["kind"], n["key"], "all", "",
                                                 "done", f"{len(targets)} channel(s)", now)
        return sent

    async def _webhook(self, n: dict[str, Any]) -> tuple[bool, str]:
        body = json.dumps({k: n[k] for k in ("household_id", "account_number", "kind", "key", "created_at",
                                             "message")}).encode()
        try:
            resp = await self.client.post(self.webhook_url or "", content=body, headers={
                "Content-Type": "application/json", "X-Ohmni-Signature": sign(self.webhook_secret, body)})
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return resp.is_success, f"HTTP {resp.status_code}"

    async def _push(self, n: dict[str, Any], subscription: dict[str, Any]) -> tuple[bool, str]:
        from pywebpush import WebPushException, webpush

        assert self.vapid is not None
        payload = json.dumps({"title": "Ohmni", "kind": n["kind"], "body": n["message"]})
        try:  # pywebpush is synchronous (requests): off the event loop
            resp = await asyncio.to_thread(webpush, subscription, payload, vapid_private_key=self.vapid.key,
                                           vapid_claims={"sub": self.vapid.subject}, ttl=86400, timeout=10)
        except WebPushException as exc:
            gone = exc.response is not None and exc.response.status_code in (404, 410)
            if gone:  # the browser unsubscribed: forget it
                await self.store.remove_push_subscription(subscription["endpoint"])
            return False, f"push service refused: {exc.response.status_code if exc.response is not None else exc}"
        except Exception as exc:  # a push service that is down must not stop the other sends
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"HTTP {resp.status_code}"


async def dispatch_forever(dispatcher: Dispatcher, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await dispatcher.run_once()
        except Exception:  # the next pass tries again
            log.exception("notification pass failed")
