"""The coach for one household: preview, explanation, bill shock, nudges — from stored data."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from cloud.billing.engine import price
from cloud.coach.explain import Explanation, explain
from cloud.coach.nudges import (
    Nudge,
    ShiftPrefs,
    always_on,
    profile_kwh,
    run_cost,
    shift_nudge,
    tariff_costs,
    tariff_switch,
)
from cloud.coach.periods import previous_period
from cloud.coach.preview import BillPreview, daily_totals, project
from cloud.coach.uses import is_whole, settled_to, uses
from cloud.storage.base import Household, Storage
from cloud.storage.people import PeopleStore
from cloud.summary import settled_usage, whole_half_hours
from cloud.tariffs.model import Tariff, catalogue
from protocols.uplink import ApplianceEnergyV1

HISTORY_DAYS = 91
#: A projection this much above the last period's bill warns the household before the bill arrives.
SHOCK_RATIO = Decimal("1.3")


class ApplianceCost(BaseModel):
    """An appliance's share of this bill. Where the hub sent its half-hour energy (disaggregation on the hub),
    that energy is priced half hour by half hour, as the bill is; otherwise its runs are, minute by minute."""

    appliance: str
    runs: int
    kwh: str
    cost: str
    currency: str


class TariffCost(BaseModel):
    """What the same days would have cost on another tariff: energy and standing charges."""

    name: str
    cost: str
    currency: str
    current: bool
    days: int


class CoachReport(BaseModel):
    preview: BillPreview | None
    explanation: Explanation | None
    nudges: list[Nudge]
    bill_shock: str | None
    appliances: list[ApplianceCost] = []
    tariffs: list[TariffCost] = []


def appliance_costs(runs: list, tariff: Tariff, tz: ZoneInfo, since: int,
                    energy: Sequence[ApplianceEnergyV1] = ()) -> list[ApplianceCost]:
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0), Decimal(0)])
    by_half_hour = {e.appliance for e in energy if e.start >= since}
    for run in runs:
        if run.start < since:
            continue
        profile = profile_kwh(run)
        try:
            cost, _ = run_cost(tariff, tz, datetime.fromtimestamp(run.start, UTC), profile)
        except LookupError:
            continue  # a dynamic tariff without prices for that time
        row = totals[run.appliance]
        row[0] += 1
        if run.appliance not in by_half_hour:
            row[1] += sum(profile, Decimal(0))
            row[2] += cost
    for e in energy:
        if e.start < since:
            continue
        kwh = Decimal(str(e.energy_wh)) / 1000
        try:  # tariffs change rate on half hours: the rate at the start holds for the whole half hour
            cost, _ = run_cost(tariff, tz, datetime.fromtimestamp(e.start, UTC), [kwh])
        except LookupError:
            continue
        row = totals[e.appliance]
        row[1] += kwh
        row[2] += cost
    rows = (ApplianceCost(appliance=name, runs=int(n), kwh=f"{total_kwh:.2f}", cost=tariff.money(total_cost),
                          currency=tariff.currency) for name, (n, total_kwh, total_cost) in totals.items())
    # the hub sends every appliance's half hours, zeros too: one that never ran is not a row of "0 runs, 0.00 kWh"
    return sorted((a for a in rows if a.runs or Decimal(a.kwh)), key=lambda a: -Decimal(a.cost))


def appliance_kwh(runs: list, energy: list[ApplianceEnergyV1], start: int, end: int) -> dict[str, Decimal]:
    """kWh per appliance in [start, end): from the half hours where the hub sent them, else from runs."""
    from_energy: dict[str, Decimal] = defaultdict(Decimal)
    for e in energy:
        if start <= e.start < end:
            from_energy[e.appliance] += Decimal(str(e.energy_wh)) / 1000
    out: dict[str, Decimal] = defaultdict(Decimal)
    for run in runs:
        if start <= run.start < end and run.appliance not in from_energy:
            out[run.appliance] += Decimal(str(run.energy_wh)) / 1000
    return {**out, **from_energy}


async def coach_report(store: Storage, household: Household, prefs: ShiftPrefs | None = None) -> CoachReport:
    prefs = prefs or ShiftPrefs()
    latest = await store.latest_reading(household.id)
    if latest is None:
        return CoachReport(preview=None, explanation=None, nudges=[], bill_shock=None)
    tz = ZoneInfo(household.tz)
    tariff = Tariff.model_validate_json(household.tariff_json)
    now = datetime.fromtimestamp(latest.ts, UTC)
    history, since = await settled_usage(store, household.id, latest.ts - HISTORY_DAYS * 86400, latest.ts + 1)
    seen_whole = whole_half_hours(history, since if since is not None else latest.ts, latest.ts)
    bill_preview, projected = project(tariff, tz, household.billing_day, now, history, seen_whole)
    explanation, shock = None, None
    prev_start, prev_end = previous_period(bill_preview.period_start, household.billing_day)
    runs = uses(await store.runs(household.id, latest.ts - HISTORY_DAYS * 86400, latest.ts + 1))
    energy = await store.appliance_energy(household.id, latest.ts - HISTORY_DAYS * 86400, latest.ts + 1)
    previous_usage = [i for i in history if i.start.astimezone(tz).date() >= prev_start
                      and i.start.astimezone(tz).date() < prev_end]
    if previous_usage:
        last = price(tariff, previous_usage, prev_start, prev_end, tz)
        ts = [int(datetime.combine(d, datetime.min.time(), tz).timestamp())
              for d in (prev_start, prev_end, bill_preview.period_end)]
        # this period as projected to its end against the last one: like with like
        explanation = explain(last, projected, (appliance_kwh(runs, energy, ts[0], ts[1]),
                                                    appliance_kwh(runs, energy, ts[1], ts[2])))
        if Decimal(bill_preview.projected) > last.total * SHOCK_RATIO:
            shock = (f"Your bill is heading for about {bill_preview.projected} {tariff.currency}, well above last "
                     f"period's {last.total}.")
            await store.add_notification(household.id, "bill_shock", bill_preview.period_start.isoformat(), shock)
    nudges: list[Nudge] = []
    best_shift: dict[str, Nudge] = {}
    settled = settled_to(energy)
    for run in runs:
        if run.start >= latest.ts - 7 * 86400 and is_whole(run, settled):
            nudge = shift_nudge(run, tariff, tz, prefs)
            if nudge and (run.appliance not in best_shift
                          or Decimal(nudge.saving) > Decimal(best_shift[run.appliance].saving)):
                best_shift[run.appliance] = nudge
    nudges += sorted(best_shift.values(), key=lambda n: -Decimal(n.saving))
    full_days = len(daily_totals(history, tz))
    compared: list[TariffCost] = []
    if full_days:
        days = 90 if full_days >= 90 else min(30, full_days)  # the last 30 or 90 days, as far as seen
        today = now.astimezone(tz).date()
        nudges += tariff_switch(history, tariff, catalogue(), tz, today, days=days)
        compared = [TariffCost(name=t.name, cost=tariff.money(cost), currency=tariff.currency,
                               current=t.name == tariff.name, days=days)
                    for t, cost in tariff_costs(history, tariff, catalogue(), tz, today, days)]
    floor = always_on(seen_whole, tariff, tz)
    if floor:
        nudges.append(floor)
    if isinstance(store, PeopleStore):  # what the household accepted stays, marked; what it dismissed goes
        for nudge in nudges:  # each piece of advice is told once (cloud/notify.py delivers it)
            await store.add_notification(household.id, "nudge", nudge.id, nudge.message)
        decided = await store.nudge_decisions(household.id)
        nudges = [n.model_copy(update={"status": "accepted"}) if decided.get(n.id) == "accept" else n
                  for n in nudges if decided.get(n.id) != "dismiss"]
    period_start = int(datetime.combine(bill_preview.period_start, datetime.min.time(), tz).timestamp())
    return CoachReport(preview=bill_preview, explanation=explanation, nudges=nudges, bill_shock=shock,
                       appliances=appliance_costs(runs, tariff, tz, period_start, energy),
                       tariffs=compared)
