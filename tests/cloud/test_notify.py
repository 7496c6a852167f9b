"""Notification delivery: Web Push to a push service that checks VAPID and decrypts the
aes128gcm payload as a browser's would (a fake at the one boundary we cannot reach, speaking
the real wire format), and a webhook that checks the HMAC — with preferences, quiet hours,
no duplicate sends and a delivery log."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from fastapi.testclient import TestClient

from cloud.app import create_app
from cloud.notify import PUSH_HOSTS
from tests.cloud.test_api import demo_settings
from tests.fixtures import free_port

SECRET = "webhook-shared-secret"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Browser:
    """A browser's side of a push subscription: its key pair and auth secret."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.p256dh = b64(self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                             serialization.PublicFormat.UncompressedPoint))


class Receivers:
    """A push service and a webhook endpoint on 127.0.0.1, recording what they accepted."""

    def __init__(self) -> None:
        self.browsers: dict[str, Browser] = {}
        self.pushed: list[dict] = []
        self.hooks: list[dict] = []
        self.refused: list[str] = []
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receivers.webhook(self, body) if self.path == "/hook" else receivers.push(self, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def webhook(self, request: BaseHTTPRequestHandler, body: bytes) -> int:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Ohmni-Signature", ""), expected):
            self.refused.append("bad signature")
            return 401
        self.hooks.append(json.loads(body))
        return 200

    def push(self, request: BaseHTTPRequestHandler, body: bytes) -> int:
        name = request.path.rsplit("/", 1)[-1]
        if name == "gone":
            return 410  # the browser unsubscribed
        # RFC 8292: Authorization: vapid t=<JWT signed ES256>, k=<the server's public key>
        scheme, _, params = request.headers.get("Authorization", "").partition(" ")
        fields = dict(p.strip().split("=", 1) for p in params.split(","))
        header, claims, signature = fields["t"].split(".")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(fields["k"]))
        raw = unb64(signature)
        public.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
                      f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
        jwt = json.loads(unb64(claims))
        assert scheme == "vapid" and jwt["aud"] == self.url and jwt["exp"] > time.time() and \
            jwt["sub"].startswith("mailto:")
        assert request.headers["Content-Encoding"] == "aes128gcm" and int(request.headers["TTL"]) > 0
        browser = self.browsers[name]
        plain = http_ece.decrypt(body, private_key=browser.key, auth_secret=browser.auth, version="aes128gcm")
        self.pushed.append({"browser": name, **json.loads(plain)})
        return 201

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(params=["sqlite", "postgres"])
def notifying(request, tmp_path: Path):
    receivers = Receivers()
    settings, secrets = demo_settings(request, tmp_path, webhook_url=f"{receivers.url}/hook", webhook_secret=SECRET,
                                      notify_every_s=0, outage_check_s=0,
                                      push_hosts=[*PUSH_HOSTS, "127.0.0.1"])  # the test's push service
    with TestClient(create_app(settings)) as client:
        yield client, {"Authorization": f"Bearer {secrets['key']}"}, receivers
    receivers.close()


def local(hour: int) -> float:
    return datetime(2026, 1, 15, hour, 0, tzinfo=ZoneInfo("Europe/London")).timestamp()


