"""The versioned edge -> cloud contract: the only thing the hub and the cloud share.

A batch is identified by (hub_id, seq) and every reading by (hub_id, channel, ts), so
a retried upload changes nothing. Version 1 carries meter readings, the hub's display
state and appliance runs; later additions come as new optional fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, Field, model_validator

from protocols.display import DisplayState
from protocols.readings import MAX_EPOCH_S, MAX_W, MeterReading

SCHEMA_VERSION: Final = 1
#: The cloud refuses larger batches; the hub never builds one.
MAX_BATCH_READINGS = 5000
#: Bounds every integer on the wire keeps to, far outside what a meter or hub says, so that storage (SQLite and
#: PostgreSQL hold 64-bit integers) is never handed one it cannot hold: a register of 2**63 Wh from a broken or
#: hostile hub was a 500 for its whole batch, not a refusal of that reading.
MAX_WH = 10**12  # a billion kWh: past any register (the hub refuses more, protocols.p1_normalise.MOST)
MAX_COUNT = 10**9
MAX_SEQ = 2**63 - 1


class ReadingV1(BaseModel):
    """One electricity reading as it travels; registers in Wh, power in W."""

    ts: int = Field(ge=0, le=MAX_EPOCH_S, description="UTC epoch seconds, the meter's own timestamp")
    channel: str = Field(default="electricity", max_length=64)
    meter_id: str = Field(max_length=96)
    import_t1_wh: int = Field(ge=0, le=MAX_WH)
    import_t2_wh: int = Field(ge=0, le=MAX_WH)
    export_t1_wh: int = Field(ge=0, le=MAX_WH)
    export_t2_wh: int = Field(ge=0, le=MAX_WH)
    power_import_w: int = Field(ge=0, le=MAX_W)
    power_export_w: int = Field(ge=0, le=MAX_W)
    voltage_l1_v: float | None = None
    tariff: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    voltage_l2_v: float | None = None
    voltage_l3_v: float | None = None
    gas_m3: float | None = Field(default=None, ge=0)
    gas_ts: int | None = Field(default=None, ge=0, le=MAX_EPOCH_S)
    power_failures: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    long_power_failures: int | None = Field(default=None, ge=0, le=MAX_COUNT)

    @classmethod
    def from_reading(cls, reading: MeterReading, channel: str = "electricity") -> ReadingV1:
        return cls.model_validate({"channel": channel, **reading.as_dict()})


#: Minutes of a run's power profile the uplink carries: a day. The hub keeps no more, the coach joins no more.
PROFILE_MINUTES = 24 * 60


class ApplianceRunV1(BaseModel):
    """One run of an appliance, as disaggregation (or a plug) saw it, with its power profile."""

    appliance: str = Field(max_length=64)
    start: int = Field(ge=0, le=MAX_EPOCH_S, description="UTC epoch seconds")
    end: int = Field(ge=0, le=MAX_EPOCH_S)
    energy_wh: float = Field(ge=0)
    peak_w: float = Field(ge=0)
    confidence: float = Field(default=1.0, ge=0, le=1)
    profile_w: list[float] = Field(default_factory=list, max_length=PROFILE_MINUTES,
                                   description="mean watts per minute from start; the shape a nudge prices")

    @model_validator(mode="after")
    def _ordered(self) -> ApplianceRunV1:
        if self.end <= self.start:
            raise ValueError("a run must end after it starts")
        return self


class ApplianceEnergyV1(BaseModel):
    """An appliance's energy in one half hour, as disaggregation estimated it: what the bill's half hours split into."""

    appliance: str = Field(max_length=64)
    start: int = Field(ge=0, le=MAX_EPOCH_S, description="UTC epoch seconds, a multiple of 1800")
    energy_wh: float = Field(ge=0, le=10_000)

    @model_validator(mode="after")
    def _aligned(self) -> ApplianceEnergyV1:
        if self.start % 1800:
            raise ValueError("a half hour starts on a multiple of 1800 s")
        return self


#: A hub's id, as the cloud registers it and the hub sends it; the rule in words, for errors and help.
HUB_ID_PATTERN = r"^[A-Za-z0-9._-]{3,64}$"
HUB_ID_RULE = "3-64 letters, digits, dots, underscores and hyphens"


class UplinkBatch(BaseModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    hub_id: str = Field(max_length=64)
    seq: int = Field(ge=1, le=MAX_SEQ, description="the hub's batch sequence number, strictly increasing")
    readings: list[ReadingV1] = Field(default_factory=list, max_length=MAX_BATCH_READINGS)
    display: DisplayState | None = None
    runs: list[ApplianceRunV1] = Field(default_factory=list, max_length=1000)
    energy: list[ApplianceEnergyV1] = Field(default_factory=list, max_length=5000,
                                            description="per-appliance energy per half hour (optional, newer hubs)")
    backlog: int | None = Field(default=None, ge=0, le=MAX_SEQ,
                                description="readings still waiting in the hub's outbox")
    notices: list[Annotated[str, Field(max_length=2000)]] = Field(
        default_factory=list, max_length=100,
        description="what the household should know, e.g. readings kept at lower resolution")


class UplinkEnvelope(BaseModel):
    """A batch whose readings are not yet checked: each is validated on its own."""

    schema_version: Literal[1] = SCHEMA_VERSION
    hub_id: str = Field(max_length=64)
    seq: int = Field(ge=1, le=MAX_SEQ)
    readings: list[Any] = Field(default_factory=list, max_length=MAX_BATCH_READINGS)
    display: DisplayState | None = None
    runs: list[ApplianceRunV1] = Field(default_factory=list, max_length=1000)
    energy: list[ApplianceEnergyV1] = Field(default_factory=list, max_length=5000)
    backlog: int | None = Field(default=None, ge=0, le=MAX_SEQ)
    notices: list[Annotated[str, Field(max_length=2000)]] = Field(default_factory=list, max_length=100)


class UplinkAck(BaseModel):
    """What the cloud stored: the hub may forget the batch once it has this."""

    hub_id: str
    seq: int
    stored: int = Field(description="readings newly stored by this request")
    duplicates: int = Field(description="readings the cloud already had (a retry)")
    replayed: bool = Field(default=False, description="the whole batch had been acknowledged before")
    rejected: list[dict[str, Any]] = Field(default_factory=list, description="RFC 7807 problems, one per bad item "
                                                                               "(instance = #/readings/N)")
