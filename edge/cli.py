"""`ohmni hub …`: run the hub agent (installers' commands join this group)."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from edge.agent import HubAgent
from edge.config import CredentialError, HubConfig, MqttConfig, said
from edge.nilm import ModelFileError
from protocols.uplink import HUB_ID_PATTERN, HUB_ID_RULE

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
    uplink_interval: Annotated[float | None, typer.Option(min=0.1, help="Seconds between uploads.")] = None,
    embedded_broker: Annotated[int | None, typer.Option(help="Run the embedded MQTT broker on this port "
                                                             "and read plugs from it.")] = None,
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
        ("cloud", "interval_s"): uplink_interval,
    }
    for (section, key), value in overrides.items():
        if value is not None:
            try:
                setattr(getattr(cfg, section), key, value)
            except ValidationError as exc:
                raise typer.BadParameter(f"{section}.{said(exc)}") from None
    if embedded_broker is not None:
        cfg.mqtt.enabled, cfg.mqtt.embedded, cfg.mqtt.host, cfg.mqtt.port = True, True, "127.0.0.1", embedded_broker
        cfg.mqtt.protocol = 4  # amqtt speaks MQTT 3.1.1
    if cfg.mqtt.embedded:
        cfg.mqtt.protocol = 4
    try:
        agent = HubAgent(cfg)
    except ModelFileError as exc:  # the model file named in [nilm] model cannot be used
        raise typer.BadParameter(f"[nilm] model: {exc}", param_hint="--config") from exc
    except (OSError, sqlite3.Error) as exc:  # the data folder: not writable by this user, not a folder, full
        typer.echo(f"error: the hub cannot keep its store in {cfg.hub.data_dir} ({exc}): set data_dir under [hub] "
                   "to a folder this user may write, or run it from `ohmni hub systemd-unit`'s unit, which "
                   "gives it /var/lib/ohmni", err=True)
        raise typer.Exit(2) from None
    agent.bind_display()  # its real port where [display] port is 0; where it is taken the hub runs without it
    typer.echo(f"hub {cfg.hub.id}: meter {cfg.meter.port}, cloud {cfg.cloud.url}, "
               + (f"display {agent.display_url}" if agent.display_url else "no display page (see above)"), err=True)
    asyncio.run(agent.run())


def _mqtt_config(config: Path | None, mqtt: str | None, username: str | None, password_file: Path | None) -> MqttConfig:
    cfg = HubConfig.load(config).mqtt
    if mqtt:
        host, _, port = mqtt.rpartition(":")
        if not host or not port.isdigit():
            raise typer.BadParameter(f"{mqtt!r} is not HOST:PORT", param_hint="--mqtt")
        cfg.host, cfg.port = host, int(port)
    if username:
        cfg.username = username
    if password_file:
        cfg.password_file = password_file
    return cfg


@app.command("pair")
def pair_cmd(
    config: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Hub TOML ([mqtt]).")] = None,
    mqtt: Annotated[str | None, typer.Option(help="Broker HOST:PORT (overrides [mqtt]).")] = None,
    username: Annotated[str | None, typer.Option(help="Broker user name.")] = None,
    password_file: Annotated[Path | None, typer.Option(help="File holding the broker password.")] = None,
    seconds: Annotated[int, typer.Option("--time", min=1, max=254, help="How long joining stays open.")] = 120,
    count: Annotated[int | None, typer.Option(min=1, help="Stop once this many devices are ready.")] = None,
    names: Annotated[str | None, typer.Option(help="Comma-separated names for the devices, in join order.")] = None,
) -> None:
    """Open zigbee2mqtt's permit-join, list the devices that join, and name them."""
    import aiomqtt
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from edge.mqtt_link import MqttLink
    from edge.pairing import PairingError, pair

    console = Console(stderr=True)
    cfg = _mqtt_config(config, mqtt, username, password_file)
    link = MqttLink(cfg, "pair", lambda r: None)

    async def run() -> None:
        async with link.client("ohmni-pair") as client:  # a session of its own, not the hub's
            result = await pair(client, cfg.zigbee2mqtt_base, seconds, count,
                                [n.strip() for n in names.split(",")] if names else None,
                                progress=lambda s: console.print(s))
        table = Table(title=f"Devices that joined ({len(result.devices)})")
        for column in ("IEEE address", "Name", "Vendor", "Model", "Ready"):
            table.add_column(column)
        for d in result.devices:
            table.add_row(d.ieee_address, d.renamed_to or d.friendly_name, d.vendor or "", d.model or "",
                          "yes" if d.interviewed else "interviewing")
        Console().print(table)

    try:
        asyncio.run(run())
    except CredentialError as exc:
        console.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    except (aiomqtt.MqttError, OSError) as exc:
        console.print(f"[red]cannot reach the broker {cfg.host}:{cfg.port}:[/] {exc}")
        raise typer.Exit(2) from None
    except (PairingError, TimeoutError) as exc:
        console.print(f"[red]pairing failed:[/] {exc or 'zigbee2mqtt did not answer (is it running?)'}")
        raise typer.Exit(1) from None


