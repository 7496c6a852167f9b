"""Joining a hub to the cloud (`ohmni hub provision`) and checking it (`ohmni hub status`).

Provisioning shows each step: reach the cloud, register with the claim code, keep the
credential (mode 0600; the cloud keeps only its hash), write the hub's TOML, and check
the whole path by calling the cloud with the new credential.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import stat
import time
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import tomli_w
from pydantic import ValidationError

from edge.config import CREDENTIAL_NAME, SECRET_FILES, CredentialError, HubConfig, said
from edge.face import STALE_S
from edge.probe import stable_name


class ProvisionError(RuntimeError):
    pass


def default_config_dir() -> Path:
    env = os.environ.get("OHMNI_CONFIG_DIR")
    if env:
        return Path(env)
    return Path("/etc/ohmni") if os.geteuid() == 0 else Path.home() / ".config" / "ohmni"


def default_hub_id() -> str:
    try:
        machine = Path("/etc/machine-id").read_text().strip()[:12]
    except OSError:
        machine = ""
    return f"hub-{machine or uuid.uuid4().hex[:12]}"


def _problem(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200]
    return str(body.get("detail") or body) if isinstance(body, dict) else str(body)[:200]


def _object(resp: httpx.Response, *keys: str) -> dict[str, Any] | None:
    """The response's JSON object if it has ``keys`` as strings or numbers: the Ohmni cloud's answer, not a proxy's
    or a captive portal's page that came back with the same status."""
    try:
        body = resp.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str | int | float) for k in keys):
        return None
    return body


def _merged_config(config_path: Path, hub_id: str, data_dir: Path, url: str, token_file: Path) -> dict[str, Any]:
    """The hub's TOML as it will be written: what is there, with this hub's id, folder and cloud. Checked before the
    claim code is used, so a config the hub cannot read costs a fix, not a new code."""
    try:
        existing: dict[str, Any] = tomllib.loads(config_path.read_text()) if config_path.exists() else {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ProvisionError(f"{config_path}: cannot read it ({exc}); fix it or move it away, then provision "
                             "again") from None
    for section in ("hub", "cloud", "meter"):
        if not isinstance(existing.setdefault(section, {}), dict):
            raise ProvisionError(f"{config_path}: {section} is not a [{section}] section; fix it or move it away")
    existing["hub"].update({"id": hub_id, "data_dir": str(data_dir)})
    existing["cloud"].update({"url": url, "token_file": str(token_file)})
    existing["cloud"].pop("token", None)
    existing["meter"].setdefault("port", "/dev/ttyUSB0")
    try:
        HubConfig.model_validate(existing)  # never write a config the hub cannot read
    except ValidationError as exc:
        raise ProvisionError(f"{config_path}: {said(exc)}; fix it or move it away, then provision again") from None
    return existing


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)  # also when the file already existed with a wider mode


def provision(cloud: str, code: str, hub_id: str, config_dir: Path, data_dir: Path,
              step: Callable[[str], None] = lambda s: None, verify: bool | str = True) -> Path:
    url = cloud.rstrip("/")
    config_path, token_file = config_dir / "hub.toml", config_dir / CREDENTIAL_NAME
    config = _merged_config(config_path, hub_id, data_dir, url, token_file)
    with httpx.Client(base_url=url, timeout=15, verify=verify) as client:
        step(f"Reaching the cloud at {url}")
        try:
            client.get("/healthz").raise_for_status()
        except httpx.HTTPError as exc:
            raise ProvisionError(f"cannot reach the cloud at {url}: {exc}") from None
        step(f"Registering hub {hub_id} with the claim code")
        resp = client.post("/api/v1/hubs/register", json={"code": code, "hub_id": hub_id})
        if resp.status_code != 201:
            raise ProvisionError(f"the cloud refused the claim code: {_problem(resp)}")
        registered = _object(resp, "token", "household_id")
        if registered is None:
            raise ProvisionError(f"{url} answered 201 but not as the Ohmni cloud does: {resp.text[:200]!r}")
        config_dir.mkdir(parents=True, exist_ok=True)
        step(f"Keeping the hub's credential in {token_file} (mode 0600)")
        _write_private(token_file, str(registered["token"]) + "\n")
        step(f"Writing the hub configuration {config_path}")
        config_path.write_text(tomli_w.dumps(config))
        step("Checking the whole path with the new credential")
        ping = client.post("/api/v1/hub/ping", headers={"Authorization": f"Bearer {registered['token']}"})
        answer = _object(ping, "hub_id")
        if ping.status_code != 200 or answer is None or answer["hub_id"] != hub_id:
            raise ProvisionError(f"the cloud did not accept the new credential: {_problem(ping)}")
        step(f"Hub {hub_id} joined household {registered['household_id']}")
    return config_path


