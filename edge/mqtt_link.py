"""The hub's MQTT link: device payloads in (zigbee2mqtt, Shelly, Tasmota, Glow), Home Assistant out.

One connection, kept alive with backoff and jitter. The session is persistent (a fixed
client id, no clean start, a day of session expiry) and subscriptions are QoS 1, so a
message the broker accepted while the hub was away is delivered when it is back.
A bad payload is counted and logged; it never stops the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.config import CredentialError, MqttConfig
from protocols import ha_discovery
from protocols.devices import (
    DeviceReading,
    PayloadError,
    SmlKeys,
    decode,
    mappings,
    subscriptions,
    z2m_bridge_devices,
)
from protocols.display import DisplayState, display_topic

log = logging.getLogger("ohmni.hub.mqtt")
SESSION_EXPIRY_S = 86_400
OUTBOX_MAX = 1000
#: Topics whose bad payloads are counted (to log only the first three of each) before the count starts again.
BAD_TOPICS_KEPT = 1024


class MqttLink:
    name = "mqtt"

    def __init__(self, cfg: MqttConfig, hub_id: str, on_devices: Callable[[list[DeviceReading]], None]) -> None:
        self.cfg = cfg
        self.hub_id = hub_id
        self.on_devices = on_devices
        self.table = mappings(cfg.zigbee2mqtt_base, SmlKeys(**cfg.sml.model_dump()))
        self.counters: Counter[str] = Counter()
        self.connected = False
        self.last_error: str | None = None
        self._outbox: asyncio.Queue[tuple[str, str, bool]] = asyncio.Queue(OUTBOX_MAX)  # (topic, payload, retain)
        self._discovered: dict[str, tuple[str, tuple[ha_discovery.SensorDescription, ...], set[str]]] = {}
        self._logged_bad: Counter[str] = Counter()
        self._last_state: dict[str, float] = {}
        self._last_display = -1e9
        self._display: str | None = None  # the state waiting to be published
        self.zigbee_devices: dict[str, dict[str, Any]] = {}  # from zigbee2mqtt's bridge/devices

    @property
    def availability_topic(self) -> str:
        return f"{self.cfg.state_prefix}/{ha_discovery.slug(self.hub_id)}/availability"

    def client(self, identifier: str | None = None) -> aiomqtt.Client:
        """A client with the hub's broker settings (TLS, credentials, protocol)."""
        cfg = self.cfg
        tls = None
        if cfg.ca_file:
            tls = ssl.create_default_context(cafile=str(cfg.ca_file))
            if cfg.cert_file:
                key = cfg.client_key()
                tls.load_cert_chain(str(cfg.cert_file), str(key) if key else None)
        v5 = cfg.protocol == 5
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
        return aiomqtt.Client(
            cfg.host, cfg.port, username=cfg.username, password=cfg.secret(),
            identifier=identifier or cfg.client_id or f"ohmni-hub-{ha_discovery.slug(self.hub_id)}",
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else False, clean_start=False if v5 else 3, properties=properties,
            tls_context=tls, timeout=cfg.connect_timeout_s, keepalive=30,
            will=aiomqtt.Will(self.availability_topic, "offline", qos=1, retain=True))

    # --- outgoing ---------------------------------------------------------------------------

    def _queue(self, topic: str, payload: str, retain: bool) -> None:
        try:
            self._outbox.put_nowait((topic, payload, retain))
        except asyncio.QueueFull:
            self.counters["publish_dropped"] += 1  # states only: the next one replaces it

    def publish_state(self, device: str, name: str, state: dict[str, Any],
                      sensors: tuple[ha_discovery.SensorDescription, ...]) -> None:
        """Publish a device's state; declare its sensors to Home Assistant the first time a key appears."""
        if not self.cfg.discovery:
            return
        keys = {k for k, v in state.items() if v is not None}
        known = self._discovered.get(device)
        if known is None or not keys <= known[2]:
            self._last_state.pop(device, None)  # a new sensor gets its first state at once
            merged = keys | (known[2] if known else set())
            self._discovered[device] = (name, sensors, merged)
            for topic, payload in ha_discovery.configs(self.cfg.discovery_prefix, self.cfg.state_prefix, self.hub_id,
                                                       device, name, sensors, merged):
                self._queue(topic, payload, True)
        now = time.monotonic()
        if now - self._last_state.get(device, -1e9) < self.cfg.state_interval_s:
            return  # Home Assistant needs no more; the hub's CPU is kept for reading
        self._last_state[device] = now
        self._queue(ha_discovery.state_topic(self.cfg.state_prefix, self.hub_id, device), json.dumps(state), False)

    @property
    def display_topic(self) -> str:
        return display_topic(self.cfg.state_prefix, ha_discovery.slug(self.hub_id))

    def publish_display(self, state: DisplayState, changed: bool = False) -> None:
        """Retained, so a display that wakes up shows the latest face at once; local, so it
        goes on while the cloud is unreachable."""
        if not self.cfg.display:
            return
        now = time.monotonic()
        if not changed and now - self._last_display < self.cfg.display_interval_s:
            return
        self._last_display = now
        # One place in the queue, always the freshest state: a burst (a backlog read at start)
        # never drops the latest face, and never floods the broker with stale ones.
        queued = self._display is not None
        self._display = state.model_dump_json()
        if not queued:
            self._queue(self.display_topic, "", True)

    def _rediscover(self) -> None:
        for device, (name, sensors, keys) in self._discovered.items():
            for topic, payload in ha_discovery.configs(self.cfg.discovery_prefix, self.cfg.state_prefix, self.hub_id,
                                                       device, name, sensors, keys):
                self._queue(topic, payload, True)

    async def _publisher(self, client: aiomqtt.Client) -> None:
        while True:
            topic, payload, retain = await self._outbox.get()
            if topic == self.display_topic:
                payload, self._display = self._display or "", None
                if not payload:
                    continue
            # retained discovery configs must arrive (QoS 1); states are superseded each second (QoS 0)
            await client.publish(topic, payload, qos=1 if retain else 0, retain=retain)
            self.counters["published"] += 1

    # --- incoming ---------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> None:
        if topic == f"{self.cfg.discovery_prefix}/status":
            if payload.strip() == b"online":
                self.counters["ha_online"] += 1
                self._rediscover()
            return
        self.counters["messages"] += 1
        try:
            if topic == f"{self.cfg.zigbee2mqtt_base}/bridge/devices":
                self.zigbee_devices = z2m_bridge_devices(payload)
                return
            readings = decode(topic, payload, self.table)
        except PayloadError as exc:
            self.counters["rejected_payload"] += 1
            if self._say_bad(topic):
                log.warning("bad payload on %s: %s", topic, exc)
            return
        except Exception:  # a decoder's own bug on a payload nobody foresaw: that message is lost, not the link
            self.counters["decoder_errors"] += 1
            if self._say_bad(topic):
                log.exception("decoding a payload on %s failed; the message is dropped", topic)
            return
        if readings:
            self.counters["device_readings"] += len(readings)
            self.on_devices(readings)

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with self.client() as client:
                    self.connected, self.last_error, backoff = True, None, 0.5
                    log.info("MQTT connected to %s:%s", self.cfg.host, self.cfg.port)
                    for topic in [*subscriptions(self.table), f"{self.cfg.discovery_prefix}/status"]:
                        await client.subscribe(topic, qos=1)
                    await client.publish(self.availability_topic, "online", qos=1, retain=True)
                    self._rediscover()
                    publisher = asyncio.create_task(self._publisher(client))
                    try:
                        async for message in client.messages:
                            self.handle(str(message.topic), bytes(message.payload or b""))
                    finally:
                        publisher.cancel()
                        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                            await publisher
            except (aiomqtt.MqttError, OSError, ssl.SSLError, CredentialError) as exc:
                self.connected = False
                self.counters["credential_errors" if isinstance(exc, CredentialError) else "reconnects"] += 1
                self.last_error = f"{self.cfg.host}:{self.cfg.port}: {exc}"
                log.warning("MQTT link down (%s); retrying in %.1f s", exc, backoff)
                await asyncio.sleep(random.uniform(backoff / 2, backoff))
                backoff = min(self.cfg.max_backoff_s, backoff * 2)

    def _say_bad(self, topic: str) -> bool:
        """Whether to log a bad payload on ``topic``: its first three. The topics counted are forgotten past
        ``BAD_TOPICS_KEPT``, so a device that sends to ever new topics cannot grow the hub's memory with them."""
        if topic not in self._logged_bad and len(self._logged_bad) >= BAD_TOPICS_KEPT:
            self._logged_bad.clear()
        self._logged_bad[topic] += 1
        return self._logged_bad[topic] <= 3

    def status(self) -> dict[str, Any]:
        return {"broker": f"{self.cfg.host}:{self.cfg.port}", "connected": self.connected,
                "last_error": self.last_error, "counters": dict(self.counters),
                "devices": sorted(self._discovered), "zigbee_devices": self.zigbee_devices, "at": time.time()}
