"""`ohmni hub …`: run the hub agent (installers' commands join this group)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from edge.agent import HubAgent
from edge.config import HubConfig

app = typer.Typer(help="The hub: run the agent; installer tools.", no_args_is_help=True)


@app.command("run")
def run_cmd(
    config: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Hub TOML file.")] = None,
    port: Annotated[str | None, typer.Option(help="Meter serial port (overrides [meter].port).")] = None,
    cloud: Annotated[str | None, typer.Option(help="Cloud base URL (overrides [cloud].url).")] = None,
    token_file: Annotated[Path | None, typer.Option(help="File holding the hub credential.")] = None,
    hub_id: Annotated[str | None, typer.Option(help="Hub id (overrides [hub].id).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where the hub keeps its SQLite store.")] = None,
    display_port: Annotated[int | None, typer.Option(help="Port of the display page (0 = any free).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Read the meter, keep every reading locally, show the face, uplink to the cloud."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s hub %(levelname)s %(message)s")
    try:
        cfg = HubConfig.load(config)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from exc
    overrides = {
        ("meter", "port"): port, ("cloud", "url"): cloud, ("cloud", "token_file"): token_file,
        ("hub", "id"): hub_id, ("hub", "data_dir"): data_dir, ("display", "port"): display_port,
    }
    for (section, key), value in overrides.items():
        if value is not None:
            setattr(getattr(cfg, section), key, value)
    agent = HubAgent(cfg)
    typer.echo(f"hub {cfg.hub.id}: meter {cfg.meter.port}, cloud {cfg.cloud.url}, "
               f"display http://{cfg.display.host}:{cfg.display.port}/display", err=True)
    asyncio.run(agent.run())
