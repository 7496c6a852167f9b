"""The household's live figures: power, face, today's energy and cost, the recent curve.

"Now" is the time of the household's latest reading (the meter's clock), so a
simulated home running faster than real time shows its own today. Money comes from
the billing engine: today's half-hours priced under the household's tariff.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from cloud.billing.engine import Interval, price
from cloud.storage.base import Household, Storage
from cloud.tariffs.model import CURRENCY_SYMBOL, FlatRates, Tariff
from protocols.display import DisplayState

SETTLEMENT_S = 1800
#: A half-hour seen to within this many seconds of either end counts as whole (``whole_half_hours``).
WHOLE_SLACK_S = 60


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
    tariff: str


class Summary(BaseModel):
    household_id: str
    household_name: str
    now_ts: int | None
    power_w: int | None
    display: DisplayState | None
    today: Today | None
    series: list[Point]
    notices: list[str] = []  # from the hub, e.g. readings kept at a lower resolution while offline


def local_day_start(ts: int, tz: ZoneInfo) -> int:
    local = datetime.fromtimestamp(ts, UTC).astimezone(tz)
    return int(datetime(local.year, local.month, local.day, tzinfo=tz).timestamp())


def minute_means(rows: list[tuple[int, int]]) -> list[Point]:
    """Average power per minute: a few hours fit a chart without shipping every second."""
    points: list[Point] = []
    minute, total, n = 0, 0, 0  # the minute is set before n counts a sample
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


async def settled_usage(store: Storage, household_id: str, from_ts: int,
                        to_ts: int) -> tuple[list[Interval], int | None]:
    """Half-hourly kWh from the import register: each half-hour's last register minus the one before; and the time
    of that first "before" (None: no readings), for ``whole_half_hours``.

    The register just before ``from_ts`` is the base, so energy used across the boundary counts
    (for a home whose first reading is inside the range, that first reading is).
    """
    base = await store.reading_before(household_id, from_ts) or await store.first_reading_from(household_id, from_ts)
    previous = (base.import_t1_wh + base.import_t2_wh) if base else None
    out: list[Interval] = []
    for bucket, register in await store.register_buckets(household_id, from_ts, to_ts, SETTLEMENT_S):
        if previous is not None:
            out.append(Interval(datetime.fromtimestamp(bucket, UTC), Decimal(register - previous) / 1000))
        previous = register
    return out, base.ts if base else None


async def settlement_usage(store: Storage, household_id: str, from_ts: int, to_ts: int) -> list[Interval]:
    """``settled_usage``'s half-hours alone: what a bill sums, where a half-hour seen in part still counts."""
    return (await settled_usage(store, household_id, from_ts, to_ts))[0]


def whole_half_hours(usage: list[Interval], since: int, until: int) -> list[Interval]:
    """The half-hours the readings span end to end, from the base reading at ``since`` to the latest at ``until``.

    The first half-hour of a new home (its hub joined part-way through) and the one still in progress hold minutes,
    not a half-hour: a floor or a typical half-hour taken from them would be too low. A half-hour's energy runs from
    the last reading before it to its own last one, so a meter's interval short at either end is still whole; up to
    ``WHOLE_SLACK_S`` is allowed, as the cloud does not know the meter's interval.
    """
    return [i for i in usage if since <= i.start.timestamp() + WHOLE_SLACK_S
            and i.start.timestamp() + SETTLEMENT_S - WHOLE_SLACK_S <= until]


def tariff_line(tariff: Tariff) -> str:
    version = tariff.versions[-1]
    rates = version.unit_rates
    parts = [tariff.name]
    if isinstance(rates, FlatRates):
        parts.append(f"{rates.rate * 100:.2f}p/kWh" if tariff.currency == "GBP" else f"{rates.rate}/kWh")
    if version.standing_charge_per_day:
        parts.append(f"standing charge {version.standing_charge_per_day * 100:.2f}p/day"
                     if tariff.currency == "GBP" else f"standing charge {version.standing_charge_per_day}/day")
    return ", ".join(parts)


async def household_summary(store: Storage, household: Household, hours: float = 6.0) -> Summary:
    tz = ZoneInfo(household.tz)
    latest = await store.latest_reading(household.id)
    display = await store.display(household.id)
    notices = [str(n["message"]) for n in await store.notifications(household.id) if n["kind"] == "hub_notice"]
    if latest is None:
        return Summary(household_id=household.id, household_name=household.name, now_ts=None, power_w=None,
                       display=display, today=None, series=[], notices=notices)
    tariff = Tariff.model_validate_json(household.tariff_json)
    day_start = local_day_start(latest.ts, tz)
    usage = await settlement_usage(store, household.id, day_start, latest.ts + 1)
    base = await store.reading_before(household.id, day_start) or await store.first_reading_from(
        household.id, day_start)
    assert base is not None  # latest itself is on or after day_start
    energy_wh = (latest.import_t1_wh + latest.import_t2_wh) - (base.import_t1_wh + base.import_t2_wh)
    today_date: date = datetime.fromtimestamp(day_start, tz).date()
    bill = price(tariff, usage, today_date, today_date + timedelta(days=1), tz, interval_s=SETTLEMENT_S)
    today = Today(
        date=today_date.isoformat(),
        energy_wh=energy_wh,
        kwh=f"{energy_wh / 1000:.3f}",
        cost=f"{bill.total:.2f}",
        currency=tariff.currency,
        currency_symbol=CURRENCY_SYMBOL.get(tariff.currency, tariff.currency + " "),
        tariff=tariff_line(tariff),
    )
    since = latest.ts - int(timedelta(hours=hours).total_seconds())
    series = minute_means(await store.power_series(household.id, since, latest.ts + 1))
    return Summary(household_id=household.id, household_name=household.name, now_ts=latest.ts,
                   power_w=latest.power_import_w - latest.power_export_w, display=display, today=today,
                   series=series, notices=notices)