@app.command("probe")
def probe_cmd(
    port: Annotated[str, typer.Option(help="The meter's serial port, e.g. /dev/ttyUSB0.")],
    listen: Annotated[float, typer.Option(min=1, help="Seconds to listen at each speed.")] = 11.0,
) -> None:
    """Find the meter's line settings (115200 8N1 or 9600 7E1), DSMR version and variant."""
    import serial
    from rich.console import Console
    from rich.markup import escape

    from edge.nilm.house_csv import interval_note
    from edge.probe import probe, stable_name

    console = Console(stderr=True)
    try:
        with console.status("probing …") as status:
            found = probe(port, listen, progress=lambda s: status.update(s))
    except serial.SerialException as exc:
        console.print(f"[red]cannot open {port}:[/] {exc}")
        raise typer.Exit(2) from None
    if found is None:
        console.print(f"[red]no P1 telegram on {port}[/] at 115200 or 9600 baud: check the cable and that the "
                      "meter's P1 port is enabled")
        raise typer.Exit(1)
    interval = f", a telegram every {found.interval_s:.0f} s" if found.interval_s else ""
    typer.echo(f"{port}: {found.baudrate} baud {found.framing}, {found.variant} ({found.kind}), "
               f"meter {found.meter_id or '?'}, CRC {found.crc}{interval}")
    lasting = stable_name(port)
    if lasting:
        console.print(f"[yellow]note:[/] {port} is named in the order the kernel finds devices, and may name another "
                      f"(a Zigbee stick) after a reboot: the lines below use its lasting name {lasting}",
                      highlight=False, soft_wrap=True)  # a path cut across lines cannot be copied
    typer.echo(f"[meter]\nport = \"{lasting or port}\"\nbaudrate = {found.baudrate}\nbytesize = "
               f"{7 if found.framing == '7E1' else 8}\nparity = \"{'E' if found.framing == '7E1' else 'N'}\"")
    if found.interval_s is not None and (note := interval_note(found.interval_s)) is not None:
        console.print(f"[yellow]note:[/] a telegram every {found.interval_s:.0f} s, for the appliances the hub "
                      f"names: {escape(note)}. The meter sets its interval.", highlight=False)
    elif found.interval_s is None:
        console.print("[yellow]note:[/] only one telegram came, so the meter's interval is not known; "
                      "`ohmni hub status` names it once the hub has an hour of readings", highlight=False)


@app.command("provision")
def provision_cmd(
    cloud: Annotated[str, typer.Option(help="The cloud's base URL, e.g. https://cloud.example.")],
    code: Annotated[str, typer.Option(help="The one-time claim code from the installer or the utility.")],
    hub_id: Annotated[str | None, typer.Option(help="This hub's id (default: from the machine id).")] = None,
    config_dir: Annotated[Path | None, typer.Option(help="Where hub.toml and hub.token go "
                                                         "(default /etc/ohmni as root, else ~/.config/ohmni).")] = None,
    data_dir: Annotated[Path, typer.Option(help="Where the hub keeps its store.")] = Path("/var/lib/ohmni"),
    ca_file: Annotated[Path | None, typer.Option(help="CA bundle for a cloud with a private certificate.")] = None,
) -> None:
    """Join this hub to the cloud with a claim code, showing each step."""
    from rich.console import Console

    from edge.provision import ProvisionError, default_config_dir, default_hub_id, provision

    console = Console(stderr=True, soft_wrap=True)
    if hub_id is not None and not re.fullmatch(HUB_ID_PATTERN, hub_id):  # the cloud registers no other
        raise typer.BadParameter(f"{hub_id!r}: {HUB_ID_RULE}", param_hint="--hub-id")
    try:
        path = provision(cloud, code, hub_id or default_hub_id(), config_dir or default_config_dir(), data_dir,
                         step=lambda s: console.print(f"• {s}"), verify=str(ca_file) if ca_file else True)
    except ProvisionError as exc:
        console.print(f"[red]✗ {exc}[/]")
        raise typer.Exit(1) from None
    console.print(f"[green]✓ provisioned.[/] Start the hub: ohmni hub run --config {path}", highlight=False)
    console.print(f"  or as a service: ohmni hub systemd-unit --config {path} > /etc/systemd/system/ohmni-hub.service"
                  " && systemctl daemon-reload && systemctl enable --now ohmni-hub", highlight=False, markup=False)


