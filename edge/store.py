"""The hub's local store (SQLite, WAL): every reading, the outbox of batches, the face log.

A reading is stored once per (channel, ts). Uplink batches are sealed from unbatched
readings in one transaction, so a reading belongs to exactly one batch and a batch's
body never changes: a retry after a lost acknowledgement resends the same (hub, seq).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

from pydantic import ValidationError

from protocols.devices import DeviceReading
from protocols.display import DisplayState
from protocols.readings import READING_FIELDS, MeterReading, column_sql
from protocols.uplink import ApplianceEnergyV1, ApplianceRunV1, ReadingV1, UplinkBatch

if TYPE_CHECKING:
    from edge.nilm.live import LiveState

log = logging.getLogger("ohmni.hub.store")

_SCHEMA_TEMPLATE = """
CREATE TABLE IF NOT EXISTS readings (
    channel TEXT NOT NULL,
    {columns},
    batch_seq INTEGER,
    UNIQUE (channel, ts)
);
CREATE INDEX IF NOT EXISTS readings_unbatched ON readings (batch_seq) WHERE batch_seq IS NULL;
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    n_readings INTEGER NOT NULL,
    body TEXT NOT NULL,
    acked_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    rejected_at REAL,
    items_rejected INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS device_readings (
    device TEXT NOT NULL,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    power_w REAL,
    energy_kwh REAL,
    export_kwh REAL,
    voltage_v REAL,
    current_a REAL
);
CREATE INDEX IF NOT EXISTS device_readings_device_ts ON device_readings (device, ts);
CREATE TABLE IF NOT EXISTS appliance_runs (
    appliance TEXT NOT NULL,
    start INTEGER NOT NULL,
    body TEXT NOT NULL,
    batch_seq INTEGER,
    UNIQUE (appliance, start)
);
CREATE TABLE IF NOT EXISTS appliance_energy (
    appliance TEXT NOT NULL,
    start INTEGER NOT NULL,
    energy_wh REAL NOT NULL,
    batch_seq INTEGER,
    UNIQUE (appliance, start)
);
CREATE TABLE IF NOT EXISTS nilm_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS compactions (
    at REAL NOT NULL,
    from_ts INTEGER NOT NULL,
    to_ts INTEGER NOT NULL,
    resolution_s INTEGER NOT NULL,
    removed INTEGER NOT NULL,
    reported INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS face_log (
    ts INTEGER NOT NULL,
    face TEXT NOT NULL,
    power_w INTEGER NOT NULL,
    baseline_w REAL,
    reason TEXT NOT NULL
);
"""

_SCHEMA = _SCHEMA_TEMPLATE.replace("{columns}", column_sql())
_COLUMNS = ("channel", *READING_FIELDS)
_ADD_RUN = "INSERT OR IGNORE INTO appliance_runs (appliance, start, body) VALUES (?, ?, ?)"
_ADD_ENERGY = "INSERT OR IGNORE INTO appliance_energy (appliance, start, energy_wh) VALUES (?, ?, ?)"
#: Readings younger than this (by the meter's clock) are never compacted: with the cloud there, the ones not yet sent
#: are the last few seconds' (the uplink sends every 10 s).
COMPACT_AFTER_S = 900.0


@dataclass(frozen=True)
class OutboxItem:
    seq: int
    body: str
    n_readings: int
    attempts: int


class HubStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA cache_size=-2048")  # 2 MB of page cache: a hub has little memory to spare
        self.db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Columns added after a store was first made (SQLite adds them in place)."""
        have = {row[1] for row in self.db.execute("PRAGMA table_info(outbox)")}
        for column, ddl in (("rejected_at", "REAL"), ("items_rejected", "INTEGER NOT NULL DEFAULT 0")):
            if column not in have:
                self.db.execute(f"ALTER TABLE outbox ADD COLUMN {column} {ddl}")
        if "resolution_s" not in {row[1] for row in self.db.execute("PRAGMA table_info(readings)")}:
            self.db.execute("ALTER TABLE readings ADD COLUMN resolution_s INTEGER")

    def close(self) -> None:
        self.db.close()

    def add_readings(self, readings: Iterable[MeterReading], channel: str = "electricity") -> int:
        """Store readings; return how many were new (a repeated timestamp is ignored)."""
        rows = [(channel, *(getattr(r, name) for name in READING_FIELDS)) for r in readings]
        return self._insert_new(
            f"INSERT OR IGNORE INTO readings ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", rows)

    def _insert_new(self, sql: str, rows: list[tuple]) -> int:
        """Run an INSERT OR IGNORE for ``rows`` in one transaction; return how many were new."""
        if not rows:
            return 0  # the common case for runs and half hours: nothing settled since the last readings
        before = self.db.total_changes
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(sql, rows)
        return self.db.total_changes - before

    def add_device_readings(self, readings: Iterable[DeviceReading], received_at: float) -> int:
        rows = [(r.device, r.ts or received_at, r.kind, r.power_w, r.energy_kwh, r.export_kwh, r.voltage_v,
                 r.current_a) for r in readings]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO device_readings VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    def device_readings(self, device: str | None = None) -> list[dict[str, object]]:
        sql = "SELECT device, ts, kind, power_w, energy_kwh, export_kwh, voltage_v, current_a FROM device_readings"
        cur = self.db.execute(sql + (" WHERE device = ? ORDER BY rowid" if device else " ORDER BY rowid"),
                              (device,) if device else ())
        names = ("device", "ts", "kind", "power_w", "energy_kwh", "export_kwh", "voltage_v", "current_a")
        return [dict(zip(names, row, strict=True)) for row in cur]

    def add_runs(self, runs: Iterable[ApplianceRunV1]) -> int:
        return self._insert_new(_ADD_RUN, [(r.appliance, r.start, r.model_dump_json()) for r in runs])

    def add_energy(self, half_hours: Iterable[ApplianceEnergyV1]) -> int:
        """Keep each appliance's half-hour energy once (the first estimate of a half hour stands)."""
        return self._insert_new(_ADD_ENERGY, [(e.appliance, e.start, e.energy_wh) for e in half_hours])

    def settle_nilm(self, runs: Iterable[ApplianceRunV1], half_hours: Iterable[ApplianceEnergyV1],
                    state: LiveState | None) -> None:
        """What the disaggregator settled and (when it ran a pass) where it got to, in one transaction: a hub killed
        at any moment starts again from a state that matches the runs and half hours it kept, so none is sent
        twice or skipped (``LiveDisaggregator.resume``)."""
        run_rows = [(r.appliance, r.start, r.model_dump_json()) for r in runs]
        energy = [(e.appliance, e.start, e.energy_wh) for e in half_hours]
        if not run_rows and not energy and state is None:
            return
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(_ADD_RUN, run_rows)
            self.db.executemany(_ADD_ENERGY, energy)
            if state is not None:
                self.db.execute("INSERT OR REPLACE INTO nilm_state (id, body) VALUES (1, ?)", (json.dumps(state),))

    def nilm_state(self) -> LiveState | None:
        """The disaggregator's state as last settled (``settle_nilm``), None before its first pass; ValueError if
        what is kept is not JSON of an object (a damaged store)."""
        row = self.db.execute("SELECT body FROM nilm_state WHERE id = 1").fetchone()
        if row is None:
            return None
        state = json.loads(row[0])
        if not isinstance(state, dict):
            raise ValueError("the disaggregator's saved state is not a JSON object")
        return cast("LiveState", state)  # its fields are checked by ``LiveDisaggregator.resume``

    def last_reading_ts(self) -> int | None:
        """The meter's timestamp of the newest electricity reading kept (None: none yet)."""
        (last,) = self.db.execute("SELECT MAX(ts) FROM readings WHERE channel = 'electricity'").fetchone()
        return None if last is None else int(last)

    def recent_power(self, span_s: float) -> tuple[list[float], list[float], bool]:
        """The meter's net power over the last ``span_s`` before its latest reading (ts, W), and whether the store
        holds readings before that: a restarted hub's disaggregation window. (Lists: the store does not load
        NumPy, which is most of a hub's memory.)"""
        (last,) = self.db.execute("SELECT MAX(ts) FROM readings WHERE channel = 'electricity'").fetchone()
        if last is None:
            return [], [], False
        rows = self.db.execute("SELECT ts, power_import_w - power_export_w FROM readings WHERE channel = "
                               "'electricity' AND ts >= ? ORDER BY ts", (last - span_s,)).fetchall()
        older = self.db.execute("SELECT 1 FROM readings WHERE channel = 'electricity' AND ts < ? LIMIT 1",
                                (last - span_s,)).fetchone() is not None
        return [float(t) for t, _ in rows], [float(w) for _, w in rows], older

    def runs(self) -> list[ApplianceRunV1]:
        return [ApplianceRunV1.model_validate_json(b) for (b,) in
                self.db.execute("SELECT body FROM appliance_runs ORDER BY start")]

    def log_face(self, state: DisplayState) -> None:
        with self.db:
            self.db.execute("INSERT INTO face_log VALUES (?, ?, ?, ?, ?)",
                            (state.ts, state.face.value, state.power_w, state.baseline_w, state.reason))

    def face_log(self, since_ts: int = 0) -> list[dict[str, object]]:
        cur = self.db.execute("SELECT ts, face, power_w, baseline_w, reason FROM face_log WHERE ts >= ? "
                              "ORDER BY rowid", (since_ts,))
        return [dict(zip(("ts", "face", "power_w", "baseline_w", "reason"), row, strict=True)) for row in cur]

    # --- disk budget -------------------------------------------------------------------------

    def used_bytes(self) -> int:
        """Bytes of the store in use (free pages left by deletes do not count)."""
        page_size = self.db.execute("PRAGMA page_size").fetchone()[0]
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * page_size

    def compact(self, resolution_s: int, before_ts: float | None = None) -> int:
        """Unsent readings (before ``before_ts``'s window, where given) down to one per ``resolution_s`` window:
        the window's last reading keeps its registers exactly (no energy is lost) and gets the window's mean power.
        Returns rows removed."""
        before = 2**62 if before_ts is None else int(before_ts // resolution_s * resolution_s)  # whole windows only
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            groups = self.db.execute(
                "SELECT channel, ts / ?1 AS w, max(ts), avg(power_import_w), avg(power_export_w), count(*) "
                "FROM readings WHERE batch_seq IS NULL AND coalesce(resolution_s, 1) < ?1 AND ts < ?2 "
                "GROUP BY channel, w HAVING count(*) > 1", (resolution_s, before)).fetchall()
            removed = 0
            for channel, w, last_ts, p_in, p_out, n in groups:
                self.db.execute("UPDATE readings SET power_import_w = ?, power_export_w = ?, resolution_s = ? "
                                "WHERE channel = ? AND ts = ?", (round(p_in), round(p_out), resolution_s, channel,
                                                                 last_ts))
                self.db.execute("DELETE FROM readings WHERE batch_seq IS NULL AND channel = ? AND ts / ? = ? "
                                "AND ts < ?", (channel, resolution_s, w, last_ts))
                removed += n - 1
            if removed:
                first, last = groups[0][1] * resolution_s, groups[-1][2]
                self.db.execute("INSERT INTO compactions (at, from_ts, to_ts, resolution_s, removed) "
                                "VALUES (?, ?, ?, ?, ?)", (time.time(), first, last, resolution_s, removed))
        return removed

    def enforce_budget(self, budget_bytes: int, steps: tuple[int, ...] = (60, 900, 1800),
                       fresh_s: float = COMPACT_AFTER_S) -> int:
        """Compact, coarser step by step, until the store fits its budget; nothing is dropped. Only readings the
        cloud has not had for ``fresh_s`` (by the meter's clock) are compacted: with the cloud there, the readings
        not yet sent are the last few seconds', and compacting those (as this did once history kept for the
        disaggregator filled the budget) cost the cloud their resolution and told the home the cloud had been
        away."""
        last = self.last_reading_ts()
        removed = 0
        for resolution in steps:
            if last is None or self.used_bytes() <= budget_bytes:
                break
            removed += self.compact(resolution, before_ts=last - fresh_s)
        return removed

    def prune(self, keep_s: float, limit: int = 5000) -> dict[str, int]:
        """Drop what the cloud has acknowledged and is older than ``keep_s`` before the newest of its kind:
        readings, appliance runs and half hours (by the meter's clock), the plugs' readings (by theirs), the face's
        log, and acknowledged batches' rows (by the hub's). Nothing the cloud has not taken goes: readings waiting,
        in a parked batch or unsendable stay. Without it the store grew by some 40 MB a day at one reading a second
        until the disk was full. At most ``limit`` rows a table a call, so that a hub with months to drop does not
        hold its loop (and the meter's bytes) for long: call it again while it drops any. Returns rows dropped per
        table."""
        last = self.last_reading_ts()
        cutoff = None if last is None else last - keep_s  # by the meter's clock
        (newest_device,) = self.db.execute("SELECT MAX(ts) FROM device_readings").fetchone()
        acked = "batch_seq > 0 AND batch_seq NOT IN (SELECT seq FROM outbox WHERE acked_at IS NULL)"
        old: dict[str, tuple[str, float | None]] = {  # table -> (which rows are the cloud's and old, before when)
            "readings": (f"ts < ?1 AND {acked}", cutoff),
            "appliance_runs": (f"start < ?1 AND {acked}", cutoff),
            "appliance_energy": (f"start < ?1 AND {acked}", cutoff),
            "face_log": ("ts < ?1", cutoff),
            "device_readings": ("ts < ?1", None if newest_device is None else newest_device - keep_s),
            # the newest acknowledged stays: `hub status` says when the last upload was, however long ago
            "outbox": ("acked_at < ?1 AND seq < (SELECT max(seq) FROM outbox WHERE acked_at IS NOT NULL)",
                       time.time() - keep_s),
        }
        # batches acknowledged before ``ack`` let their bodies go (a store from an older hub)
        bodies = "SELECT rowid FROM outbox WHERE acked_at IS NOT NULL AND body != '' LIMIT ?"
        gone: dict[str, int] = {}
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for table, (where, before) in old.items():
                if before is not None:
                    gone[table] = self.db.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} "
                                                  f"WHERE {where} LIMIT ?2)", (before, limit)).rowcount
            gone["outbox bodies"] = self.db.execute(f"UPDATE outbox SET body = '' WHERE rowid IN ({bodies})",
                                                    (limit,)).rowcount
        return {table: n for table, n in gone.items() if n}

    def unreported_compactions(self) -> list[str]:
        rows = self.db.execute("SELECT rowid, from_ts, to_ts, resolution_s FROM compactions WHERE reported = 0 "
                               "ORDER BY rowid").fetchall()
        return [f"While the cloud was unreachable the hub ran short of space: readings from "
                f"{datetime.fromtimestamp(a, UTC):%Y-%m-%d %H:%M} to {datetime.fromtimestamp(b, UTC):%Y-%m-%d %H:%M}"
                f" UTC were kept at {res // 60}-minute resolution (energy totals are exact)." for _, a, b, res in rows]

    def mark_compactions_reported(self) -> None:
        with self.db:
            self.db.execute("UPDATE compactions SET reported = 1 WHERE reported = 0")

    def seal_batch(self, hub_id: str, max_readings: int, display: DisplayState | None) -> int | None:
        """Move up to ``max_readings`` unbatched readings into a new outbox batch; return its seq."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            rows = self.db.execute(
                f"SELECT rowid, {', '.join(_COLUMNS)} FROM readings WHERE batch_seq IS NULL "
                "ORDER BY ts LIMIT ?", (max_readings,)).fetchall()
            if not rows:
                return None
            readings, kept, unsendable = [], [], []
            for row in rows:
                try:
                    readings.append(ReadingV1(**dict(zip(_COLUMNS, row[1:], strict=True))))
                    kept.append(row)
                except ValidationError as exc:  # kept by an older hub that took what a meter should not say
                    unsendable.append((row[0], str(exc.errors()[0]["msg"])))
            if unsendable:  # batch 0: never sent, still in the store; the rest go on rather than stop the uplink
                self.db.executemany("UPDATE readings SET batch_seq = 0 WHERE rowid = ?",
                                    [(rowid,) for rowid, _ in unsendable])
                log.warning("%d stored reading(s) the cloud's schema cannot take are kept here, not sent (%s)",
                            len(unsendable), unsendable[0][1])
            rows = kept
            if not rows:
                return None
            seq = self.db.execute("INSERT INTO outbox (created_at, n_readings, body) VALUES (?, ?, '')",
                                  (time.time(), len(rows))).lastrowid
            assert seq is not None  # sqlite gives the row it just inserted
            notices = self.unreported_compactions()
            run_rows = self.db.execute("SELECT rowid, body FROM appliance_runs WHERE batch_seq IS NULL "
                                       "ORDER BY start LIMIT 1000").fetchall()
            runs = [ApplianceRunV1.model_validate_json(body) for _, body in run_rows]
            self.db.executemany("UPDATE appliance_runs SET batch_seq = ? WHERE rowid = ?",
                                [(seq, rowid) for rowid, _ in run_rows])
            energy_rows = self.db.execute("SELECT rowid, appliance, start, energy_wh FROM appliance_energy WHERE "
                                          "batch_seq IS NULL ORDER BY start LIMIT 5000").fetchall()
            energy = [ApplianceEnergyV1(appliance=a, start=start, energy_wh=wh) for _, a, start, wh in energy_rows]
            self.db.executemany("UPDATE appliance_energy SET batch_seq = ? WHERE rowid = ?",
                                [(seq, row[0]) for row in energy_rows])
            batch = UplinkBatch(hub_id=hub_id, seq=seq, readings=readings, display=display, notices=notices,
                                runs=runs, energy=energy)
            if notices:
                self.db.execute("UPDATE compactions SET reported = 1 WHERE reported = 0")
            self.db.execute("UPDATE outbox SET body = ? WHERE seq = ?", (batch.model_dump_json(), seq))
            self.db.executemany("UPDATE readings SET batch_seq = ? WHERE rowid = ?",
                                [(seq, row[0]) for row in rows])
            return seq

    def pending(self, limit: int = 100) -> list[OutboxItem]:
        cur = self.db.execute("SELECT seq, body, n_readings, attempts FROM outbox WHERE acked_at IS NULL "
                              "AND rejected_at IS NULL ORDER BY seq LIMIT ?", (limit,))
        return [OutboxItem(*row) for row in cur]

    def mark_attempt(self, seq: int, error: str | None) -> None:
        with self.db:
            self.db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                            (error, seq))

    def ack(self, seq: int, items_rejected: int = 0) -> None:
        """The cloud has the batch: its body (three quarters of what a day of readings takes on disk) goes, the
        row stays for `hub status` until :meth:`prune`."""
        with self.db:
            self.db.execute("UPDATE outbox SET acked_at = ?, last_error = NULL, items_rejected = ?, body = '' "
                            "WHERE seq = ?", (time.time(), items_rejected, seq))

    def reject(self, seq: int, error: str) -> None:
        """The cloud will never take this batch as it is: park it (kept for inspection) and go on."""
        with self.db:
            self.db.execute("UPDATE outbox SET rejected_at = ?, last_error = ? WHERE seq = ?",
                            (time.time(), error, seq))

    def status(self) -> dict[str, object]:
        readings, last_ts = self.db.execute("SELECT count(*), max(ts) FROM readings").fetchone()
        unbatched = self.db.execute("SELECT count(*) FROM readings WHERE batch_seq IS NULL").fetchone()[0]
        unsendable = self.db.execute("SELECT count(*) FROM readings WHERE batch_seq = 0").fetchone()[0]
        pending_batches, pending_readings = self.db.execute(
            "SELECT count(*), coalesce(sum(n_readings), 0) FROM outbox WHERE acked_at IS NULL "
            "AND rejected_at IS NULL").fetchone()
        parked, = self.db.execute("SELECT count(*) FROM outbox WHERE rejected_at IS NOT NULL").fetchone()
        last_ack = self.db.execute("SELECT max(acked_at) FROM outbox").fetchone()[0]
        last_error = self.db.execute("SELECT last_error FROM outbox WHERE acked_at IS NULL AND rejected_at IS NULL "
                                     "AND last_error IS NOT NULL ORDER BY seq LIMIT 1").fetchone()
        return {
            "readings": readings,
            "last_reading_ts": last_ts,
            "backlog_readings": unbatched + pending_readings,
            "readings_unsendable": unsendable,
            "pending_batches": pending_batches,
            "compactions": self.db.execute("SELECT count(*) FROM compactions").fetchone()[0],
            "used_bytes": self.used_bytes(),
            "batches_rejected_by_cloud": parked,
            "last_upload_at": last_ack,
            "last_upload_error": last_error[0] if last_error else None,
        }
