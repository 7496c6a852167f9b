"""The tariff model: versions in force between dates, each with unit rates and charges.

All money is in the currency's major unit (GBP, USD) as exact decimals; an importer
converts pence to pounds. Unit-rate shapes are a table keyed by ``type`` — flat,
windows (time of day in the tariff's zone, or UTC), dynamic (published half-hourly
prices) and schedule (URDB-style periods with tiers) — so adding a shape never
touches the billing engine.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator

CURRENCY_SYMBOL = {"GBP": "£", "EUR": "€", "USD": "$"}
#: The most a price may be, per kWh, per day or per month, either way (dynamic prices go negative), in the
#: currency's own units: the dearest hour on record (Texas, February 2021) was $9 a kWh, and a yen tariff's
#: monthly charge is a few thousand. Past it a figure is corrupt, and a bill of it would be nonsense, or past the
#: 28 digits Decimal keeps.
MAX_PRICE = Decimal(100_000)
#: A tier's bound: more kWh than any home uses in a month, many times over.
MAX_TIER_KWH = Decimal(1_000_000)

MINOR_UNIT = {"GBP": Decimal("0.01"), "EUR": Decimal("0.01"), "USD": Decimal("0.01"), "JPY": Decimal("1")}


class Plausible(NamedTuple):
    """The most a known currency's prices may be, and what its hundredth is called, for the hint."""

    per_kwh: Decimal
    hundredth: str | None


#: In the currencies Ohmni knows, the most a unit rate (a kWh, either way) or a standing charge (a day) may be, in
#: the major unit; a monthly charge may be 31 times it. Each is above the dearest on record (Octopus Agile's cap,
#: £1 a kWh; day-ahead Europe's €4; ERCOT's $9, February 2021; JEPX's ¥251, January 2021) and below the commonest
#: slip, a price typed in pence or cents (24.50 for 24.50p). A currency not here is held to MAX_PRICE alone.
PLAUSIBLE = {"GBP": Plausible(Decimal(10), "pence"), "EUR": Plausible(Decimal(10), "cents"),
             "USD": Plausible(Decimal(20), "cents"), "JPY": Plausible(Decimal(2_000), None)}
#: How many days' worth of a per-kWh bound each kind of price may be.
PER_DAYS = {"kWh": 1, "day": 1, "month": 31}


class Rate(BaseModel):
    """What one kWh costs at an instant, and the name of the band for the bill's line."""

    band: str
    price: Decimal


class FlatRates(BaseModel):
    type: Literal["flat"] = "flat"
    rate: Decimal = Field(ge=0, le=MAX_PRICE)

    def rate_at(self, local: datetime, utc: datetime) -> Rate:
        return Rate(band="Energy", price=self.rate)

    def rates(self) -> list[tuple[str, Decimal]]:
        return [("rate", self.rate)]


class Window(BaseModel):
    """A band from ``start`` to ``end`` wall-clock time (``end`` <= ``start`` wraps midnight)."""

    name: str
    start: time
    end: time
    rate: Decimal = Field(ge=0, le=MAX_PRICE)
    weekdays: list[int] | None = Field(default=None, description="0=Monday … 6=Sunday; all days if absent")
    months: list[int] | None = Field(default=None, description="1-12; all months if absent")

    def contains(self, t: datetime) -> bool:
        if self.weekdays is not None and t.weekday() not in self.weekdays:
            return False
        if self.months is not None and t.month not in self.months:
            return False
        clock = t.time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= clock < self.end
        return clock >= self.start or clock < self.end


class WindowRates(BaseModel):
    """Economy 7, Octopus Go/Cosy-style, US peak/off-peak: bands by wall clock."""

    type: Literal["windows"] = "windows"
    clock: Literal["local", "utc"] = "local"
    default_name: str = "Standard"
    default_rate: Decimal = Field(ge=0, le=MAX_PRICE)
    windows: list[Window]

    def rate_at(self, local: datetime, utc: datetime) -> Rate:
        t = local if self.clock == "local" else utc
        for window in self.windows:
            if window.contains(t):
                return Rate(band=window.name, price=window.rate)
        return Rate(band=self.default_name, price=self.default_rate)

    def rates(self) -> list[tuple[str, Decimal]]:
        windows = [(f"windows.{i}.rate", window.rate) for i, window in enumerate(self.windows)]
        return [("default_rate", self.default_rate), *windows]


