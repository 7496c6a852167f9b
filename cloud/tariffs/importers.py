"""Importers for the formats tariffs really come in: the Octopus API and OpenEI's URDB.

Octopus publishes pence per kWh (``value_inc_vat`` is what a household pays) and pence
per day; the model keeps pounds, so both are divided by 100, exactly. URDB publishes
dollars with ``rate`` + ``adj`` per kWh and 12x24 local-time schedules.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloud.tariffs.model import (
    DynamicRates,
    FlatRates,
    Period,
    Price,
    ScheduleRates,
    Tariff,
    TariffVersion,
    Tier,
)
from protocols.readings import MAX_EPOCH_S

PENCE = Decimal(100)


class ImportError_(ValueError):
    """The input is not the format the importer reads; the message says what is missing."""


class _Input(BaseModel):
    """A part of what the importer reads: fields it uses are typed (a wrong type is named, not a traceback);
    fields it does not use are let through."""

    model_config = ConfigDict(extra="allow")


#: A price in the units it is published in (pence, dollars): a finite number.
Published = Annotated[Decimal, Field(allow_inf_nan=False)]


class OctopusRow(_Input):
    value_inc_vat: Published
    valid_from: str | None
    valid_to: str | None = None
    payment_method: str | None = None


class OctopusPage(_Input):
    results: list[OctopusRow]


class UrdbTier(_Input):
    rate: Published = Decimal(0)
    adj: Published = Decimal(0)
    max: Published | None = None
    unit: str = "kWh"


class UrdbRecord(_Input):
    energyratestructure: list[list[UrdbTier]]
    energyweekdayschedule: list[list[int]] | None = None
    energyweekendschedule: list[list[int]] | None = None
    fixedchargefirstmeter: Published | None = None
    fixedmonthlycharge: Published | None = None
    fixedchargeunits: str = "$/month"
    mincharge: Published | None = None
    minchargeunits: str = "$/month"
    startdate: int | None = Field(default=None, ge=0, le=MAX_EPOCH_S)  # Unix seconds
    enddate: int | None = Field(default=None, ge=0, le=MAX_EPOCH_S)
    utility: str | None = None
    name: str | None = None


Shape = TypeVar("Shape", bound=BaseModel)


def _shaped(model: type[Shape], doc: Any, path: Path, what: str) -> Shape:
    """``doc`` read as ``model``, or an ``ImportError_`` naming the file and where it differs from ``what``."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise ImportError_(f"{path}: not {what}: {first_error(exc)}") from None


