"""`ohmni cloud …`: run the cloud service."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvicorn

from cloud.auth import ALL_HOUSEHOLDS, Principal, Role, hash_secret, new_secret
from cloud.settings import CloudSettings, load_settings

# The app, its storage and provisioning are imported inside the commands that use them: every
# `ohmni` process registers this group, and a hub should not carry the cloud in its memory.

app = typer.Typer(help="The cloud service.", no_args_is_help=True)
T = TypeVar("T")


class _Server(uvicorn.Server):
    """uvicorn without its re-raise of SIGTERM, so a requested stop exits 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the owner handles the signals
        yield


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where the SQLite store lives.")] = None,
    bootstrap_demo: Annotated[bool, typer.Option("--bootstrap-demo", help="Create the demo household.")] = False,
    hub_token_file: Annotated[Path | None, typer.Option(help="Demo hub credential file.")] = None,
    householder_key_file: Annotated[Path | None, typer.Option(help="Demo householder key file.")] = None,
    agent_password_file: Annotated[Path | None, typer.Option(help="Demo agent (demo-agent) password file.")] = None,
    demo_tariff: Annotated[str | None, typer.Option(help="The demo household's tariff: flat (default), economy7, "
                                                         "night-ev or flat-fixed.")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="uvicorn worker processes (the API is stateless; "
                                                              "use PostgreSQL with more than one).")] = 1,
) -> None:
    """Serve the API and the pages. Settings also come from OHMNI_CLOUD_* variables."""
    given = {"host": host, "port": port, "data_dir": data_dir, "demo_hub_token_file": hub_token_file,
             "demo_householder_key_file": householder_key_file, "demo_agent_password_file": agent_password_file,
             "demo_tariff": demo_tariff}
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    _preflight(_settings(**overrides))
    if workers > 1:
        # Workers are separate processes: they read the same settings from the environment.
        for key, value in overrides.items():
            os.environ[f"OHMNI_CLOUD_{key.upper()}"] = str(value)
        if bootstrap_demo:
            os.environ["OHMNI_CLOUD_BOOTSTRAP_DEMO"] = "true"
        settings = _settings()
        typer.echo(f"cloud on http://{settings.host}:{settings.port}/ ({workers} workers)", err=True)
        uvicorn.run("cloud.app:app_from_env", factory=True, host=settings.host, port=settings.port,
                    workers=workers, log_level="warning", access_log=False)
        return
    settings = _settings(**overrides)
    if bootstrap_demo:
        settings.bootstrap_demo = True
    from cloud.app import create_app

    server = _Server(uvicorn.Config(create_app(settings), host=settings.host, port=settings.port,
                                    log_level="warning", access_log=False))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        await server.serve()

    typer.echo(f"cloud on http://{settings.host}:{settings.port}/", err=True)
    asyncio.run(main())
    if not server.started:
        raise typer.Exit(1)


def _preflight(settings: CloudSettings) -> None:
    """Before the server starts, the store it serves from is there: a database not answering (yet: one started beside
    the cloud is waited for, ``db_wait_s``) or refusing, or a data folder the cloud cannot write, is said in a line
    naming it, exit 2. It was uvicorn's "Application startup failed" after a traceback of the lifespan."""
    if settings.database_url:
        error = asyncio.run(_reach_database(settings.database_url, settings.db_wait_s))
        if error:
            typer.echo(f"error: cannot reach the database {_without_password(settings.database_url)}: {error}",
                       err=True)
            raise typer.Exit(2)
        return
    import sqlite3

    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(settings.data_dir / "cloud.sqlite3").execute("PRAGMA schema_version").connection.close()
    except (OSError, sqlite3.Error) as exc:
        typer.echo(f"error: the cloud cannot keep its store in {settings.data_dir} ({exc}): set --data-dir (or "
                   "OHMNI_CLOUD_DATA_DIR) to a folder this user may write", err=True)
        raise typer.Exit(2) from None


