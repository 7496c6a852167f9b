"""`ohmni cloud …`: run the cloud service."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from cloud.app import create_app
from cloud.settings import CloudSettings

app = typer.Typer(help="The cloud service.", no_args_is_help=True)


class _Server(uvicorn.Server):
    """uvicorn without its re-raise of SIGTERM, so a requested stop exits 0."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where the SQLite store lives.")] = None,
    bootstrap_demo: Annotated[bool, typer.Option("--bootstrap-demo", help="Create the demo household.")] = False,
    hub_token_file: Annotated[Path | None, typer.Option(help="Demo hub credential file.")] = None,
    householder_key_file: Annotated[Path | None, typer.Option(help="Demo householder key file.")] = None,
) -> None:
    """Serve the API and the pages. Settings also come from OHMNI_CLOUD_* variables."""
    overrides = {"host": host, "port": port, "data_dir": data_dir, "demo_hub_token_file": hub_token_file,
                 "demo_householder_key_file": householder_key_file}
    settings = CloudSettings(**{k: v for k, v in overrides.items() if v is not None})
    if bootstrap_demo:
        settings.bootstrap_demo = True
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