def test_each_notification_reaches_each_channel_once_outside_quiet_hours(notifying):
    client, auth, receivers = notifying
    store, dispatcher = client.app.state.storage, client.app.state.dispatcher
    for name in ("phone", "laptop"):
        receivers.browsers[name] = browser = Browser()
        resp = client.post("/api/v1/household/push-subscriptions", headers=auth, json={
            "endpoint": f"{receivers.url}/push/{name}", "keys": {"p256dh": browser.p256dh, "auth": b64(browser.auth)}})
        assert resp.status_code == 201
    for endpoint, said in (("http://fcm.googleapis.com/fcm/send/plain", "https://"),
                           ("https://push.example/abc", "'push.example' is not a push service this cloud sends to"),
                           ("https://fcm.googleapis.com.attacker.example/x", "not a push service")):
        refused = client.post("/api/v1/household/push-subscriptions", headers=auth, json={
            "endpoint": endpoint, "keys": {"p256dh": "x", "auth": "y"}})
        assert refused.status_code == 422 and said in refused.json()["detail"], (endpoint, refused.text)
    client.post("/api/v1/household/push-subscriptions", headers=auth, json={
        "endpoint": f"{receivers.url}/push/gone", "keys": {"p256dh": Browser().p256dh, "auth": b64(os.urandom(16))}})
    assert client.put("/api/v1/household/notification-prefs", headers=auth, json={
        "kinds": ["bill_shock", "outage"], "quiet_start": "22:00", "quiet_end": "07:00"}).status_code == 200

    for kind, key, message in (("bill_shock", "2026-01", "Your bill is heading for £120"),
                               ("outage", "SW1A:1", "Probably a power cut in SW1A"),
                               ("nudge", "abc", "Run the washer at 05:00")):
        client.portal.call(store.add_notification, "hh-demo", kind, key, message)
    # 23:00: quiet hours. The outage goes now; the bill waits; nudges are not wanted at all.
    client.portal.call(dispatcher.run_once, local(23))
    assert sorted((p["browser"], p["kind"]) for p in receivers.pushed) == [("laptop", "outage"), ("phone", "outage")]
    assert [(h["kind"], h["account_number"]) for h in receivers.hooks] == [("outage", "100000001")]
    assert receivers.pushed[0]["body"] == "Probably a power cut in SW1A"
    # 08:00: the bill shock goes out; nothing is sent twice however often the dispatcher runs
    for _ in range(3):
        client.portal.call(dispatcher.run_once, local(8))
    assert sorted((p["browser"], p["kind"]) for p in receivers.pushed) == [
        ("laptop", "bill_shock"), ("laptop", "outage"), ("phone", "bill_shock"), ("phone", "outage")]
    assert [h["kind"] for h in receivers.hooks] == ["outage", "bill_shock"] and not receivers.refused

    log = client.get("/api/v1/household/deliveries", headers=auth).json()
    sent = sorted((d["kind"], d["channel"]) for d in log if d["status"] == "sent")
    assert sent == sorted([("outage", "webhook"), ("outage", "webpush"), ("outage", "webpush"),
                           ("bill_shock", "webhook"), ("bill_shock", "webpush"), ("bill_shock", "webpush")])
    gone = [d for d in log if d["target"].endswith("/gone")]
    assert gone and all(d["status"] == "failed" and "410" in d["detail"] for d in gone)
    subscriptions = client.portal.call(store.push_subscriptions, "hh-demo")
    assert sorted(s["endpoint"].rsplit("/", 1)[-1] for s in subscriptions) == ["laptop", "phone"]  # gone: forgotten
    assert not any(d["kind"] == "nudge" for d in log)


def test_a_household_cannot_make_the_cloud_call_its_own_network(request, tmp_path):
    """With the default push hosts, endpoints on this machine or a private network are refused (the cloud would
    POST there for every notification); one taken before the hosts were narrowed is never sent to, and the
    delivery log says why."""
    settings, secrets = demo_settings(request, tmp_path, notify_every_s=0, outage_check_s=0)
    auth = {"Authorization": f"Bearer {secrets['key']}"}
    with TestClient(create_app(settings)) as client:
        for endpoint in ("http://127.0.0.1:8428/api/v1/admin/tsdb/delete_series", "https://10.0.0.5/push",
                         "https://169.254.169.254/latest/meta-data", "https://localhost/x"):
            refused = client.post("/api/v1/household/push-subscriptions", headers=auth, json={
                "endpoint": endpoint, "keys": {"p256dh": "x", "auth": "y"}})
            assert refused.status_code == 422 and "not a push service" in refused.json()["detail"], endpoint
        store, dispatcher = client.app.state.storage, client.app.state.dispatcher
        inside = "http://127.0.0.1:9/admin"
        client.portal.call(store.add_push_subscription, "hh-demo", inside, "x", "y", time.time())
        client.portal.call(store.add_notification, "hh-demo", "outage", "SW1A:2", "Probably a power cut")
        assert client.portal.call(dispatcher.run_once, local(12)) == 0
        log = client.get("/api/v1/household/deliveries", headers=auth).json()
        [push] = [d for d in log if d["channel"] == "webpush"]
        assert push["target"] == inside and push["status"] == "failed"
        assert "not sent: '127.0.0.1' is not a push service" in push["detail"]


def test_a_failing_webhook_is_retried_and_then_given_up(notifying, tmp_path):
    client, auth, receivers = notifying
    dispatcher = client.app.state.dispatcher
    dispatcher.webhook_url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    client.portal.call(client.app.state.storage.add_notification, "hh-demo", "outage", "x", "cut")
    for _ in range(7):
        client.portal.call(dispatcher.run_once, local(12))
    log = client.get("/api/v1/household/deliveries", headers=auth).json()
    assert [(d["channel"], d["status"], d["attempts"]) for d in log] == [("webhook", "failed", 5)]
    assert "ConnectError" in log[0]["detail"]


def test_the_vapid_key_is_kept(notifying, tmp_path):
    client, _, _ = notifying
    key = client.get("/api/v1/push/vapid-public-key").json()["public_key"]
    assert len(unb64(key)) == 65 and unb64(key)[0] == 4  # an uncompressed P-256 point
    pem = tmp_path / "cloud" / "vapid_private.pem"
    assert pem.stat().st_mode & 0o777 == 0o600
