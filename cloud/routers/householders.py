"""The householder's API (the app's contract): only ever their own household."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from cloud import deps
from cloud.auth import Principal
from cloud.coach.service import CoachReport, coach_report
from cloud.problems import Problem
from cloud.storage.base import Household
from cloud.summary import Summary, household_summary
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
