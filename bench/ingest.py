"""Ingest at scale: `python -m bench.ingest [--quick] [--hubs N] [--batch B]`.

Simulated hubs (a load-generator process, many connections) post batches to a real cloud
process for a fixed time; the figures are readings/s stored, p99 latency, and rejected,
lost and duplicated counts, for SQLite and PostgreSQL. Beside them, in the same run:
- the same payloads posted to a no-op endpoint (HTTP alone),
- raw asyncpg COPY + INSERT … ON CONFLICT DO NOTHING into the same table, two writers
  (no HTTP, no validation),
- the same points written straight into VictoriaMetrics as line protocol.
The last line holds key=value figures.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

from cloud.auth import Principal, Role, hash_secret, new_secret
from cloud.bootstrap import DEMO_HOUSEHOLD
from cloud.storage.postgres import PostgresStorage
from cloud.storage.sqlite import SqliteStorage
from cloud.storage.tsdb import line
from ohmni.demo import free_port
from protocols.uplink import ReadingV1, UplinkBatch

T0 = 1_764_028_800


def payload(hub: str, seq: int, batch: int) -> bytes:
    """A schema-v1 batch built as text: the generator must not spend the cores the cloud needs."""
    base = T0 + (seq - 1) * batch
    items = ",".join(
        f'{{"ts":{base + i},"channel":"electricity","meter_id":"M-{hub}","import_t1_wh":{1_000_000 + base - T0 + i},'
        f'"import_t2_wh":0,"export_t1_wh":0,"export_t2_wh":0,"power_import_w":{300 + i % 700},"power_export_w":0,'
        f'"voltage_l1_v":231.0}}' for i in range(batch))
    return f'{{"schema_version":1,"hub_id":"{hub}","seq":{seq},"readings":[{items}]}}'.encode()


def _check_payload() -> None:
    """The hand-built text is a valid batch (checked once per run)."""
    UplinkBatch.model_validate_json(payload("bench-0000", 1, 3))


def _generator(url: str, path: str, hubs: list[tuple[str, str]], batch: int, seconds: float, out: mp.Queue,
               first_seq: dict[str, int], resend_every: int) -> None:
    """One load-generator process: each hub posts its batches in order, all hubs at once.

    aiohttp (C-accelerated HTTP parsing) rather than httpx: on a 2-core machine every
    microsecond the generator spends is taken from the cloud it measures."""
    import aiohttp

    async def run() -> dict:
        latencies: list[float] = []
        stored = duplicates = rejected = failed = sent = resent = stored_twice = 0
        next_seq: dict[str, int] = {}
        end = time.monotonic() + seconds
        connector = aiohttp.TCPConnector(limit=len(hubs))
        async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as client:
            async def hub_loop(hub: str, token: str) -> None:
                nonlocal stored, duplicates, rejected, failed, sent, resent, stored_twice
                headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
                seq = first_seq.get(hub, 1) - 1
                while time.monotonic() < end:
                    seq += 1
                    next_seq[hub] = seq + 1
                    body = payload(hub, seq, batch)
                    t = time.perf_counter()
                    try:
                        async with client.post(path, data=body, headers=headers) as resp:
                            ack = await resp.json() if resp.status == 200 else None
                    except aiohttp.ClientError:
                        failed += 1
                        continue
                    latencies.append(time.perf_counter() - t)
                    if ack is None:
                        failed += 1
                        continue
                    sent += batch
                    stored += ack.get("stored", 0)
                    duplicates += ack.get("duplicates", 0)
                    rejected += len(ack.get("rejected", []))
                    if resend_every and seq % resend_every == 0:
                        # as if the acknowledgement had been lost: the hub sends the batch again
                        async with client.post(path, data=body, headers=headers) as resp:
                            again = await resp.json() if resp.status == 200 else {}
                        resent += batch
                        stored_twice += again.get("stored", batch)
            t0 = time.monotonic()
            await asyncio.gather(*(hub_loop(h, tok) for h, tok in hubs))
            elapsed = time.monotonic() - t0
        return {"latencies": latencies, "stored": stored, "duplicates": duplicates, "rejected": rejected,
                "failed": failed, "sent": sent, "elapsed": elapsed, "next_seq": next_seq, "resent": resent,
                "stored_twice": stored_twice}
    out.put(asyncio.run(run()))


def load(url: str, path: str, hubs: list[tuple[str, str]], batch: int, seconds: float,
         first_seq: dict[str, int] | None = None, resend_every: int = 0, processes: int = 2) -> dict:
    """One load phase; ``first_seq`` continues the hubs' sequence numbers from an earlier phase;
    every ``resend_every``-th batch is sent twice, as after a lost acknowledgement."""
    queue: mp.Queue = mp.Queue()
    share = [hubs[i::processes] for i in range(processes)]
    procs = [mp.Process(target=_generator, args=(url, path, part, batch, seconds, queue, first_seq or {},
                                                            resend_every))
             for part in share if part]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    total: dict = {k: sum(r[k] for r in results) for k in ("stored", "duplicates", "rejected", "failed", "sent",
                                                                "resent", "stored_twice")}
    total["latencies"] = [x for r in results for x in r["latencies"]]
    total["elapsed"] = max(r["elapsed"] for r in results)
    total["next_seq"] = {**(first_seq or {}), **{h: n for r in results for h, n in r["next_seq"].items()}}
    return total


def summary(*phases: dict) -> dict:
    """Phases of one kind taken together: rates over their summed time, percentiles over all requests."""
    total: dict = {k: sum(p[k] for p in phases) for k in ("stored", "duplicates", "rejected", "failed", "sent",
                                                          "resent", "stored_twice")}
    elapsed = sum(p["elapsed"] for p in phases)
    latencies = sorted(x for p in phases for x in p["latencies"])
    total["per_s"] = total["sent"] / elapsed
    total["stored_per_s"] = total["stored"] / elapsed
    total["p99_ms"] = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    total["p50_ms"] = statistics.median(latencies) * 1000 if latencies else float("nan")
    return total


async def make_hubs(store: SqliteStorage | PostgresStorage, n: int) -> list[tuple[str, str]]:
    """A household per hub, as in the field (their settlement rows do not contend)."""
    await store.init()
    hubs = []
    for i in range(n):
        hub, token = f"bench-{i:04d}", new_secret()
        household = dataclasses.replace(DEMO_HOUSEHOLD, id=f"hh-{hub}", account_number=f"B{i:07d}")
        await store.upsert_household(household)
        await store.upsert_hub(hub, household.id)
        await store.add_credential(hash_secret(token), Principal(Role.HUB, hub, household.id))
        hubs.append((hub, token))
    await store.close()
    return hubs


def start_cloud(env: dict[str, str], workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ohmni", "cloud", "serve", "--port", str(port), "--workers",
                             str(workers)], env={**os.environ, **env, "OHMNI_CLOUD_BENCH_ENDPOINTS": "true"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the cloud did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(20)


async def count_rows(url: str) -> tuple[int, int]:
    con = await asyncpg.connect(url)
    try:
        api = "WHERE hub_id LIKE 'bench-%'"  # not the raw baseline's rows
        return (await con.fetchval(f"SELECT count(*) FROM readings {api}"),
                await con.fetchval(f"SELECT count(*) FROM (SELECT DISTINCT hub_id, channel, ts FROM readings {api}) d"))
    finally:
        await con.close()


async def raw_pg_upsert(url: str, batch: int, seconds: float, writers: int = 2, round_no: int = 0) -> tuple[int, float]:
    """COPY into a staging table, then INSERT … ON CONFLICT DO NOTHING: the textbook duplicate-safe
    bulk write, no HTTP and no validation. (rows, seconds)."""
    store = PostgresStorage(url)
    await store.init()
    await store.close()
    cols = ["household_id", "hub_id", "channel", "ts", "meter_id", "import_t1_wh", "import_t2_wh", "export_t1_wh",
            "export_t2_wh", "power_import_w", "power_export_w", "voltage_l1_v"]
    end = time.monotonic() + seconds
    done = 0

    async def writer(w: int) -> None:
        nonlocal done
        con = await asyncpg.connect(url)
        await con.execute("CREATE TEMP TABLE raw_in (LIKE readings)")
        start = T0 + 10_000_000 + w * 100_000_000 + round_no * 10_000_000
        days: set[int] = set()
        seq = 0
        while time.monotonic() < end:
            base = start + seq * batch
            for day in {base // 86400, (base + batch) // 86400} - days:
                await con.execute(f"CREATE TABLE IF NOT EXISTS readings_d{day} PARTITION OF readings "
                                  f"FOR VALUES FROM ({day * 86400}) TO ({(day + 1) * 86400})")
                days.add(day)
            rows = [("hh-demo", f"raw-{w}", "electricity", base + i, "M", 1000 + i, 0, 0, 0, 300, 0, 231.0)
                    for i in range(batch)]
            async with con.transaction():
                await con.copy_records_to_table("raw_in", records=rows, columns=cols)
                await con.execute("INSERT INTO readings (household_id, hub_id, channel, ts, meter_id, import_t1_wh, "
                                  "import_t2_wh, export_t1_wh, export_t2_wh, power_import_w, power_export_w, "
                                  "voltage_l1_v) SELECT household_id, hub_id, channel, ts, meter_id, import_t1_wh, "
                                  "import_t2_wh, export_t1_wh, export_t2_wh, power_import_w, power_export_w, "
                                  "voltage_l1_v FROM raw_in ON CONFLICT DO NOTHING")
                await con.execute("TRUNCATE raw_in")
            done += batch
            seq += 1
        await con.close()
    t0 = time.monotonic()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    return done, time.monotonic() - t0


def direct_tsdb(url: str, batch: int, seconds: float, pool: int = 40) -> float:
    """The same points, as line protocol built beforehand, posted straight to VictoriaMetrics."""
    bodies = []
    for seq in range(pool):
        base = T0 + seq * batch
        bodies.append("\n".join(line("hh-demo", "direct", ReadingV1.model_construct(
            ts=base + i, channel="electricity", meter_id="M", import_t1_wh=1000 + i, import_t2_wh=0,
            export_t1_wh=0, export_t2_wh=0, power_import_w=300, power_export_w=0, voltage_l1_v=231.0,
            voltage_l2_v=None, voltage_l3_v=None, gas_m3=None)) for i in range(batch)).encode())
    end = time.monotonic() + seconds
    sent = 0
    with httpx.Client(timeout=30) as client:
        t0 = time.monotonic()
        while time.monotonic() < end:
            body = bodies[(sent // batch) % pool]
            client.post(f"{url}/write", params={"precision": "s"}, content=body).raise_for_status()
            sent += batch
        return sent / (time.monotonic() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 20-second run (4 s a phase)")
    parser.add_argument("--seconds", type=float, default=15, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=3,
                        help="PostgreSQL through the API and the raw baseline take turns, this many times each "
                             "(a phase's seconds split between them), so drift on the machine hits both alike")
    parser.add_argument("--hubs", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1000, help="readings per batch")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers for PostgreSQL")
    parser.add_argument("--resend-every", type=int, default=20,
                        help="send every N-th PostgreSQL batch twice, as after a lost acknowledgement (0: never)")
    args = parser.parse_args()
    seconds = 4 if args.quick else args.seconds
    rounds = 1 if args.quick else max(1, args.rounds)
    _check_payload()
    from tests.fixtures.postgres import start_postgres
    from tests.fixtures.victoria import start_victoria

    folder = Path(tempfile.mkdtemp(prefix="ohmni-bench-ingest-"))
    pg_folder = Path(tempfile.mkdtemp(prefix="ohmni-bench-pg-"))
    pg = start_postgres(pg_folder)
    vm = start_victoria(folder / "vm")
    figures: dict[str, float] = {}
    try:
        # SQLite: one worker (one writer)
        sqlite_hubs = asyncio.run(make_hubs(SqliteStorage(folder / "sqlite" / "cloud.sqlite3"), args.hubs))
        proc, url = start_cloud({"OHMNI_CLOUD_DATA_DIR": str(folder / "sqlite")}, 1)
        try:
            noop = summary(load(url, "/api/v1/bench/noop", sqlite_hubs, args.batch, seconds))
            sqlite = summary(load(url, "/api/v1/hub/batches", sqlite_hubs, args.batch, seconds))
        finally:
            stop(proc)
        # PostgreSQL through the API
        asyncio.run(_create_db(pg.url, "api"))
        api_url = pg.url.rsplit("/", 1)[0] + "/api"
        pg_hubs = asyncio.run(make_hubs(PostgresStorage(api_url), args.hubs))
        proc, url = start_cloud({"OHMNI_CLOUD_DATABASE_URL": api_url, "OHMNI_CLOUD_DATA_DIR": str(folder / "pg")},
                                args.workers)
        api_phases: list[dict] = []
        raw_rows, raw_seconds = 0, 0.0
        try:
            for round_no in range(rounds):
                api_phases.append(load(url, "/api/v1/hub/batches", pg_hubs, args.batch, seconds / rounds,
                                       api_phases[-1]["next_seq"] if api_phases else None, args.resend_every))
                n, took = asyncio.run(raw_pg_upsert(api_url, args.batch, seconds / rounds, round_no=round_no))
                raw_rows, raw_seconds = raw_rows + n, raw_seconds + took
        finally:
            stop(proc)
        pgres = summary(*api_phases)
        raw = raw_rows / raw_seconds
        rows, distinct = asyncio.run(count_rows(api_url))
        pgres["lost"] = pgres["stored"] - distinct  # acknowledged as stored but not in the table
        pgres["duplicated"] = rows - distinct + pgres["stored_twice"]  # in the table, or acknowledged twice
        tsdb = direct_tsdb(vm.url, args.batch, seconds)
    finally:
        vm.stop()
        pg.stop()
        for path in (folder, pg_folder):  # gigabytes of rows: never leave them behind
            shutil.rmtree(path, ignore_errors=True)
    for name, r in (("noop", noop), ("sqlite", sqlite), ("pg", pgres)):
        print(f"{name:>7}: {r['per_s']:>9,.0f} readings/s sent, {r['stored_per_s']:>9,.0f} stored/s, "
              f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, rejected {r['rejected']}, failed {r['failed']}"
              + (f", re-sent {r['resent']:,} (stored again: {r['stored_twice']})" if r["resent"] else ""))
    print(f"raw asyncpg COPY + ON CONFLICT (2 writers, {rounds} turns with the API's): {raw:,.0f} rows/s; "
          f"direct VictoriaMetrics: {tsdb:,.0f} points/s")
    print(f"PostgreSQL through the API is {pgres['stored_per_s'] / raw:.2f} of the raw COPY-upsert rate "
          f"(goal: 100,000 readings/s and 0.7)")
    figures = {"pg_readings_per_s": pgres["stored_per_s"], "pg_p99_ms": pgres["p99_ms"],
               "sqlite_readings_per_s": sqlite["stored_per_s"], "sqlite_p99_ms": sqlite["p99_ms"],
               "noop_readings_per_s": noop["per_s"], "raw_pg_upsert_per_s": raw, "direct_tsdb_readings_per_s": tsdb,
               "pg_vs_raw": pgres["stored_per_s"] / raw, "rejected": pgres["rejected"] + sqlite["rejected"],
               "lost": pgres["lost"], "duplicated": pgres["duplicated"]}
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) and v < 10 else f"{k}={v:.0f}" for k, v in figures.items()))


async def _create_db(url: str, name: str) -> None:
    con = await asyncpg.connect(url)
    await con.execute(f"CREATE DATABASE {name}")
    await con.close()


if __name__ == "__main__":
    main()
