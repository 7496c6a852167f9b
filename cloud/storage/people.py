"""Staff, sessions, the audit log, agents' notes and the meters a utility registered.

Written once for both backends: the SQL is portable (``?`` placeholders, types both
PostgreSQL and SQLite accept) and each backend gives this mixin two primitives,
``_fetch`` and ``_execute``. The tables are created by SQLite's schema and by
PostgreSQL migration 2 from the same DDL.
"""

from __future__ import annotations

import secrets
from typing import Any

from cloud.auth import Principal, Role
from cloud.storage.base import Household

#: How long a sign-in attempt (a password, a key, a claim code) is kept: the longest window that counts them is
#: staff.WINDOW_S, 15 minutes; a day leaves room to look into an attack.
ATTEMPTS_KEPT_S = 86_400

DDL = """
CREATE TABLE IF NOT EXISTS staff (
    username TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, role TEXT NOT NULL, subject TEXT NOT NULL, household_id TEXT NOT NULL,
    csrf TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS login_attempts (
    username TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, ok INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS login_attempts_user_ts ON login_attempts (username, ts);
CREATE INDEX IF NOT EXISTS login_attempts_ts ON login_attempts (ts);
CREATE TABLE IF NOT EXISTS audit_log (
    id TEXT PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL,
    household_id TEXT NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_household_ts ON audit_log (household_id, ts);
CREATE TABLE IF NOT EXISTS notes (
    id TEXT PRIMARY KEY, household_id TEXT NOT NULL, author TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_household ON notes (household_id, ts);
CREATE TABLE IF NOT EXISTS household_meters (
    meter_id TEXT PRIMARY KEY, household_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nudge_decisions (
    household_id TEXT NOT NULL, nudge_id TEXT NOT NULL, decision TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (household_id, nudge_id)
);
CREATE TABLE IF NOT EXISTS notification_prefs (
    household_id TEXT PRIMARY KEY, prefs_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS push_subscriptions (
    endpoint TEXT PRIMARY KEY, household_id TEXT NOT NULL, p256dh TEXT NOT NULL, auth TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    household_id TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, channel TEXT NOT NULL, target TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL, ts DOUBLE PRECISION NOT NULL, detail TEXT NOT NULL,
    PRIMARY KEY (household_id, kind, key, channel, target)
);
CREATE TABLE IF NOT EXISTS social_posts (
    id TEXT PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,
    published_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS social_handles (
    handle TEXT PRIMARY KEY, household_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mentions (
    id TEXT PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, handle TEXT NOT NULL, text TEXT NOT NULL, url TEXT NOT NULL,
    household_id TEXT, status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hub_status (
    hub_id TEXT PRIMARY KEY, household_id TEXT NOT NULL, last_ts BIGINT NOT NULL, voltage_v DOUBLE PRECISION,
    power_failures BIGINT, last_failure_ts BIGINT
);
"""

#: Each stored batch moves its hub's row forward: the newest reading, its voltage, and when
#: the meter's power-failure counter last went up (what community.py reads, not the readings).
HUB_STATUS_UPSERT = """
    INSERT INTO hub_status VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT (hub_id) DO UPDATE SET
        household_id = excluded.household_id, last_ts = excluded.last_ts, voltage_v = excluded.voltage_v,
        power_failures = excluded.power_failures,
        last_failure_ts = CASE WHEN excluded.power_failures > hub_status.power_failures THEN excluded.last_ts
                               ELSE hub_status.last_failure_ts END
    WHERE excluded.last_ts > hub_status.last_ts"""


def hub_status_args(hub_id: str, household_id: str, readings: Any) -> tuple[Any, ...] | None:
    """The upsert's arguments from a batch in time order (None for an empty batch)."""
    if not readings:
        return None
    last = readings[-1] if readings[-1].ts >= readings[0].ts else max(readings, key=lambda r: r.ts)
    return hub_id, household_id, last.ts, last.voltage_l1_v, last.power_failures

_HOUSEHOLD_COLUMNS = "id, name, account_number, postcode, tz, tariff_json, billing_day"


def _id(ts: float) -> str:
    """Sortable and unique without a sequence: the time, then randomness."""
    return f"{ts:017.6f}-{secrets.token_hex(6)}"


