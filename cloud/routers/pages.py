"""Pages for people: the householder dashboard at ``/`` and its sign-in.

The dashboard is rendered with today's figures already in it (so it reads right
without JavaScript), then refreshes itself from the API.
"""

from __future__ import annotations

import hmac
import html
import secrets
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from string import Template
from typing import Annotated

import plotly
from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from cloud import deps, staff
from cloud.auth import Principal, Role, hash_secret
from cloud.problems import Problem
from cloud.summary import household_summary
from cloud.words import spoken_day

router = APIRouter(include_in_schema=False)

_STATIC = resources.files("dashboards").joinpath("static")
_TEMPLATES = resources.files("dashboards").joinpath("templates")
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
_MEDIA = {".js": "text/javascript", ".css": "text/css"}


def _template(name: str) -> Template:
    return Template(_TEMPLATES.joinpath(name).read_text())


def _login_page(error: str = "", status: int = 200) -> HTMLResponse:
    return HTMLResponse(_template("login.html").substitute(error=html.escape(error)), status_code=status)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    found = await deps.household_session(request)
    if found is None:
        return _login_page()
    who, csrf = found
    store = deps.storage(request)
    household = await store.household(who.household_id)
    if household is None:
        return _login_page("Your household no longer exists.", 404)
    s = await household_summary(store, household)
    today = s.today
    values = {
        "household_name": household.name,
        "face": s.display.face.value if s.display else "neutral",
        "reason": s.display.reason if s.display else "Waiting for the hub's first reading",
        "power_w": "–" if s.power_w is None else str(s.power_w),
        "today_date": spoken_day(today.date) if today else "",
        "today_kwh": today.kwh if today else "0.000",
        "today_cost": today.cost if today else "0.00",
        "currency_symbol": today.currency_symbol if today else "",
        "tariff_line": today.tariff if today else "",
        "updated": datetime.fromtimestamp(s.now_ts, UTC).isoformat() if s.now_ts else "no reading yet",
        "csrf": csrf,
    }
    page = _template("home.html").substitute({k: html.escape(v) for k, v in values.items()})
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


SESSION_S = 30 * 86400


async def _signed_in(request: Request, who: Principal) -> Response:
    """A new page session: the cookie holds a generated token (the cloud keeps its hash), never the key."""
    store = deps.people(request)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    await store.add_session(hash_secret(token), who, csrf, time.time() + SESSION_S)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(deps.SESSION_COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=request.app.state.settings.secure_cookies, max_age=SESSION_S)
    return response


async def _sign_in(request: Request, key: str) -> Response:
    """Check the key; after MAX_FAILURES wrong keys from one address in WINDOW_S, wait (429)."""
    store = deps.people(request)
    who = f"address:{request.client.host if request.client else '?'}"
    now = time.time()
    if await store.failed_logins(who, now - staff.WINDOW_S) >= staff.MAX_FAILURES:
        return _login_page(f"Too many wrong keys; try again in {staff.WINDOW_S // 60} minutes.", 429)
    principal = await deps.storage(request).principal(hash_secret(key), Role.HOUSEHOLDER)
    await store.record_login(who, principal is not None, now)
    if principal is None:
        return _login_page("That access key is not valid.", 401)
    return await _signed_in(request, principal)


@router.get("/login")
async def login_link(request: Request, key: str = "") -> Response:
    """A sign-in link (``/login?key=…``), as the demo prints and a welcome e-mail would carry."""
    if not key:
        return _login_page()
    return await _sign_in(request, key)


@router.post("/login")
async def login_form(request: Request, key: Annotated[str, Form(max_length=200)]) -> Response:
    return await _sign_in(request, key)


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """End the page session (with its CSRF token, so another site cannot sign you out)."""
    found = await deps.household_session(request)
    if found is not None:
        if not hmac.compare_digest(csrf, found[1]):
            raise Problem(403, "Forbidden", "missing or wrong CSRF token")
        await deps.people(request).end_session(hash_secret(request.cookies.get(deps.SESSION_COOKIE, "")))
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(deps.SESSION_COOKIE, path="/")
    return response


@router.get("/static/vendor/plotly.min.js")
async def plotly_js() -> Response:
    """Plotly as the installed ``plotly`` package ships it: served here, never from a CDN."""
    return FileResponse(PLOTLY_JS, media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})


@router.get("/static/{name}")
async def static(name: str) -> Response:
    suffix = Path(name).suffix
    if "/" in name or suffix not in _MEDIA or not _STATIC.joinpath(name).is_file():
        raise Problem(404, "Not found", f"no static file {name!r}")
    return Response(_STATIC.joinpath(name).read_text(), media_type=_MEDIA[suffix])
