"""Use over a day, a week or a month, with the tariff's bands behind it.

Day and week are half-hourly (what settlement and the bill use); a month is daily. The
bands are the tariff's unit-rate bands over the same span (for a month, its nights and days
behind the daily bars), merged where consecutive
half-hours share one, each marked cheap, standard or peak against the span's own range of
rates so a chart can shade them without knowing the tariff.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from cloud.coach.nudges import unit_rate
from cloud.storage.base import Household, Storage
from cloud.summary import settlement_usage
from cloud.tariffs.model import Tariff

Span = Literal["day", "week", "month"]
SPANS: dict[str, tuple[int, bool]] = {"day": (1, False), "week": (7, False), "month": (30, True)}  # days, daily?
HALF_HOUR = timedelta(minutes=30)


class Bar(BaseModel):
    start: int  # UTC epoch seconds
    kwh: str


class Band(BaseModel):
    start: int
    end: int
    band: str
    rate: str
    level: Literal["cheap", "standard", "peak"]


class History(BaseModel):
    span: Span
    resolution_s: int
    bars: list[Bar]
    bands: list[Band]
    currency: str


def _bands(tariff: Tariff, tz: ZoneInfo, start: datetime, end: datetime) -> list[Band]:
    raw: list[tuple[datetime, datetime, str, Decimal]] = []
    t = start
    while t < end:
        try:
            name, rate = unit_rate(tariff, t, tz)
        except LookupError:
            name, rate = "unpriced", Decimal(0)
        if raw and raw[-1][2] == name and raw[-1][3] == rate:
            raw[-1] = (raw[-1][0], t + HALF_HOUR, name, rate)
        else:
            raw.append((t, t + HALF_HOUR, name, rate))
        t += HALF_HOUR
    rates = sorted({r for *_, r in raw})
    low, high = rates[0], rates[-1]

    def level(rate: Decimal) -> Literal["cheap", "standard", "peak"]:
        if low == high:
            return "standard"
        return "cheap" if rate == low else "peak" if rate == high and len(rates) > 2 else "standard"
    return [Band(start=int(a.timestamp()), end=int(b.timestamp()), band=n, rate=str(r), level=level(r))
            for a, b, n, r in raw]


async def history(store: Storage, household: Household, span: Span) -> History:
    tariff = Tariff.model_validate_json(household.tariff_json)
    tz = ZoneInfo(household.tz)
    days, daily = SPANS[span]
    latest = await store.latest_reading(household.id)
    now = datetime.fromtimestamp(latest.ts if latest else 0, UTC).astimezone(tz)
    end = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    usage = await settlement_usage(store, household.id, int(start.timestamp()), int(end.timestamp())) if latest else []
    if daily:
        totals: OrderedDict[int, Decimal] = OrderedDict()
        for interval in usage:
            day = interval.start.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
            key = int(day.timestamp())
            totals[key] = totals.get(key, Decimal(0)) + interval.kwh
        bars = [Bar(start=k, kwh=f"{v:.3f}") for k, v in totals.items()]
    else:
        bars = [Bar(start=int(i.start.timestamp()), kwh=f"{i.kwh:.3f}") for i in usage]
    return History(span=span, resolution_s=86400 if daily else 1800, bars=bars,
                   bands=_bands(tariff, tz, start.astimezone(UTC), end.astimezone(UTC)),
                   currency=tariff.currency)
