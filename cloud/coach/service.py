"""The coach for one household: preview, explanation, bill shock, nudges — from stored data."""

from __future__ import annotations

from collections import defaultdict
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
from cloud.storage.base import Household, Storage
from cloud.storage.people import PeopleStore
from cloud.summary import settlement_usage
from cloud.tariffs.model import Tariff, catalogue

HISTORY_DAYS = 91
#: A projection this much above the last period's bill warns the household before the bill arrives.
SHOCK_RATIO = Decimal("1.3")


class ApplianceCost(BaseModel):
    """An appliance's share of this bill: its runs (disaggregated or from a plug), priced minute by minute."""

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


def appliance_costs(runs: list, tariff: Tariff, tz: ZoneInfo, since: int) -> list[ApplianceCost]:
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0), Decimal(0)])
    for run in runs:
        if run.start < since:
            continue
        kwh = profile_kwh(run)
        try:
            cost, _ = run_cost(tariff, tz, datetime.fromtimestamp(run.start, UTC), kwh)
        except LookupError:
            continue  # a dynamic tariff without prices for that time
        row = totals[run.appliance]
        row[0] += 1
        row[1] += sum(kwh, Decimal(0))
        row[2] += cost
    return sorted((ApplianceCost(appliance=name, runs=int(n), kwh=f"{kwh:.2f}", cost=tariff.money(cost),
                                 currency=tariff.currency) for name, (n, kwh, cost) in totals.items()),
                  key=lambda a: -Decimal(a.cost))


def _appliance_kwh(runs: list, start: int, end: int) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for run in runs:
        if start <= run.start < end:
            out[run.appliance] += Decimal(str(run.energy_wh)) / 1000
    return dict(out)


async def coach_report(store: Storage, household: Household, prefs: ShiftPrefs | None = None) -> CoachReport:
    prefs = prefs or ShiftPrefs()
    latest = await store.latest_reading(household.id)
    if latest is None:
        return CoachReport(preview=None, explanation=None, nudges=[], bill_shock=None)
    tz = ZoneInfo(household.tz)
    tariff = Tariff.model_validate_json(household.tariff_json)
    now = datetime.fromtimestamp(latest.ts, UTC)
    history = await settlement_usage(store, household.id, latest.ts - HISTORY_DAYS * 86400, latest.ts + 1)
    bill_preview, projected = project(tariff, tz, household.billing_day, now, history)
    explanation, shock = None, None
    prev_start, prev_end = previous_period(bill_preview.period_start, household.billing_day)
    runs = await store.runs(household.id, latest.ts - HISTORY_DAYS * 86400, latest.ts + 1)
    previous_usage = [i for i in history if i.start.astimezone(tz).date() >= prev_start
                      and i.start.astimezone(tz).date() < prev_end]
    if previous_usage:
        last = price(tariff, previous_usage, prev_start, prev_end, tz)
        ts = [int(datetime.combine(d, datetime.min.time(), tz).timestamp())
              for d in (prev_start, prev_end, bill_preview.period_end)]
        # this period as projected to its end against the last one: like with like
        explanation = explain(last, projected, (_appliance_kwh(runs, ts[0], ts[1]), _appliance_kwh(runs, ts[1], ts[2])))
        if Decimal(bill_preview.projected) > last.total * SHOCK_RATIO:
            shock = (f"Your bill is heading for about {bill_preview.projected} {tariff.currency}, well above last "
                     f"period's {last.total}.")
            await store.add_notification(household.id, "bill_shock", bill_preview.period_start.isoformat(), shock)
    nudges: list[Nudge] = []
    best_shift: dict[str, Nudge] = {}
    for run in runs:
        if run.start >= latest.ts - 7 * 86400:
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
    floor = always_on(history, tariff, tz)
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
                       appliances=appliance_costs(runs, tariff, tz, period_start), tariffs=compared)
