"""The community page: is it just me? Power cuts by postcode district, for anyone to see."""

from __future__ import annotations

import html
import time
from datetime import UTC, datetime
from importlib import resources
from string import Template
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ValidationError

from cloud import deps
from cloud.community import AreaStatus, areas
from cloud.problems import Problem
from cloud.routers.agents import HouseholdCard, agent, household_card
from cloud.social import Mention, Post, atom, normalise_handle, verify_mention
from cloud.staff import Session
from cloud.words import spoken_moment

router = APIRouter(tags=["community"])


class Community(BaseModel):
    clock: int | None  # the newest reading any hub has sent: the time the statuses are for
    areas: list[AreaStatus]


async def _community(request: Request) -> Community:
    found, clock = areas(await deps.people(request).hub_statuses())
    return Community(clock=clock, areas=found)


@router.get("/api/v1/community/areas", response_model=Community)
async def community_areas(request: Request) -> Community:
    """Supply status by postcode district (districts with at least 3 hubs only). Public."""
    return await _community(request)


@router.get("/community", include_in_schema=False)
async def community_page(request: Request) -> HTMLResponse:
    c = await _community(request)
    rows = "".join(
        f'<li class="area {a.status.replace(" ", "-")}" data-district="{html.escape(a.district)}">'
        f"<h2>{html.escape(a.district)}: {html.escape(a.status)}</h2><p>{html.escape(a.message)}</p>"
        f'<p class="muted">How sure: <span class="confidence">{a.confidence:.0%}</span>'
        + (f" · since {datetime.fromtimestamp(a.since, UTC):%H:%M} UTC" if a.since and a.status == "outage" else "")
        + "</p></li>" for a in c.areas) or '<li class="muted">No area has enough hubs to show yet.</li>'
    at = datetime.fromtimestamp(c.clock, UTC) if c.clock else None
    when, iso = (spoken_moment(at), at.isoformat()) if at else ("no reading yet", "")
    page = Template(resources.files("dashboards").joinpath("templates/community.html").read_text())
    return HTMLResponse(page.substitute(areas=rows, clock=html.escape(when), clock_iso=iso),
                        headers={"Cache-Control": "no-store"})



@router.get("/social/feed.atom", include_in_schema=False)
async def feed(request: Request) -> Response:
    """The utility's posts (incidents, tips) as an Atom feed. Public."""
    base = str(request.base_url).rstrip("/")
    posts = [Post(**p) for p in await deps.people(request).posts()]
    return Response(atom(posts, base), media_type="application/atom+xml")


@router.post("/api/v1/social/mentions", status_code=202, openapi_extra={"requestBody": {
    "required": True, "content": {"application/json": {"schema": Mention.model_json_schema()}}}})
async def mention(request: Request) -> dict[str, str | None]:
    """A post naming the utility, from the social platform's webhook (X-Ohmni-Signature: sha256=HMAC
    of the body with the mentions secret). Queued for agents, matched to a household by linked handle."""
    body = await request.body()
    if not verify_mention(request.app.state.settings.social_mentions_secret, body,
                          request.headers.get("x-ohmni-signature")):
        raise Problem(401, "Unauthorized", "mentions must be signed with the mentions secret")
    try:
        m = Mention.model_validate_json(body)
    except ValidationError as exc:
        raise Problem(422, "Invalid mention", str(exc.errors()[0]["msg"])) from None
    household = await deps.people(request).add_mention(m.id, m.ts or time.time(), normalise_handle(m.handle), m.text,
                                                   m.url)
    return {"status": "queued", "household_id": household}


class QueuedMention(BaseModel):
    id: str
    ts: float
    handle: str
    text: str
    url: str
    household: HouseholdCard | None


@router.get("/api/v1/agent/mentions", response_model=list[QueuedMention])
async def mention_queue(request: Request, session: Annotated[Session, Depends(agent)]) -> list[QueuedMention]:
    """Mentions waiting for an agent, oldest first, with the household where the handle is linked."""
    store = deps.people(request)
    out = []
    for m in await store.mentions(status="queued"):
        household = await deps.storage(request).household(m["household_id"]) if m["household_id"] else None
        card = await household_card(store, household) if household else None
        out.append(QueuedMention(**{k: m[k] for k in ("id", "ts", "handle", "text", "url")}, household=card))
    return out
