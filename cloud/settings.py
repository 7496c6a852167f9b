"""Cloud settings from environment variables (prefix ``OHMNI_CLOUD_``); all have safe defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from cloud.notify import PUSH_HOSTS
from cloud.tariffs.model import DEMO_TARIFF, tariff_named


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OHMNI_CLOUD_")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path("ohmni-data/cloud")
    #: postgresql://… to store in PostgreSQL; empty for the embedded SQLite store in data_dir.
    database_url: str | None = None
    #: batches one process writes to PostgreSQL at once; on the 2-core bench machine 1 per
    #: worker stored the most (concurrent COPYs queue for the same pages and cores)
    db_writers: int = Field(default=1, ge=1, le=64)
    #: How long `cloud serve` waits at start for a database that is not answering yet (one started beside it).
    db_wait_s: float = Field(default=30.0, ge=0)
    #: The utility's webhook for notifications (its app or SMS gateway), and the HMAC secret it checks.
    webhook_url: str | None = None
    webhook_secret: str = ""
    #: The utility's social channel: where posts are POSTed, the secret they are signed with, and
    #: the secret the platform signs mentions with (mentions are refused while it is empty).
    social_webhook_url: str | None = None
    social_webhook_secret: str = ""
    social_mentions_secret: str = ""
    #: Hosts (and their subdomains) the cloud sends Web Push to: a subscription naming another is refused, so a
    #: household cannot make the cloud call its own network (cloud/notify.py). JSON in the environment.
    push_hosts: list[str] = Field(default_factory=lambda: list(PUSH_HOSTS))
    #: Who runs this cloud, for push services (VAPID "sub": mailto: or https:).
    vapid_subject: str = "mailto:operations@ohmni.invalid"
    #: Seconds between notification delivery passes (cloud/notify.py); 0 turns delivery off.
    notify_every_s: float = Field(default=5.0, ge=0)
    #: Seconds between looks for power cuts by area (cloud/community.py); 0 turns it off.
    outage_check_s: float = Field(default=10.0, ge=0)
    #: Also write readings to a time-series server (InfluxDB 2/3, InfluxDB Cloud, VictoriaMetrics).
    tsdb_url: str | None = None
    tsdb_token: str = ""
    tsdb_org: str = "ohmni"
    tsdb_bucket: str = "ohmni"
    #: Create the demo household, its flat tariff and credentials at start (idempotent).
    bootstrap_demo: bool = False
    #: Files holding the demo credentials (the cloud stores only their hashes).
    demo_hub_token_file: Path | None = None
    demo_householder_key_file: Path | None = None
    demo_agent_password_file: Path | None = None  # the demo's call-centre agent, "demo-agent"
    demo_hub_id: str = "hub-demo"
    #: The demo household's tariff: "flat" (24.50p/kWh, 60.10p/day) or a catalogue tariff by file name
    #: ("economy7", "night-ev", "flat-fixed"), whose cheap hours give the coach something to shift a wash to.
    demo_tariff: str = DEMO_TARIFF
    #: Cookies carry the Secure flag unless serving plain HTTP on loopback for a demo.
    secure_cookies: bool = False
    #: Bearer token for /metrics; without one, only loopback clients may scrape.
    metrics_token: str | None = None
    #: Expose POST /api/v1/bench/noop (the ingest benchmark's baseline); never in production.
    bench_endpoints: bool = False

    @field_validator("demo_tariff")
    @classmethod
    def _known_tariff(cls, name: str) -> str:
        tariff_named(name)  # a ValueError that lists the names
        return name


def load_settings(**given: Any) -> CloudSettings:
    """The settings, from ``given`` and the OHMNI_CLOUD_* variables; ``ValueError`` naming the variable and what
    is wrong with it (pydantic's own error is a traceback with a URL in it)."""
    try:
        return CloudSettings(**given)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"])
            where = f"--{name.replace('_', '-')}" if name in given else f"OHMNI_CLOUD_{name.upper()}"
            problems.append(f"{where}: {error['msg']} (found {error['input']!r})")
        raise ValueError("; ".join(problems)) from None
    except SettingsError as exc:  # a list or object setting whose variable is not JSON
        field = str(exc).split('"')[1] if '"' in str(exc) else "a setting"
        raise ValueError(f"OHMNI_CLOUD_{field.upper()}: not JSON (a list is written [\"a\", \"b\"])") from None
