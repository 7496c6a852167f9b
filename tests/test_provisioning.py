"""Hubs join with one-time claim codes and leave when revoked: a real cloud process, the real commands."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloud.app import create_app
from cloud.auth import ALL_HOUSEHOLDS, Principal, Role, hash_secret, new_secret
from cloud.settings import CloudSettings
from edge.config import CloudConfig, HubConfig
from edge.provision import checks
from edge.store import HubStore
from edge.uplink import Uplink
from ohmni.demo import free_port, start_cloud
from protocols.readings import MeterReading


def ohmni(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ohmni", *args], capture_output=True, text=True, timeout=60,
                          env=env)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("cloud")
    for name in ("hub.token", "householder.key"):
        (tmp / name).write_text(new_secret())
    port = free_port()
    proc = start_cloud(tmp, port)
    url = f"http://127.0.0.1:{port}"
    try:
        yield {"url": url, "data": tmp / "cloud", "tmp": tmp}
    finally:
        proc.stop()


def claim(cloud, ttl: str = "72") -> str:
    result = ohmni("cloud", "claim-code", "--household", "hh-demo", "--ttl-hours", ttl, "--data-dir",
                   str(cloud["data"]))
    assert result.returncode == 0, result.stderr
    until = datetime.fromtimestamp(time.time() + float(ttl) * 3600, UTC)  # said to the minute, as people read it
    assert re.fullmatch(r"works once, until \d{1,2} [A-Z][a-z]+ 20\d\d, \d\d:\d\d UTC", result.stderr.strip())
    assert f"{until.day} {until:%B %Y}" in result.stderr, result.stderr
    return result.stdout.strip()


def provision(cloud, code: str, hub_id: str, folder: Path) -> subprocess.CompletedProcess:
    return ohmni("hub", "provision", "--cloud", cloud["url"], "--code", code, "--hub-id", hub_id,
                 "--config-dir", str(folder), "--data-dir", str(folder / "data"))


def test_provision_writes_a_private_credential_and_a_config_and_checks_the_path(cloud, tmp_path):
    result = provision(cloud, claim(cloud), "hub-kitchen", tmp_path)
    assert result.returncode == 0, result.stderr
    for step in ("Reaching the cloud", "Registering hub hub-kitchen", "mode 0600", "Writing the hub configuration",
                 "Checking the whole path", "joined household hh-demo"):
        assert step in result.stderr
    assert f"or as a service: ohmni hub systemd-unit --config {tmp_path / 'hub.toml'} >" in result.stderr
    assert stat.S_IMODE(os.stat(tmp_path / "hub.token").st_mode) == 0o600
    config = tomllib.loads((tmp_path / "hub.toml").read_text())
    assert config["hub"]["id"] == "hub-kitchen" and config["cloud"]["url"] == cloud["url"]
    assert "token" not in config["cloud"]  # only the path to the private file
    status = ohmni("hub", "status", "--config", str(tmp_path / "hub.toml"))
    assert "accepts hub hub-kitchen" in status.stdout and "clock" in status.stdout
    assert "does not exist" in status.stdout  # no meter on /dev/ttyUSB0 here: a clear verdict
    assert status.returncode == 1


def test_a_claim_code_works_once(cloud, tmp_path):
    code = claim(cloud)
    assert provision(cloud, code, "hub-once", tmp_path / "a").returncode == 0
    again = provision(cloud, code, "hub-twice", tmp_path / "b")
    assert again.returncode == 1 and "already been used" in again.stderr
    assert not (tmp_path / "b" / "hub.token").exists()


def test_a_config_the_hub_cannot_read_is_named_before_the_claim_code_is_used(cloud, tmp_path):
    """An existing hub.toml with a misspelt key, or that is not TOML: provisioning stops before registering, says
    which file and what (before, a traceback after the code was spent), and the same code then works."""
    code = claim(cloud)
    for body, said in (('[meter]\nprot = "/dev/ttyAMA0"\n', "meter.prot: not a setting the hub knows"),
                       ("[meter\n", "cannot read it")):
        (tmp_path / "hub.toml").write_text(body)
        result = provision(cloud, code, "hub-fixed", tmp_path)
        said_flat = " ".join(result.stderr.split())
        assert result.returncode == 1 and said in said_flat and "hub.toml" in said_flat, result.stderr
        assert "Traceback" not in result.stderr and "Registering" not in result.stderr
        assert not (tmp_path / "hub.token").exists()
    (tmp_path / "hub.toml").write_text('[meter]\nport = "/dev/ttyAMA0"\n')
    assert provision(cloud, code, "hub-fixed", tmp_path).returncode == 0
    assert tomllib.loads((tmp_path / "hub.toml").read_text())["meter"]["port"] == "/dev/ttyAMA0"


def test_an_expired_claim_code_is_refused(cloud, tmp_path):
    code = claim(cloud, ttl="0.0003")  # about a second
    time.sleep(1.5)
    result = provision(cloud, code, "hub-late", tmp_path)
    assert result.returncode == 1 and "expired" in result.stderr


def test_claim_code_for_an_unknown_household(cloud):
    result = ohmni("cloud", "claim-code", "--household", "hh-nobody", "--data-dir", str(cloud["data"]))
    assert result.returncode == 2 and "no household 'hh-nobody'" in result.stderr


def test_revoking_a_hub_stops_its_uploads_at_once(cloud, tmp_path):
    assert provision(cloud, claim(cloud), "hub-revoked", tmp_path).returncode == 0
    store = HubStore(tmp_path / "hub.sqlite3")
    store.add_readings([MeterReading(ts=1_764_057_600 + i, meter_id="E1", import_t1_wh=i, import_t2_wh=0,
                                     export_t1_wh=0, export_t2_wh=0, power_import_w=100, power_export_w=0)
                        for i in range(3)])
    uplink = Uplink(store, "hub-revoked", CloudConfig(url=cloud["url"], token_file=tmp_path / "hub.token"))

    async def upload() -> bool:
        uplink.seal()
        return await uplink.send_pending()

    assert asyncio.run(upload()) is True
    revoked = ohmni("cloud", "revoke-hub", "hub-revoked", "--data-dir", str(cloud["data"]))
    assert revoked.returncode == 0
    store.add_readings([MeterReading(ts=1_764_057_700, meter_id="E1", import_t1_wh=9, import_t2_wh=0,
                                     export_t1_wh=0, export_t2_wh=0, power_import_w=100, power_export_w=0)])
    uplink = Uplink(store, "hub-revoked", CloudConfig(url=cloud["url"], token_file=tmp_path / "hub.token"))
    assert asyncio.run(upload()) is False
    assert "refused" in uplink.refused and store.status()["backlog_readings"] == 1  # kept, not lost
    status = ohmni("hub", "status", "--config", str(tmp_path / "hub.toml"))
    assert "refused the credential" in status.stdout


def test_installer_api_and_refusals(tmp_path):
    settings = CloudSettings(data_dir=tmp_path)
    app = create_app(settings)
    with TestClient(app) as client:
        store = app.state.storage
        installer = new_secret()
        limited = new_secret()
        from cloud.bootstrap import DEMO_HOUSEHOLD
        client.portal.call(store.upsert_household, DEMO_HOUSEHOLD)
        client.portal.call(store.add_credential, hash_secret(installer),
                           Principal(Role.INSTALLER, "ada", ALL_HOUSEHOLDS))
        client.portal.call(store.add_credential, hash_secret(limited), Principal(Role.INSTALLER, "bob", "hh-other"))
        body = {"household_id": "hh-demo", "ttl_hours": 1}
        assert client.post("/api/v1/installer/claim-codes", json=body).status_code == 401
        assert client.post("/api/v1/installer/claim-codes", json=body,
                           headers={"Authorization": f"Bearer {limited}"}).status_code == 403
        made = client.post("/api/v1/installer/claim-codes", json=body, headers={"Authorization": f"Bearer {installer}"})
        assert made.status_code == 201
        code = made.json()["code"]
        joined = client.post("/api/v1/hubs/register", json={"code": code.lower().replace("-", ""), "hub_id": "hub-x"})
        assert joined.status_code == 201 and joined.json()["household_id"] == "hh-demo"
        token = joined.json()["token"]
        assert client.post("/api/v1/hub/ping", headers={"Authorization": f"Bearer {token}"}).json()["hub_id"] == "hub-x"
        missing = client.post("/api/v1/installer/claim-codes", json={"household_id": "hh-nobody"},
                              headers={"Authorization": f"Bearer {installer}"})
        assert missing.status_code == 404
        for _ in range(10):
            refused = client.post("/api/v1/hubs/register", json={"code": "AAAA-BBBB-CCCC", "hub_id": "hub-y"})
            assert refused.status_code == 403 and refused.json()["detail"] == "unknown claim code"
        too_many = client.post("/api/v1/hubs/register", json={"code": "AAAA-BBBB-CCCC", "hub_id": "hub-y"})
        assert too_many.status_code == 429
        revoke = client.post("/api/v1/installer/hubs/hub-x/revoke", headers={"Authorization": f"Bearer {installer}"})
        assert revoke.json()["revoked_credentials"] == 1
        assert client.post("/api/v1/hub/ping", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    with TestClient(create_app(settings)) as restarted:  # the refusals are counted in the store, not the process
        again = restarted.post("/api/v1/hubs/register", json={"code": "AAAA-BBBB-CCCC", "hub_id": "hub-y"})
        assert again.status_code == 429 and "wait a minute" in again.json()["detail"]
    with TestClient(create_app(CloudSettings(data_dir=tmp_path / "other"))) as other:  # another cloud's count
        refused = other.post("/api/v1/hubs/register", json={"code": "AAAA-BBBB-CCCC", "hub_id": "hub-y"})
        assert refused.status_code == 403


def test_status_names_a_captive_portal_where_the_cloud_should_be(tmp_path):
    """A network that answers every request with its sign-in page (200, HTML): `hub status` says the answer is
    not the cloud's, not a KeyError."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Portal(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = b"<html><body>Sign in to Hotel Wi-Fi</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Portal)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (tmp_path / "hub.token").write_text(new_secret())
        (tmp_path / "hub.toml").write_text(f'[cloud]\nurl = "http://127.0.0.1:{server.server_address[1]}"\n'
                                           f'token_file = "{tmp_path / "hub.token"}"\n'
                                           f'[meter]\nport = "{tmp_path / "ttyUSB9"}"\n')
        status = ohmni("hub", "status", "--config", str(tmp_path / "hub.toml"))
    finally:
        server.shutdown()
    assert "Traceback" not in status.stderr, status.stderr
    assert "answered 200 but not as the Ohmni cloud does" in " ".join(status.stdout.split()), status.stdout
    # what to do is said as written, not read as markup (which ate "[meter]")
    assert "set [meter].port" in " ".join(status.stdout.split()), status.stdout


