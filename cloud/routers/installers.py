"""Installers and joining hubs: claim codes, registration, revocation, and a hub's ping."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from cloud import deps
from cloud.auth import ALL_HOUSEHOLDS, Principal
from cloud.problems import RETRY_AFTER_S, Problem
from cloud.provisioning import ClaimError, UnknownHousehold, create_claim_code, register_hub, revoke_hub
from cloud.storage.people import PeopleStore
from protocols.uplink import HUB_ID_PATTERN

router = APIRouter(tags=["installers"])

#: Failed registrations a client may make per minute before it is told to wait. They are counted in the store, as
#: wrong staff passwords are, so every worker of a cloud, and a restarted one, counts the same.
REGISTER_FAILURES_PER_MINUTE = 10


class ClaimCodeRequest(BaseModel):
    household_id: str = Field(max_length=64)
    ttl_hours: float = Field(default=72, gt=0, le=720)


class ClaimCode(BaseModel):
    code: str
    household_id: str
    expires_at: float


class RegisterRequest(BaseModel):
    code: str = Field(max_length=32)
    hub_id: str = Field(min_length=3, max_length=64, pattern=HUB_ID_PATTERN)


class Registered(BaseModel):
    hub_id: str
    household_id: str
    token: str = Field(description="the hub's credential: shown once, stored hashed in the cloud")


class Ping(BaseModel):
    hub_id: str
    household_id: str
    server_time: float


def _installer_for(who: Principal, household_id: str) -> None:
    if who.household_id not in (ALL_HOUSEHOLDS, household_id):
        raise Problem(403, "Forbidden", f"this installer does not serve household {household_id!r}")


@router.post("/api/v1/installer/claim-codes", response_model=ClaimCode, status_code=201)
async def new_claim_code(request: Request, body: ClaimCodeRequest,
                         who: Annotated[Principal, Depends(deps.installer)]) -> ClaimCode:
    """A one-time code a hub uses to join this household; it expires after ``ttl_hours``."""
    _installer_for(who, body.household_id)
    try:
        code, expires_at = await create_claim_code(deps.storage(request), body.household_id, body.ttl_hours)
    except UnknownHousehold as exc:
        raise Problem(404, "Not found", str(exc)) from None
    return ClaimCode(code=code, household_id=body.household_id, expires_at=expires_at)


@router.post("/api/v1/installer/hubs/{hub_id}/revoke")
async def revoke(request: Request, hub_id: str, who: Annotated[Principal, Depends(deps.installer)]) -> dict:
    """Revoke a hub: its uploads are refused from now on."""
    store = deps.storage(request)
    household = await store.hub_household(hub_id)
    if household is None:
        raise Problem(404, "Not found", f"no hub {hub_id!r}")
    _installer_for(who, household)
    return {"hub_id": hub_id, "revoked_credentials": await revoke_hub(store, hub_id)}


@router.post("/api/v1/hubs/register", response_model=Registered, status_code=201)
async def register(request: Request, body: RegisterRequest) -> Registered:
    """A hub joins with a claim code and receives its own credential."""
    who = f"claim-code:{request.client.host if request.client else '?'}"
    people = deps.people(request)
    now = time.time()
    if await people.failed_logins(who, now - 60) >= REGISTER_FAILURES_PER_MINUTE:
        raise Problem(429, "Too many attempts", "too many refused claim codes from this address; wait a minute")
    try:
        household_id, token = await register_hub(deps.storage(request), body.code, body.hub_id)
    except ClaimError as exc:
        await people.record_login(who, False, now)
        raise Problem(403, "Claim code refused", str(exc)) from None
    return Registered(hub_id=body.hub_id, household_id=household_id, token=token)


@router.post("/api/v1/hub/ping", response_model=Ping)
async def ping(hub: Annotated[Principal, Depends(deps.hub)]) -> Ping:
    """The credential works: who the cloud thinks this hub is, and the cloud's clock."""
    return Ping(hub_id=hub.subject, household_id=hub.household_id, server_time=time.time())


@router.get("/healthz")
async def healthz() -> dict:
    """The process is up (a liveness check: it says nothing of the store, so that a database away does not get every
    replica restarted)."""
    return {"status": "ok"}


#: How long /readyz waits for the store before it says the cloud is not ready.
READY_TIMEOUT_S = 5.0


@router.get("/readyz")
async def readyz(people: Annotated[PeopleStore, Depends(deps.people)]) -> dict:
    """Ready to serve: the store answers (a readiness check for a load balancer). A 503 problem otherwise, as every
    request gets while the store is away (cloud/problems.py)."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await people.ping()
    except TimeoutError:
        raise Problem(503, "Store unavailable", f"the store did not answer within {READY_TIMEOUT_S:.0f} s",
                      headers={"Retry-After": str(RETRY_AFTER_S)}) from None
    return {"status": "ok", "store": "ok"}
