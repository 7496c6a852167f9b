"""Nudges whose savings are true.

- Shift: an appliance run's own power profile (a run the hub is at least half sure of, of an
  appliance a home starts when it likes: ``SHIFTABLE``)
  priced at its real start and at every other start that fits (no minute in quiet hours,
  inside not-before/not-after, every minute priced by a published rate, and for banded
  tariffs wholly inside one band).
  The saving is the difference of those two prices; under a minimum it is not worth
  saying, so no nudge.
- Tariff switch: the last 30 or 90 days re-priced under candidate tariffs, annualised.
- Always-on: the home's overnight floor and what it costs a year.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, computed_field

from cloud.billing.engine import Interval, local_midnight, price
from cloud.tariffs.model import CURRENCY_SYMBOL, DynamicRates, ScheduleRates, Tariff
from protocols.uplink import ApplianceRunV1

MINUTE = timedelta(minutes=1)
#: Appliances a home starts when it likes: a wash or a dry can wait for a cheaper hour. A kettle, a microwave or a
#: fridge runs when it is needed, so "boil the kettle at 02:00 and save 6p" is no advice, however true the sum.
SHIFTABLE = frozenset({"washing_machine", "dishwasher", "tumble_dryer", "washer_dryer"})


@dataclass(frozen=True)
class ShiftPrefs:
    quiet_start: time | None = None  # no minute of a proposed run in [quiet_start, quiet_end)
    quiet_end: time | None = None
    not_before: time | None = None  # a proposed run starts at or after this wall-clock time
    not_after: time | None = None  # … and ends by this one
    min_saving: Decimal = Decimal("0.05")
    step_minutes: int = 30
    #: a run the hub was less sure of than this is not priced into a nudge: telling a home its washer ran when it
    #: did not costs more trust than the pennies are worth (runs from disaggregation carry their confidence)
    min_confidence: float = 0.5
    #: appliances whose runs a home could have started at another hour (``SHIFTABLE``)
    appliances: frozenset[str] = field(default_factory=lambda: SHIFTABLE)


class Nudge(BaseModel):
    kind: str
    appliance: str | None = None
    message: str
    #: what following the nudge saves; for ``always_on``, what the floor costs (the most switching all off
    #: could save: a fridge stays on, so it is not a saving to promise)
    saving: str
    currency: str
    proposed_start: datetime | None = None
    original_start: datetime | None = None
    annual: bool = False  # ``saving`` is a year's, not one run's
    target: str | None = None  # the tariff a switch nudge proposes
    status: Literal["open", "accepted"] = "open"  # dismissed nudges are not shown again

    @computed_field  # type: ignore[prop-decorator]
    @property
    def id(self) -> str:
        """Stable while the advice stands (not the wording: the always-on watts move as data comes in)."""
        key = f"{self.kind}|{self.appliance}|{self.original_start}|{self.target}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]


def profile_kwh(run: ApplianceRunV1) -> list[Decimal]:
    minutes = max(1, round((run.end - run.start) / 60))
    if run.profile_w:
        return [Decimal(str(round(w, 3))) / 60000 for w in run.profile_w]
    per_minute = Decimal(str(run.energy_wh)) / 1000 / minutes
    return [per_minute] * minutes


def unit_rate(tariff: Tariff, at: datetime, tz: ZoneInfo) -> tuple[str, Decimal]:
    """The band and price per kWh at ``at`` (the first tier of a tiered period)."""
    version = tariff.version_at(at)
    rates = version.unit_rates
    local = at.astimezone(tz)
    if isinstance(rates, ScheduleRates):
        period = rates.periods[rates.period_at(local)]
        return period.name, period.tiers[0].rate
    rate = rates.rate_at(local, at.astimezone(UTC))
    return rate.band, rate.price


def run_cost(tariff: Tariff, tz: ZoneInfo, start: datetime, kwh: list[Decimal]) -> tuple[Decimal, set[str]]:
    """The run's price starting at ``start`` and the bands it touches (LookupError if unpriced)."""
    total, bands = Decimal(0), set()
    for i, energy in enumerate(kwh):
        band, rate = unit_rate(tariff, start + i * MINUTE, tz)
        total += energy * rate
        bands.add(band)
    return total, bands


def _in(clock: time, start: time, end: time) -> bool:
    return start <= clock < end if start < end else clock >= start or clock < end


def fits(tariff: Tariff, tz: ZoneInfo, start: datetime, minutes: int, prefs: ShiftPrefs,
         published_until: datetime | None) -> bool:
    """Whether a run of ``minutes`` may start at ``start`` (see the module docstring)."""
    end = start + minutes * MINUTE
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    if prefs.not_before and local_start.time() < prefs.not_before:
        return False
    if prefs.not_after and (local_end.date() > local_start.date() or local_end.time() > prefs.not_after):
        return False
    if published_until is not None and end > published_until:
        return False
    for i in range(minutes):
        clock = (start + i * MINUTE).astimezone(tz).time()
        if prefs.quiet_start and prefs.quiet_end and _in(clock, prefs.quiet_start, prefs.quiet_end):
            return False
    try:
        _, bands = run_cost(tariff, tz, start, [Decimal(0)] * minutes)
    except LookupError:
        return False
    banded = not isinstance(tariff.version_at(start).unit_rates, DynamicRates)
    return not banded or len(bands) == 1



