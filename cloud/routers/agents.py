"""The call-centre console's API and pages: find a household, see what it saw, add notes.

Agents read; nothing here changes a reading. Every look-up — a search, opening a
household, a note — is written to the audit log with who, when, which household and the
reason the agent chose. Admins read the audit log. Staff sign in with a password
(cloud/staff.py); their session cookie is also what the console's scripts send, with the
CSRF token on every change.
"""

from __future__ import annotations

import html
import time
from importlib import resources
from string import Template
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from cloud import deps, staff
from cloud.auth import Role, hash_secret
from cloud.coach.service import CoachReport, appliance_kwh, coach_report
from cloud.problems import Problem
from cloud.storage.base import Household
from cloud.storage.people import PeopleStore
from cloud.summary import Summary, household_summary

router = APIRouter(tags=["agents"])

#: The reasons an agent can give for a look-up (what the audit log records).
REASONS = ("billing query", "outage report", "moving home", "complaint", "vulnerability check", "payment",
           "other")
Reason = Literal["billing query", "outage report", "moving home", "complaint", "vulnerability check", "payment",
                 "other"]
#: A pause longer than this between two readings is a gap worth showing an agent.
GAP_S = 120


async def signed_in(request: Request) -> staff.Session:
    session = await staff.current(deps.people(request), request.cookies.get(staff.STAFF_COOKIE))
    if session is None:
        raise Problem(401, "Unauthorized", "sign in to the agent console first (/agent)")
    if request.method not in ("GET", "HEAD"):
        staff.check_csrf(session, request.headers.get("x-csrf-token"))
    return session


async def agent(session: Annotated[staff.Session, Depends(signed_in)]) -> staff.Session:
    if session.who.role not in (Role.AGENT, Role.ADMIN):
        raise Problem(403, "Forbidden", "agents and admins only")
    return session


async def admin(session: Annotated[staff.Session, Depends(signed_in)]) -> staff.Session:
    if session.who.role != Role.ADMIN:
        raise Problem(403, "Forbidden", "the audit log is for admins")
    return session


class HouseholdCard(BaseModel):
    id: str
    name: str
    account_number: str
    postcode: str
    meters: list[str]


class Gap(BaseModel):
    start: int = Field(description="last reading before the gap, UTC epoch seconds")
    end: int = Field(description="first reading after it")
    seconds: int


class HubHealth(BaseModel):
    hub_id: str
    last_ts: int | None
    voltage_v: float | None
    power_failures: int | None
    last_failure_ts: int | None
    verdict: str


class HouseholdContext(BaseModel):
    """What the agent sees: what the household saw, and what the hub and the cloud know."""

    household: HouseholdCard
    hubs: list[HubHealth]
    power_24h: list[tuple[int, int]] = Field(description="(ts, W) over the last 24 hours, one point a minute")
    summary: Summary
    coach: CoachReport
    last_reading_ts: int | None
    gaps_24h: list[Gap]
    appliances: dict[str, float] = Field(description="kWh per appliance over the last 30 days, from the hub's half "
                                         "hours (its plugs where it has them, else disaggregation), most first")
    notifications: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    mentions: list[dict[str, Any]] = Field(description="the household's posts naming the utility")


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000)
    reason: Reason


async def household_card(store: PeopleStore, h: Household) -> HouseholdCard:
    return HouseholdCard(id=h.id, name=h.name, account_number=h.account_number, postcode=h.postcode,
                         meters=await store.household_meters(h.id))


def gaps(series: list[tuple[int, int]], min_s: int = GAP_S) -> list[Gap]:
    return [Gap(start=a, end=b, seconds=b - a) for (a, _), (b, _) in zip(series, series[1:], strict=False)
            if b - a > min_s]


def _health(h: dict[str, Any], now: int) -> HubHealth:
    if h["last_ts"] is None:
        verdict = "never reported: check it is powered and provisioned"
    elif now - h["last_ts"] > 3600:
        verdict = "silent for over an hour: power, Wi-Fi or broadband at the home"
    elif h["voltage_v"] == 0:
        verdict = "reporting 0 V: the supply may be off"
    else:
        verdict = "reporting normally"
    return HubHealth(**h, verdict=verdict)


