"""`ohmni demo`: a simulated home, its hub and the cloud, as separate processes, as in production.

Order of shutdown is what keeps every reading: the meter stops first (its CSVs
complete), the hub drains until the cloud has acknowledged everything the meter
wrote, then the hub and the cloud stop. At the end the cloud's readings are compared
with what the meter wrote.
"""

from __future__ import annotations

import csv
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import tomli_w
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from cloud.tariffs.model import DEMO_TARIFF, tariff_named

console = Console(stderr=True, soft_wrap=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Children get SIGTERM if the demo itself dies, so no process is left behind."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                console.print(f"[yellow]{self.name} did not stop in {timeout:.0f} s; killing it[/]")
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def tail(self, lines: int = 15) -> str:
        """The last ``lines`` of what this run of the child wrote (not an earlier run's, in a folder run again)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        mine = text.splitlines()
        marks = [i for i, line in enumerate(mine) if line.startswith(RUN_MARK)]
        return "\n".join(mine[marks[-1] + 1 if marks else 0:][-lines:])


#: Written to a child's log as it starts: a folder run again keeps its logs, and ``Child.tail`` shows this run's.
RUN_MARK = "--- ohmni demo: started "


def spawn(name: str, args: list[str], data_dir: Path) -> Child:
    log = data_dir / f"{name}.log"
    out = log.open("ab")
    out.write(f"{RUN_MARK}{_utc(int(time.time()))} UTC ---\n".encode())
    out.flush()
    proc = subprocess.Popen([sys.executable, "-m", "ohmni", *args], stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
    out.close()
    return Child(name, proc, log)


def start_cloud(folder: Path, port: int, host: str = "127.0.0.1", data_dir: Path | None = None,
                tariff: str = DEMO_TARIFF) -> Child:
    """`ohmni cloud serve` with the demo household on ``tariff``, its credentials read from ``folder``
    (hub.token, householder.key); returns once the cloud answers."""
    cloud = spawn("cloud", ["cloud", "serve", "--host", host, "--port", str(port), "--data-dir",
                            str(data_dir or folder / "cloud"), "--bootstrap-demo", "--hub-token-file",
                            str(folder / "hub.token"), "--householder-key-file", str(folder / "householder.key"),
                            "--demo-tariff", tariff,
                            *(["--agent-password-file", str(folder / "agent.password")]
                              if (folder / "agent.password").exists() else [])],
                  folder)
    wait_for("cloud", lambda: httpx.get(f"http://{host}:{port}/healthz", timeout=1).status_code == 200, cloud, 30)
    return cloud


def _write_secret(path: Path) -> str:
    secret = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


#: A hub adapts once a day on at least a day of plug history; the demo's, every 10 real minutes on 3 simulated
#: hours, so a sped-up demo shows it within minutes (the simulated plugs publish some 50 messages a real second at
#: most through the embedded broker: at --speed 100 they keep up with the meter).
DEMO_ADAPT_EVERY_S = 600
DEMO_ADAPT_MIN_S = 3 * 3600


def plug_appliances(household: Path | None) -> dict[str, str]:
    """The simulated home's plugs, named as the hub names them (what it decodes from each plug's own message), to
    the appliance each meters: the demo's hub takes them as this home's submetered truth and adapts its
    disaggregator to the home once it holds ``DEMO_ADAPT_MIN_S`` of them (``edge/nilm/own_home.py``)."""
    from edge.nilm.appliances import NAMES
    from firmware_sim.household import Household
    from firmware_sim.plugs import PAYLOADS
    from protocols.devices import decode, mappings

    out: dict[str, str] = {}
    for plug in Household.load(household, 0).plugs:
        if plug.appliance in NAMES:
            topic, payload = PAYLOADS[plug.kind](plug, 0, 100.0)
            out |= {r.device: plug.appliance for r in decode(topic, payload.encode(), mappings())}
    return out


def write_hub_config(path: Path, settings: dict[str, dict[str, Any]], plugs: dict[str, str]) -> Path:
    """The demo hub's whole hub.toml: what it runs on (``settings``: meter port, cloud, store, display, broker) and
    this home's plugs as its truth. All of it in the file, none on the command line, so that `ohmni hub status
    --config` checks the demo's hub as it checks an installed one."""
    nilm = {"adapt_every_s": DEMO_ADAPT_EVERY_S, "adapt_min_s": DEMO_ADAPT_MIN_S, "plugs": dict(sorted(plugs.items()))}
    path.write_text(tomli_w.dumps(settings | {"nilm": nilm}))
    return path


def wait_for(what: str, check: Callable[[], bool], child: Child, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited ({child.proc.returncode}) while starting:\n{child.tail()}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s:\n{child.tail()}")


def fetch_cloud_readings(cloud_url: str, key: str) -> list[dict]:
    rows: list[dict] = []
    since = 0
    with httpx.Client(base_url=cloud_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        while True:
            resp = client.get("/api/v1/household/readings", params={"from_ts": since, "limit": 50_000})
            resp.raise_for_status()
            page = resp.json()
            rows += page
            if len(page) < 50_000:
                return rows
            since = page[-1]["ts"] + 1


_COMPARED = ("import_t1_wh", "import_t2_wh", "export_t1_wh", "export_t2_wh", "power_import_w", "power_export_w")


@dataclass
class Comparison:
    written: int
    in_cloud: int
    missing: int
    duplicated: int
    mismatched: int
    unexpected: int

    @property
    def ok(self) -> bool:
        return self.written == self.in_cloud and not (self.missing or self.duplicated or self.mismatched
                                                       or self.unexpected)

    def line(self) -> str:
        return (f"meter wrote {self.written} telegrams; cloud holds {self.in_cloud} readings: "
                f"missing={self.missing} duplicated={self.duplicated} mismatched={self.mismatched} "
                f"unexpected={self.unexpected}")


def compare(meter_csv: Path, cloud_rows: list[dict]) -> Comparison:
    """Every telegram the meter wrote must be in the cloud once, with the same registers and power."""
    with meter_csv.open(newline="") as f:
        written = {int(r["timestamp"]): r for r in csv.DictReader(f)}
    seen: dict[int, int] = {}
    mismatched = unexpected = 0
    for row in cloud_rows:
        ts = int(row["ts"])
        seen[ts] = seen.get(ts, 0) + 1
        meter = written.get(ts)
        if meter is None:
            unexpected += 1
        elif any(int(meter[k]) != int(row[k]) for k in _COMPARED):
            mismatched += 1
    return Comparison(written=len(written), in_cloud=len(cloud_rows),
                      missing=sum(1 for ts in written if ts not in seen),
                      duplicated=sum(n - 1 for n in seen.values()), mismatched=mismatched,
                      unexpected=unexpected)


def demo(
    duration: Annotated[float | None, typer.Option(min=1, help="Real seconds to run (default: until Ctrl-C).")] = None,
    speed: Annotated[float, typer.Option(min=0.1, max=500, help="Simulated seconds per real second.")] = 1.0,
    cloud_port: Annotated[int, typer.Option(help="Cloud port: dashboard and API (0 = any free).")] = 8000,
    display_port: Annotated[int, typer.Option(help="Hub display port (0 = any free).")] = 8001,
    data_dir: Annotated[Path | None,
                        typer.Option(help="Keep the demo's data here (default: a new temp folder).")] = None,
    household: Annotated[Path | None,
                         typer.Option(exists=True, dir_okay=False, help="Household TOML for the sim.")] = None,
    start: Annotated[str | None, typer.Option(help="Simulated start time (Unix seconds or ISO 8601; default: now, "
                                                   "or so that a sped-up run with --duration ends now).")] = None,
    fault_every: Annotated[int, typer.Option(min=0, help="Inject a corrupt frame after every Nth telegram.")] = 0,
    meter_every: Annotated[int, typer.Option(min=1, max=60, help="Simulated seconds between the meter's telegrams: "
                                                                "1 as DSMR 5, 10 as DSMR 2.2-4.")] = 1,
    tariff: Annotated[str, typer.Option(help="The household's tariff: flat (24.50p/kWh), or economy7, night-ev "
                                             "or flat-fixed, whose cheap hours the coach shifts washes to.")
                      ] = DEMO_TARIFF,
) -> None:
    """Run a simulated home, its hub and the cloud on 127.0.0.1; dashboard on localhost."""
    host = "127.0.0.1"
    cloud_port = cloud_port or free_port()
    display_port = display_port or free_port()
    for port, what, flag in ((cloud_port, "cloud", "--cloud-port"), (display_port, "hub display", "--display-port")):
        if not port_free(host, port):
            console.print(f"[red]Port {port} on {host} is in use, so the {what} cannot start.[/] "
                          f"Stop what uses it, or choose another with {flag} (0 picks a free one).")
            raise typer.Exit(2)
    try:
        tariff_named(tariff)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tariff") from None
    data = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="ohmni-demo-"))
    data.mkdir(parents=True, exist_ok=True)
    if start is None and duration and speed > 1:  # the cloud refuses readings from more than a day ahead
        start = str(int(time.time() + duration - duration * speed))
    earlier = _earlier_run(data, start, duration, speed)
    plugs = _plugs_or_exit(household)
    key = _write_secret(data / "householder.key")
    _write_secret(data / "agent.password")
    _write_secret(data / "hub.token")
    cloud_url = f"http://{host}:{cloud_port}"
    tty = data / "meter.tty"
    broker_port = free_port()

    children: list[Child] = []
    interrupted = False

    def on_sigint(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    previous = signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, on_sigint)
    try:
        cloud = start_cloud(data, cloud_port, host, tariff=tariff)
        children.append(cloud)
        sim_args = ["sim", "run", "--speed", str(speed), "--out", str(data / "sim"), "--link", str(tty),
                    "--fault-every", str(fault_every), "--every", str(meter_every), "--mqtt", f"{host}:{broker_port}"]
        sim_args += ["--duration", str(duration)] if duration else []
        sim_args += ["--household", str(household)] if household else []
        sim_args += ["--start", start] if start else []
        sim_args += ["--resume"] if earlier else []
        sim = spawn("sim", sim_args, data)
        children.append(sim)
        wait_for("simulated meter", tty.exists, sim, 15)
        here = data.resolve()  # `hub status --config` may be run from anywhere
        hub_config = write_hub_config(here / "hub.toml", {
            "hub": {"id": "hub-demo", "data_dir": str(here / "hub")}, "meter": {"port": str(here / tty.name)},
            "cloud": {"url": cloud_url, "token_file": str(here / "hub.token"), "interval_s": 1},
            "display": {"port": display_port},
            "mqtt": {"enabled": True, "embedded": True, "host": host, "port": broker_port, "protocol": 4}}, plugs)
        hub = spawn("hub", ["hub", "run", "--config", str(hub_config)], data)
        children.append(hub)
        hub_url = f"http://{host}:{display_port}"
        wait_for("hub", lambda: httpx.get(f"{hub_url}/api/status", timeout=1).status_code == 200, hub, 30)

        console.print(f"[bold]Ohmni demo[/] — data in {data}")
        if earlier:
            console.print(f"  Going on from the home simulated there before: its meter last wrote at {earlier} UTC")
        console.print(f"  Householder dashboard: {cloud_url}/login?key={key}")
        console.print(f"  Agent console:         {cloud_url}/agent (user demo-agent, password in "
                      f"{data / 'agent.password'})")
        console.print(f"  In-home display:       {hub_url}/display")
        console.print(f"  Hub status:            {hub_url}/api/status")
        console.print(f"  Hub checks:            ohmni hub status --config {hub_config}")
        console.print(f"  Tariff:                {tariff_named(tariff).name} (--tariff {tariff})", markup=False)
        console.print("  Press Ctrl-C to stop." if duration is None else f"  Running {duration:g} s at {speed:g}x.")

        total = int(round(duration * speed)) if duration else None
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeRemainingColumn(), console=console, transient=True) as progress:
            task = progress.add_task("readings at the hub", total=total)
            while not interrupted and sim.proc.poll() is None:
                for child in (cloud, hub):
                    if child.proc.poll() is not None:
                        raise RuntimeError(f"{child.name} stopped unexpectedly:\n{child.tail()}")
                try:
                    status = httpx.get(f"{hub_url}/api/status", timeout=2).json()
                    face = (status.get("display") or {}).get("face", "-")
                    progress.update(task, completed=status["store"]["readings"],
                                    description=f"readings at the hub (face: {face})")
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                time.sleep(0.5)

        sim.stop()
        summary = sim_summary(sim)
        if sim.proc.returncode not in (0, None):
            raise RuntimeError(f"the simulated meter failed:\n{sim.tail()}")
        console.print("Stopping: waiting for the hub to upload everything the meter wrote…")
        wait_drained(hub_url, summary.get("last_ts"), hub)
        comparison = compare(data / "sim" / "meter.csv", fetch_cloud_readings(cloud_url, key))
        final = httpx.get(f"{hub_url}/api/status", timeout=5).json()
        counters = {k: v for k, v in final["meter"]["counters"].items() if k.startswith("rejected_")}
        mqtt: dict[str, Any] = final["mqtt"] or {}
        hub.stop()
        cloud.stop()
        colour = "green" if comparison.ok else "red"
        console.print(f"[{colour}]{comparison.line()}[/]" + (f" ({summary.get('telegrams', 0)} written this run, "
                                                              "the rest by the runs before it)" if earlier else ""))
        if mqtt:
            console.print(f"Smart plugs: {mqtt['counters'].get('device_readings', 0)} readings from "
                          f"{len(mqtt['devices']) - 1 if 'meter' in mqtt['devices'] else len(mqtt['devices'])} "
                          f"devices over the hub's embedded MQTT broker")
        nilm = final.get("nilm")
        if nilm and nilm["plugs"]:
            appliances = ", ".join(sorted(set(nilm["plugs"].values())))
            console.print(f"Disaggregation adapted to this home's plugs ({appliances})" if nilm["adapted_at"] else
                          f"Disaggregation: not adapted to this home's plugs ({appliances}) yet: that needs "
                          f"{DEMO_ADAPT_MIN_S // 3600} simulated hours of them (e.g. --speed 100 --duration 300)")
        if summary.get("faults"):
            console.print(f"Injected faults: {summary['faults']}; hub rejected: {counters}")
        console.print(f"Ground truth: {data / 'sim' / 'truth.csv'}  meter log: {data / 'sim' / 'meter.csv'}")
        if not comparison.ok:
            raise typer.Exit(1)
    except typer.Exit:
        raise
    except RuntimeError as exc:
        console.print(f"[red]Demo failed:[/] {exc}")
        raise typer.Exit(1) from None
    finally:
        for child in reversed(children):
            child.stop()
        signal.signal(signal.SIGINT, previous)


def _plugs_or_exit(household: Path | None) -> dict[str, str]:
    """``plug_appliances``, read before anything starts: a household file the sim cannot run exits 2, saying why."""
    from firmware_sim.household import HouseholdError

    try:
        return plug_appliances(household)
    except HouseholdError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


def _earlier_run(data: Path, start: str | None, duration: float | None, speed: float) -> str | None:
    """When ``data`` holds a home simulated by an earlier demo, the time (UTC) its meter last wrote: this run goes
    on from it (the meter's registers, the next second), as the cloud and hub stores there expect; their readings
    would otherwise clash with the earlier run's. Exits 2 if going on would put the meter more than a day ahead of
    now (the cloud refuses such readings)."""
    from firmware_sim.cli import parse_start
    from firmware_sim.run import SimResumeError, resume_point

    try:
        point = resume_point(data / "sim" / "meter.csv", parse_start(start))
    except SimResumeError as exc:
        console.print(f"[red]{exc}.[/] Choose another --data-dir.")
        raise typer.Exit(2) from None
    if point is None:
        return None
    if duration and point.start_ts + duration * speed > time.time() + 86400:
        console.print(f"[red]{data} holds a home simulated up to {_utc(point.last_ts)} UTC[/]: going on from "
                      f"there for {duration * speed / 3600:.1f} simulated hours would put its meter more than a day "
                      "ahead of now, and the cloud refuses such readings. Choose a new --data-dir, or a shorter run.")
        raise typer.Exit(2)
    return _utc(point.last_ts)


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def sim_summary(sim: Child) -> dict:
    for line in reversed(sim.log.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    return {}


def wait_drained(hub_url: str, last_ts: int | None, hub: Child, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if hub.proc.poll() is not None:
            raise RuntimeError(f"the hub stopped before draining:\n{hub.tail()}")
        try:
            store = httpx.get(f"{hub_url}/api/status", timeout=2).json()["store"]
            caught_up = last_ts is None or (store["last_reading_ts"] or 0) >= last_ts
            if caught_up and store["backlog_readings"] == 0:
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the hub had not uploaded everything after {timeout:.0f} s:\n{hub.tail()}")