def _say(amount: Decimal, currency: str) -> str:
    if currency == "GBP" and amount < 1:
        return f"{(amount * 100).quantize(Decimal(1), ROUND_HALF_UP)}p"
    return f"{CURRENCY_SYMBOL.get(currency, currency + ' ')}{amount.quantize(Decimal('0.01'), ROUND_HALF_UP)}"


def shift_nudge(run: ApplianceRunV1, tariff: Tariff, tz: ZoneInfo, prefs: ShiftPrefs | None = None,
                published_until: datetime | None = None) -> Nudge | None:
    """The cheapest fitting start on the run's local day and the night after, if it saves enough."""
    prefs = prefs or ShiftPrefs()
    if run.confidence < prefs.min_confidence or run.appliance not in prefs.appliances:
        return None
    kwh = profile_kwh(run)
    original = datetime.fromtimestamp(run.start, UTC)
    try:
        original_cost, _ = run_cost(tariff, tz, original, kwh)
    except LookupError:
        return None
    day_start = local_midnight(original.astimezone(tz).date(), tz)
    best: tuple[Decimal, datetime] | None = None
    t = day_start
    horizon = day_start + timedelta(hours=36)
    while t < horizon:
        if t != original and fits(tariff, tz, t, len(kwh), prefs, published_until):
            cost, _ = run_cost(tariff, tz, t, kwh)
            if best is None or cost < best[0]:
                best = (cost, t)
        t += timedelta(minutes=prefs.step_minutes)
    if best is None:
        return None
    saving = original_cost - best[0]
    if saving < prefs.min_saving:
        return None
    name = run.appliance.replace("_", " ")
    used = sum(kwh, Decimal(0))
    when = best[1].astimezone(tz)
    day_word = "" if when.date() == original.astimezone(tz).date() else " the next morning"
    message = (f"Your {name} ran at {original.astimezone(tz):%H:%M} and used {used:.1f} kWh; starting at "
               f"{when:%H:%M}{day_word} would have cost {_say(saving, tariff.currency)} less.")
    return Nudge(kind="shift", appliance=run.appliance, message=message, saving=tariff.money(saving),
                 currency=tariff.currency, proposed_start=best[1], original_start=original)


def tariff_costs(history: list[Interval], current: Tariff, candidates: list[Tariff], tz: ZoneInfo, end: date,
                 days: int = 30) -> list[tuple[Tariff, Decimal]]:
    """The energy cost of the last ``days`` full days under the current tariff (first) and each
    candidate that can price them (a dynamic tariff without prices for the window cannot)."""
    start = end - timedelta(days=days)
    window = [i for i in history if local_midnight(start, tz) <= i.start < local_midnight(end, tz)]
    if not window:
        return []
    out = [(current, price(current, window, start, end, tz).subtotal)]
    for candidate in candidates:
        if candidate.name == current.name:
            continue
        try:
            out.append((candidate, price(candidate, window, start, end, tz).subtotal))
        except ValueError:
            continue
    return out


def tariff_switch(history: list[Interval], current: Tariff, candidates: list[Tariff], tz: ZoneInfo,
                  end: date, days: int = 30, min_annual: Decimal = Decimal("10")) -> list[Nudge]:
    """Re-price the last ``days`` full days under each candidate; best first, only real savings."""
    costs = tariff_costs(history, current, candidates, tz, end, days)
    if not costs:
        return []
    now_cost = costs[0][1]
    out = []
    for candidate, cost in costs[1:]:
        annual = (now_cost - cost) * Decimal(365) / Decimal(days)
        if annual >= min_annual:
            out.append(Nudge(kind="tariff", message=(
                f"On {candidate.name} your last {days} days would have cost {_say(now_cost - cost, current.currency)}"
                f" less: about {_say(annual, current.currency)} a year."), saving=current.money(annual),
                currency=current.currency, annual=True, target=candidate.name))
    return sorted(out, key=lambda n: -Decimal(n.saving))


def always_on(history: list[Interval], tariff: Tariff, tz: ZoneInfo) -> Nudge | None:
    """The always-on floor: the lowest half-hour between 01:00 and 05:00 (median over nights); none before a night
    is seen. A home's first hours by day are no floor: the demo's first two hours read 820 W (a kettle, a wash and a
    dishwasher in every half-hour) where its baseload is 160 W, and the nudge said it "costs about £1759.88 a year".

    ``history`` holds only half-hours seen from end to end (``cloud.summary.whole_half_hours``): the one in progress,
    ten minutes old, would otherwise be the floor at a third of the truth."""
    nights: dict[date, list[Decimal]] = defaultdict(list)
    for interval in history:
        local = interval.start.astimezone(tz)
        if 1 <= local.hour < 5:
            nights[local.date()].append(interval.kwh)
    if not nights:
        return None
    floor_w = Decimal(str(statistics.median(min(v) * 2 * 1000 for v in nights.values())))
    try:
        _, rate = unit_rate(tariff, history[-1].start, tz)
    except LookupError:
        return None
    annual = floor_w * Decimal("8.76") * rate  # W x 8760 h / 1000
    return Nudge(kind="always_on", message=(
        f"Your home never uses less than about {floor_w:.0f} W, even at night: that always-on load costs about "
        f"{_say(annual, tariff.currency)} a year. Switching off devices on standby lowers it."),
        saving=tariff.money(annual), currency=tariff.currency, annual=True)