#: Where the unit lets the hub write (``StateDirectory=ohmni``); a store elsewhere is read-only to the service.
UNIT_STATE_DIR = Path("/var/lib/ohmni")


def systemd_unit_text(python: Path, config: Path, cfg: HubConfig) -> tuple[str, list[str]]:
    """The hub's systemd unit for this interpreter and config (the template that ships in ``edge/systemd``), and
    what would stop it working here, each a sentence."""
    import shlex
    from importlib import resources
    from string import Template

    secrets = {name: getattr(getattr(cfg, section), field) for name, (section, field, _) in SECRET_FILES.items()}
    secrets[CREDENTIAL_NAME] = secrets[CREDENTIAL_NAME] or config.parent / CREDENTIAL_NAME
    credentials = "\n".join(f"LoadCredential={name}:{path}" for name, path in secrets.items() if path)
    template = resources.files("edge").joinpath("systemd/ohmni-hub.service").read_text()
    # systemd reads a quoted word whole, as a shell does
    text = Template(template).substitute(python=shlex.quote(str(python)), config=shlex.quote(str(config)),
                                         credentials=credentials)
    notes = []
    # the service user reads hub.toml, so any user may: a secret written into it is every user's
    inline = {"token_file under [cloud]": cfg.cloud.token, "password_file under [mqtt]": cfg.mqtt.password}
    for file_key, secret in inline.items():
        if secret:
            notes.append(f"{config.name} holds a secret itself, and the service user, so any user, must read it: "
                         f"put it in a root-only file named by {file_key}, which the unit passes")
    for public in (cfg.mqtt.ca_file, cfg.mqtt.cert_file):
        if public and public.exists() and not public.stat().st_mode & stat.S_IROTH:
            notes.append(f"the hub's service user may not read {public}: a certificate is not secret, make it "
                         f"readable by all (chmod o+r {shlex.quote(str(public))})")
    if not config.exists():
        notes.append(f"no {config} yet: run `ohmni hub provision` first (the unit names it)")
    if any(python.is_relative_to(home) for home in (Path("/root"), Path("/home"))):
        notes.append(f"the hub's service user may not reach {python}: install Ohmni where any user may read it "
                     "(a virtual environment in /opt/ohmni, say)")
    if config.exists() and cfg.hub.data_dir.absolute() != UNIT_STATE_DIR:
        notes.append(f"{config.name} keeps the store in {cfg.hub.data_dir}, but the unit lets the hub write only in "
                     f"{UNIT_STATE_DIR}: set data_dir = \"{UNIT_STATE_DIR}\" under [hub]")
    return text, notes


# --- status / doctor ---------------------------------------------------------------------------

@dataclass
class Check:
    name: str
    verdict: str  # "ok", "warn", "fail"
    detail: str
    advice: str = ""


def _ago(ts: float | None) -> str:
    if ts is None:
        return "never"
    seconds = time.time() - ts
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _span(seconds: float) -> str:
    """A clock's offset as people say it: "12 min", "6 h 15 min", "377 days"."""
    minutes = round(abs(seconds) / 60)
    if minutes >= 2 * 24 * 60:
        return f"{minutes / (24 * 60):.0f} days"
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes} min"


#: A meter's stamps this far from the hub's clock are said (the hub keeps them as stamped).
METER_CLOCK_OFF_S = 300.0


def _reading_checks(meter: dict[str, Any], store_last_ts: float | None) -> list[Check]:
    """Is the meter sending, by when its last reading arrived (the running hub knows); and is its clock right, by that
    reading's stamp. Without the running hub, only the store's newest stamp says, by the meter's clock: a meter whose
    clock is an hour off was told "is the meter sending?" while it was."""
    at, ts = meter.get("last_reading_at"), meter.get("last_reading_ts")
    if at is None or ts is None:
        fresh = store_last_ts is not None and time.time() - store_last_ts < STALE_S
        return [Check("last reading", "ok" if fresh else "warn", _ago(store_last_ts)
                      + (" (stamped by the meter; the hub is not running to say when it arrived)" if store_last_ts
                         else ""), "" if fresh else "is the meter sending?")]
    fresh = time.time() - at < STALE_S
    out = [Check("last reading", "ok" if fresh else "warn", f"arrived {_ago(at)}", "" if fresh else
                 "is the meter sending? check the P1 cable")]
    offset = ts - at
    if abs(offset) > METER_CLOCK_OFF_S:
        out.append(Check("meter clock", "warn", f"the meter stamps its readings {_span(offset)} "
                         f"{'behind' if offset < 0 else 'ahead of'} the hub's clock",
                         "the hub keeps the stamps as sent and the bill follows them; the meter's clock is its "
                         "supplier's to set (a sped-up `ohmni demo` runs its meter's clock at the demo's speed)"))
    else:
        out.append(Check("meter clock", "ok", f"within {METER_CLOCK_OFF_S / 60:.0f} min of the hub's clock"))
    return out


