"""Staff sign-in: argon2 password hashes, server-side sessions, CSRF tokens, login rate limits.

People choose passwords, so theirs are hashed with argon2id (argon2-cffi's defaults), not
the single SHA-256 that suits generated secrets. A session is a generated token in an
HttpOnly, SameSite=Strict cookie (Secure when the cloud says so); the cloud keeps only
its hash. Pages and scripts send the session's CSRF token with every change (a form
field or the X-CSRF-Token header). After MAX_FAILURES wrong passwords for a user name in
WINDOW_S, sign-in answers 429 until the window has passed — whoever is trying.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cloud.auth import ALL_HOUSEHOLDS, STAFF_ROLES, Principal, Role, hash_secret
from cloud.problems import Problem
from cloud.storage.people import PeopleStore

STAFF_COOKIE = "ohmni_staff"
SESSION_S = 8 * 3600  # a shift
MAX_FAILURES = 5
WINDOW_S = 15 * 60
MIN_PASSWORD = 12

_hasher = PasswordHasher()
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))  # unknown users cost the same time as known ones


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a staff password needs at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Session:
    token: str
    csrf: str
    who: Principal


def check_name(name: str, what: str = "a user name") -> None:
    """A person's name as audits show it: 1-64 letters, digits, dots and hyphens (no blank, no markup)."""
    if not name or len(name) > 64 or not name.replace("-", "").replace(".", "").isalnum():
        raise ValueError(f"{what} is 1-64 letters, digits, dots and hyphens")


async def add_staff(store: PeopleStore, username: str, role: Role, password: str) -> None:
    if role not in STAFF_ROLES:
        raise ValueError(f"staff are {' or '.join(r.value for r in STAFF_ROLES)}, not {role.value}")
    check_name(username)
    await store.add_staff(username, role, hash_password(password), time.time())


async def sign_in(store: PeopleStore, username: str, password: str, now: float | None = None) -> Session:
    """A new session, or a Problem: 429 while rate-limited, 401 for a wrong name or password."""
    now = time.time() if now is None else now
    if await store.failed_logins(username, now - WINDOW_S) >= MAX_FAILURES:
        raise Problem(429, "Too many attempts", f"{MAX_FAILURES} wrong passwords for this user in "
                      f"{WINDOW_S // 60} minutes; try again later", headers={"Retry-After": str(WINDOW_S)})
    found = await store.staff(username)
    ok = _verify(found[1] if found else _DUMMY, password) and found is not None
    await store.record_login(username, ok, now)
    if not ok or found is None:
        raise Problem(401, "Unauthorized", "wrong user name or password")
    role, stored = found
    if _hasher.check_needs_rehash(stored):
        await store.add_staff(username, role, _hasher.hash(password), now)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    who = Principal(role, username, ALL_HOUSEHOLDS)
    await store.add_session(hash_secret(token), who, csrf, now + SESSION_S)
    return Session(token, csrf, who)


async def current(store: PeopleStore, token: str | None) -> Session | None:
    if not token:
        return None
    found = await store.session(hash_secret(token), time.time())
    return Session(token, found[1], found[0]) if found else None


def check_csrf(session: Session, sent: str | None) -> None:
    if not sent or not hmac.compare_digest(sent, session.csrf):
        raise Problem(403, "Forbidden", "missing or wrong CSRF token (X-CSRF-Token header or csrf form field)")
