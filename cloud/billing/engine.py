"""The billing engine.

Rules (the same everywhere Ohmni shows money):
- each interval is priced at the rate in force at its start;
- a daily standing charge once per local day, at the rate in force when that day begins;
- a monthly fixed charge once per billing month (calendar month in the tariff's zone)
  that the bill covers, at the rate in force when the bill's first day in it begins;
- a minimum charge per billing month tops the month's charges up to the minimum;
- VAT, where the tariff adds it, on the sum of all lines;
- amounts are exact decimals; the total is rounded half-up to the minor unit once, at the end.
Missing intervals are reported, never priced as zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from cloud.tariffs.model import ScheduleRates, Tariff, TariffVersion


@dataclass(frozen=True)
class Interval:
    start: datetime  # aware
    kwh: Decimal


@dataclass
class Line:
    description: str
    quantity: Decimal
    unit: str
    rate: Decimal
    amount: Decimal

    def as_json(self) -> dict[str, str]:
        return {"description": self.description, "quantity": _s(self.quantity), "unit": self.unit,
                "rate": _s(self.rate), "amount": _s(self.amount)}


@dataclass
class Bill:
    currency: str
    tariff: str
    date_from: date
    date_to: date
    timezone: str
    lines: list[Line]
    total: Decimal
    energy_kwh: Decimal
    interval_s: int | None
    missing: list[tuple[datetime, datetime]] = field(default_factory=list)
    missing_count: int = 0

    @property
    def subtotal(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))

    def as_json(self) -> dict[str, object]:
        return {
            "currency": self.currency,
            "total": _s(self.total),
            "lines": [line.as_json() for line in self.lines],
            "tariff": self.tariff,
            "from": self.date_from.isoformat(),
            "to": self.date_to.isoformat(),
            "timezone": self.timezone,
            "energy_kwh": _s(self.energy_kwh),
            "missing_intervals": self.missing_count,
            "missing": [{"from": a.isoformat(), "to": b.isoformat()} for a, b in self.missing],
        }


def _s(value: Decimal) -> str:
    """Exact decimal as a plain string (no exponent), trailing zeros kept as computed."""
    return format(value, "f")


class BillingError(ValueError):
    """Usage or tariff that cannot be billed; the message says which interval and why."""


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def _days(date_from: date, date_to: date) -> list[date]:
    return [date_from + timedelta(days=i) for i in range((date_to - date_from).days)]


class _Lines:
    """Line items keyed by (description, unit, rate), in first-seen order."""

    def __init__(self) -> None:
        self._lines: dict[tuple[str, str, Decimal], Line] = {}

    def add(self, description: str, unit: str, rate: Decimal, quantity: Decimal, amount: Decimal) -> None:
        key = (description, unit, rate)
        line = self._lines.get(key)
        if line is None:
            self._lines[key] = Line(description, quantity, unit, rate, amount)
        else:
            line.quantity += quantity
            line.amount += amount

    def all(self) -> list[Line]:
        return list(self._lines.values())


@dataclass
class _TierState:
    used: dict[tuple[object, ...], Decimal] = field(default_factory=dict)


def _schedule_lines(rates: ScheduleRates, local: datetime, kwh: Decimal, days_in_month: int,
                    state: _TierState) -> list[tuple[str, Decimal, Decimal]]:
    """Split ``kwh`` across the tiers of the period in force: [(band, rate, kwh)]."""
    index = rates.period_at(local)
    period = rates.periods[index]
    key = (local.year, local.month, index)
    used = state.used.get(key, Decimal(0))
    state.used[key] = used + kwh
    out: list[tuple[str, Decimal, Decimal]] = []
    lower = Decimal(0)
    remaining = kwh
    for n, tier in enumerate(period.tiers, start=1):
        upper = None if tier.max_kwh is None else tier.max_kwh * (
            days_in_month if rates.tier_basis == "daily_allowance" else 1)
        if upper is not None and used >= upper:
            lower = upper
            continue
        room = remaining if upper is None else min(remaining, upper - max(used, lower))
        if room > 0:
            band = period.name if len(period.tiers) == 1 else f"{period.name} tier {n}"
            out.append((band, tier.rate, room))
            remaining -= room
            used += room
        if remaining <= 0:
            break
        lower = upper if upper is not None else lower
    if remaining > 0:  # the last tier had a bound: price the rest at it
        out.append((f"{period.name} tier {len(period.tiers)}", period.tiers[-1].rate, remaining))
    return out


def _month_days_in_bill(days: list[date]) -> dict[tuple[int, int], int]:
    counts: dict[tuple[int, int], int] = {}
    for d in days:
        counts[(d.year, d.month)] = counts.get((d.year, d.month), 0) + 1
    return counts


def find_gaps(starts: list[datetime], window_start: datetime, window_end: datetime,
              step_s: int) -> tuple[list[tuple[datetime, datetime]], int]:
    """Ranges of expected interval starts with no usage, and how many intervals they hold."""
    have = {int(s.timestamp()) for s in starts}
    gaps: list[tuple[datetime, datetime]] = []
    count = 0
    t = int(window_start.timestamp())
    end = int(window_end.timestamp())
    gap_start: int | None = None
    while t < end:
        if t not in have:
            count += 1
            gap_start = t if gap_start is None else gap_start
        elif gap_start is not None:
            gaps.append((datetime.fromtimestamp(gap_start, UTC), datetime.fromtimestamp(t, UTC)))
            gap_start = None
        t += step_s
    if gap_start is not None:
        gaps.append((datetime.fromtimestamp(gap_start, UTC), datetime.fromtimestamp(end, UTC)))
    return gaps, count


def interval_length_s(starts: list[datetime]) -> int | None:
    """The usage's interval length: the smallest step between consecutive starts."""
    steps = [int((b - a).total_seconds()) for a, b in zip(starts, starts[1:], strict=False)]
    steps = [s for s in steps if s > 0]
    return min(steps) if steps else None


