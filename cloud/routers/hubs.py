"""What hubs call: the batch upload. A hub writes only its own household's readings."""

from __future__ import annotations

import hashlib
import zlib
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from cloud import deps
from cloud.auth import Principal
from cloud.body_limit import BodyTooLarge
from cloud.ingest import Checked, check, parse_items
from cloud.problems import Problem
from cloud.wire import Incoming, decode_fast
from protocols.uplink import UplinkAck, UplinkEnvelope

router = APIRouter(prefix="/api/v1/hub", tags=["hubs"])
BATCH_PATH = "/api/v1/hub/batches"

#: The most a batch's body may be, sent and unpacked: the schema's largest batch (5,000 readings, 1,000 day-long
#: runs with a watt a minute, 5,000 half hours, every field at its widest) is 30 MB of JSON, so no batch a hub
#: builds is refused, while a body that unpacks to gigabytes (a gzip bomb) stops here rather than in memory.
MAX_BATCH_BYTES = 32 * 2**20


def gunzip(body: bytes, limit: int) -> bytes:
    """``body`` unpacked from gzip (every member, as ``gzip.decompress`` does), refusing more than ``limit`` bytes:
    ``BodyTooLarge`` past it, ``ValueError`` for bytes that are not whole gzip."""
    out, rest = bytearray(), body
    while rest:
        unpacker = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip's header and trailer
        try:
            out += unpacker.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise ValueError(str(exc)) from None
        if len(out) > limit:
            raise BodyTooLarge(f"over {limit} bytes unpacked")
        if not unpacker.eof:
            raise ValueError("the gzip stream ends before its end-of-stream marker")
        rest = unpacker.unused_data
    if not body:
        raise ValueError("empty body")
    return bytes(out)


@router.post(BATCH_PATH.removeprefix(router.prefix), response_model=UplinkAck, openapi_extra={"requestBody": {
    "required": True, "description": "an uplink batch, protocols.uplink.UplinkBatch (schema v1)",
    "content": {"application/json": {"schema": {"type": "object"}}}}})
async def post_batch(
    request: Request,
    hub: Annotated[Principal, Depends(deps.hub)],
) -> Response:
    """Store a batch of readings; acknowledge what was stored. A replayed (hub, seq) stores nothing."""
    metrics = request.app.state.metrics
    body = await request.body()  # at most MAX_BATCH_BYTES: cloud.body_limit refused a longer one unread
    if request.headers.get("content-encoding", "").lower() == "gzip":
        try:
            body = gunzip(body, MAX_BATCH_BYTES)
        except BodyTooLarge:
            metrics.batches.labels("too_large").inc()
            raise Problem(413, "Body too large", f"the gzip body unpacks to more than {MAX_BATCH_BYTES:,} bytes, "
                                                 "the most a batch may be") from None
        except ValueError as exc:
            metrics.batches.labels("invalid").inc()
            raise Problem(400, "Invalid body", f"Content-Encoding gzip, but the body is not gzip: {exc}") from None
    checked = Checked()
    # The fast path (msgspec, cloud.wire) takes a well-formed batch; anything it refuses is
    # read again by pydantic, item by item, so each bad item is named and the good ones kept.
    batch = decode_fast(body)
    if batch is not None:
        items = list(enumerate(batch.readings))
    else:
        try:
            batch = Incoming.from_envelope(UplinkEnvelope.model_validate_json(body))
        except ValidationError as exc:
            metrics.batches.labels("invalid").inc()
            errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:20]]
            raise Problem(422, "Invalid batch", f"{exc.error_count()} problem(s) in the batch envelope",
                          errors=errors) from None
        items = parse_items(batch.readings, checked)
    if batch.hub_id != hub.subject:
        metrics.batches.labels("forbidden").inc()
        raise Problem(403, "Forbidden", f"this credential belongs to hub {hub.subject!r}, "
                                        f"not {batch.hub_id!r}")
    store = deps.storage(request)
    previous = await store.last_hub_readings(hub.subject, {r.channel for _, r in items})
    check(items, previous, checked=checked, prechecked=batch.fast)
    with metrics.store_seconds.time():
        result = await store.store_batch(hub.household_id, hub.subject, batch.seq, checked.good)
    if not result.replayed:
        if request.app.state.tsdb is not None and checked.good:
            request.app.state.tsdb.write(hub.household_id, hub.subject, checked.good)
        if batch.display is not None:
            await store.set_display(hub.household_id, batch.display)
        if batch.runs:
            await store.store_runs(hub.household_id, hub.subject, batch.runs)
        if batch.energy:
            await store.store_energy(hub.household_id, hub.subject, batch.energy)
        for notice in batch.notices:
            await store.add_notification(hub.household_id, "hub_notice", hashlib.sha256(notice.encode()).hexdigest(),
                                         notice[:500])
        for problem in checked.rejected:
            metrics.rejected.labels(problem["reason"]).inc()
        for event, n in checked.events.items():
            metrics.events.labels(event).inc(n)
    metrics.stored.inc(result.stored)
    metrics.duplicates.inc(result.duplicates)
    metrics.batches.labels("replayed" if result.replayed else "stored").inc()
    if batch.backlog is not None:
        metrics.backlog.labels(hub.subject).set(batch.backlog)
    ack = UplinkAck(hub_id=batch.hub_id, seq=batch.seq, stored=result.stored, duplicates=result.duplicates,
                    replayed=result.replayed, rejected=[] if result.replayed else checked.rejected)
    # Serialised here: FastAPI would validate the model a second time on the way out.
    return Response(ack.model_dump_json(), media_type="application/json")