def _installed_config(config: Path | None) -> HubConfig:
    """The hub's config: ``--config``, else hub.toml in the config folder, else the defaults."""
    from edge.provision import default_config_dir

    path = config or default_config_dir() / "hub.toml"
    try:
        return HubConfig.load(path if path.exists() else None)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from exc


@app.command("status")
def status_cmd(
    config: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Hub TOML "
                                                "(default: hub.toml in the config folder).")] = None,
) -> None:
    """Meter, broker, last reading and the meter's clock, backlog, last upload, the meter's interval, cloud, the hub's
    clock and disk, each with a verdict."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from edge.provision import checks

    cfg = _installed_config(config)
    results = checks(cfg)
    table = Table(title=f"Hub {cfg.hub.id}")
    for column in ("check", "verdict", "detail", "what to do"):
        table.add_column(column)
    colours = {"ok": "green", "warn": "yellow", "fail": "red"}
    for c in results:
        # a detail or advice is text, not Rich markup: "set [meter].port" must not lose its "[meter]"
        table.add_row(c.name, f"[{colours[c.verdict]}]{c.verdict}[/]", escape(c.detail), escape(c.advice))
    Console(width=160).print(table)
    if any(c.verdict == "fail" for c in results):
        raise typer.Exit(1)


app.command("doctor", help="The same checks as `status`.")(status_cmd)


@app.command("nilm-export")
def nilm_export_cmd(
    out: Annotated[Path, typer.Option(dir_okay=False, help="The house CSV to write.")],
    config: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Hub TOML "
                                                "(default: hub.toml in the config folder).")] = None,
    days: Annotated[float, typer.Option(min=0.01, help="How much recent history to export (the hub keeps "
                                        "[hub] keep_days of it, 8 by default).")] = 7.0,
) -> None:
    """This home's meter power and the plugs mapped to its appliances (nilm.plugs in the hub's config) as a house
    CSV: its own submetered truth, for `ohmni nilm adapt` or `ohmni nilm train`."""
    from edge.nilm.own_home import export_own_home
    from edge.store import HubStore

    cfg = _installed_config(config)
    if not (cfg.hub.data_dir / "hub.sqlite3").exists():
        typer.echo(f"error: no hub store in {cfg.hub.data_dir} (the hub's data_dir): nothing to export", err=True)
        raise typer.Exit(1)
    store = HubStore(cfg.hub.data_dir / "hub.sqlite3")
    try:
        seen = [d for (d,) in store.db.execute("SELECT DISTINCT device FROM device_readings WHERE power_w IS NOT "
                                               "NULL ORDER BY device")]
        house = export_own_home(store, cfg.nilm.plugs, out, days * 86400) if cfg.nilm.plugs else None
    finally:
        store.close()
    if not cfg.nilm.plugs:
        typer.echo("error: no plug is mapped to an appliance: add [nilm.plugs] to the hub's config, e.g.\n"
                   '  [nilm.plugs]\n  "shelly:shellyplug-s-washer:0" = "washing_machine"\n'
                   f"plugs this hub has seen: {', '.join(seen) or 'none yet'}", err=True)
        raise typer.Exit(2)
    if house is None:
        typer.echo("error: no meter reading with every mapped plug reporting in that time; nothing written "
                   f"(plugs this hub has seen: {', '.join(seen) or 'none yet'})", err=True)
        raise typer.Exit(1)
    typer.echo(f"wrote {out}: {len(house.timestamp)} rows, mains + {', '.join(house.appliances)}", err=True)


@app.command("systemd-unit")
def systemd_unit(
    config: Annotated[Path | None, typer.Option(dir_okay=False, help="The hub's config, as `hub provision` wrote "
                                                                     "it (default: hub.toml in the config folder, "
                                                                     "/etc/ohmni as root).")] = None,
) -> None:
    """Print the systemd unit that runs the hub: this Python, this config, its credential passed by systemd.

    The unit's template ships with the package; the interpreter is the one running this command, so a hub
    installed in a virtual environment is started from it. What would stop the unit working is said on stderr."""
    import sys

    from edge.provision import default_config_dir, systemd_unit_text

    path = (config or default_config_dir() / "hub.toml").absolute()
    text, notes = systemd_unit_text(Path(sys.executable), path, _installed_config(path))
    typer.echo(text, nl=False)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
