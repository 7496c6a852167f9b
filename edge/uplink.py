"""Store-and-forward to the cloud: seal batches from the store, send them in order, forget on ack.

Network errors and 5xx answers back off exponentially with jitter and retry the same
batch; the cloud deduplicates by (hub, seq) and by reading, so a retry after a lost
acknowledgement changes nothing. A 401/403 stops uploads (the hub's credential was
refused: revoked or wrong) until the credential changes; nothing is dropped meanwhile.
A batch the cloud refuses for good (400/413/422) is parked in the outbox, kept for
inspection, so it never blocks the readings behind it. Bodies travel gzipped.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable

import httpx
from pydantic import ValidationError

from edge.config import CloudConfig, CredentialError
from edge.store import HubStore
from protocols.display import DisplayState
from protocols.uplink import UplinkAck

log = logging.getLogger("ohmni.hub.uplink")

BATCH_PATH = "/api/v1/hub/batches"
#: Answers that a retry cannot change: the batch is parked, kept, and the outbox goes on.
PERMANENT = (400, 413, 422)


class Uplink:
    def __init__(self, store: HubStore, hub_id: str, cfg: CloudConfig,
                 display: Callable[[], DisplayState | None] = lambda: None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.store = store
        self.hub_id = hub_id
        self.cfg = cfg
        self.display = display
        self.counters: Counter[str] = Counter()
        self.refused: str | None = None
        self.last_error: str | None = None
        self._client = httpx.AsyncClient(base_url=cfg.url, timeout=cfg.timeout_s, transport=transport)
        self._backoff = 0.0

    async def aclose(self) -> None:
        await self._client.aclose()

    def seal(self) -> None:
        """Seal the next batch, only when none is waiting: while the cloud is away, readings stay
        unbatched, where compaction can reach them if the disk budget runs out."""
        if self.store.pending(limit=1):
            return
        if self.store.seal_batch(self.hub_id, self.cfg.batch_max, self.display()) is not None:
            self.counters["batches_sealed"] += 1

    async def send_pending(self) -> bool:
        """Send batches in order until none is left; True when the outbox is empty."""
        try:
            token = self.cfg.credential()
        except CredentialError as exc:
            if self.last_error != str(exc):
                log.error("%s", exc)
            self.last_error = str(exc)
            self.counters["credential_errors"] += 1
            return False
        if token is None:
            self.last_error = "no hub credential configured (cloud.token or cloud.token_file)"
            return False
        while True:
            self.seal()
            pending = self.store.pending(limit=1)
            if not pending:
                return True
            item = pending[0]
            try:
                resp = await self._client.post(
                    BATCH_PATH, content=gzip.compress(item.body.encode(), compresslevel=5),
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                             "Content-Encoding": "gzip"})
            except httpx.HTTPError as exc:
                self._fail(item.seq, f"cloud unreachable: {exc.__class__.__name__}: {exc}")
                return False
            if resp.status_code == 200:
                try:
                    ack = UplinkAck.model_validate_json(resp.content)
                except ValidationError:  # a captive portal or a proxy's page: not the cloud; try again later
                    self._fail(item.seq, "the answer was 200 but not the cloud's acknowledgement (a proxy or a "
                                         f"captive portal?): {resp.text[:120]!r}")
                    return False
                self.store.ack(item.seq, len(ack.rejected))
                self.counters["batches_acked"] += 1
                if ack.rejected:
                    self.counters["readings_rejected_by_cloud"] += len(ack.rejected)
                    log.warning("cloud refused %d reading(s) of batch %d, e.g. %s", len(ack.rejected), item.seq,
                                ack.rejected[0].get("detail"))
                self.counters["readings_acked"] += item.n_readings
                self.counters["duplicates_reported"] += ack.duplicates
                self._backoff, self.last_error, self.refused = 0.0, None, None
                continue
            detail = resp.text[:300]
            if resp.status_code in (401, 403):
                self.refused = f"cloud refused the hub credential ({resp.status_code}): {detail}"
                self._fail(item.seq, self.refused)
                return False
            if resp.status_code in PERMANENT:
                self.store.reject(item.seq, f"cloud refused the batch ({resp.status_code}): {detail}")
                self.counters["batches_rejected"] += 1
                log.error("cloud refused batch %d for good (%s): %s", item.seq, resp.status_code, detail)
                continue
            self._fail(item.seq, f"cloud answered {resp.status_code}: {detail}")
            return False

    def _fail(self, seq: int, error: str) -> None:
        self.store.mark_attempt(seq, error)
        self.counters["upload_failures"] += 1
        if error != self.last_error:
            log.warning("upload of batch %d failed: %s", seq, error)
        self.last_error = error
        self._back_off()

    def _back_off(self) -> None:
        """The next wait's ceiling doubles, from the interval up to ``max_backoff_s`` (see :meth:`next_delay`)."""
        self._backoff = min(self.cfg.max_backoff_s, max(self.cfg.interval_s, self._backoff * 2 or 1.0))

    def next_delay(self) -> float:
        """The interval when healthy; exponential backoff with full jitter after failures."""
        if not self._backoff:
            return self.cfg.interval_s
        return random.uniform(self.cfg.interval_s, self._backoff)

    async def run(self) -> None:
        while True:
            try:
                self.seal()
                await self.send_pending()
            except sqlite3.OperationalError as exc:  # a full disk: the batch cannot be sealed or its ack kept
                error = f"the store cannot take a write ({exc}); uploading again once it can"
                if error != self.last_error:
                    log.error("%s", error)
                self.last_error = error
                self.counters["store_errors"] += 1
                self._back_off()
            await asyncio.sleep(self.next_delay())

    async def drain(self, deadline_s: float) -> bool:
        """At shutdown: seal everything and try to empty the outbox before the deadline."""
        end = time.monotonic() + deadline_s
        try:
            self.seal()
            while time.monotonic() < end:
                if await self.send_pending():
                    return True
                if self.refused:
                    return False
                await asyncio.sleep(min(0.5, max(0.0, end - time.monotonic())))
        except sqlite3.OperationalError as exc:  # a full disk: what is stored stays for the next start
            log.error("the store cannot take a write (%s): what it holds is sent at the next start", exc)
        return False
