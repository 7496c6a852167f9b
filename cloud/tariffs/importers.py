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
from typing import Any, Literal

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

PENCE = Decimal(100)


class ImportError_(ValueError):
    """The input is not the format the importer reads; the message says what is missing."""


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
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


def _results(doc: Any, path: Path, payment_method: str | None) -> list[dict[str, Any]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise ImportError_(f"{path}: expected the Octopus API shape {{\"results\": [...]}}")
    rows = doc["results"]
    if payment_method:
        rows = [r for r in rows if r.get("payment_method") in (None, payment_method)]
    for i, row in enumerate(rows):
        if "value_inc_vat" not in row or "valid_from" not in row:
            raise ImportError_(f"{path}: results[{i}] lacks value_inc_vat or valid_from")
    return rows


def octopus(unit_rates: Path, standing_charges: Path | None = None, name: str = "Octopus tariff",
            payment_method: str | None = "DIRECT_DEBIT") -> Tariff:
    """Unit rates (and standing charges) as the Octopus REST API returns them."""
    rates = _results(_load(unit_rates), unit_rates, payment_method)
    if not rates:
        raise ImportError_(f"{unit_rates}: no unit rates")
    prices = [Price(valid_from=_when(r["valid_from"], f"{unit_rates} valid_from"),
                    valid_to=_until(r.get("valid_to"), f"{unit_rates} valid_to"),
                    rate=Decimal(str(r["value_inc_vat"])) / PENCE) for r in rates]
    if len(prices) == 1 and prices[0].valid_to is None:
        unit: FlatRates | DynamicRates = FlatRates(rate=prices[0].rate)
        start = prices[0].valid_from
    else:
        unit = DynamicRates(prices=prices)
        start = None
    if standing_charges is None:
        return Tariff(name=name, versions=[TariffVersion(valid_from=start, unit_rates=unit)])
    standing = _results(_load(standing_charges), standing_charges, payment_method)
    versions = [TariffVersion(valid_from=_when(s["valid_from"], f"{standing_charges} valid_from"),
                              valid_to=_until(s.get("valid_to"), f"{standing_charges} valid_to"),
                              unit_rates=unit, standing_charge_per_day=Decimal(str(s["value_inc_vat"])) / PENCE)
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
    periods = []
    basis: Literal["month", "daily_allowance"] = "month"
    for p, tiers in enumerate(doc["energyratestructure"]):
        out = []
        for tier in tiers:
            rate = Decimal(str(tier.get("rate", 0))) + Decimal(str(tier.get("adj", 0)))
            bound = tier.get("max")
            if tier.get("unit", "kWh") in ("kWh daily", "kWh/day"):
                basis = "daily_allowance"
            out.append(Tier(max_kwh=None if bound is None else Decimal(str(bound)), rate=rate))
        periods.append(Period(name=f"Period {p + 1}", tiers=out))
    for key in ("energyweekdayschedule", "energyweekendschedule"):
        if key not in doc:
            raise ImportError_(f"{record_path}: missing {key}")
    charges: dict[str, Decimal] = {}
    fixed = doc.get("fixedchargefirstmeter") or doc.get("fixedmonthlycharge")
    if fixed:
        units = doc.get("fixedchargeunits", "$/month")
        if units not in _FIXED_UNITS:
            raise ImportError_(f"{record_path}: fixedchargeunits {units!r} not understood ({', '.join(_FIXED_UNITS)})")
        charges[_FIXED_UNITS[units]] = Decimal(str(fixed))
    minimum = doc.get("mincharge")
    if minimum:
        units = doc.get("minchargeunits", "$/month")
        if units != "$/month":
            raise ImportError_(f"{record_path}: minchargeunits {units!r} not supported (only $/month)")
        charges["minimum_charge_per_month"] = Decimal(str(minimum))
    start = doc.get("startdate")
    end = doc.get("enddate")
    version = TariffVersion(
        valid_from=datetime.fromtimestamp(int(start), UTC) if start else None,
        valid_to=datetime.fromtimestamp(int(end), UTC) if end else None,
        unit_rates=ScheduleRates(periods=periods, weekday=doc["energyweekdayschedule"],
                                 weekend=doc["energyweekendschedule"], tier_basis=basis),
        **charges)
    label = name or " — ".join(str(doc[k]) for k in ("utility", "name") if doc.get(k)) or "URDB tariff"
    return Tariff(name=label, currency="USD", timezone=timezone, versions=[version])
