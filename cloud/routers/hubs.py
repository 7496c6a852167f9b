"""What hubs call: the batch upload. A hub writes only its own household's readings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from cloud import deps
from cloud.auth import Principal
from cloud.problems import Problem
from protocols.uplink import UplinkAck, UplinkBatch

router = APIRouter(prefix="/api/v1/hub", tags=["hubs"])


@router.post("/batches", response_model=UplinkAck, openapi_extra={"requestBody": {
    "required": True, "description": "an uplink batch, protocols.uplink.UplinkBatch (schema v1)",
    "content": {"application/json": {"schema": {"type": "object"}}}}})
async def post_batch(
    request: Request,
    hub: Annotated[Principal, Depends(deps.hub)],
) -> UplinkAck:
    """Store a batch of readings; acknowledge what was stored. A replayed (hub, seq) stores nothing."""
    # The body is validated straight from bytes (pydantic's fast path), not via FastAPI's parser.
    try:
        batch = UplinkBatch.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:20]]
        raise Problem(422, "Invalid batch", f"{exc.error_count()} problem(s) in the batch", errors=errors) from exc
    if batch.hub_id != hub.subject:
        raise Problem(403, "Forbidden", f"this credential belongs to hub {hub.subject!r}, "
                                        f"not {batch.hub_id!r}")
    store = deps.storage(request)
    result = await store.store_batch(hub.household_id, hub.subject, batch.seq, batch.readings)
    if not result.replayed:
        if batch.display is not None:
            await store.set_display(hub.household_id, batch.display)
        if batch.runs:
            await store.store_runs(hub.household_id, hub.subject, batch.runs)
    return UplinkAck(hub_id=batch.hub_id, seq=batch.seq, stored=result.stored,
                     duplicates=result.duplicates, replayed=result.replayed)
