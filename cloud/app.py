"""The FastAPI application: storage chosen at start, routers by audience."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cloud import problems
from cloud.body_limit import BodyLimit
from cloud.bootstrap import bootstrap_demo
from cloud.metrics import IngestMetrics
from cloud.notify import Dispatcher, Vapid, dispatch_forever
from cloud.routers import agents, community, householders, hubs, installers, ops, pages
from cloud.settings import CloudSettings, load_settings
from cloud.social import community_pass
from cloud.storage.base import Storage
from cloud.storage.people import PeopleStore
from cloud.storage.sqlite import SqliteStorage

log = logging.getLogger("ohmni.cloud")


def open_storage(settings: CloudSettings) -> Storage:
    """PostgreSQL when a database URL is set, else SQLite in the data folder."""
    if settings.database_url:
        from cloud.storage.postgres import PostgresStorage

        return PostgresStorage(settings.database_url, writers=settings.db_writers)
    return SqliteStorage(settings.data_dir / "cloud.sqlite3")


async def _watch_areas(store: Storage, settings: CloudSettings) -> None:
    """Look for loss of supply by area, notify the households there (cloud/community.py) and
    post about it, with the day's tips (cloud/social.py)."""
    while True:
        await asyncio.sleep(settings.outage_check_s)
        try:
            await community_pass(store, settings)
        except Exception:  # a bad pass must not end the watch; the next one tries again
            log.exception("area check failed")


#: How often the cloud drops old sign-in attempts and ended sessions (``PeopleStore.forget_stale``).
FORGET_EVERY_S = 3600.0


async def _forget_stale(store: Storage) -> None:
    """At start and then hourly: what no one reads again goes, so a stream of refused guesses cannot fill the disk."""
    assert isinstance(store, PeopleStore)  # every backend keeps staff, sessions and attempts too
    while True:
        try:
            attempts, sessions = await store.forget_stale(time.time())
            if attempts or sessions:
                log.info("dropped %d old sign-in attempts and %d ended sessions", attempts, sessions)
        except Exception:  # a failed pass must not end the loop; the next one tries again
            log.exception("dropping old sign-in attempts failed")
        await asyncio.sleep(FORGET_EVERY_S)


def create_app(settings: CloudSettings | None = None, storage: Storage | None = None) -> FastAPI:
    settings = settings or CloudSettings()
    store: Storage = storage or open_storage(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.init()
        if settings.bootstrap_demo:
            await bootstrap_demo(store, settings)
        background = [asyncio.create_task(_forget_stale(store))]
        if settings.outage_check_s:
            background.append(asyncio.create_task(_watch_areas(store, settings)))
        if settings.notify_every_s:
            background.append(asyncio.create_task(dispatch_forever(app.state.dispatcher, settings.notify_every_s)))
        yield
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await app.state.dispatcher.aclose()
        if app.state.tsdb is not None:
            app.state.tsdb.close()  # flushes what is still batched
        await store.close()

    app = FastAPI(title="Ohmni cloud", version="1", lifespan=lifespan,
                  description="Readings in, prices and explanations out. The householder API is the "
                              "app's contract; hubs upload through /api/v1/hub.")
    app.state.settings = settings
    app.state.storage = store
    app.state.metrics = IngestMetrics()
    app.state.tsdb = None
    if settings.tsdb_url:
        from cloud.storage.tsdb import TimeSeriesSink

        app.state.tsdb = TimeSeriesSink(settings.tsdb_url, settings.tsdb_token, settings.tsdb_org,
                                        settings.tsdb_bucket)
    assert isinstance(store, PeopleStore)
    app.state.vapid = Vapid(settings.data_dir, settings.vapid_subject)
    app.state.dispatcher = Dispatcher(store, settings.webhook_url, settings.webhook_secret, app.state.vapid,
                                    push_hosts=settings.push_hosts)
    problems.install(app, getattr(store, "UNAVAILABLE", ()))
    refused = app.state.metrics.bodies_too_large
    app.add_middleware(BodyLimit, limits={hubs.BATCH_PATH: hubs.MAX_BATCH_BYTES},
                       on_refused=lambda path: refused.labels("batch" if path == hubs.BATCH_PATH else "other").inc())
    app.include_router(hubs.router)
    app.include_router(installers.router)
    app.include_router(agents.router)
    app.include_router(community.router)
    app.include_router(householders.router)
    app.include_router(householders.push_router)
    app.include_router(pages.router)
    app.include_router(ops.router)
    if settings.bench_endpoints:
        app.include_router(ops.bench_router)
    return app


def app_from_env() -> FastAPI:
    """The app with settings from OHMNI_CLOUD_* variables (for uvicorn workers); a wrong one stops the worker
    naming it, not with pydantic's traceback."""
    try:
        settings = load_settings()
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    return create_app(settings)