class Price(BaseModel):
    valid_from: datetime
    valid_to: datetime | None = None  # open-ended
    rate: Decimal = Field(ge=-MAX_PRICE, le=MAX_PRICE)

    @field_validator("valid_from", "valid_to")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("prices need times with a UTC offset")
        return value


class DynamicRates(BaseModel):
    """Published prices (Octopus Agile): each interval is priced at the price covering its start."""

    type: Literal["dynamic"] = "dynamic"
    prices: list[Price]
    _starts: list[datetime] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _sorted(self) -> DynamicRates:
        self.prices.sort(key=lambda p: p.valid_from)
        self._starts = [p.valid_from for p in self.prices]
        return self

    def rate_at(self, local: datetime, utc: datetime) -> Rate:
        i = bisect_right(self._starts, utc) - 1
        if i >= 0:
            price = self.prices[i]
            if price.valid_to is None or utc < price.valid_to:
                return Rate(band="Energy (dynamic)", price=price.rate)
        raise LookupError(f"no published price covers {utc.isoformat()}")

    def rates(self) -> list[tuple[str, Decimal]]:
        return [(f"prices.{i}.rate (from {p.valid_from.isoformat()})", p.rate) for i, p in enumerate(self.prices)]


class Tier(BaseModel):
    max_kwh: Decimal | None = Field(default=None, ge=0, le=MAX_TIER_KWH,
                                    description="upper bound of the tier; null = no bound")
    rate: Decimal = Field(ge=-MAX_PRICE, le=MAX_PRICE)


class Period(BaseModel):
    name: str
    tiers: list[Tier] = Field(min_length=1)


class ScheduleRates(BaseModel):
    """URDB-style: a 12x24 month-by-hour schedule of periods, each with tiers.

    Tier bounds count the kWh of that period within the billing month; with
    ``tier_basis = "daily_allowance"`` a bound is kWh per day (a baseline allowance)
    and counts that many times the days of the billing month in the bill.
    """

    type: Literal["schedule"] = "schedule"
    periods: list[Period]
    weekday: list[list[int]]
    weekend: list[list[int]]
    tier_basis: Literal["month", "daily_allowance"] = "month"

    @model_validator(mode="after")
    def _shape(self) -> ScheduleRates:
        for name, table in (("weekday", self.weekday), ("weekend", self.weekend)):
            if len(table) != 12 or any(len(row) != 24 for row in table):
                raise ValueError(f"{name} schedule must be 12 months x 24 hours")
            if any(not 0 <= p < len(self.periods) for row in table for p in row):
                raise ValueError(f"{name} schedule names a period that does not exist")
        return self

    def period_at(self, local: datetime) -> int:
        table = self.weekend if local.weekday() >= 5 else self.weekday
        return table[local.month - 1][local.hour]

    def rates(self) -> list[tuple[str, Decimal]]:
        return [(f"periods.{i}.tiers.{j}.rate", tier.rate) for i, period in enumerate(self.periods)
                for j, tier in enumerate(period.tiers)]


UnitRates = Annotated[FlatRates | WindowRates | DynamicRates | ScheduleRates, Field(discriminator="type")]


class TariffVersion(BaseModel):
    """Prices in force from ``valid_from`` (inclusive) to ``valid_to`` (exclusive)."""

    valid_from: datetime | None = None
    valid_to: datetime | None = None
    unit_rates: UnitRates
    standing_charge_per_day: Decimal = Field(default=Decimal(0), ge=0, le=MAX_PRICE)
    fixed_charge_per_month: Decimal = Field(default=Decimal(0), ge=0, le=MAX_PRICE)
    minimum_charge_per_month: Decimal | None = Field(default=None, ge=0, le=MAX_PRICE)

    def covers(self, t: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= t) and (self.valid_to is None or t < self.valid_to)

    def prices(self) -> list[tuple[str, Decimal, str]]:
        """Every price in this version: where it is, its value, and what it is charged per (a ``PER_DAYS`` key)."""
        charges = [("standing_charge_per_day", self.standing_charge_per_day, "day"),
                   ("fixed_charge_per_month", self.fixed_charge_per_month, "month"),
                   ("minimum_charge_per_month", self.minimum_charge_per_month, "month")]
        return ([(f"unit_rates.{where}", value, "kWh") for where, value in self.unit_rates.rates()]
                + [(where, value, per) for where, value, per in charges if value is not None])


