"""Hub configuration, read from TOML; every setting has a default so a demo needs none.

Example ``hub.toml``::

    [hub]
    id = "hub-0001"
    data_dir = "/var/lib/ohmni"

    [meter]
    port = "/dev/ttyUSB0"
    baudrate = 115200

    [cloud]
    url = "https://cloud.example"
    token_file = "/etc/ohmni/hub.token"

    [display]
    port = 8001
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge.nilm.appliances import NAMES
from protocols.uplink import HUB_ID_PATTERN, HUB_ID_RULE


class Section(BaseModel):
    """A part of hub.toml. A key the hub does not know is refused, not ignored: a misspelt ``prot = "/dev/ttyAMA0"``
    would otherwise leave the hub reading the default port, with nothing to say why."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)  # a command-line override is checked too


class MeterConfig(Section):
    port: str = "/dev/ttyUSB0"
    baudrate: int = Field(default=115200, gt=0)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    key: str | None = Field(default=None, description="AES-128 key (hex) of an encrypting meter (Luxembourg)")
    auth_key: str | None = Field(default=None, description="GCM authentication key if not the Smarty default")


#: The hub credential's file name: beside hub.toml, where `hub provision` writes it, and the name systemd passes it by
#: (``LoadCredential=hub.token:…`` in the unit `hub systemd-unit` prints).
CREDENTIAL_NAME = "hub.token"

#: The secret files hub.toml may name, by the name systemd passes each under (``LoadCredential=NAME:PATH`` in the
#: unit `hub systemd-unit` prints): (section, field, what an error calls it). The unit runs the hub as a user of its
#: own, who may not read a root-owned 0600 file; systemd reads it as root and passes a copy only the service reads.
SECRET_FILES: dict[str, tuple[str, str, str]] = {
    CREDENTIAL_NAME: ("cloud", "token_file", "the hub credential"),
    "mqtt.password": ("mqtt", "password_file", "the MQTT password"),
    "mqtt.key": ("mqtt", "key_file", "the MQTT client key"),
}


class CredentialError(ValueError):
    """A credential file the hub cannot read (its mode or owner, or not text)."""


def secret_file(name: str, own: Path | None) -> Path | None:
    """Where the secret ``name`` (a key of :data:`SECRET_FILES`) is read from: the copy systemd passed the service
    (``$CREDENTIALS_DIRECTORY``), else the file hub.toml names; None where neither is set."""
    passed = os.environ.get("CREDENTIALS_DIRECTORY")
    if passed and (Path(passed) / name).exists():
        return Path(passed) / name
    return own


def read_secret(name: str, own: Path | None, missing_ok: bool = True) -> str | None:
    """The secret ``name`` as text (see :func:`secret_file`); None where none is set, or (``missing_ok``) where there
    is no such file. A file that cannot be read raises :class:`CredentialError` naming it, which the uplink, the MQTT
    link and ``hub status`` say, not a traceback."""
    path = secret_file(name, own)
    if path is None:
        return None
    try:
        if missing_ok and not path.exists():
            return None
        return path.read_text().strip() or None
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable(name, path, exc) from None


def readable_secret(name: str, own: Path | None) -> Path | None:
    """The path of the secret file ``name`` for a library that opens it itself (a TLS key), checked readable here so
    that it fails as :func:`read_secret` does."""
    path = secret_file(name, own)
    if path is not None:
        try:
            with path.open("rb") as f:
                f.read(1)
        except OSError as exc:
            raise _unreadable(name, path, exc) from None
    return path


def _unreadable(name: str, path: Path, exc: Exception) -> CredentialError:
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return CredentialError(f"cannot read {SECRET_FILES[name][2]} {path} ({why}): run the hub as a user that may read "
                           "it, or from the unit `ohmni hub systemd-unit` prints, which passes it with LoadCredential")


class CloudConfig(Section):
    url: str = "http://127.0.0.1:8000"
    token: str | None = Field(default=None, description="hub credential; prefer token_file")
    token_file: Path | None = None
    batch_max: int = Field(default=1000, ge=1, le=5000)
    interval_s: float = Field(default=10.0, gt=0, description="seconds between uploads when all is well")
    timeout_s: float = Field(default=10.0, gt=0)
    max_backoff_s: float = Field(default=60.0, gt=0)
    disk_budget_mb: float = Field(default=512, gt=0, description="past it, unsent readings are compacted")

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        scheme, _, rest = url.partition("://")
        if scheme.lower() not in ("http", "https") or not rest.strip("/"):
            raise ValueError("not an http:// or https:// address")
        return url

    def credential(self) -> str | None:
        """The hub's credential: ``token``; else the one systemd passed the service (``LoadCredential=hub.token`` in
        the unit ``ohmni hub systemd-unit`` prints: the hub runs as a user of its own, and the file ``hub
        provision`` wrote stays root's, mode 0600); else ``token_file``. None where none is set; a file that is
        there and cannot be read raises :class:`CredentialError` naming it, which the uplink and ``hub status``
        say, not a traceback."""
        if self.token:
            return self.token
        return read_secret(CREDENTIAL_NAME, self.token_file)


class SmlConfig(Section):
    """The names a Tasmota SML meter script gives its values (users choose them)."""

    prefix: str = "SML"
    import_kwh: str = "Total_in"
    export_kwh: str = "Total_out"
    power_w: str = "Power_curr"