def first_error(exc: ValidationError) -> str:
    """pydantic's first complaint as one line: where (or "the document"), what, and how many more."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the document"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    what = first["msg"].removeprefix("Value error, ")  # our own validators' words, without pydantic's label
    return f"{where}: {what}{more}"


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ImportError_(f"{path}: not JSON ({exc})") from exc


def _when(value: str | None, where: str) -> datetime:
    if value is None:
        raise ImportError_(f"{where}: missing")
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError) as exc:
        raise ImportError_(f"{where}: {value!r} is not an ISO 8601 time") from exc
    if stamp.tzinfo is None:
        raise ImportError_(f"{where}: {value!r} has no UTC offset")
    return stamp


def _until(value: str | None, where: str) -> datetime | None:
    """A ``valid_to``: null means open-ended."""
    return None if value is None else _when(value, where)


def _results(doc: Any, path: Path, payment_method: str | None) -> list[OctopusRow]:
    rows = _shaped(OctopusPage, doc, path, 'the Octopus API shape {"results": [...]}').results
    if payment_method:
        rows = [r for r in rows if r.payment_method in (None, payment_method)]
    return rows


def octopus(unit_rates: Path, standing_charges: Path | None = None, name: str = "Octopus tariff",
            payment_method: str | None = "DIRECT_DEBIT") -> Tariff:
    """Unit rates (and standing charges) as the Octopus REST API returns them."""
    rates = _results(_load(unit_rates), unit_rates, payment_method)
    if not rates:
        raise ImportError_(f"{unit_rates}: no unit rates")
    prices = [Price(valid_from=_when(r.valid_from, f"{unit_rates} valid_from"),
                    valid_to=_until(r.valid_to, f"{unit_rates} valid_to"),
                    rate=r.value_inc_vat / PENCE) for r in rates]
    if len(prices) == 1 and prices[0].valid_to is None:
        unit: FlatRates | DynamicRates = FlatRates(rate=prices[0].rate)
        start = prices[0].valid_from
    else:
        unit = DynamicRates(prices=prices)
        start = None
    if standing_charges is None:
        return Tariff(name=name, versions=[TariffVersion(valid_from=start, unit_rates=unit)])
    standing = _results(_load(standing_charges), standing_charges, payment_method)
    versions = [TariffVersion(valid_from=_when(s.valid_from, f"{standing_charges} valid_from"),
                              valid_to=_until(s.valid_to, f"{standing_charges} valid_to"),
                              unit_rates=unit, standing_charge_per_day=s.value_inc_vat / PENCE)
                for s in standing]
    versions.sort(key=lambda v: v.valid_from or datetime.min)
    return Tariff(name=name, versions=versions)


_FIXED_UNITS = {"$/month": "fixed_charge_per_month", "$/day": "standing_charge_per_day"}


def urdb(record_path: Path, timezone: str, name: str | None = None) -> Tariff:
    """An OpenEI URDB rate record, bare or in an ``items`` list (the first item)."""
    doc = _load(record_path)
    if isinstance(doc, dict) and isinstance(doc.get("items"), list):
        if not doc["items"]:
            raise ImportError_(f"{record_path}: 'items' is empty")
        doc = doc["items"][0]
    if not isinstance(doc, dict) or "energyratestructure" not in doc:
        raise ImportError_(f"{record_path}: no energyratestructure: not a URDB record")
    record = _shaped(UrdbRecord, doc, record_path, "a URDB record")
    periods = []
    basis: Literal["month", "daily_allowance"] = "month"
    for p, tiers in enumerate(record.energyratestructure):
        out = []
        for tier in tiers:
            if tier.unit in ("kWh daily", "kWh/day"):
                basis = "daily_allowance"
            out.append(Tier(max_kwh=tier.max, rate=tier.rate + tier.adj))
        periods.append(Period(name=f"Period {p + 1}", tiers=out))
    if record.energyweekdayschedule is None or record.energyweekendschedule is None:
        missing = "energyweekdayschedule" if record.energyweekdayschedule is None else "energyweekendschedule"
        raise ImportError_(f"{record_path}: missing {missing}")
    charges: dict[str, Decimal] = {}
    fixed = record.fixedchargefirstmeter or record.fixedmonthlycharge
    if fixed:
        units = record.fixedchargeunits
        if units not in _FIXED_UNITS:
            raise ImportError_(f"{record_path}: fixedchargeunits {units!r} not understood ({', '.join(_FIXED_UNITS)})")
        charges[_FIXED_UNITS[units]] = fixed
    if record.mincharge:
        if record.minchargeunits != "$/month":
            raise ImportError_(f"{record_path}: minchargeunits {record.minchargeunits!r} not supported (only "
                               "$/month)")
        charges["minimum_charge_per_month"] = record.mincharge
    start, end = record.startdate, record.enddate
    version = TariffVersion(
        valid_from=datetime.fromtimestamp(start, UTC) if start else None,
        valid_to=datetime.fromtimestamp(end, UTC) if end else None,
        unit_rates=ScheduleRates(periods=periods, weekday=record.energyweekdayschedule,
                                 weekend=record.energyweekendschedule, tier_basis=basis),
        **charges)
    label = name or " — ".join(v for v in (record.utility, record.name) if v) or "URDB tariff"
    return Tariff(name=label, currency="USD", timezone=timezone, versions=[version])
