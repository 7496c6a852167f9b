"""The householder's API (the app's contract): only ever their own household."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as FastPath
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from cloud import deps
from cloud.auth import Principal
from cloud.coach.nudges import unit_rate
from cloud.coach.service import CoachReport, coach_report
from cloud.history import History, Span, history
from cloud.notify import Prefs, prefs_of, push_endpoint_refused
from cloud.problems import Problem
from cloud.social import normalise_handle
from cloud.storage.base import Household
from cloud.summary import Summary, household_summary, settlement_usage
from cloud.tariffs.model import Tariff
from protocols.uplink import ReadingV1

router = APIRouter(prefix="/api/v1/household", tags=["householders"])

MAX_READINGS = 100_000


async def own_household(request: Request, who: Principal) -> Household:
    household = await deps.storage(request).household(who.household_id)
    if household is None:
        raise Problem(404, "Not found", "your household no longer exists")
    return household


@router.get("/summary", response_model=Summary)
async def summary(request: Request, who: Annotated[Principal, Depends(deps.householder)]) -> Summary:
    """Live power, the face, today's energy and cost, and the last hours of power."""
    return await household_summary(deps.storage(request), await own_household(request, who))


@router.get("/coach", response_model=CoachReport)
async def coach(request: Request, who: Annotated[Principal, Depends(deps.householder)]) -> CoachReport:
    """Bill preview, why the bill changed, and nudges with savings priced from the home's own data."""
    return await coach_report(deps.storage(request), await own_household(request, who))


@router.get("/notifications")
async def notifications(request: Request, who: Annotated[Principal, Depends(deps.householder)]) -> list[dict]:
    """Notifications sent to the household (bill shock, …), newest first."""
    return await deps.storage(request).notifications(who.household_id)


@router.get("/readings", response_model=list[ReadingV1])
async def readings(
    request: Request,
    who: Annotated[Principal, Depends(deps.householder)],
    from_ts: Annotated[int, Query(ge=0, le=2**40, description="UTC epoch seconds, inclusive")] = 0,
    to_ts: Annotated[int, Query(ge=0, le=2**40, description="UTC epoch seconds, exclusive")] = 2**40,
    limit: Annotated[int, Query(ge=1, le=MAX_READINGS)] = MAX_READINGS,
) -> list[ReadingV1]:
    """Every stored reading of the household in [from_ts, to_ts), oldest first."""
    if to_ts < from_ts:
        raise Problem(400, "Bad range", "to_ts is before from_ts")
    return await deps.storage(request).readings(who.household_id, from_ts, to_ts, limit)


class NudgeDecision(BaseModel):
    decision: Literal["accept", "dismiss"]


@router.post("/nudges/{nudge_id}")
async def decide_nudge(request: Request, who: Annotated[Principal, Depends(deps.householder_write)],
                       nudge_id: Annotated[str, FastPath(max_length=32)], body: NudgeDecision) -> dict[str, str]:
    """Accept a nudge (it stays, marked accepted) or dismiss it (it is not shown again)."""
    household = await own_household(request, who)
    store = deps.storage(request)
    report = await coach_report(store, household)
    if nudge_id not in {n.id for n in report.nudges}:
        raise Problem(404, "Not found", f"no current nudge {nudge_id!r}")
    await deps.people(request).decide_nudge(household.id, nudge_id, body.decision, time.time())
    return {"id": nudge_id, "decision": body.decision}


@router.get("/export/costs.csv", response_class=PlainTextResponse,
            responses={200: {"content": {"text/csv": {}}, "description": "half-hourly usage and cost"}})
