"""A simulated in-home display: subscribes to the hub's retained display topic and renders it.

Real displays of this kind are small MQTT clients (an ESP32 with an e-paper or a character
LCD); this one renders to a line of text. The topic is retained, so a display that boots
or reconnects shows the latest face at once; a malformed message is counted and the last
good face stays on the screen.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import aiomqtt
from pydantic import ValidationError

from protocols.display import DisplayState, display_topic, render_line
from protocols.ha_discovery import slug


class DisplayDevice:
    def __init__(self, host: str, port: int, hub_id: str, prefix: str = "ohmni", username: str | None = None,
                 password: str | None = None, on_render: Callable[[str], None] | None = None) -> None:
        self.host, self.port = host, port
        self.topic = display_topic(prefix, slug(hub_id))
        self.username, self.password = username, password
        self.on_render = on_render
        self.state: DisplayState | None = None
        self.line = "Waiting for the hub"
        self.counters: Counter[str] = Counter()
        self.connected = False

    def handle(self, payload: bytes) -> None:
        try:
            state = DisplayState.model_validate_json(payload)
        except ValidationError:
            self.counters["rejected"] += 1  # keep showing the last good face
            return
        self.counters["rendered"] += 1
        self.state, self.line = state, render_line(state)
        if self.on_render is not None:
            self.on_render(self.line)

    async def run(self, reconnect_s: float = 2.0) -> None:
        """Show the hub's display state until cancelled, reconnecting whenever the broker goes."""
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, username=self.username, password=self.password,
                                          protocol=aiomqtt.ProtocolVersion.V311) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.connected = True
                    async for message in client.messages:
                        payload = message.payload
                        self.handle(payload if isinstance(payload, bytes) else str(payload).encode())
            except aiomqtt.MqttError:
                self.counters["disconnects"] += 1
            finally:
                self.connected = False
            await asyncio.sleep(reconnect_s)
