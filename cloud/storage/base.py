"""The storage interface every backend implements; routers only ever see this."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cloud.auth import Principal, Role
from cloud.wire import Reading
from protocols.display import DisplayState
from protocols.uplink import ApplianceEnergyV1, ApplianceRunV1, ReadingV1


@dataclass(frozen=True)
class Household:
    id: str
    name: str
    account_number: str
    postcode: str
    tz: str
    tariff_json: str
    billing_day: int = 1  # the day of the month the household's bills start


class ClaimError(ValueError):
    """A claim code that cannot be used: unknown, expired or already used."""


@dataclass(frozen=True)
class BatchResult:
    stored: int
    duplicates: int
    replayed: bool


class Storage(Protocol):
    async def init(self) -> None: ...
    async def close(self) -> None: ...

    async def upsert_household(self, household: Household) -> None: ...
    async def household(self, household_id: str) -> Household | None: ...
    async def upsert_hub(self, hub_id: str, household_id: str) -> None: ...
    async def hub_household(self, hub_id: str) -> str | None: ...
    async def add_credential(self, secret_hash: str, principal: Principal) -> None: ...
    async def principal(self, secret_hash: str, role: Role) -> Principal | None: ...

    async def add_claim_code(self, code_hash: str, household_id: str, expires_at: float) -> None: ...

    async def use_claim_code(self, code_hash: str, hub_id: str, now: float) -> str:
        """Spend a claim code for ``hub_id``: the household id, or ClaimError saying why not."""

    async def revoke_hub(self, hub_id: str, now: float) -> int:
        """Revoke every credential of the hub; how many were live."""

    async def store_batch(self, household_id: str, hub_id: str, seq: int,
                          readings: Sequence[Reading]) -> BatchResult:
        """Store a batch once: a known reading is not stored again. ``replayed``: the (hub, seq)
        was seen before and the batch brought nothing new (a retry after a lost acknowledgement)."""

    async def readings(self, household_id: str, from_ts: int, to_ts: int,
                       limit: int = 100_000) -> list[ReadingV1]: ...
    async def power_series(self, household_id: str, from_ts: int, to_ts: int) -> list[tuple[int, int]]:
        """(ts, net power W) in time order: the cheap path for charts."""

    async def register_buckets(self, household_id: str, from_ts: int, to_ts: int,
                               bucket_s: int = 1800) -> list[tuple[int, int]]:
        """(bucket start, last import register in Wh in that bucket), for settlement periods."""

    async def latest_reading(self, household_id: str) -> ReadingV1 | None: ...
    async def last_hub_readings(self, hub_id: str, channels: Iterable[str]) -> dict[str, ReadingV1]:
        """The latest stored reading of each of these channels of the hub (for register checks).

        Looked up per channel on the primary key: its cost does not grow with the table."""
    async def reading_before(self, household_id: str, ts: int) -> ReadingV1 | None:
        """The last reading strictly before ``ts`` (the register at a day's start)."""

    async def first_reading_from(self, household_id: str, ts: int) -> ReadingV1 | None: ...
    async def store_runs(self, household_id: str, hub_id: str, runs: list[ApplianceRunV1]) -> int:
        """Keep appliance runs once per (hub, appliance, start)."""

    async def runs(self, household_id: str, from_ts: int, to_ts: int) -> list[ApplianceRunV1]: ...
    async def store_energy(self, household_id: str, hub_id: str, energy: list[ApplianceEnergyV1]) -> int:
        """Keep per-appliance half-hour energy once per (hub, appliance, half hour)."""

    async def appliance_energy(self, household_id: str, from_ts: int, to_ts: int) -> list[ApplianceEnergyV1]:
        """The household's half-hour appliance energy with ``from_ts <= start < to_ts``, by start."""

    async def add_notification(self, household_id: str, kind: str, key: str, message: str) -> bool:
        """Record a notification once per (household, kind, key); False if it was already sent."""

    async def notifications(self, household_id: str) -> list[dict[str, object]]: ...

    async def set_display(self, household_id: str, state: DisplayState) -> None: ...
    async def display(self, household_id: str) -> DisplayState | None: ...
