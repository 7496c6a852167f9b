"""Bill preview: this period so far, and a projection to its end from the home's own pattern.

The projection fills every remaining half-hour with the home's mean use in that
half-hour of the day (over up to 28 days of its own history) and prices the whole
period through the billing engine, so time-of-use tariffs project correctly. The
uncertainty band is 80% (±1.28σ) of the day-to-day spread of the home's daily use,
scaled by the days left and priced at the period's average unit price.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from cloud.billing.engine import Bill, Interval, local_midnight, price
from cloud.coach.periods import billing_period
from cloud.tariffs.model import Tariff

HISTORY_DAYS = 28
SLOT_S = 1800
Z80 = Decimal("1.28")


class BillPreview(BaseModel):
    currency: str
    period_start: date
    covered_from: date  # later than period_start for a home whose hub joined this period
    period_end: date
    days_total: int
    days_elapsed: int
    so_far: str
    so_far_kwh: str
    projected: str
    projected_low: str
    projected_high: str
    projected_kwh: str
    history_days: int
    basis: str



def slot_profile(history: list[Interval], tz: ZoneInfo) -> tuple[dict[int, Decimal], Decimal]:
    """Mean kWh per half-hour slot of the local day, and the mean over all slots."""
    sums: dict[int, list[Decimal]] = defaultdict(list)
    for interval in history:
        local = interval.start.astimezone(tz)
        sums[local.hour * 2 + local.minute // 30].append(interval.kwh)
    profile = {slot: sum(v, Decimal(0)) / len(v) for slot, v in sums.items()}
    overall = sum((i.kwh for i in history), Decimal(0)) / len(history) if history else Decimal(0)
    return profile, overall


def daily_totals(history: list[Interval], tz: ZoneInfo) -> list[Decimal]:
    """kWh of each complete local day (all its half-hours present) in the history."""
    days: dict[date, list[Decimal]] = defaultdict(list)
    for interval in history:
        days[interval.start.astimezone(tz).date()].append(interval.kwh)
    out = []
    for day, values in days.items():
        length = local_midnight(day + timedelta(days=1), tz) - local_midnight(day, tz)
        expected = int(length.total_seconds()) // SLOT_S
        if len(values) == expected:
            out.append(sum(values, Decimal(0)))
    return out


def preview(tariff: Tariff, tz: ZoneInfo, billing_day: int, now: datetime, history: list[Interval]) -> BillPreview:
    """``history`` holds the home's half-hourly usage up to ``now`` (at least this period's)."""
    return project(tariff, tz, billing_day, now, history)[0]


def project(tariff: Tariff, tz: ZoneInfo, billing_day: int, now: datetime, history: list[Interval],
            whole: list[Interval] | None = None) -> tuple[BillPreview, Bill]:
    """The preview, and the projected bill itself (actual usage plus the filled-in rest).

    The rest is filled from the typical half-hour of each slot of the day over ``whole``, the half-hours seen
    from end to end (``cloud.summary.whole_half_hours``), or ``history`` while none is: one seen in part would
    lower its slot."""
    today = now.astimezone(tz).date()
    period_start, end = billing_period(today, billing_day)
    # Ohmni cannot see before the hub joined: a home new this period is previewed from its first day.
    first_seen = min((i.start for i in history), default=now).astimezone(tz).date()
    start = max(period_start, first_seen)
    period_start_utc = local_midnight(start, tz)
    actual = [i for i in history if period_start_utc <= i.start <= now]
    so_far = price(tariff, actual, start, today + timedelta(days=1), tz, interval_s=SLOT_S)
    recent_from = now - timedelta(days=HISTORY_DAYS)
    recent = [i for i in history if i.start >= recent_from]
    profile, overall = slot_profile([i for i in whole or history if i.start >= recent_from], tz)
    t = datetime.fromtimestamp((int(now.timestamp()) // SLOT_S + 1) * SLOT_S, UTC)
    end_utc = local_midnight(end, tz)
    filled: list[Interval] = []
    while t < end_utc:
        local = t.astimezone(tz)
        filled.append(Interval(t, profile.get(local.hour * 2 + local.minute // 30, overall)))
        t += timedelta(seconds=SLOT_S)
    have = {i.start for i in actual}
    projected = price(tariff, actual + [i for i in filled if i.start not in have], start, end, tz, interval_s=SLOT_S)
    days_left = Decimal((end - today).days)
    totals = daily_totals(recent, tz)
    unit_price = _unit_price(projected)
    if len(totals) >= 3:
        spread = Decimal(str(statistics.stdev(float(x) for x in totals)))
        band = Z80 * spread * days_left.sqrt() * unit_price
        basis = f"your own use over the last {len(totals)} full days"
    else:
        band = (projected.total - so_far.total) * Decimal("0.25")
        basis = "the little history there is so far (±25% on what is still to come)"
    return BillPreview(
        currency=tariff.currency, period_start=period_start, covered_from=start, period_end=end,
        days_total=(end - period_start).days,
        days_elapsed=(today - start).days + 1, so_far=tariff.money(so_far.total),
        so_far_kwh=f"{so_far.energy_kwh:.3f}", projected=tariff.money(projected.total),
        projected_low=tariff.money(max(so_far.total, projected.total - band)),
        projected_high=tariff.money(projected.total + band), projected_kwh=f"{projected.energy_kwh:.3f}",
        history_days=len(totals), basis=basis), projected


def _unit_price(bill: Bill) -> Decimal:
    energy_cost = sum((line.amount for line in bill.lines if line.unit == "kWh"), Decimal(0))
    return energy_cost / bill.energy_kwh if bill.energy_kwh else Decimal(0)
