"""`ohmni cloud claim-code | revoke-hub | staff-add | installer-token`: an operator's commands reach the store the
cloud serves from, SQLite or PostgreSQL (they wrote to SQLite always, which a PostgreSQL cloud never read)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloud.app import create_app
from cloud.settings import CloudSettings
from tests.cloud.test_api import demo_settings


def ohmni(settings, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OHMNI_CLOUD_")}
    if settings.database_url:
        env["OHMNI_CLOUD_DATABASE_URL"] = settings.database_url
    return subprocess.run([sys.executable, "-m", "ohmni", "cloud", *args, "--data-dir", str(settings.data_dir)],
                          capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture(params=["sqlite", "postgres"])
def served(request, tmp_path: Path) -> Iterator[tuple[CloudSettings, TestClient]]:
    """The demo cloud on each backend, serving while the commands run beside it."""
    settings, _ = demo_settings(request, tmp_path)
    assert (settings.database_url is not None) == (request.param == "postgres")
    with TestClient(create_app(settings)) as client:
        yield settings, client


def test_each_operator_command_reaches_the_store_the_cloud_serves_from(served, tmp_path: Path):
    settings, client = served
    (tmp_path / "pw").write_text("correct horse battery staple\n")
    added = ohmni(settings, "staff-add", "ann", "--role", "agent", "--password-file", str(tmp_path / "pw"))
    assert added.returncode == 0 and "agent ann can sign in at /agent" in added.stderr, added.stderr
    signed = client.post("/agent/login", data={"username": "ann", "password": "correct horse battery staple"},
                         follow_redirects=False)
    assert signed.status_code == 303, signed.text

    made = ohmni(settings, "installer-token", "--name", "ada")
    assert made.returncode == 0, made.stderr
    installer = made.stdout.strip()
    code = client.post("/api/v1/installer/claim-codes", json={"household_id": "hh-demo", "ttl_hours": 1},
                       headers={"Authorization": f"Bearer {installer}"})
    assert code.status_code == 201, code.text

    claimed = ohmni(settings, "claim-code", "--household", "hh-demo")
    assert claimed.returncode == 0, claimed.stderr
    joined = client.post("/api/v1/hubs/register", json={"code": claimed.stdout.strip(), "hub_id": "hub-cli"})
    assert joined.status_code == 201, joined.text
    token = joined.json()["token"]
    assert client.post("/api/v1/hub/ping", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    revoked = ohmni(settings, "revoke-hub", "hub-cli")
    assert revoked.returncode == 0 and "revoked 1 credential(s) of hub hub-cli" in revoked.stderr
    assert client.post("/api/v1/hub/ping", headers={"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.parametrize("args, said", [
    (["--password-file", "PW_SHORT"], "at least 12 characters"),
    (["--password-file", "PW_MISSING"], "does not exist"),
    (["--role", "root", "--password-file", "PW_LONG"], "agent or admin"),
])
def test_staff_add_refuses_a_weak_password_a_missing_file_and_an_unknown_role(tmp_path, args, said):
    files = {"PW_SHORT": tmp_path / "short", "PW_MISSING": tmp_path / "nowhere", "PW_LONG": tmp_path / "long"}
    files["PW_SHORT"].write_text("hunter2\n")
    files["PW_LONG"].write_text("correct horse battery staple\n")
    result = subprocess.run([sys.executable, "-m", "ohmni", "cloud", "staff-add", "bob", "--data-dir", str(tmp_path),
                             *[str(files.get(a, a)) for a in args]], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and said in " ".join(result.stderr.replace("│", " ").split()), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["", "a" * 65, "<b>ada</b>"])
def test_an_installer_token_needs_a_name_audits_can_show(tmp_path, name):
    result = subprocess.run([sys.executable, "-m", "ohmni", "cloud", "installer-token", "--name", name, "--data-dir",
                             str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == "", result.stdout  # no token printed
    assert "an installer's name is 1-64 letters, digits, dots and hyphens" in " ".join(
        result.stderr.replace("│", " ").split()), result.stderr



def test_serve_names_a_store_it_cannot_serve_from_in_a_line(postgres, tmp_path: Path):
    """A database not answering (waited for up to `db_wait_s`: one started beside the cloud may be late), one that
    refuses (no such database), or a data folder the cloud cannot write: one line naming it, with the database
    password hidden, exit 2. It was uvicorn's traceback of the lifespan and "Application startup failed", exit 3."""
    from ohmni.demo import free_port

    base = {k: v for k, v in os.environ.items() if not k.startswith("OHMNI_CLOUD_")}

    def serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ohmni", "cloud", "serve", "--port", str(free_port()), *args],
                              capture_output=True, text=True, timeout=120, env=base | env)

    away = f"postgresql://ohmni:pa55word@127.0.0.1:{free_port()}/ohmni"
    said = serve({"OHMNI_CLOUD_DATABASE_URL": away, "OHMNI_CLOUD_DB_WAIT_S": "2"})
    assert said.returncode == 2 and "Traceback" not in said.stderr, said.stderr
    assert "waiting up to 2 s for the database" in said.stderr
    assert f"cannot reach the database {away.replace('pa55word', '***')}" in said.stderr
    assert "pa55word" not in said.stderr

    missing = postgres.url.rsplit("/", 1)[0] + "/no_such_database"
    said = serve({"OHMNI_CLOUD_DATABASE_URL": missing, "OHMNI_CLOUD_DB_WAIT_S": "60"})
    assert said.returncode == 2 and "Traceback" not in said.stderr, said.stderr
    assert 'database "no_such_database" does not exist' in said.stderr and "waiting" not in said.stderr

    (tmp_path / "a-file").write_text("")
    said = serve({}, "--data-dir", str(tmp_path / "a-file" / "cloud"))
    assert said.returncode == 2 and "Traceback" not in said.stderr, said.stderr
    assert f"cannot keep its store in {tmp_path / 'a-file' / 'cloud'}" in said.stderr
