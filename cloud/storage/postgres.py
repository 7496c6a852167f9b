"""PostgreSQL backend (asyncpg): migrations, readings partitioned by day, COPY for bulk writes.

A batch is written in one transaction: its rows are COPYed into a temporary table and
moved with ``INSERT … ON CONFLICT DO NOTHING``, so a retried batch or an overlapping one
stores nothing twice; the batch row (hub, seq) makes a replay a no-op. Daily partitions
are created as readings for a new day arrive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from cloud.auth import Principal, Role
from cloud.storage.base import BatchResult, ClaimError, Household
from cloud.storage.people import DDL as PEOPLE_DDL
from cloud.storage.people import HUB_STATUS_UPSERT, PeopleStore, hub_status_args
from cloud.storage.sqlite import SETTLEMENT_S, _settlement_rows
from cloud.wire import ROW_FIELDS, Reading
from cloud.wire import rows as to_rows
from protocols.display import DisplayState
from protocols.readings import READING_COLUMNS
from protocols.uplink import ApplianceEnergyV1, ApplianceRunV1, ReadingV1

DAY_S = 86_400
_PG_TYPES = {"INTEGER": "BIGINT", "REAL": "DOUBLE PRECISION", "TEXT": "TEXT"}
_READING_COLUMNS = ROW_FIELDS

#: Migrations, applied in order once each; a new one is appended, never edited.
MIGRATIONS: tuple[str, ...] = (
    f"""
    CREATE TABLE households (id TEXT PRIMARY KEY, name TEXT NOT NULL, account_number TEXT NOT NULL,
        postcode TEXT NOT NULL, tz TEXT NOT NULL, tariff_json TEXT NOT NULL, billing_day INTEGER NOT NULL DEFAULT 1);
    CREATE TABLE hubs (id TEXT PRIMARY KEY, household_id TEXT NOT NULL REFERENCES households(id));
    CREATE TABLE credentials (secret_hash TEXT PRIMARY KEY, role TEXT NOT NULL, subject TEXT NOT NULL,
        household_id TEXT NOT NULL, revoked_at DOUBLE PRECISION);
    CREATE INDEX credentials_subject ON credentials (role, subject);
    CREATE TABLE claim_codes (code_hash TEXT PRIMARY KEY, household_id TEXT NOT NULL REFERENCES households(id),
        created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL, used_at DOUBLE PRECISION,
        used_by_hub TEXT);
    CREATE TABLE batches (hub_id TEXT NOT NULL, seq BIGINT NOT NULL, received_at DOUBLE PRECISION NOT NULL,
        n_readings INTEGER NOT NULL, stored INTEGER NOT NULL, PRIMARY KEY (hub_id, seq));
    CREATE TABLE readings (household_id TEXT NOT NULL, hub_id TEXT NOT NULL, channel TEXT NOT NULL,
        {", ".join(f"{name} {_PG_TYPES[kind]}{' NOT NULL' if required else ''}"
                   for name, kind, required in READING_COLUMNS if name != "channel")},
        PRIMARY KEY (hub_id, channel, ts)) PARTITION BY RANGE (ts);
    CREATE INDEX readings_household_ts ON readings (household_id, ts);
    CREATE TABLE settlement (household_id TEXT NOT NULL, period_start BIGINT NOT NULL, last_ts BIGINT NOT NULL,
        import_wh BIGINT NOT NULL, export_wh BIGINT NOT NULL, PRIMARY KEY (household_id, period_start));
    CREATE TABLE appliance_runs (household_id TEXT NOT NULL, hub_id TEXT NOT NULL, appliance TEXT NOT NULL,
        start BIGINT NOT NULL, run_json TEXT NOT NULL, PRIMARY KEY (hub_id, appliance, start));
    CREATE INDEX runs_household_start ON appliance_runs (household_id, start);
    CREATE TABLE notifications (household_id TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, message TEXT NOT NULL, PRIMARY KEY (household_id, kind, key));
    CREATE TABLE display (household_id TEXT PRIMARY KEY, state_json TEXT NOT NULL);
    """,
    PEOPLE_DDL,  # 2: staff, sessions, audit log, notes, registered meters
    """
    CREATE TABLE appliance_energy (household_id TEXT NOT NULL, hub_id TEXT NOT NULL, appliance TEXT NOT NULL,
        start BIGINT NOT NULL, energy_wh DOUBLE PRECISION NOT NULL, PRIMARY KEY (hub_id, appliance, start));
    CREATE INDEX energy_household_start ON appliance_energy (household_id, start);
    """,  # 3: per-appliance energy per half hour, from the hub's disaggregation
    "CREATE INDEX IF NOT EXISTS login_attempts_ts ON login_attempts (ts);",  # 4: old attempts are dropped by time
)


_COPY_COLUMNS = ["household_id", "hub_id", *_READING_COLUMNS]
#: The batch row, its settlement half-hours and the hub's status in one statement; true when
#: (hub, seq) is new.
_FINISH = """
    WITH settle AS (
        INSERT INTO settlement SELECT * FROM unnest($6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
        ON CONFLICT (household_id, period_start) DO UPDATE SET last_ts = EXCLUDED.last_ts,
            import_wh = EXCLUDED.import_wh, export_wh = EXCLUDED.export_wh
        WHERE EXCLUDED.last_ts > settlement.last_ts),
    batch AS (INSERT INTO batches VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM batch)"""



def _numbered(sql: str, first: int = 1) -> str:
    """Portable ``?`` placeholders (cloud/storage/people.py) as PostgreSQL's ``$1, $2 …``."""
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], start=first)) + parts[-1]