class MqttConfig(Section):
    """The hub's broker: zigbee2mqtt, Shelly, Tasmota and Glow devices publish there."""

    enabled: bool = False
    embedded: bool = Field(default=False, description="run amqtt inside the hub on host:port (MQTT 3.1.1)")
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = Field(default=None, description="CA that signed the broker: turns TLS on")
    cert_file: Path | None = Field(default=None, description="the hub's client certificate")
    key_file: Path | None = None
    protocol: Literal[4, 5] = Field(default=5, description="5, or 4 for MQTT 3.1.1 (the embedded amqtt broker)")
    client_id: str | None = None
    connect_timeout_s: float = Field(default=10.0, gt=0)
    max_backoff_s: float = Field(default=30.0, gt=0)
    zigbee2mqtt_base: str = "zigbee2mqtt"
    sml: SmlConfig = SmlConfig()
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    state_interval_s: float = Field(default=10.0, ge=0, description="at most one state per device this often")
    state_prefix: str = "ohmni"
    display: bool = Field(default=True,
                          description="publish the display state, retained, on <state_prefix>/<hub>/display")
    display_interval_s: float = Field(default=2.0, ge=0,
                                      description="at most this often; at once when the face changes")

    def secret(self) -> str | None:
        """The broker password: ``password``, else the one systemd passed the service, else ``password_file``;
        :class:`CredentialError` where that file cannot be read."""
        return self.password or read_secret("mqtt.password", self.password_file, missing_ok=False)

    def client_key(self) -> Path | None:
        """The client certificate's key file: the one systemd passed the service, else ``key_file``."""
        return readable_secret("mqtt.key", self.key_file)


class DisplayConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=0, le=65535)


class FaceConfig(Section):
    """How the face reads the home (see ``edge/face.py`` for why these numbers)."""

    recent_s: int = Field(default=60, ge=1)
    baseline_window_s: int = Field(default=24 * 3600, ge=60)
    min_baseline_s: int = Field(default=300, ge=60)
    smile_below: float = 0.9
    frown_above: float = 1.5
    hysteresis: float = 0.15
    allow_frown: bool = True
    #: Typical power of similar homes (same size and heating), from the utility; None = own baseline only.
    similar_homes_w: float | None = Field(default=None, gt=0)


if TYPE_CHECKING:
    Appliance = str
else:
    Appliance = Literal[NAMES]  # an appliance the disaggregator names: pydantic refuses any other


class NilmConfig(Section):
    """Disaggregation on the hub: appliance runs from the meter's whole-house power."""

    enabled: bool = True
    model: Path | None = Field(default=None, description="a model from `ohmni nilm train`; default: the shipped one")
    window_s: float = Field(default=8 * 3600, ge=4 * 3600 + 600, description="power kept for disaggregation; runs "
                            "and half hours are settled two hours inside both ends (a plugged appliance's a "
                            "minute before the last reading, where its plug reported)")
    every_s: float = Field(default=300, gt=0)
    #: Plugs on appliances: device id as the hub stores it (`ohmni hub nilm-export` lists those seen) -> appliance.
    #: They are this home's submetered truth: the hub sends those appliances as their plugs measured them, and
    #: adapts its model to the home from them (``edge/nilm/own_home.py``).
    plugs: dict[str, Appliance] = Field(default_factory=dict)
    adapt_every_s: float = Field(default=24 * 3600, ge=60, description="how often the model re-adapts to the home")
    adapt_history_s: float = Field(default=7 * 24 * 3600, ge=3600, description="the recent plug and meter "
                                   "history it adapts on (memory and time grow with it)")
    adapt_min_s: float = Field(default=24 * 3600, ge=600, description="history with every plug reporting that "
                               "the first adaptation waits for")


class HubSection(Section):
    id: str = Field(default="hub-demo", pattern=HUB_ID_PATTERN,
                    description=f"{HUB_ID_RULE}: the cloud registers no other")
    data_dir: Path = Path("ohmni-data/hub")
    keep_days: float = Field(default=8, gt=0, description="what the cloud has acknowledged is dropped from the store "
                             "this long after (never less than the disaggregator and the face read back)")


class HubConfig(Section):
    hub: HubSection = HubSection()
    meter: MeterConfig = MeterConfig()
    cloud: CloudConfig = CloudConfig()
    display: DisplayConfig = DisplayConfig()
    face: FaceConfig = FaceConfig()
    mqtt: MqttConfig = MqttConfig()
    nilm: NilmConfig = NilmConfig()

    def keep_s(self) -> float:
        """How long the store keeps what the cloud has acknowledged: ``[hub] keep_days``, but never less than the
        history the hub reads back (the week a re-adaptation learns from, until the next one; the disaggregator's
        window; the face's baseline)."""
        reads = [self.nilm.window_s, self.face.baseline_window_s]
        if self.nilm.enabled and self.nilm.plugs:
            reads.append(self.nilm.adapt_history_s + self.nilm.adapt_every_s)
        return max(self.hub.keep_days * 86400, *reads)

    @classmethod
    def load(cls, path: Path | None) -> HubConfig:
        if path is None:
            return cls()
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML: {exc}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot read it: {exc}") from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ValueError(f"{path}: {said(exc)}") from None


def said(exc: ValidationError) -> str:
    """Every problem pydantic found, each as ``_said`` puts it."""
    return "; ".join(_said(e) for e in exc.errors())


def _said(error: Any) -> str:
    """One of pydantic's errors as a line a person editing hub.toml can act on: where, what, and what was there."""
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        known = _known(error["loc"][:-1])
        return f"{where}: not a setting the hub knows" + (f" (known here: {', '.join(known)})" if known else "")
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message} (found {error['input']!r})"


def _known(section: tuple[Any, ...]) -> list[str]:
    """The settings of the section at ``section`` (a path of keys from the top of hub.toml)."""
    model: Any = HubConfig
    for key in section:
        field = model.model_fields.get(key) if isinstance(key, str) else None
        model = field.annotation if field is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return list(model.model_fields)
