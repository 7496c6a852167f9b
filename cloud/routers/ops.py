"""Operations: Prometheus metrics for whoever runs the cloud."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from cloud.problems import Problem

router = APIRouter(tags=["operations"])
_LOOPBACK = ("127.0.0.1", "::1", "testclient")


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text format. With OHMNI_CLOUD_METRICS_TOKEN set it needs that bearer token,
    otherwise only clients on this machine may read it."""
    token = request.app.state.settings.metrics_token
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if token:
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Problem(401, "Unauthorized", "metrics need the metrics bearer token")
    elif (request.client.host if request.client else "") not in _LOOPBACK:
        raise Problem(403, "Forbidden", "metrics are only served to this machine unless a metrics token is set")
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


bench_router = APIRouter(tags=["benchmark"], include_in_schema=False)


@bench_router.post("/api/v1/bench/noop")
async def noop(request: Request) -> Response:
    """Reads the body and answers: what HTTP alone costs, for bench.ingest's baseline."""
    body = await request.body()
    return Response(f'{{"bytes": {len(body)}}}', media_type="application/json")