class Tariff(BaseModel):
    schema_version: Literal[1] = 1
    name: str
    currency: str = Field(default="GBP", description="an ISO 4217 code: GBP, EUR, USD")
    timezone: str = "Europe/London"
    vat_percent: Decimal = Field(default=Decimal(0), ge=0, le=100, description="added on top; 0 when rates include "
                                 "VAT")
    versions: list[TariffVersion] = Field(min_length=1)

    @field_validator("currency")
    @classmethod
    def _iso_code(cls, value: str) -> str:
        if not (len(value) == 3 and value.isascii() and value.isalpha() and value.isupper()):
            raise ValueError(f"currency {value!r} is not an ISO 4217 code (three capitals: GBP, EUR, USD)")
        return value

    @model_validator(mode="after")
    def _plausible(self) -> Tariff:
        """A price past any the currency has known is refused, naming it, and a likely slip of pence for pounds."""
        known = PLAUSIBLE.get(self.currency)
        if known is None:
            return self
        for i, version in enumerate(self.versions):
            for where, value, per in version.prices():
                bound = known.per_kwh * PER_DAYS[per]
                if abs(value) > bound:
                    major = value.scaleb(-2)
                    hint = (f"; prices are in {self.currency}, not {known.hundredth}: {major} {self.currency}?"
                            if known.hundredth and abs(major) <= bound else "")
                    raise ValueError(f"versions.{i}.{where}: {value} {self.currency} a {per} is more than any "
                                     f"{self.currency} tariff charges (at most {bound}){hint}")
        return self

    @property
    def minor_unit(self) -> Decimal:
        return MINOR_UNIT.get(self.currency, Decimal("0.01"))

    def money(self, value: Decimal) -> str:
        """An amount as the bill shows it: rounded half-up once, to the currency's smallest unit."""
        return str(value.quantize(self.minor_unit, ROUND_HALF_UP))

    def version_at(self, t: datetime) -> TariffVersion:
        for version in self.versions:
            if version.covers(t):
                return version
        raise LookupError(f"tariff {self.name!r} has no prices in force at {t.astimezone(UTC).isoformat()}")


def demo_tariff() -> Tariff:
    """The demo household's flat tariff: 24.50p/kWh and 60.10p a day, VAT included."""
    return Tariff(name="Demo flat rate", versions=[TariffVersion(
        unit_rates=FlatRates(rate=Decimal("0.2450")), standing_charge_per_day=Decimal("0.6010"))])


def catalogue() -> list[Tariff]:
    """Example tariffs a household is compared against (package data, one JSON file each)."""
    return list(named_tariffs().values())


#: The demo household's own tariff, by the name `ohmni demo --tariff` takes.
DEMO_TARIFF = "flat"


def named_tariffs() -> dict[str, Tariff]:
    """The catalogue by file name ("economy7", "night-ev", "flat-fixed"), in that order."""
    from importlib import resources

    folder = resources.files("cloud.tariffs").joinpath("catalogue")
    return {f.name.removesuffix(".json"): Tariff.model_validate_json(f.read_text())
            for f in sorted(folder.iterdir(), key=lambda f: f.name) if f.name.endswith(".json")}


def tariff_named(name: str) -> Tariff:
    """``DEMO_TARIFF`` (the demo's flat rate) or a catalogue tariff by file name; any other name is a ValueError
    that lists them."""
    if name == DEMO_TARIFF:
        return demo_tariff()
    found = named_tariffs()
    if name not in found:
        raise ValueError(f"no tariff {name!r}: choose {', '.join([DEMO_TARIFF, *found])}")
    return found[name]