class PeopleStore:
    async def _fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def ping(self) -> None:
        """The store answers a query (``/readyz``); its backend's unavailable errors where it does not."""
        await self._fetch("SELECT 1")

    async def _execute(self, sql: str, *args: Any) -> int:
        """Run a statement; the number of rows it changed."""
        raise NotImplementedError

    # --- staff and sessions ------------------------------------------------------------------

    async def add_staff(self, username: str, role: Role, password_hash: str, now: float) -> None:
        await self._execute("INSERT INTO staff VALUES (?, ?, ?, ?) ON CONFLICT (username) DO UPDATE SET "
                            "role = excluded.role, password_hash = excluded.password_hash",
                            username, role.value, password_hash, now)

    async def staff(self, username: str) -> tuple[Role, str] | None:
        rows = await self._fetch("SELECT role, password_hash FROM staff WHERE username = ?", username)
        return (Role(rows[0][0]), rows[0][1]) if rows else None

    async def record_login(self, username: str, ok: bool, now: float) -> None:
        await self._execute("INSERT INTO login_attempts VALUES (?, ?, ?)", username, now, int(ok))

    async def failed_logins(self, username: str, since: float) -> int:
        """Failures since the last success (or since ``since``)."""
        rows = await self._fetch(
            "SELECT count(*) FROM login_attempts WHERE username = ? AND ok = 0 AND ts >= ? AND ts > "
            "coalesce((SELECT max(ts) FROM login_attempts WHERE username = ? AND ok = 1), 0)",
            username, since, username)
        return int(rows[0][0])

    async def forget_stale(self, now: float) -> tuple[int, int]:
        """Drop sign-in attempts older than ``ATTEMPTS_KEPT_S`` and sessions past their end; how many of each.
        Both tables grew without bound (each refused claim code is a row) and no old row of either is read again."""
        attempts = await self._execute("DELETE FROM login_attempts WHERE ts < ?", now - ATTEMPTS_KEPT_S)
        sessions = await self._execute("DELETE FROM sessions WHERE expires_at < ?", now)
        return attempts, sessions

    async def add_session(self, token_hash: str, who: Principal, csrf: str, expires_at: float) -> None:
        await self._execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)", token_hash, who.role.value,
                            who.subject, who.household_id, csrf, expires_at)

    async def session(self, token_hash: str, now: float) -> tuple[Principal, str] | None:
        rows = await self._fetch("SELECT role, subject, household_id, csrf FROM sessions WHERE token_hash = ? "
                                 "AND expires_at > ?", token_hash, now)
        if not rows:
            return None
        role, subject, household_id, csrf = rows[0]
        return Principal(Role(role), subject, household_id), csrf

    async def end_session(self, token_hash: str) -> None:
        await self._execute("DELETE FROM sessions WHERE token_hash = ?", token_hash)

    # --- audit and notes ---------------------------------------------------------------------

    async def audit(self, who: Principal, household_id: str, action: str, reason: str, detail: str,
                    now: float) -> None:
        await self._execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _id(now), now, who.subject,
                            who.role.value, household_id, action, reason, detail[:500])

    async def audit_log(self, household_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        where, args = ("WHERE household_id = ?", (household_id,)) if household_id else ("", ())
        rows = await self._fetch(f"SELECT ts, actor, role, household_id, action, reason, detail FROM audit_log "
                                 f"{where} ORDER BY ts DESC LIMIT ?", *args, limit)
        keys = ("ts", "actor", "role", "household_id", "action", "reason", "detail")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def add_note(self, household_id: str, author: str, text: str, now: float) -> None:
        await self._execute("INSERT INTO notes VALUES (?, ?, ?, ?, ?)", _id(now), household_id, author, now, text)

    async def notes(self, household_id: str) -> list[dict[str, Any]]:
        rows = await self._fetch("SELECT ts, author, text FROM notes WHERE household_id = ? ORDER BY ts DESC",
                                 household_id)
        return [{"ts": r[0], "author": r[1], "text": r[2]} for r in rows]

    # --- what the household said about its nudges -------------------------------------------

    async def decide_nudge(self, household_id: str, nudge_id: str, decision: str, now: float) -> None:
        await self._execute("INSERT INTO nudge_decisions VALUES (?, ?, ?, ?) ON CONFLICT (household_id, nudge_id) "
                            "DO UPDATE SET decision = excluded.decision, ts = excluded.ts",
                            household_id, nudge_id, decision, now)

    async def nudge_decisions(self, household_id: str) -> dict[str, str]:
        rows = await self._fetch("SELECT nudge_id, decision FROM nudge_decisions WHERE household_id = ?",
                                 household_id)
        return {r[0]: r[1] for r in rows}

    # --- notification delivery ----------------------------------------------------------------

    async def notification_prefs(self, household_id: str) -> str | None:
        rows = await self._fetch("SELECT prefs_json FROM notification_prefs WHERE household_id = ?", household_id)
        return rows[0][0] if rows else None

    async def set_notification_prefs(self, household_id: str, prefs_json: str) -> None:
        await self._execute("INSERT INTO notification_prefs VALUES (?, ?) ON CONFLICT (household_id) DO UPDATE SET "
                            "prefs_json = excluded.prefs_json", household_id, prefs_json)

    async def add_push_subscription(self, household_id: str, endpoint: str, p256dh: str, auth: str,
                                    now: float) -> None:
        await self._execute("INSERT INTO push_subscriptions VALUES (?, ?, ?, ?, ?) ON CONFLICT (endpoint) DO UPDATE "
                            "SET household_id = excluded.household_id, p256dh = excluded.p256dh, "
                            "auth = excluded.auth", endpoint, household_id, p256dh, auth, now)

    async def remove_push_subscription(self, endpoint: str) -> None:
        await self._execute("DELETE FROM push_subscriptions WHERE endpoint = ?", endpoint)

    async def push_subscriptions(self, household_id: str) -> list[dict[str, Any]]:
        rows = await self._fetch("SELECT endpoint, p256dh, auth FROM push_subscriptions WHERE household_id = ?",
                                 household_id)
        return [{"endpoint": r[0], "keys": {"p256dh": r[1], "auth": r[2]}} for r in rows]

    async def undelivered(self, since: float) -> list[dict[str, Any]]:
        """Notifications newer than ``since`` that the dispatcher has not finished (its row with
        channel 'all' marks one finished: every channel sent, given up on, or not wanted)."""
        rows = await self._fetch(
            "SELECT n.household_id, n.kind, n.key, n.created_at, n.message, h.tz, h.account_number "
            "FROM notifications n JOIN households h ON h.id = n.household_id WHERE n.created_at > ? AND NOT EXISTS "
            "(SELECT 1 FROM deliveries d WHERE d.household_id = n.household_id AND d.kind = n.kind AND "
            "d.key = n.key AND d.channel = 'all') ORDER BY n.created_at", since)
        keys = ("household_id", "kind", "key", "created_at", "message", "tz", "account_number")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def delivery(self, household_id: str, kind: str, key: str, channel: str, target: str) -> tuple[str, int]:
        rows = await self._fetch("SELECT status, attempts FROM deliveries WHERE household_id = ? AND kind = ? AND "
                                 "key = ? AND channel = ? AND target = ?", household_id, kind, key, channel, target)
        return (rows[0][0], int(rows[0][1])) if rows else ("new", 0)

    async def record_delivery(self, household_id: str, kind: str, key: str, channel: str, target: str,
                              status: str, detail: str, now: float) -> None:
        await self._execute(
            "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (household_id, kind, key, channel, "
            "target) DO UPDATE SET status = excluded.status, attempts = deliveries.attempts + 1, ts = excluded.ts, "
            "detail = excluded.detail", household_id, kind, key, channel, target, status, now, detail[:300])

    async def deliveries(self, household_id: str) -> list[dict[str, Any]]:
        rows = await self._fetch("SELECT kind, key, channel, target, status, attempts, ts, detail FROM deliveries "
                                 "WHERE household_id = ? ORDER BY ts DESC", household_id)
        keys = ("kind", "key", "channel", "target", "status", "attempts", "ts", "detail")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # --- the social channel -------------------------------------------------------------------

    async def add_post(self, post_id: str, ts: float, kind: str, title: str, body: str) -> None:
        await self._execute("INSERT INTO social_posts VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT (id) DO NOTHING",
                            post_id, ts, kind, title, body)

    async def posts(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = await self._fetch("SELECT id, ts, kind, title, body FROM social_posts ORDER BY ts DESC LIMIT ?", limit)
        return [dict(zip(("id", "ts", "kind", "title", "body"), r, strict=True)) for r in rows]

    async def unpublished_posts(self) -> list[dict[str, Any]]:
        rows = await self._fetch("SELECT id, ts, kind, title, body FROM social_posts WHERE published_at IS NULL "
                                 "ORDER BY ts")
        return [dict(zip(("id", "ts", "kind", "title", "body"), r, strict=True)) for r in rows]

    async def mark_published(self, post_id: str, now: float) -> None:
        await self._execute("UPDATE social_posts SET published_at = ? WHERE id = ?", now, post_id)

    async def link_handle(self, household_id: str, handle: str) -> None:
        await self._execute("DELETE FROM social_handles WHERE household_id = ?", household_id)
        await self._execute("INSERT INTO social_handles VALUES (?, ?) ON CONFLICT (handle) DO UPDATE SET "
                            "household_id = excluded.household_id", handle, household_id)

    async def add_mention(self, mention_id: str, ts: float, handle: str, text: str, url: str) -> str | None:
        """Queue a mention for agents; the household whose householder linked the handle, if any."""
        rows = await self._fetch("SELECT household_id FROM social_handles WHERE handle = ?", handle)
        household_id = rows[0][0] if rows else None
        await self._execute("INSERT INTO mentions VALUES (?, ?, ?, ?, ?, ?, 'queued') ON CONFLICT (id) DO NOTHING",
                            mention_id, ts, handle, text, url, household_id)
        return household_id

    async def mentions(self, household_id: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        where, args = [], []
        if household_id is not None:
            where.append("household_id = ?")
            args.append(household_id)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._fetch(f"SELECT id, ts, handle, text, url, household_id, status FROM mentions {clause} "
                                 "ORDER BY ts", *args)
        return [dict(zip(("id", "ts", "handle", "text", "url", "household_id", "status"), r, strict=True))
                for r in rows]

    # --- hub telemetry for the community page ---------------------------------------------

    async def hub_statuses(self) -> list[dict[str, Any]]:
        rows = await self._fetch("SELECT s.hub_id, s.household_id, h.postcode, s.last_ts, s.voltage_v, "
                                 "s.last_failure_ts FROM hub_status s JOIN households h ON h.id = s.household_id")
        keys = ("hub_id", "household_id", "postcode", "last_ts", "voltage_v", "last_failure_ts")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def household_hubs(self, household_id: str) -> list[dict[str, Any]]:
        """Each hub of the household with what its last batch said (hubs that never sent too)."""
        rows = await self._fetch("SELECT h.id, s.last_ts, s.voltage_v, s.power_failures, s.last_failure_ts "
                                 "FROM hubs h LEFT JOIN hub_status s ON s.hub_id = h.id WHERE h.household_id = ? "
                                 "ORDER BY h.id", household_id)
        keys = ("hub_id", "last_ts", "voltage_v", "power_failures", "last_failure_ts")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def household_postcodes(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in await self._fetch("SELECT id, postcode FROM households")]

    # --- finding a household -----------------------------------------------------------------

    async def add_meter(self, meter_id: str, household_id: str) -> None:
        """A meter (MPAN/EAN or the meter's serial) the utility has on record for the household."""
        await self._execute("INSERT INTO household_meters VALUES (?, ?) ON CONFLICT (meter_id) DO UPDATE SET "
                            "household_id = excluded.household_id", meter_id, household_id)

    async def household_meters(self, household_id: str) -> list[str]:
        rows = await self._fetch("SELECT meter_id FROM household_meters WHERE household_id = ? ORDER BY meter_id",
                                 household_id)
        return [r[0] for r in rows]

    async def search_households(self, query: str, limit: int = 50) -> list[Household]:
        """By account number or meter id (exact), postcode (from its start) or name (anywhere)."""
        q = query.strip()
        if not q:
            return []
        compact = q.replace(" ", "").upper()
        rows = await self._fetch(
            f"SELECT {_HOUSEHOLD_COLUMNS} FROM households WHERE account_number = ? "
            "OR replace(upper(postcode), ' ', '') LIKE ? OR lower(name) LIKE ? "
            "OR id IN (SELECT household_id FROM household_meters WHERE upper(meter_id) = ?) ORDER BY name LIMIT ?",
            q, compact.replace("%", "") + "%", "%" + q.lower().replace("%", "") + "%", compact, limit)
        return [Household(*r) for r in rows]
