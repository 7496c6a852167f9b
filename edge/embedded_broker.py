"""The zero-set-up broker: amqtt inside the hub process, for homes without a Mosquitto.

amqtt speaks MQTT 3.1.1 only (no MQTT 5, no shared subscriptions), and queues QoS 1 for
offline clients only when they are not anonymous; that is enough for one home's plugs.
Production hubs with many devices, ACLs or TLS use Mosquitto (see docs/decisions.md).
Only the authentication plugin is loaded: amqtt's default logging and $SYS plugins
cost about 40% of its throughput.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("ohmni.hub.broker")


class BrokerStartError(RuntimeError):
    """The embedded broker could not start (its port held by another program, most often a Mosquitto)."""


class EmbeddedBroker:
    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host, self.port = host, port
        self._broker: Any = None

    async def start(self) -> None:
        from amqtt.broker import Broker  # imported only by hubs that run it: it costs memory

        self._broker = Broker({  # amqtt binds itself to the running loop: create it inside
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        })
        quiet = logging.getLogger("amqtt.broker")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # it logs a failed start as a traceback; the error below says it in a line
        try:
            await self._broker.start()
        except Exception as exc:
            self._broker = None
            cause = exc.__cause__ or exc
            why = os.strerror(cause.errno) if isinstance(cause, OSError) and cause.errno else str(cause)
            raise BrokerStartError(f"the embedded MQTT broker cannot listen on {self.host}:{self.port} ({why})") \
                from None
        finally:
            quiet.setLevel(level)
        log.info("embedded MQTT broker on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