@pytest.mark.parametrize("env, args, said", [
    ({"OHMNI_CLOUD_NOTIFY_EVERY_S": "abc"}, [], "OHMNI_CLOUD_NOTIFY_EVERY_S: Input should be a valid number"),
    ({"OHMNI_CLOUD_PUSH_HOSTS": "fcm.googleapis.com"}, [], "OHMNI_CLOUD_PUSH_HOSTS: not JSON"),
    ({}, ["--port", "99999999"], "--port: Input should be less than or equal to 65535"),
    ({}, ["--demo-tariff", "economy8"], "--demo-tariff: Value error, no tariff 'economy8': choose flat, economy7"),
    ({"OHMNI_CLOUD_DEMO_TARIFF": "economy8"}, [], "OHMNI_CLOUD_DEMO_TARIFF: Value error, no tariff 'economy8'"),
])
def test_a_cloud_setting_that_is_wrong_is_named_without_a_traceback(tmp_path, env, args, said):
    result = ohmni("cloud", "serve", "--data-dir", str(tmp_path), *args, env={**os.environ, **env})
    assert result.returncode == 2 and said in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("step_s, nilm, verdict, said", [
    (1, True, "ok", ""),  # DSMR 5
    (10, True, "warn", "washing machine"),  # DSMR 4: fewer washes found (docs/nilm.md, "Data decisions")
    (10, False, "ok", ""),  # no disaggregation on this hub: the interval costs it nothing
    (30, True, "warn", "short runs"),  # sparser than any meter
])
def test_status_says_how_often_the_meter_reports_and_what_it_costs_the_disaggregator(tmp_path, step_s, nilm, verdict,
                                                                                      said):
    """`hub status` takes the meter's interval from the store's last hour (older readings at another interval do not
    count) and warns where the disaggregator finds less at it."""
    store = HubStore(tmp_path / "hub.sqlite3")
    now = int(time.time())
    older = [now - 7200 + 2 * i for i in range(1200)]  # two hours ago, every 2 s
    recent = list(range(now - 3000, now, step_s))
    store.add_readings(MeterReading(ts=t, meter_id="E1", import_t1_wh=1000 + i, import_t2_wh=0, export_t1_wh=0,
                                    export_t2_wh=0, power_import_w=360, power_export_w=0)
                       for i, t in enumerate(older + recent))
    store.close()
    cfg = HubConfig.model_validate({"hub": {"data_dir": str(tmp_path)}, "mqtt": {"enabled": False},
                                    "display": {"port": free_port()}, "nilm": {"enabled": nilm}})
    [check] = [c for c in checks(cfg) if c.name == "meter interval"]
    assert check.verdict == verdict, check
    assert f"a reading every {step_s} s" in check.detail
    assert said in check.detail
    assert bool(check.advice) == (verdict == "warn")


