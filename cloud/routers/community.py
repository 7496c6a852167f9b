"""The community page: is it just me? Power cuts by postcode district, for anyone to see."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from importlib import resources
from string import Template

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from cloud import deps
from cloud.community import AreaStatus, areas
from cloud.storage.people import PeopleStore

router = APIRouter(tags=["community"])


class Community(BaseModel):
    clock: int | None  # the newest reading any hub has sent: the time the statuses are for
    areas: list[AreaStatus]


async def _community(request: Request) -> Community:
    store = deps.storage(request)
    assert isinstance(store, PeopleStore)
    found, clock = areas(await store.hub_statuses())
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
    when = datetime.fromtimestamp(c.clock, UTC).isoformat() if c.clock else "no reading yet"
    page = Template(resources.files("dashboards").joinpath("templates/community.html").read_text())
    return HTMLResponse(page.substitute(areas=rows, clock=html.escape(when)), headers={"Cache-Control": "no-store"})
