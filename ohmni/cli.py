"""`ohmni`: one command line; each part owns its group, registered here and nowhere else."""

from __future__ import annotations

import typer

from cloud.billing.cli import bill, tariff_app
from cloud.cli import app as cloud_app
from edge.cli import app as hub_app
from edge.nilm_cli import app as nilm_app
from edge.p1_cli import app as p1_app
from firmware_sim.cli import app as sim_app
from ohmni.demo import demo

app = typer.Typer(help="Ohmni: smart-meter gateway and home energy coach.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.command("demo")(demo)
app.add_typer(hub_app, name="hub")
app.add_typer(cloud_app, name="cloud")
app.add_typer(sim_app, name="sim")
app.add_typer(tariff_app, name="tariff")
app.add_typer(p1_app, name="p1")
app.add_typer(nilm_app, name="nilm")
app.command("bill")(bill)


def main() -> None:
    app()