def assert_systemd_accepts(unit_text: str, folder: Path) -> None:
    """`systemd-analyze verify` reads the unit as systemd would and has nothing to say of it."""
    import shutil

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        from tests.fixtures import missing

        missing("systemd-analyze not found (apt-get install systemd)")
    unit = folder / "ohmni-hub.service"
    unit.write_text(unit_text)
    verified = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0 and verified.stderr.strip() == "", verified.stderr


def test_the_systemd_unit_starts_this_python_and_has_systemd_pass_the_credential(cloud, tmp_path, monkeypatch):
    """The unit an installer installs after provisioning: systemd accepts it (`systemd-analyze verify`), it starts
    the Python that has Ohmni (a venv's, not a guessed /usr/local/bin/ohmni that was not there), and its
    service user, who may not read the root-owned 0600 token, gets it from systemd (LoadCredential) and is let
    in by the cloud with it. A token it cannot read is named by `hub status` and the uplink, not a traceback."""

    assert provision(cloud, claim(cloud), "hub-unit", tmp_path).returncode == 0
    config = tmp_path / "hub.toml"
    made = ohmni("hub", "systemd-unit", "--config", str(config))
    assert made.returncode == 0, made.stderr
    assert f"ExecStart={sys.executable} -m ohmni hub run --config {config}\n" in made.stdout
    assert f"LoadCredential=hub.token:{tmp_path / 'hub.token'}\n" in made.stdout and "DynamicUser=yes" in made.stdout
    assert f"keeps the store in {tmp_path / 'data'}" in made.stderr  # only /var/lib/ohmni is the service's to write
    assert_systemd_accepts(made.stdout, tmp_path)

    # as the service user finds it: the token file there but not readable (here: not a file), systemd's copy passed
    token = (tmp_path / "hub.token").read_text()
    (tmp_path / "hub.token").unlink()
    (tmp_path / "hub.token").mkdir()
    alone = ohmni("hub", "status", "--config", str(config))
    assert alone.returncode == 1 and "Traceback" not in alone.stderr and "cannot read the hub" in alone.stdout
    cfg = HubConfig.load(config)
    [cloud_check] = [c for c in checks(cfg) if c.name == "cloud"]
    assert cloud_check.verdict == "fail", cloud_check
    assert f"cannot read the hub credential {tmp_path / 'hub.token'} (Is a directory)" in cloud_check.detail
    passed = tmp_path / "credentials"
    passed.mkdir()
    (passed / "hub.token").write_text(token)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(passed))
    [cloud_check] = [c for c in checks(cfg) if c.name == "cloud"]
    assert (cloud_check.verdict, cloud_check.detail) == ("ok", f"{cloud['url']} accepts hub hub-unit")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    uplink = Uplink(HubStore(tmp_path / "data" / "hub.sqlite3"), "hub-unit", cfg.cloud)
    assert asyncio.run(uplink.send_pending()) is False  # kept, retried, said
    assert uplink.last_error is not None and "cannot read the hub credential" in uplink.last_error
    assert uplink.counters["credential_errors"] == 1


