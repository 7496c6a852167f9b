"""Request dependencies: the storage, and who is asking (hub or householder)."""

from __future__ import annotations

import hmac
import time

from fastapi import Request

from cloud.auth import Principal, Role, hash_secret
from cloud.problems import Problem
from cloud.storage.base import Storage
from cloud.storage.people import PeopleStore

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


def people(request: Request) -> PeopleStore:
    """The storage as the staff, session, audit and notification store every backend also is."""
    store = storage(request)
    assert isinstance(store, PeopleStore), "every storage backend is a PeopleStore"
    return store


async def household_session(request: Request) -> tuple[Principal, str] | None:
    """The page session behind the cookie: (who, its CSRF token), or None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    found = await people(request).session(hash_secret(token), time.time())
    if found is None or found[0].role != Role.HOUSEHOLDER:
        return None
    return found


async def _householder(request: Request, write: bool) -> Principal:
    token = _bearer(request)
    if token:
        return await _principal(request, Role.HOUSEHOLDER, token)
    found = await household_session(request)
    if found is None:
        raise Problem(401, "Unauthorized", "this endpoint needs a householder credential or a signed-in page")
    if write and not hmac.compare_digest(request.headers.get("x-csrf-token", ""), found[1]):
        raise Problem(403, "Forbidden", "missing or wrong CSRF token (X-CSRF-Token header)")
    return found[0]


async def householder(request: Request) -> Principal:
    """A householder by API token (Authorization: Bearer) or by the page's session cookie."""
    return await _householder(request, write=False)


async def householder_write(request: Request) -> Principal:
    """A householder making a change: by API token, or by the page's session with its CSRF token."""
    return await _householder(request, write=True)