async def export_costs(request: Request, who: Annotated[Principal, Depends(deps.householder)],
                       days: Annotated[int, Query(ge=1, le=400)] = 30) -> Response:
    """Every half-hour of the last ``days`` days: local start, kWh, tariff band, unit rate and cost.
    Standing charges are per day and not in these rows."""
    household = await own_household(request, who)
    store = deps.storage(request)
    latest = await store.latest_reading(household.id)
    tariff = Tariff.model_validate_json(household.tariff_json)
    tz = ZoneInfo(household.tz)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["period_start", "kwh", "band", f"unit_rate_{tariff.currency}", f"cost_{tariff.currency}"])
    if latest is not None:
        for interval in await settlement_usage(store, household.id, latest.ts - days * 86400, latest.ts + 1):
            band, rate = unit_rate(tariff, interval.start, tz)
            writer.writerow([interval.start.astimezone(tz).isoformat(), f"{interval.kwh:.3f}", band, f"{rate}",
                             f"{(interval.kwh * rate).quantize(Decimal('0.0001'), ROUND_HALF_UP)}"])
    return Response(out.getvalue(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="ohmni-{household.id}-costs.csv"'})


@router.get("/export/readings.csv", response_class=PlainTextResponse,
            responses={200: {"content": {"text/csv": {}}, "description": "every stored reading"}})
async def export_readings(request: Request, who: Annotated[Principal, Depends(deps.householder)],
                          days: Annotated[int, Query(ge=1, le=31)] = 1) -> Response:
    """Every stored reading of the last ``days`` days, as the meter gave it."""
    store = deps.storage(request)
    latest = await store.latest_reading(who.household_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["ts", "utc", "meter_id", "import_wh", "export_wh", "power_import_w", "power_export_w"])
    if latest is not None:
        for r in await store.readings(who.household_id, latest.ts - days * 86400, latest.ts + 1):
            writer.writerow([r.ts, datetime.fromtimestamp(r.ts, UTC).isoformat(), r.meter_id,
                             r.import_t1_wh + r.import_t2_wh, r.export_t1_wh + r.export_t2_wh, r.power_import_w,
                             r.power_export_w])
    return Response(out.getvalue(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="ohmni-{who.household_id}-readings.csv"'})


@router.get("/notification-prefs", response_model=Prefs)
async def get_prefs(request: Request, who: Annotated[Principal, Depends(deps.householder)]) -> Prefs:
    """What the household is told about, on which channels, and its quiet hours."""
    return await prefs_of(deps.people(request), who.household_id)


@router.put("/notification-prefs", response_model=Prefs)
async def put_prefs(request: Request, who: Annotated[Principal, Depends(deps.householder_write)],
                    prefs: Prefs) -> Prefs:
    await deps.people(request).set_notification_prefs(who.household_id, prefs.model_dump_json())
    return prefs


class PushKeys(BaseModel):
    p256dh: str = Field(max_length=200)
    auth: str = Field(max_length=100)


class PushSubscription(BaseModel):
    """What the browser's PushManager.subscribe() gives (its toJSON())."""

    endpoint: str = Field(max_length=1000)
    keys: PushKeys


@router.post("/push-subscriptions", status_code=201)
async def add_push_subscription(request: Request, who: Annotated[Principal, Depends(deps.householder_write)],
                                subscription: PushSubscription) -> dict[str, str]:
    """Web Push for this browser: an endpoint on a browser's push service (``push_hosts``), over https."""
    refused = push_endpoint_refused(subscription.endpoint, request.app.state.settings.push_hosts)
    if refused:
        raise Problem(422, "Invalid subscription", refused)
    await deps.people(request).add_push_subscription(who.household_id, subscription.endpoint, subscription.keys.p256dh,
                                                 subscription.keys.auth, time.time())
    return {"status": "subscribed"}


@router.get("/deliveries")
async def deliveries(request: Request, who: Annotated[Principal, Depends(deps.householder)]) -> list[dict]:
    """The delivery log: each notification on each channel, sent or failed, newest first."""
    return [d for d in await deps.people(request).deliveries(who.household_id) if d["channel"] != "all"]



push_router = APIRouter(tags=["notifications"])


@push_router.get("/api/v1/push/vapid-public-key")
async def vapid_public_key(request: Request) -> dict[str, str]:
    """The applicationServerKey browsers subscribe with. Public."""
    return {"public_key": request.app.state.vapid.public_key}


class Handle(BaseModel):
    handle: str = Field(min_length=1, max_length=100, pattern=r"^@?[A-Za-z0-9_.-]+$")


@router.put("/social-handle")
async def link_social_handle(request: Request, who: Annotated[Principal, Depends(deps.householder_write)],
                             body: Handle) -> dict[str, str]:
    """Link the household's social handle, so its mentions of the utility reach an agent with its context."""
    handle = normalise_handle(body.handle)
    await deps.people(request).link_handle(who.household_id, handle)
    return {"handle": handle}


@router.get("/history", response_model=History)
async def usage_history(request: Request, who: Annotated[Principal, Depends(deps.householder)],
                        span: Span = "day") -> History:
    """Use by half-hour over the last day or week (with the tariff's bands), or by day over a month."""
    return await history(deps.storage(request), await own_household(request, who), span)