def _minutes(series: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """One point a minute (its mean), so a day's chart stays light."""
    out: dict[int, list[int]] = {}
    for ts, w in series:
        out.setdefault(ts // 60 * 60, []).append(w)
    return [(m, round(sum(v) / len(v))) for m, v in out.items()]


@router.get("/api/v1/agent/reasons")
async def reasons(session: Annotated[staff.Session, Depends(agent)]) -> list[str]:
    """The reasons a look-up can be made for."""
    return list(REASONS)


@router.get("/api/v1/agent/search", response_model=list[HouseholdCard])
async def search(request: Request, session: Annotated[staff.Session, Depends(agent)],
                 q: Annotated[str, Query(min_length=1, max_length=100)], reason: Reason) -> list[HouseholdCard]:
    """Households by account number, meter id (MPAN/EAN), postcode or name. Audited."""
    store = deps.people(request)
    found = await store.search_households(q)
    await store.audit(session.who, "*", "search", reason, f"q={q!r} found={len(found)}", time.time())
    return [await household_card(store, h) for h in found]


@router.get("/api/v1/agent/households/{household_id}", response_model=HouseholdContext)
async def household_context(request: Request, session: Annotated[staff.Session, Depends(agent)],
                            household_id: str, reason: Reason) -> HouseholdContext:
    """Everything about one household an agent may see. Audited."""
    store = deps.people(request)
    household = await deps.storage(request).household(household_id)
    if household is None:
        raise Problem(404, "Not found", f"no household {household_id!r}")
    await store.audit(session.who, household_id, "view", reason, "", time.time())
    storage = deps.storage(request)
    latest = await storage.latest_reading(household_id)
    now = latest.ts if latest else int(time.time())
    since = now - 30 * 86400
    # as the coach counts them: from the half hours the hub sent, from runs only where it sent none
    kwh = appliance_kwh(await storage.runs(household_id, since, now + 1),
                        await storage.appliance_energy(household_id, since, now + 1), since, now + 1)
    appliances = {name: round(float(value), 3) for name, value in sorted(kwh.items(), key=lambda kv: -kv[1])
                  if round(value, 3)}
    series = await storage.power_series(household_id, now - 86400, now + 1)
    return HouseholdContext(
        household=await household_card(store, household), hubs=[_health(h, now) for h in await store.household_hubs(
            household_id)], power_24h=_minutes(series), summary=await household_summary(storage, household),
        coach=await coach_report(storage, household), last_reading_ts=latest.ts if latest else None,
        gaps_24h=gaps(series), appliances=appliances,
        notifications=await storage.notifications(household_id), notes=await store.notes(household_id),
        mentions=await store.mentions(household_id))


@router.post("/api/v1/agent/households/{household_id}/notes", status_code=201)
async def add_note(request: Request, session: Annotated[staff.Session, Depends(agent)], household_id: str,
                   note: NoteIn) -> dict[str, str]:
    """A note on the household's record (needs the X-CSRF-Token header). Audited."""
    store = deps.people(request)
    if await deps.storage(request).household(household_id) is None:
        raise Problem(404, "Not found", f"no household {household_id!r}")
    now = time.time()
    await store.add_note(household_id, session.who.subject, note.text, now)
    await store.audit(session.who, household_id, "note", note.reason, note.text[:100], now)
    return {"status": "added"}


@router.get("/api/v1/admin/audit")
async def audit_log(request: Request, session: Annotated[staff.Session, Depends(admin)],
                    household_id: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    """Who looked at what, when and why, newest first (admins only)."""
    return await deps.people(request).audit_log(household_id, limit)


# --- pages ------------------------------------------------------------------------------------

_TEMPLATES = resources.files("dashboards").joinpath("templates")


def _page(name: str, status: int = 200, trusted: dict[str, str] | None = None, **values: str) -> HTMLResponse:
    """A template filled with escaped values (and ``trusted`` HTML built here)."""
    text = Template(_TEMPLATES.joinpath(name).read_text()).substitute(
        {k: html.escape(v) for k, v in values.items()} | (trusted or {}))
    return HTMLResponse(text, status_code=status, headers={"Cache-Control": "no-store"})


@router.get("/agent", include_in_schema=False)
async def console(request: Request) -> Response:
    session = await staff.current(deps.people(request), request.cookies.get(staff.STAFF_COOKIE))
    if session is None:
        return _page("agent_login.html", error="")
    options = "".join(f'<option value="{html.escape(r)}">{html.escape(r)}</option>' for r in REASONS)
    return _page("agent.html", trusted={"reasons": options}, user=session.who.subject,
                 role=session.who.role.value, csrf=session.csrf)


@router.post("/agent/login", include_in_schema=False)
async def login(request: Request, username: Annotated[str, Form(max_length=64)],
                password: Annotated[str, Form(max_length=256)]) -> Response:
    try:
        session = await staff.sign_in(deps.people(request), username, password)
    except Problem as exc:
        return _page("agent_login.html", exc.status, error=exc.detail)
    response = RedirectResponse("/agent", status_code=303)
    response.set_cookie(staff.STAFF_COOKIE, session.token, httponly=True, samesite="strict", path="/",
                        secure=request.app.state.settings.secure_cookies, max_age=staff.SESSION_S)
    return response


@router.post("/agent/logout", include_in_schema=False)
async def logout(request: Request, csrf: Annotated[str, Form(max_length=64)]) -> Response:
    session = await staff.current(deps.people(request), request.cookies.get(staff.STAFF_COOKIE))
    if session is not None:
        staff.check_csrf(session, csrf)
        await deps.people(request).end_session(hash_secret(session.token))
    response = RedirectResponse("/agent", status_code=303)
    response.delete_cookie(staff.STAFF_COOKIE, path="/")
    return response
