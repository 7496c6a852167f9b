"""The household's live figures: power, face, today's energy and cost, the recent curve.

"Now" is the time of the household's latest reading (the meter's clock), so a
simulated home running faster than real time shows its own today.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from cloud.storage.base import Household, Storage
from cloud.tariffs import CURRENCY_SYMBOL, FlatTariff
from protocols.display import DisplayState


class Point(BaseModel):
    ts: int
    power_w: float


class Today(BaseModel):
    date: str
    energy_wh: int
    kwh: str
    cost: str
    currency: str
    currency_symbol: str
    unit_rate_p_per_kwh: str
    standing_p_per_day: str


class Summary(BaseModel):
    household_id: str
    household_name: str
    now_ts: int | None
    power_w: int | None
    display: DisplayState | None
    today: Today | None
    series: list[Point]


def local_day_start(ts: int, tz: ZoneInfo) -> int:
    local = datetime.fromtimestamp(ts, UTC).astimezone(tz)
    return int(datetime(local.year, local.month, local.day, tzinfo=tz).timestamp())


def minute_means(rows: list[tuple[int, int]]) -> list[Point]:
    """Average power per minute: a few hours fit a chart without shipping every second."""
    points: list[Point] = []
    minute, total, n = None, 0, 0
    for ts, watts in rows:
        m = ts // 60
        if m != minute and n:
            points.append(Point(ts=minute * 60, power_w=round(total / n, 1)))
            total, n = 0, 0
        minute = m
        total += watts
        n += 1
    if n:
        points.append(Point(ts=minute * 60, power_w=round(total / n, 1)))
    return points


async def household_summary(store: Storage, household: Household, hours: float = 6.0) -> Summary:
    tz = ZoneInfo(household.tz)
    latest = await store.latest_reading(household.id)
    display = await store.display(household.id)
    if latest is None:
        return Summary(household_id=household.id, household_name=household.name, now_ts=None, power_w=None,
                       display=display, today=None, series=[])
    tariff = FlatTariff.model_validate_json(household.tariff_json)
    day_start = local_day_start(latest.ts, tz)
    base = await store.reading_before(household.id, day_start) or await store.first_reading_from(
        household.id, day_start)
    assert base is not None  # latest itself is on or after day_start
    energy_wh = (latest.import_t1_wh + latest.import_t2_wh) - (base.import_t1_wh + base.import_t2_wh)
    cost = tariff.day_cost(energy_wh)
    today = Today(
        date=datetime.fromtimestamp(day_start, tz).date().isoformat(),
        energy_wh=energy_wh,
        kwh=f"{energy_wh / 1000:.3f}",
        cost=f"{cost:.2f}",
        currency=tariff.currency,
        currency_symbol=CURRENCY_SYMBOL.get(tariff.currency, tariff.currency + " "),
        unit_rate_p_per_kwh=str(tariff.unit_rate_p_per_kwh),
        standing_p_per_day=str(tariff.standing_p_per_day),
    )
    since = latest.ts - int(timedelta(hours=hours).total_seconds())
    series = minute_means(await store.power_series(household.id, since, latest.ts + 1))
    return Summary(household_id=household.id, household_name=household.name, now_ts=latest.ts,
                   power_w=latest.power_import_w - latest.power_export_w, display=display, today=today,
                   series=series)