async def _reach_database(url: str, wait_s: float) -> str | None:
    """None once PostgreSQL at ``url`` takes a connection; else why not. Not answering is waited out up to ``wait_s``;
    an answer that refuses (a wrong password, no such database) is final at once."""
    import asyncpg

    deadline, said = asyncio.get_running_loop().time() + wait_s, False
    while True:
        try:
            con = await asyncpg.connect(url, timeout=5)
        except (OSError, TimeoutError, asyncpg.CannotConnectNowError) as exc:
            error = str(exc) or exc.__class__.__name__
        except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            return str(exc) or exc.__class__.__name__
        else:
            await con.close()
            return None
        if asyncio.get_running_loop().time() >= deadline:
            return error
        if not said:
            typer.echo(f"waiting up to {wait_s:.0f} s for the database ({error})", err=True)
            said = True
        await asyncio.sleep(1.0)


def _without_password(url: str) -> str:
    """The database URL as it may be printed: its password, where it holds one, as ***."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _settings(**given: Any) -> CloudSettings:
    try:
        return load_settings(**given)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _store(data_dir: Path | None) -> Any:
    """The store the cloud serves from, as `cloud serve` opens it: PostgreSQL where OHMNI_CLOUD_DATABASE_URL says,
    else SQLite in the data folder (these commands wrote to SQLite always, which a PostgreSQL cloud never read)."""
    from cloud.app import open_storage

    given: dict[str, Any] = {"data_dir": data_dir} if data_dir else {}
    return open_storage(_settings(**given))


async def _with_store(data_dir: Path | None, fn: Callable[[Any], Awaitable[T]]) -> T:
    store = _store(data_dir)
    await store.init()
    try:
        return await fn(store)
    finally:
        await store.close()


@app.command("claim-code")
def claim_code(
    household: Annotated[str, typer.Option(help="The household the hub will belong to.")],
    ttl_hours: Annotated[float, typer.Option(min=0.0001, max=720, help="Hours until the code expires.")] = 72,
    data_dir: Annotated[Path | None, typer.Option(help="The cloud's data folder.")] = None,
) -> None:
    """Create a one-time claim code for a household (for `ohmni hub provision`)."""
    from cloud.provisioning import UnknownHousehold, create_claim_code
    from cloud.words import spoken_moment

    try:
        code, expires = asyncio.run(_with_store(data_dir, lambda s: create_claim_code(s, household, ttl_hours)))
    except UnknownHousehold as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(code)
    typer.echo(f"works once, until {spoken_moment(datetime.fromtimestamp(expires, UTC))}", err=True)


@app.command("revoke-hub")
def revoke_hub_cmd(
    hub_id: Annotated[str, typer.Argument(help="The hub to revoke.")],
    data_dir: Annotated[Path | None, typer.Option(help="The cloud's data folder.")] = None,
) -> None:
    """Revoke a hub's credential: its uploads are refused at once."""
    from cloud.provisioning import revoke_hub

    n = asyncio.run(_with_store(data_dir, lambda s: revoke_hub(s, hub_id)))
    if not n:
        typer.echo(f"hub {hub_id} has no live credential", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {n} credential(s) of hub {hub_id}", err=True)


@app.command("staff-add")
def staff_add(
    username: Annotated[str, typer.Argument(help="The staff member's user name.")],
    role: Annotated[str, typer.Option(help="agent (call centre) or admin (also reads the audit log).")] = "agent",
    password_file: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Read the password from "
                                                       "this file (default: asked for, twice).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="The cloud's data folder.")] = None,
) -> None:
    """Add a staff account (or set its password and role); the cloud keeps an argon2 hash."""
    from cloud.staff import add_staff

    if role not in ("agent", "admin"):
        raise typer.BadParameter("agent or admin", param_hint="--role")
    password = (password_file.read_text().strip() if password_file
                else typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    try:
        asyncio.run(_with_store(data_dir, lambda s: add_staff(s, username, Role(role), password)))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{role} {username} can sign in at /agent", err=True)


@app.command("installer-token")
def installer_token(
    name: Annotated[str, typer.Option(help="Who the token is for (shown in audits).")],
    data_dir: Annotated[Path | None, typer.Option(help="The cloud's data folder.")] = None,
) -> None:
    """Create an installer API token (printed once; the cloud keeps only its hash)."""
    from cloud.staff import check_name

    try:
        check_name(name, "an installer's name")
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--name") from None
    token = new_secret()
    asyncio.run(_with_store(data_dir, lambda s: s.add_credential(
        hash_secret(token), Principal(Role.INSTALLER, name, ALL_HOUSEHOLDS))))
    typer.echo(token)
