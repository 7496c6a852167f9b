"""`ohmni sim …`: run the simulated home on a pseudo-terminal."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from firmware_sim.household import HouseholdError
from firmware_sim.run import (
    LINES,
    MqttTarget,
    SimConfig,
    SimResumeError,
    default_every_s,
    install_stop_signals,
    run,
)
from protocols.p1 import DSMR_VERSIONS

app = typer.Typer(help="Simulated household and devices (no hardware needed).", no_args_is_help=True)


def parse_start(value: str | None) -> int:
    if value is None:
        return int(time.time())
    try:
        return int(value)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is neither Unix seconds nor ISO 8601") from exc
    if stamp.tzinfo is None:
        raise typer.BadParameter(f"{value!r} has no UTC offset; write e.g. 2026-01-08T00:00:00+00:00")
    return int(stamp.timestamp())


def _target(address: str | None, username: str | None, password_file: Path | None) -> MqttTarget | None:
    if address is None:
        return None
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter(f"{address!r} is not HOST:PORT", param_hint="--mqtt")
    password = password_file.read_text().strip() if password_file else None
    return MqttTarget(host, int(port), username, password)


@app.command("run")
def run_cmd(
    speed: Annotated[float, typer.Option(min=0.1, max=1000, help="Simulated seconds per real second.")] = 1.0,
    duration: Annotated[float | None,
                        typer.Option(min=0.1, help="Real seconds to run (default: until Ctrl-C).")] = None,
    start: Annotated[str | None, typer.Option(help="Simulated start, Unix seconds or ISO 8601 (default: now).")] = None,
    household: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                   help="Household TOML (default: the embedded demo home).")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the household file's seed.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for truth.csv (per appliance) and meter.csv.")] = Path("."),
    link: Annotated[Path | None, typer.Option(help="Also expose the port as this symlink (like /dev/ttyUSB0).")] = None,
    fault_every: Annotated[int, typer.Option(min=0, help="Inject a corrupt frame after every Nth telegram.")] = 0,
    mqtt: Annotated[str | None, typer.Option(help="Broker HOST:PORT the smart plugs publish to.")] = None,
    line: Annotated[str | None, typer.Option(help="Line framing: 8N1 (DSMR 4/5) or 7E1 (a DSMR 2.2 meter: no CRC, "
                                                  "no timestamp, every 10 s unless --every says) [default: 8N1, or "
                                                  "--dsmr's]")] = None,
    dsmr: Annotated[str | None, typer.Option(help="The meter's DSMR version: 5.0, 4.2, 3.0 or 2.2 (3.0 and 2.2 on a "
                                                  "7E1 line), or Q3D for an EasyMeter Q3D (not DSMR: one register, "
                                                  "watts, every 2 s on 7E1) [default: by --line and --every]")] = None,
    every: Annotated[int | None, typer.Option(min=1, max=60, help="Simulated seconds between telegrams: 1 as a DSMR 5 "
                                                                 "meter sends, 10 as DSMR 2.2-4 meters do (from 10 the "
                                                                 "telegrams are DSMR 4.2's, without the voltage) "
                                                                 "[default: 1, 10 with --line 7E1]")] = None,
    mqtt_username: Annotated[str | None, typer.Option(help="Broker user name for the plugs.")] = None,
    mqtt_password_file: Annotated[Path | None, typer.Option(help="File holding the plugs' broker password.")] = None,
    resume: Annotated[bool, typer.Option(help="Go on from the meter.csv already in --out (its registers, the second "
                                              "after its last telegram) and append to both CSVs.")] = False,
) -> None:
    """A DSMR 5 meter writing a telegram every simulated second (or every --every seconds) to a pseudo-terminal.

    At --every 10 and slower it is a DSMR 4.2 meter, as real ones that send every 10 s are: version 42, no voltage.
    With --line 7E1 it is a DSMR 2.2 meter, every 10 s: no CRC, no timestamp (the hub stamps each on arrival);
    --dsmr 3.0 makes it a DSMR 3.0 meter (the same, with kW to three digits and its threshold in amps), --dsmr Q3D an
    EasyMeter Q3D (German, not DSMR: one import register, watts per phase, no CRC or clock, every 2 s on 7E1)."""
    names = {v.name.upper(): key for key, v in DSMR_VERSIONS.items()}
    if dsmr is not None and dsmr.upper() not in names:
        raise typer.BadParameter(f"use {', '.join(v.name for v in DSMR_VERSIONS.values())}", param_hint="--dsmr")
    version = names[dsmr.upper()] if dsmr is not None else None
    line = (line or (DSMR_VERSIONS[version].line if version else "8N1")).upper()
    if line not in LINES:
        raise typer.BadParameter(f"use {' or '.join(LINES)}", param_hint="--line")
    if version and DSMR_VERSIONS[version].line != line:
        raise typer.BadParameter(f"{DSMR_VERSIONS[version].label} meters send on a {DSMR_VERSIONS[version].line} "
                                 "line", param_hint="--line")
    if every is None:
        every = default_every_s(line, version)
    seconds = int(round(duration * speed)) if duration is not None else 10**12
    cfg = SimConfig(start_ts=parse_start(start), seconds=seconds, speed=speed, household=household,
                    seed=seed, truth_csv=out / "truth.csv", meter_csv=out / "meter.csv", link=link,
                    fault_every=fault_every, line=line, mqtt=_target(mqtt, mqtt_username, mqtt_password_file),
                    resume=resume, every_s=every, dsmr=version)
    stop = install_stop_signals()

    def ready(path: str) -> None:
        where = f"{path} (also {link})" if link else path
        every_text = "" if every == 1 else f" every {every} s"
        print(f"meter: {DSMR_VERSIONS[cfg.dsmr_version].label} telegrams{every_text} on {where}; "
              "waiting for a reader", file=sys.stderr, flush=True)

    try:
        result = run(cfg, on_ready=ready, stop=stop)
    except (SimResumeError, HouseholdError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    print(result.as_json(), flush=True)


@app.command("display")
def display_cmd(
    mqtt: Annotated[str, typer.Option(help="Broker HOST:PORT the hub publishes to.")],
    hub: Annotated[str, typer.Option(help="The hub's id, as in its config.")],
    prefix: Annotated[str, typer.Option(help="The hub's MQTT state prefix.")] = "ohmni",
    mqtt_username: Annotated[str | None, typer.Option(help="Broker user name for the display.")] = None,
    mqtt_password_file: Annotated[Path | None, typer.Option(help="File holding the display's broker password.")] = None,
    duration: Annotated[float | None,
                        typer.Option(min=0.1, help="Real seconds to run (default: until Ctrl-C).")] = None,
) -> None:
    """An in-home display: shows the hub's face, power and reason, one line per change."""
    import asyncio
    import contextlib

    from firmware_sim.display import DisplayDevice

    target = _target(mqtt, mqtt_username, mqtt_password_file)
    assert target is not None
    device = DisplayDevice(target.host, target.port, hub, prefix, target.username, target.password,
                           on_render=lambda line: print(line, flush=True))
    print(f"display: waiting for {device.topic} on {mqtt}", file=sys.stderr, flush=True)

    async def main() -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration):
                await device.run()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
