"""PostgreSQL specifics: migrations run once, readings land in daily partitions, COPY stays duplicate-safe."""

from __future__ import annotations

import asyncpg

from cloud.bootstrap import DEMO_HOUSEHOLD
from cloud.storage.postgres import MIGRATIONS, PostgresStorage
from protocols.uplink import ReadingV1
from tests.cloud.test_api import create_database

DAY = 1_764_028_800


def reading(ts: int) -> ReadingV1:
    return ReadingV1(ts=ts, meter_id="E1", import_t1_wh=ts - DAY, import_t2_wh=0, export_t1_wh=0, export_t2_wh=0,
                     power_import_w=100, power_export_w=0)


async def test_partitions_migrations_and_duplicate_safe_copy(postgres):
    url = await create_database(postgres)
    store = PostgresStorage(url)
    await store.init()
    await store.close()
    store = PostgresStorage(url)
    await store.init()  # a second start applies nothing twice
    try:
        await store.upsert_household(DEMO_HOUSEHOLD)
        batch = [reading(DAY + 3600 * h) for h in range(0, 72, 1)]  # three days, hourly
        first = await store.store_batch("hh-demo", "hub-1", 1, batch)
        assert (first.stored, first.duplicates) == (72, 0)
        overlap = await store.store_batch("hh-demo", "hub-1", 2, batch[48:] + [reading(DAY + 72 * 3600)])
        assert (overlap.stored, overlap.duplicates) == (1, 24)
        replay = await store.store_batch("hh-demo", "hub-1", 2, batch)
        assert replay.replayed and replay.stored == 0
        con = await asyncpg.connect(url)
        try:
            partitions = await con.fetchval("SELECT count(*) FROM pg_inherits WHERE inhparent = 'readings'::regclass")
            versions = await con.fetch("SELECT version FROM schema_migrations")
            total = await con.fetchval("SELECT count(*) FROM readings")
        finally:
            await con.close()
        assert partitions == 4 and total == 73
        assert [v["version"] for v in versions] == list(range(1, len(MIGRATIONS) + 1))
        assert len(await store.register_buckets("hh-demo", DAY, DAY + 86400)) == 24
    finally:
        await store.close()