def price(tariff: Tariff, usage: Iterable[Interval], date_from: date, date_to: date,
          tz: ZoneInfo | None = None, interval_s: int | None = None) -> Bill:
    """Price usage over the local dates [date_from, date_to) — see the module docstring."""
    if date_to <= date_from:
        raise BillingError(f"--to {date_to} must be after --from {date_from}")
    zone = tz or ZoneInfo(tariff.timezone)
    window_start, window_end = local_midnight(date_from, zone), local_midnight(date_to, zone)
    intervals = sorted((i for i in usage if window_start <= i.start < window_end), key=lambda i: i.start)
    for a, b in zip(intervals, intervals[1:], strict=False):
        if a.start == b.start:
            raise BillingError(f"two usage rows start at {a.start.isoformat()}")
    days = _days(date_from, date_to)
    month_days = _month_days_in_bill(days)
    lines = _Lines()
    per_month: dict[tuple[int, int], Decimal] = {}
    tiers = _TierState()
    energy = Decimal(0)
    for interval in intervals:
        utc = interval.start.astimezone(UTC)
        local = interval.start.astimezone(zone)
        try:
            version = tariff.version_at(utc)
            if isinstance(version.unit_rates, ScheduleRates):
                parts = _schedule_lines(version.unit_rates, local, interval.kwh,
                                        month_days[(local.year, local.month)], tiers)
            else:
                found = version.unit_rates.rate_at(local, utc)
                parts = [(found.band, found.price, interval.kwh)]
        except LookupError as exc:
            raise BillingError(f"interval starting {interval.start.isoformat()}: {exc}") from exc
        for band, rate, kwh in parts:
            amount = kwh * rate
            lines.add(band, "kWh", rate, kwh, amount)
            month = (local.year, local.month)
            per_month[month] = per_month.get(month, Decimal(0)) + amount
        energy += interval.kwh
    first_day_of_month: dict[tuple[int, int], TariffVersion] = {}
    for day in days:
        start = local_midnight(day, zone)
        try:
            version = tariff.version_at(start.astimezone(UTC))
        except LookupError as exc:
            raise BillingError(f"day {day}: {exc}") from exc
        month = (day.year, day.month)
        first_day_of_month.setdefault(month, version)
        if version.standing_charge_per_day:
            lines.add("Standing charge", "day", version.standing_charge_per_day, Decimal(1),
                      version.standing_charge_per_day)
            per_month[month] = per_month.get(month, Decimal(0)) + version.standing_charge_per_day
    for month, version in first_day_of_month.items():
        if version.fixed_charge_per_month:
            lines.add("Fixed charge", "month", version.fixed_charge_per_month, Decimal(1),
                      version.fixed_charge_per_month)
            per_month[month] = per_month.get(month, Decimal(0)) + version.fixed_charge_per_month
        minimum = version.minimum_charge_per_month
        charged = per_month.get(month, Decimal(0))
        if minimum is not None and charged < minimum:
            lines.add(f"Minimum charge top-up ({month[0]}-{month[1]:02d})", "month", minimum - charged,
                      Decimal(1), minimum - charged)
    all_lines = lines.all()
    if tariff.vat_percent:
        subtotal = sum((line.amount for line in all_lines), Decimal(0))
        vat = tariff.vat_percent / 100
        all_lines.append(Line(f"VAT {tariff.vat_percent}%", subtotal, tariff.currency, vat, subtotal * vat))
    total = sum((line.amount for line in all_lines), Decimal(0)).quantize(tariff.minor_unit, ROUND_HALF_UP)
    step = interval_s or interval_length_s([i.start for i in intervals]) or 1800
    gaps, missing = find_gaps([i.start for i in intervals], window_start, window_end, step)
    return Bill(currency=tariff.currency, tariff=tariff.name, date_from=date_from, date_to=date_to,
                timezone=str(zone), lines=all_lines, total=total, energy_kwh=energy, interval_s=step,
                missing=gaps, missing_count=missing)
