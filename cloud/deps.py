"""Request dependencies: the storage, and who is asking (hub or householder)."""

from __future__ import annotations

import hmac

from fastapi import Request

from cloud.auth import Principal, Role, hash_secret
from cloud.problems import Problem
from cloud.storage.base import Storage

SESSION_COOKIE = "ohmni_session"


def storage(request: Request) -> Storage:
    return request.app.state.storage


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def _principal(request: Request, role: Role, secret: str | None) -> Principal:
    if not secret:
        raise Problem(401, "Unauthorized", f"this endpoint needs a {role.value} credential")
    found = await storage(request).principal(hash_secret(secret), role)
    if found is None:
        raise Problem(401, "Unauthorized", f"the {role.value} credential is unknown or revoked")
    return found


async def hub(request: Request) -> Principal:
    return await _principal(request, Role.HUB, _bearer(request))


async def installer(request: Request) -> Principal:
    return await _principal(request, Role.INSTALLER, _bearer(request))


async def householder(request: Request) -> Principal:
    """A householder by API token (Authorization: Bearer) or by the page session cookie."""
    return await _principal(request, Role.HOUSEHOLDER, _bearer(request) or request.cookies.get(SESSION_COOKIE))


def csrf_token(session_secret: str) -> str:
    """The token a page signed in by cookie sends back with every change: derived from the
    cookie's secret, which another site can neither read nor compute."""
    return hash_secret("csrf:" + session_secret)[:32]


async def householder_write(request: Request) -> Principal:
    """A householder making a change: by API token, or by the page cookie with its CSRF token."""
    token = _bearer(request)
    if token:
        return await _principal(request, Role.HOUSEHOLDER, token)
    cookie = request.cookies.get(SESSION_COOKIE)
    who = await _principal(request, Role.HOUSEHOLDER, cookie)
    sent = request.headers.get("x-csrf-token", "")
    if not cookie or not hmac.compare_digest(sent, csrf_token(cookie)):
        raise Problem(403, "Forbidden", "missing or wrong CSRF token (X-CSRF-Token header)")
    return who
