"""SQLite backend (the zero-set-up default): WAL, one connection, calls run off the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from cloud.auth import Principal, Role
from cloud.storage.base import BatchResult, ClaimError, Household
from cloud.storage.people import DDL as PEOPLE_DDL
from cloud.storage.people import HUB_STATUS_UPSERT, PeopleStore, hub_status_args
from cloud.wire import ROW_FIELDS, Reading
from cloud.wire import rows as to_rows
from protocols.display import DisplayState
from protocols.readings import column_sql
from protocols.uplink import ApplianceEnergyV1, ApplianceRunV1, ReadingV1

T = TypeVar("T")

_SCHEMA_TEMPLATE = """
CREATE TABLE IF NOT EXISTS households (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, account_number TEXT NOT NULL, postcode TEXT NOT NULL,
    tz TEXT NOT NULL, tariff_json TEXT NOT NULL, billing_day INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS hubs (
    id TEXT PRIMARY KEY, household_id TEXT NOT NULL REFERENCES households(id)
);
CREATE TABLE IF NOT EXISTS credentials (
    secret_hash TEXT PRIMARY KEY, role TEXT NOT NULL, subject TEXT NOT NULL, household_id TEXT NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS claim_codes (
    code_hash TEXT PRIMARY KEY, household_id TEXT NOT NULL REFERENCES households(id), created_at REAL NOT NULL,
    expires_at REAL NOT NULL, used_at REAL, used_by_hub TEXT
);
CREATE TABLE IF NOT EXISTS batches (
    hub_id TEXT NOT NULL, seq INTEGER NOT NULL, received_at REAL NOT NULL, n_readings INTEGER NOT NULL,
    stored INTEGER NOT NULL, PRIMARY KEY (hub_id, seq)
);
CREATE TABLE IF NOT EXISTS readings (
    household_id TEXT NOT NULL, hub_id TEXT NOT NULL, channel TEXT NOT NULL, {columns},
    PRIMARY KEY (hub_id, channel, ts)
);
CREATE INDEX IF NOT EXISTS readings_household_ts ON readings (household_id, ts);
CREATE TABLE IF NOT EXISTS appliance_runs (
    household_id TEXT NOT NULL, hub_id TEXT NOT NULL, appliance TEXT NOT NULL, start INTEGER NOT NULL,
    run_json TEXT NOT NULL, PRIMARY KEY (hub_id, appliance, start)
);
CREATE INDEX IF NOT EXISTS runs_household_start ON appliance_runs (household_id, start);
CREATE TABLE IF NOT EXISTS appliance_energy (
    household_id TEXT NOT NULL, hub_id TEXT NOT NULL, appliance TEXT NOT NULL, start INTEGER NOT NULL,
    energy_wh REAL NOT NULL, PRIMARY KEY (hub_id, appliance, start)
);
CREATE INDEX IF NOT EXISTS energy_household_start ON appliance_energy (household_id, start);
CREATE TABLE IF NOT EXISTS notifications (
    household_id TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, created_at REAL NOT NULL,
    message TEXT NOT NULL, PRIMARY KEY (household_id, kind, key)
);
CREATE TABLE IF NOT EXISTS settlement (
    household_id TEXT NOT NULL, period_start INTEGER NOT NULL, last_ts INTEGER NOT NULL,
    import_wh INTEGER NOT NULL, export_wh INTEGER NOT NULL, PRIMARY KEY (household_id, period_start)
);
CREATE TABLE IF NOT EXISTS display (
    household_id TEXT PRIMARY KEY, state_json TEXT NOT NULL
);
"""

_SCHEMA = _SCHEMA_TEMPLATE.replace("{columns}", column_sql())
_READING_COLUMNS = ROW_FIELDS
_INSERT = (f"INSERT OR IGNORE INTO readings (household_id, hub_id, {', '.join(_READING_COLUMNS)}) "
           f"VALUES ({', '.join('?' * (len(_READING_COLUMNS) + 2))})")
_SELECT = f"SELECT {', '.join(_READING_COLUMNS)} FROM readings"


SETTLEMENT_S = 1800
_SETTLE = ("INSERT INTO settlement VALUES (?, ?, ?, ?, ?) ON CONFLICT (household_id, period_start) DO UPDATE SET "
           "last_ts = excluded.last_ts, import_wh = excluded.import_wh, export_wh = excluded.export_wh "
           "WHERE excluded.last_ts > settlement.last_ts")


def _settlement_rows(household_id: str, readings: Sequence[Reading]) -> list[tuple]:
    """The last register of each half-hour in the batch: billing reads these, not every second."""
    last: dict[int, Reading] = {}
    for r in readings:
        if r.channel != "electricity":
            continue
        period = r.ts // SETTLEMENT_S * SETTLEMENT_S
        if period not in last or last[period].ts < r.ts:
            last[period] = r
    return [(household_id, period, r.ts, r.import_t1_wh + r.import_t2_wh, r.export_t1_wh + r.export_t2_wh)
            for period, r in last.items()]


def _reading(row: tuple) -> ReadingV1:
    return ReadingV1(**dict(zip(_READING_COLUMNS, row, strict=True)))


class SqliteStorage(PeopleStore):
    #: What a request meets while the store's disk is full or failing, or the file is locked past its timeout: the
    #: cloud answers 503 (cloud/problems.py).
    UNAVAILABLE: tuple[type[Exception], ...] = (sqlite3.OperationalError,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            assert self._db is not None, "storage used before init()"
            with self._lock:
                return fn(self._db)
        return await asyncio.to_thread(call)

    async def init(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA + PEOPLE_DDL)

    async def close(self) -> None:
        if self._db is not None:
            with self._lock:
                self._db.close()
            self._db = None

    async def _fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self._run(lambda db: db.execute(sql, args).fetchall())

    async def _execute(self, sql: str, *args: Any) -> int:
        return await self._run(lambda db: db.execute(sql, args).rowcount)

    async def upsert_household(self, household: Household) -> None:
        def fn(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO households VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                       "name=excluded.name, account_number=excluded.account_number, "
                       "postcode=excluded.postcode, tz=excluded.tz, tariff_json=excluded.tariff_json, "
                       "billing_day=excluded.billing_day",
                       (household.id, household.name, household.account_number, household.postcode,
                        household.tz, household.tariff_json, household.billing_day))
        await self._run(fn)

    async def household(self, household_id: str) -> Household | None:
        row = await self._run(lambda db: db.execute("SELECT * FROM households WHERE id = ?",
                                                    (household_id,)).fetchone())
        return Household(*row) if row else None

    async def upsert_hub(self, hub_id: str, household_id: str) -> None:
        await self._run(lambda db: db.execute(
            "INSERT INTO hubs VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET household_id=excluded.household_id",
            (hub_id, household_id)))

    async def hub_household(self, hub_id: str) -> str | None:
        row = await self._run(lambda db: db.execute("SELECT household_id FROM hubs WHERE id = ?",
                                                    (hub_id,)).fetchone())
        return row[0] if row else None

    async def add_credential(self, secret_hash: str, principal: Principal) -> None:
        await self._run(lambda db: db.execute(
            "INSERT OR REPLACE INTO credentials VALUES (?, ?, ?, ?, NULL)",
            (secret_hash, principal.role.value, principal.subject, principal.household_id)))

    async def principal(self, secret_hash: str, role: Role) -> Principal | None:
        row = await self._run(lambda db: db.execute(
            "SELECT subject, household_id FROM credentials WHERE secret_hash = ? AND role = ? "
            "AND revoked_at IS NULL", (secret_hash, role.value)).fetchone())
        return Principal(role, row[0], row[1]) if row else None

    async def add_claim_code(self, code_hash: str, household_id: str, expires_at: float) -> None:
        await self._run(lambda db: db.execute("INSERT INTO claim_codes VALUES (?, ?, ?, ?, NULL, NULL)",
                                              (code_hash, household_id, time.time(), expires_at)))

    async def use_claim_code(self, code_hash: str, hub_id: str, now: float) -> str:
        def fn(db: sqlite3.Connection) -> str:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT household_id, expires_at, used_at FROM claim_codes WHERE code_hash = ?",
                                 (code_hash,)).fetchone()
                if row is None:
                    raise ClaimError("unknown claim code")
                household_id, expires_at, used_at = row
                if used_at is not None:
                    raise ClaimError("this claim code has already been used")
                if expires_at <= now:
                    raise ClaimError("this claim code has expired; ask for a new one")
                owner = db.execute("SELECT household_id FROM hubs WHERE id = ?", (hub_id,)).fetchone()
                if owner is not None and owner[0] != household_id:
                    raise ClaimError(f"hub {hub_id} belongs to another household; revoke it there first")
                db.execute("UPDATE claim_codes SET used_at = ?, used_by_hub = ? WHERE code_hash = ?",
                           (now, hub_id, code_hash))
                db.execute("INSERT INTO hubs VALUES (?, ?) ON CONFLICT(id) DO NOTHING", (hub_id, household_id))
                db.execute("COMMIT")
                return household_id
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return await self._run(fn)

    async def revoke_hub(self, hub_id: str, now: float) -> int:
        def fn(db: sqlite3.Connection) -> int:
            before = db.total_changes
            db.execute("UPDATE credentials SET revoked_at = ? WHERE role = 'hub' AND subject = ? "
                       "AND revoked_at IS NULL", (now, hub_id))
            return db.total_changes - before
        return await self._run(fn)

    async def store_batch(self, household_id: str, hub_id: str, seq: int,
                          readings: Sequence[Reading]) -> BatchResult:
        rows = to_rows((household_id, hub_id), readings)
        status = hub_status_args(hub_id, household_id, readings)

        def fn(db: sqlite3.Connection) -> BatchResult:
            db.execute("BEGIN IMMEDIATE")
            try:
                before = db.total_changes
                db.executemany(_INSERT, rows)
                stored = db.total_changes - before
                db.executemany(_SETTLE, _settlement_rows(household_id, readings))
                if status is not None:
                    db.execute(HUB_STATUS_UPSERT, status)
                new_batch = db.execute("INSERT OR IGNORE INTO batches VALUES (?, ?, ?, ?, ?)",
                                       (hub_id, seq, time.time(), len(rows), stored)).rowcount == 1
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return BatchResult(stored=stored, duplicates=len(rows) - stored, replayed=not new_batch and not stored)
        return await self._run(fn)

    async def readings(self, household_id: str, from_ts: int, to_ts: int,
                       limit: int = 100_000) -> list[ReadingV1]:
        rows = await self._run(lambda db: db.execute(
            f"{_SELECT} WHERE household_id = ? AND ts >= ? AND ts < ? ORDER BY ts, channel LIMIT ?",
            (household_id, from_ts, to_ts, limit)).fetchall())
        return [_reading(r) for r in rows]

    async def power_series(self, household_id: str, from_ts: int, to_ts: int) -> list[tuple[int, int]]:
        return await self._run(lambda db: db.execute(
            "SELECT ts, sum(power_import_w - power_export_w) FROM readings WHERE household_id = ? "
            "AND ts >= ? AND ts < ? GROUP BY ts ORDER BY ts", (household_id, from_ts, to_ts)).fetchall())

    async def register_buckets(self, household_id: str, from_ts: int, to_ts: int,
                               bucket_s: int = 1800) -> list[tuple[int, int]]:
        if bucket_s == SETTLEMENT_S:  # maintained at ingest: a row per half-hour, not per second
            return await self._run(lambda db: db.execute(
                "SELECT period_start, import_wh FROM settlement WHERE household_id = ? AND period_start >= ? "
                "AND period_start < ? ORDER BY period_start", (household_id, from_ts // SETTLEMENT_S * SETTLEMENT_S,
                                                               to_ts)).fetchall())
        return await self._run(lambda db: db.execute(
            "SELECT (ts / ?) * ? AS bucket, max(import_t1_wh + import_t2_wh) FROM readings "
            "WHERE household_id = ? AND ts >= ? AND ts < ? GROUP BY bucket ORDER BY bucket",
            (bucket_s, bucket_s, household_id, from_ts, to_ts)).fetchall())

    async def _one(self, sql: str, args: tuple) -> ReadingV1 | None:
        row = await self._run(lambda db: db.execute(sql, args).fetchone())
        return _reading(row) if row else None

    async def last_hub_readings(self, hub_id: str, channels: Iterable[str]) -> dict[str, ReadingV1]:
        wanted = sorted(set(channels))

        def fn(db: sqlite3.Connection) -> list[tuple]:
            found = (db.execute(f"{_SELECT} WHERE hub_id = ? AND channel = ? ORDER BY ts DESC LIMIT 1",
                                (hub_id, channel)).fetchone() for channel in wanted)
            return [r for r in found if r is not None]
        return {row[0]: _reading(row) for row in await self._run(fn)}

    async def latest_reading(self, household_id: str) -> ReadingV1 | None:
        return await self._one(f"{_SELECT} WHERE household_id = ? ORDER BY ts DESC LIMIT 1", (household_id,))

    async def reading_before(self, household_id: str, ts: int) -> ReadingV1 | None:
        return await self._one(f"{_SELECT} WHERE household_id = ? AND ts < ? ORDER BY ts DESC LIMIT 1",
                               (household_id, ts))

    async def first_reading_from(self, household_id: str, ts: int) -> ReadingV1 | None:
        return await self._one(f"{_SELECT} WHERE household_id = ? AND ts >= ? ORDER BY ts LIMIT 1",
                               (household_id, ts))

    async def store_runs(self, household_id: str, hub_id: str, runs: list[ApplianceRunV1]) -> int:
        return await self._insert_new("INSERT OR IGNORE INTO appliance_runs VALUES (?, ?, ?, ?, ?)",
                                      [(household_id, hub_id, r.appliance, r.start, r.model_dump_json())
                                       for r in runs])

    async def _insert_new(self, sql: str, rows: list[tuple]) -> int:
        """Run an INSERT OR IGNORE for ``rows`` in one transaction; return how many were new."""
        def fn(db: sqlite3.Connection) -> int:
            before = db.total_changes
            with db:
                db.execute("BEGIN")
                db.executemany(sql, rows)
            return db.total_changes - before
        return await self._run(fn)

    async def runs(self, household_id: str, from_ts: int, to_ts: int) -> list[ApplianceRunV1]:
        rows = await self._run(lambda db: db.execute(
            "SELECT run_json FROM appliance_runs WHERE household_id = ? AND start >= ? AND start < ? "
            "ORDER BY start", (household_id, from_ts, to_ts)).fetchall())
        return [ApplianceRunV1.model_validate_json(r[0]) for r in rows]

    async def store_energy(self, household_id: str, hub_id: str, energy: list[ApplianceEnergyV1]) -> int:
        return await self._insert_new("INSERT OR IGNORE INTO appliance_energy VALUES (?, ?, ?, ?, ?)",
                                      [(household_id, hub_id, e.appliance, e.start, e.energy_wh) for e in energy])

    async def appliance_energy(self, household_id: str, from_ts: int, to_ts: int) -> list[ApplianceEnergyV1]:
        rows = await self._run(lambda db: db.execute(
            "SELECT appliance, start, energy_wh FROM appliance_energy WHERE household_id = ? AND start >= ? "
            "AND start < ? ORDER BY start, appliance", (household_id, from_ts, to_ts)).fetchall())
        return [ApplianceEnergyV1(appliance=a, start=s, energy_wh=wh) for a, s, wh in rows]

    async def add_notification(self, household_id: str, kind: str, key: str, message: str) -> bool:
        def fn(db: sqlite3.Connection) -> bool:
            before = db.total_changes
            db.execute("INSERT OR IGNORE INTO notifications VALUES (?, ?, ?, ?, ?)",
                       (household_id, kind, key, time.time(), message))
            return db.total_changes > before
        return await self._run(fn)

    async def notifications(self, household_id: str) -> list[dict[str, object]]:
        rows = await self._run(lambda db: db.execute(
            "SELECT kind, key, created_at, message FROM notifications WHERE household_id = ? "
            "ORDER BY created_at DESC", (household_id,)).fetchall())
        return [dict(zip(("kind", "key", "created_at", "message"), r, strict=True)) for r in rows]

    async def set_display(self, household_id: str, state: DisplayState) -> None:
        await self._run(lambda db: db.execute(
            "INSERT INTO display VALUES (?, ?) ON CONFLICT(household_id) DO UPDATE SET "
            "state_json=excluded.state_json", (household_id, state.model_dump_json())))

    async def display(self, household_id: str) -> DisplayState | None:
        row = await self._run(lambda db: db.execute("SELECT state_json FROM display WHERE household_id = ?",
                                                    (household_id,)).fetchone())
        return DisplayState.model_validate_json(row[0]) if row else None