_FINISH_STATUS = _FINISH.replace(
    "    batch AS", f"    status AS ({_numbered(HUB_STATUS_UPSERT, first=11)}),\n    batch AS", 1)


async def _no_reset(con: asyncpg.Connection) -> None:
    """Connections go back to the pool as they are: this code leaves no session state behind
    (no LISTEN, no session locks or settings; the staging table empties on commit), so the
    default reset — a round trip of four statements per request — buys nothing."""


def _reading(row: asyncpg.Record) -> ReadingV1:
    return ReadingV1(**{k: row[k] for k in _READING_COLUMNS})


class PostgresStorage(PeopleStore):
    #: What a request meets while PostgreSQL is down, restarting or full of connections: the cloud answers 503 and
    #: the pool reconnects once it is back (cloud/problems.py).
    UNAVAILABLE: tuple[type[Exception], ...] = (
        OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
        asyncpg.AdminShutdownError, asyncpg.CrashShutdownError, asyncpg.TooManyConnectionsError)

    def __init__(self, dsn: str, min_size: int = 2, max_size: int = 10, writers: int = 1) -> None:
        """``writers``: batches written at once by this process (OHMNI_CLOUD_DB_WRITERS). More
        only make concurrent COPYs queue for the same pages and cores: on 2 cores with 2
        workers, 1 each stored ~204k readings/s, 2 each ~191k, 4 each ~184k."""
        # while the database is down the pool logs a traceback at every attempt to reconnect; the cloud's own line
        # says it once a minute (cloud/problems.py)
        logging.getLogger("asyncpg.pool").setLevel(logging.ERROR)
        self.dsn = dsn
        self._writers = asyncio.Semaphore(writers)
        self._pool: asyncpg.Pool | None = None
        self._sizes = (min_size, max_size)
        self._partitions: set[int] = set()

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "storage used before init()"
        return self._pool

    async def init(self) -> None:
        self._pool = await asyncpg.create_pool(self.dsn, min_size=self._sizes[0], max_size=self._sizes[1],
                                               reset=_no_reset)
        async with self.pool.acquire() as con, con.transaction():
            await con.execute("SELECT pg_advisory_xact_lock(4242)")  # one migrator at a time
            await con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                              "applied_at DOUBLE PRECISION NOT NULL)")
            done = {r["version"] for r in await con.fetch("SELECT version FROM schema_migrations")}
            for version, sql in enumerate(MIGRATIONS, start=1):
                if version not in done:
                    await con.execute(sql)
                    await con.execute("INSERT INTO schema_migrations VALUES ($1, $2)", version, time.time())

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _ensure_partitions(self, con: asyncpg.Connection, days: set[int]) -> None:
        missing = sorted(days - self._partitions)
        if not missing:
            return
        # In a transaction of their own, remembered only once committed. Workers and replicas
        # create partitions concurrently: one at a time, or PostgreSQL's catalogue reports a
        # duplicate even with IF NOT EXISTS.
        async with con.transaction():
            await con.execute("SELECT pg_advisory_xact_lock(4243)")
            for day in missing:
                start = day * DAY_S
                await con.execute(f"CREATE TABLE IF NOT EXISTS readings_d{day} PARTITION OF readings "
                                  f"FOR VALUES FROM ({start}) TO ({start + DAY_S})")
        self._partitions.update(missing)

    async def _fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(r.values()) for r in await self.pool.fetch(_numbered(sql), *args)]

    async def _execute(self, sql: str, *args: Any) -> int:
        status = await self.pool.execute(_numbered(sql), *args)
        return int(status.split()[-1]) if status.split()[-1].isdigit() else 0

    async def upsert_household(self, household: Household) -> None:
        await self.pool.execute(
            "INSERT INTO households VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET "
            "name = EXCLUDED.name, account_number = EXCLUDED.account_number, postcode = EXCLUDED.postcode, "
            "tz = EXCLUDED.tz, tariff_json = EXCLUDED.tariff_json, billing_day = EXCLUDED.billing_day",
            household.id, household.name, household.account_number, household.postcode, household.tz,
            household.tariff_json, household.billing_day)

    async def household(self, household_id: str) -> Household | None:
        row = await self.pool.fetchrow("SELECT * FROM households WHERE id = $1", household_id)
        return Household(*row.values()) if row else None

    async def upsert_hub(self, hub_id: str, household_id: str) -> None:
        await self.pool.execute("INSERT INTO hubs VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET "
                                "household_id = EXCLUDED.household_id", hub_id, household_id)

    async def hub_household(self, hub_id: str) -> str | None:
        return await self.pool.fetchval("SELECT household_id FROM hubs WHERE id = $1", hub_id)

    async def add_credential(self, secret_hash: str, principal: Principal) -> None:
        await self.pool.execute("INSERT INTO credentials VALUES ($1, $2, $3, $4, NULL) ON CONFLICT (secret_hash) "
                                "DO UPDATE SET role = EXCLUDED.role, subject = EXCLUDED.subject, "
                                "household_id = EXCLUDED.household_id, revoked_at = NULL",
                                secret_hash, principal.role.value, principal.subject, principal.household_id)

    async def principal(self, secret_hash: str, role: Role) -> Principal | None:
        row = await self.pool.fetchrow("SELECT subject, household_id FROM credentials WHERE secret_hash = $1 AND "
                                       "role = $2 AND revoked_at IS NULL", secret_hash, role.value)
        return Principal(role, row["subject"], row["household_id"]) if row else None

    async def add_claim_code(self, code_hash: str, household_id: str, expires_at: float) -> None:
        await self.pool.execute("INSERT INTO claim_codes VALUES ($1, $2, $3, $4, NULL, NULL)", code_hash,
                                household_id, time.time(), expires_at)

    async def use_claim_code(self, code_hash: str, hub_id: str, now: float) -> str:
        async with self.pool.acquire() as con, con.transaction():
            row = await con.fetchrow("SELECT household_id, expires_at, used_at FROM claim_codes WHERE code_hash = $1 "
                                     "FOR UPDATE", code_hash)
            if row is None:
                raise ClaimError("unknown claim code")
            if row["used_at"] is not None:
                raise ClaimError("this claim code has already been used")
            if row["expires_at"] <= now:
                raise ClaimError("this claim code has expired; ask for a new one")
            owner = await con.fetchval("SELECT household_id FROM hubs WHERE id = $1", hub_id)
            if owner is not None and owner != row["household_id"]:
                raise ClaimError(f"hub {hub_id} belongs to another household; revoke it there first")
            await con.execute("UPDATE claim_codes SET used_at = $1, used_by_hub = $2 WHERE code_hash = $3", now,
                              hub_id, code_hash)
            await con.execute("INSERT INTO hubs VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", hub_id,
                              row["household_id"])
            return row["household_id"]

    async def revoke_hub(self, hub_id: str, now: float) -> int:
        status = await self.pool.execute("UPDATE credentials SET revoked_at = $1 WHERE role = 'hub' AND subject = $2 "
                                         "AND revoked_at IS NULL", now, hub_id)
        return int(status.split()[-1])

    async def store_batch(self, household_id: str, hub_id: str, seq: int,
                          readings: Sequence[Reading]) -> BatchResult:
        """Two round trips in the usual case: COPY, then settlement and batch row in one statement.

        New readings are the rule, so they are COPYed straight into the table: for
        PostgreSQL that costs about two thirds of COPY-to-staging + INSERT … ON CONFLICT
        (bench.ingest measures both), and a COPY is atomic on its own. The primary key keeps
        it duplicate-safe: if any reading is stored already the COPY fails as a whole and the
        rows go through a staging table instead, which stores only the new ones. Settlement
        rows only ever move forward, so writing them again is harmless. A batch whose
        (hub, seq) was seen before and that brought nothing new is a replay."""
        rows = to_rows((household_id, hub_id), readings)
        settle = list(zip(*_settlement_rows(household_id, readings), strict=True)) or [()] * 5
        async with self._writers, self.pool.acquire() as con:
            stored = 0
            if rows:
                await self._ensure_partitions(con, {r.ts // DAY_S for r in readings})
                try:
                    await con.copy_records_to_table("readings", records=rows, columns=_COPY_COLUMNS)
                    stored = len(rows)
                except asyncpg.UniqueViolationError:
                    async with con.transaction():
                        await con.execute("CREATE TEMP TABLE IF NOT EXISTS incoming (LIKE readings) "
                                          "ON COMMIT DELETE ROWS")
                        await con.copy_records_to_table("incoming", records=rows, columns=_COPY_COLUMNS)
                        status = await con.execute("INSERT INTO readings SELECT * FROM incoming ON CONFLICT "
                                                   "DO NOTHING")
                        stored = int(status.split()[-1])
            status = hub_status_args(hub_id, household_id, readings)
            if status is None:
                new_batch = await con.fetchval(_FINISH, hub_id, seq, time.time(), len(rows), stored, *settle)
            else:
                new_batch = await con.fetchval(_FINISH_STATUS, hub_id, seq, time.time(), len(rows), stored,
                                               *settle, *status)
        return BatchResult(stored=stored, duplicates=len(rows) - stored, replayed=not new_batch and not stored)

    _SELECT = f"SELECT {', '.join(_READING_COLUMNS)} FROM readings"

    async def readings(self, household_id: str, from_ts: int, to_ts: int, limit: int = 100_000) -> list[ReadingV1]:
        rows = await self.pool.fetch(f"{self._SELECT} WHERE household_id = $1 AND ts >= $2 AND ts < $3 "
                                     "ORDER BY ts, channel LIMIT $4", household_id, from_ts, to_ts, limit)
        return [_reading(r) for r in rows]

    async def power_series(self, household_id: str, from_ts: int, to_ts: int) -> list[tuple[int, int]]:
        rows = await self.pool.fetch("SELECT ts, sum(power_import_w - power_export_w)::bigint AS w FROM readings "
                                     "WHERE household_id = $1 AND ts >= $2 AND ts < $3 GROUP BY ts ORDER BY ts",
                                     household_id, from_ts, to_ts)
        return [(r["ts"], r["w"]) for r in rows]

    async def register_buckets(self, household_id: str, from_ts: int, to_ts: int,
                               bucket_s: int = 1800) -> list[tuple[int, int]]:
        if bucket_s == SETTLEMENT_S:
            rows = await self.pool.fetch("SELECT period_start, import_wh FROM settlement WHERE household_id = $1 AND "
                                         "period_start >= $2 AND period_start < $3 ORDER BY period_start",
                                         household_id, from_ts // SETTLEMENT_S * SETTLEMENT_S, to_ts)
            return [(r["period_start"], r["import_wh"]) for r in rows]
        rows = await self.pool.fetch("SELECT (ts / $1) * $1 AS bucket, max(import_t1_wh + import_t2_wh) AS wh "
                                     "FROM readings WHERE household_id = $2 AND ts >= $3 AND ts < $4 GROUP BY bucket "
                                     "ORDER BY bucket", bucket_s, household_id, from_ts, to_ts)
        return [(r["bucket"], r["wh"]) for r in rows]

    async def _one(self, sql: str, *args: Any) -> ReadingV1 | None:
        row = await self.pool.fetchrow(sql, *args)
        return _reading(row) if row else None

    async def last_hub_readings(self, hub_id: str, channels: Iterable[str]) -> dict[str, ReadingV1]:
        # One primary-key probe per channel; the partitions are read newest first and the
        # first row found ends the scan (an ordered Append under LIMIT 1).
        rows = await self.pool.fetch(f"SELECT last.* FROM unnest($2::text[]) AS c(channel), LATERAL "
                                     f"({self._SELECT} WHERE hub_id = $1 AND channel = c.channel ORDER BY ts DESC "
                                     "LIMIT 1) AS last", hub_id, sorted(set(channels)))
        return {r["channel"]: _reading(r) for r in rows}

    async def latest_reading(self, household_id: str) -> ReadingV1 | None:
        return await self._one(f"{self._SELECT} WHERE household_id = $1 ORDER BY ts DESC LIMIT 1", household_id)

    async def reading_before(self, household_id: str, ts: int) -> ReadingV1 | None:
        return await self._one(f"{self._SELECT} WHERE household_id = $1 AND ts < $2 ORDER BY ts DESC LIMIT 1",
                               household_id, ts)

    async def first_reading_from(self, household_id: str, ts: int) -> ReadingV1 | None:
        return await self._one(f"{self._SELECT} WHERE household_id = $1 AND ts >= $2 ORDER BY ts LIMIT 1",
                               household_id, ts)

    async def store_runs(self, household_id: str, hub_id: str, runs: list[ApplianceRunV1]) -> int:
        status = [await self.pool.execute("INSERT INTO appliance_runs VALUES ($1, $2, $3, $4, $5) ON CONFLICT "
                                          "DO NOTHING", household_id, hub_id, r.appliance, r.start,
                                          r.model_dump_json()) for r in runs]
        return sum(int(s.split()[-1]) for s in status)

    async def runs(self, household_id: str, from_ts: int, to_ts: int) -> list[ApplianceRunV1]:
        rows = await self.pool.fetch("SELECT run_json FROM appliance_runs WHERE household_id = $1 AND start >= $2 "
                                     "AND start < $3 ORDER BY start", household_id, from_ts, to_ts)
        return [ApplianceRunV1.model_validate_json(r["run_json"]) for r in rows]

    async def store_energy(self, household_id: str, hub_id: str, energy: list[ApplianceEnergyV1]) -> int:
        status = await self.pool.execute(
            "INSERT INTO appliance_energy SELECT $1, $2, * FROM unnest($3::text[], $4::bigint[], "
            "$5::double precision[]) ON CONFLICT DO NOTHING", household_id, hub_id, [e.appliance for e in energy],
            [e.start for e in energy], [e.energy_wh for e in energy])
        return int(status.split()[-1])

    async def appliance_energy(self, household_id: str, from_ts: int, to_ts: int) -> list[ApplianceEnergyV1]:
        rows = await self.pool.fetch("SELECT appliance, start, energy_wh FROM appliance_energy WHERE household_id = $1 "
                                     "AND start >= $2 AND start < $3 ORDER BY start, appliance", household_id, from_ts,
                                     to_ts)
        return [ApplianceEnergyV1(appliance=r["appliance"], start=r["start"], energy_wh=r["energy_wh"]) for r in rows]

    async def add_notification(self, household_id: str, kind: str, key: str, message: str) -> bool:
        status = await self.pool.execute("INSERT INTO notifications VALUES ($1, $2, $3, $4, $5) ON CONFLICT "
                                         "DO NOTHING", household_id, kind, key, time.time(), message)
        return status.endswith(" 1")

    async def notifications(self, household_id: str) -> list[dict[str, object]]:
        rows = await self.pool.fetch("SELECT kind, key, created_at, message FROM notifications WHERE "
                                     "household_id = $1 ORDER BY created_at DESC", household_id)
        return [dict(r) for r in rows]

    async def set_display(self, household_id: str, state: DisplayState) -> None:
        await self.pool.execute("INSERT INTO display VALUES ($1, $2) ON CONFLICT (household_id) DO UPDATE SET "
                                "state_json = EXCLUDED.state_json", household_id, state.model_dump_json())

    async def display(self, household_id: str) -> DisplayState | None:
        raw = await self.pool.fetchval("SELECT state_json FROM display WHERE household_id = $1", household_id)
        return DisplayState.model_validate_json(raw) if raw else None

