"""What hubs call: the batch upload. A hub writes only its own household's readings."""

from __future__ import annotations

import gzip
import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from cloud import deps
from cloud.auth import Principal
from cloud.ingest import Checked, check, parse_items
from cloud.problems import Problem
from cloud.wire import Incoming, decode_fast
from protocols.uplink import UplinkAck, UplinkEnvelope

router = APIRouter(prefix="/api/v1/hub", tags=["hubs"])


@router.post("/batches", response_model=UplinkAck, openapi_extra={"requestBody": {
    "required": True, "description": "an uplink batch, protocols.uplink.UplinkBatch (schema v1)",
    "content": {"application/json": {"schema": {"type": "object"}}}}})
async def post_batch(
    request: Request,
    hub: Annotated[Principal, Depends(deps.hub)],
) -> Response:
    """Store a batch of readings; acknowledge what was stored. A replayed (hub, seq) stores nothing."""
    metrics = request.app.state.metrics
    body = await request.body()
    if request.headers.get("content-encoding", "").lower() == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as exc:
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