def test_the_systemd_unit_passes_the_mqtt_secrets_hub_toml_names(tmp_path, monkeypatch):
    """A hub whose broker wants a password and a client certificate: the root-only files hub.toml names are passed by
    systemd too (the service user could not read them), and a certificate the service user cannot read is said.
    `hub status` names a password file it cannot read, not "not authorised" later."""

    for name in ("mqtt.pass", "client.key", "client.crt", "ca.crt"):
        (tmp_path / name).write_text("x\n")
        os.chmod(tmp_path / name, 0o600)
    os.chmod(tmp_path / "ca.crt", 0o644)
    config = tmp_path / "hub.toml"
    config.write_text(f"""[hub]
data_dir = "/var/lib/ohmni"
[cloud]
token_file = "{tmp_path / 'hub.token'}"
[mqtt]
enabled = true
port = {free_port()}
username = "hub"
password_file = "{tmp_path / 'mqtt.pass'}"
ca_file = "{tmp_path / 'ca.crt'}"
cert_file = "{tmp_path / 'client.crt'}"
key_file = "{tmp_path / 'client.key'}"
""")
    made = ohmni("hub", "systemd-unit", "--config", str(config))
    assert made.returncode == 0, made.stderr
    loads = [line for line in made.stdout.splitlines() if line.startswith("LoadCredential=")]
    assert loads == [f"LoadCredential=hub.token:{tmp_path / 'hub.token'}",
                     f"LoadCredential=mqtt.password:{tmp_path / 'mqtt.pass'}",
                     f"LoadCredential=mqtt.key:{tmp_path / 'client.key'}"]
    assert f"may not read {tmp_path / 'client.crt'}" in made.stderr and "ca.crt" not in made.stderr
    assert "holds a secret" not in made.stderr
    inline = tmp_path / "inline.toml"
    inline.write_text(config.read_text().replace('username = "hub"', 'username = "hub"\npassword = "in-the-open"'))
    said = ohmni("hub", "systemd-unit", "--config", str(inline)).stderr
    assert "inline.toml holds a secret itself" in said and "password_file under [mqtt]" in said
    assert "in-the-open" not in said
    assert_systemd_accepts(made.stdout, tmp_path)

    (tmp_path / "mqtt.pass").unlink()
    (tmp_path / "mqtt.pass").mkdir()  # as the service user finds it (root reads any file whatever its mode)
    said = {c.name: c for c in checks(HubConfig.load(config))}["broker credentials"]
    assert said.verdict == "fail"
    assert f"cannot read the MQTT password {tmp_path / 'mqtt.pass'} (Is a directory)" in said.detail
    passed = tmp_path / "credentials"
    passed.mkdir()
    for name in ("mqtt.password", "mqtt.key"):
        (passed / name).write_text("x\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(passed))
    assert "broker credentials" not in {c.name for c in checks(HubConfig.load(config))}