def _live_status(cfg: HubConfig) -> dict[str, Any] | None:
    try:
        return httpx.get(f"http://{cfg.display.host}:{cfg.display.port}/api/status", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return None


def store_write_checks(live: dict[str, Any] | None) -> list[Check]:
    """What the running hub says of its store's writes (a full disk), where it says anything."""
    store = (live or {}).get("store") or {}
    if not store.get("write_error"):
        return []
    return [Check("store", "fail", f"{store['write_error']} ({store.get('readings_held', 0)} readings held)",
                  "free some space where the store is")]


def _listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


#: The meter's interval is the median over its readings of the last hour before the latest.
INTERVAL_SPAN_S = 3600.0


def _interval_check(ts: list[float], nilm: bool) -> Check:
    """How often the meter reports, and what that costs the disaggregator where it runs (``INTERVAL_NOTES``): a
    DSMR 4 meter's 10 s finds fewer washes than DSMR 5's 1 s, and nothing on the hub can read it faster."""
    from edge.nilm.house_csv import interval_note, median_step

    step = median_step(ts)
    note = interval_note(step) if nilm else None
    return Check("meter interval", "warn" if note else "ok", f"a reading every {step:.0f} s (median, last hour)"
                 + (f": {note}" if note else ""), "the meter sets it (`ohmni hub probe` names its DSMR version): "
                 "nothing on the hub reads it faster" if note else "")


def checks(cfg: HubConfig) -> list[Check]:
    out: list[Check] = []
    live = _live_status(cfg)
    where = f"{cfg.display.host}:{cfg.display.port}"
    if live:
        out.append(Check("hub agent", "ok", "running"))
    elif _listening(cfg.display.host, cfg.display.port):  # the hub runs without its page where the port is taken
        out.append(Check("hub agent", "warn", f"another program answers on {where}, where the hub serves its display "
                         "page and status", "set port under [display] to a free one and restart the hub"))
    else:
        out.append(Check("hub agent", "warn", f"not answering on {where}", "start it: systemctl start ohmni-hub"))
    meter = (live or {}).get("meter") or {}
    port_exists = Path(cfg.meter.port).exists()
    if (lasting := stable_name(cfg.meter.port)) is not None:
        out.append(Check("meter port name", "warn", f"{cfg.meter.port} is named in the order the kernel finds devices "
                         "and may name another (a Zigbee stick) after a reboot",
                         f"set port = \"{lasting}\" under [meter]"))
    if live:
        ok = bool(meter.get("connected"))
        out.append(Check("meter", "ok" if ok else "fail", f"{cfg.meter.port}: " + (
            "open" if ok else (meter.get("last_error") or "not open")), "" if ok else
            "check the P1 cable; `ohmni hub probe --port …` finds the settings"))
    else:
        out.append(Check("meter", "ok" if port_exists else "fail", f"{cfg.meter.port} "
                         + ("exists" if port_exists else "does not exist"),
                         "" if port_exists else "plug the P1 cable in, or set [meter].port"))
    if cfg.mqtt.enabled:
        try:
            socket.create_connection((cfg.mqtt.host, cfg.mqtt.port), timeout=3).close()
            out.append(Check("broker", "ok", f"{cfg.mqtt.host}:{cfg.mqtt.port} reachable"))
        except OSError as exc:
            # an embedded broker runs inside the hub agent: it is down because the agent is
            out.append(Check("broker", "fail", f"{cfg.mqtt.host}:{cfg.mqtt.port}: {exc}",
                             "the hub runs it ([mqtt].embedded): start the hub" if cfg.mqtt.embedded else
                             "start Mosquitto, or set [mqtt].embedded = true"))
        embedded_error = ((live or {}).get("mqtt") or {}).get("embedded_broker_error")
        if embedded_error:
            out.append(Check("embedded broker", "warn", embedded_error, "set port under [mqtt] to a free one, or "
                             "embedded = false to use the broker that listens there"))
        try:
            cfg.mqtt.secret()
            if cfg.mqtt.cert_file:
                cfg.mqtt.client_key()
        except CredentialError as exc:
            out.append(Check("broker credentials", "fail", str(exc)))
    db = cfg.hub.data_dir / "hub.sqlite3"
    if db.exists():
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            last_ts, = con.execute("SELECT max(ts) FROM readings").fetchone()
            unbatched, = con.execute("SELECT count(*) FROM readings WHERE batch_seq IS NULL").fetchone()
            pending, = con.execute("SELECT coalesce(sum(n_readings), 0) FROM outbox WHERE acked_at IS NULL"
                                   ).fetchone()
            last_ack, = con.execute("SELECT max(acked_at) FROM outbox").fetchone()
            recent = [t for t, in con.execute(
                "SELECT ts FROM readings WHERE channel = 'electricity' AND ts >= (SELECT max(ts) - ? FROM readings "
                "WHERE channel = 'electricity') ORDER BY ts", (INTERVAL_SPAN_S,))]
        finally:
            con.close()
        out += _reading_checks(meter, last_ts)
        out += store_write_checks(live)
        backlog = unbatched + pending
        out.append(Check("backlog", "ok" if backlog < 10_000 else "warn", f"{backlog} readings waiting to upload",
                         "" if backlog < 10_000 else "the cloud has not taken readings for a while"))
        out.append(Check("last upload", "ok" if last_ack and time.time() - last_ack < 600 else "warn",
                         _ago(last_ack)))
        if len(recent) > 2:
            out.append(_interval_check(recent, cfg.nilm.enabled))
    else:
        out.append(Check("store", "warn", f"no store at {db} yet", "the hub creates it when it first runs"))
    try:
        token = cfg.cloud.credential()
    except CredentialError as exc:
        token, unreadable = None, str(exc)
    else:
        unreadable = ""
    if unreadable:
        out.append(Check("cloud", "fail", unreadable, "check the credential file's owner and mode"))
    elif token is None:
        out.append(Check("cloud", "fail", "no credential", "run `ohmni hub provision --cloud URL --code CODE`"))
    else:
        try:
            t0 = time.time()
            resp = httpx.post(f"{cfg.cloud.url.rstrip('/')}/api/v1/hub/ping",
                              headers={"Authorization": f"Bearer {token}"}, timeout=10)
            t1 = time.time()
            answer = _object(resp, "hub_id", "server_time")
            if resp.status_code == 200 and answer is None:
                out.append(Check("cloud", "warn", f"{cfg.cloud.url} answered 200 but not as the Ohmni cloud does "
                                 f"({resp.text[:80]!r})", "a proxy or captive portal in the way? check the network"))
            elif resp.status_code == 200 and answer is not None:
                out.append(Check("cloud", "ok", f"{cfg.cloud.url} accepts hub {answer['hub_id']}"))
                offset = float(answer["server_time"]) - (t0 + t1) / 2
                verdict = "ok" if abs(offset) < 5 else "warn" if abs(offset) < 60 else "fail"
                out.append(Check("clock", verdict, f"{offset:+.1f} s from the cloud",
                                 "" if verdict == "ok" else "enable NTP: timedatectl set-ntp true"))
            elif resp.status_code in (401, 403):
                out.append(Check("cloud", "fail", f"{cfg.cloud.url} refused the credential ({_problem(resp)})",
                                 "the hub was revoked or its token is wrong: provision it again"))
            else:
                out.append(Check("cloud", "warn", f"{cfg.cloud.url} answered {resp.status_code}"))
        except httpx.HTTPError as exc:
            out.append(Check("cloud", "warn", f"{cfg.cloud.url} unreachable: {exc}",
                             "readings wait in the outbox; check the network"))
    free = shutil.disk_usage(cfg.hub.data_dir if cfg.hub.data_dir.exists() else cfg.hub.data_dir.parent
                             if cfg.hub.data_dir.parent.exists() else Path("/")).free
    verdict = "ok" if free > 500e6 else "warn" if free > 50e6 else "fail"
    out.append(Check("disk", verdict, f"{free / 1e9:.1f} GB free", "" if verdict == "ok" else "free some space"))
    return out
