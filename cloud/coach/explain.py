"""Why is my bill higher? This period against the last, in words and numbers.

The change in energy cost splits exactly into a usage effect (the change in kWh at
last period's average price) and a price effect (the change in average price on this
period's kWh); standing and fixed charges change with the days and their rates.
The same explanation serves the householder and the call-centre agent.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from pydantic import BaseModel

from cloud.billing.engine import Bill
from cloud.tariffs.model import CURRENCY_SYMBOL


class Explanation(BaseModel):
    currency: str
    previous_total: str
    current_total: str
    change: str
    days: tuple[int, int]
    kwh: tuple[str, str]
    unit_price: tuple[str, str]
    usage_effect: str
    price_effect: str
    standing_effect: str
    appliances: list[dict[str, str]]
    sentences: list[str]


def _energy(bill: Bill) -> Decimal:
    return sum((line.amount for line in bill.lines if line.unit == "kWh"), Decimal(0))


def _other(bill: Bill) -> Decimal:
    return bill.subtotal - _energy(bill)


def _q(value: Decimal, places: str = "0.01") -> Decimal:
    return value.quantize(Decimal(places), ROUND_HALF_UP)


def explain(previous: Bill, current: Bill, appliance_kwh: tuple[dict[str, Decimal], dict[str, Decimal]] | None = None
            ) -> Explanation:
    sym = CURRENCY_SYMBOL.get(current.currency, current.currency + " ")
    days = ((previous.date_to - previous.date_from).days, (current.date_to - current.date_from).days)
    kwh_p, kwh_c = previous.energy_kwh, current.energy_kwh
    price_p = _energy(previous) / kwh_p if kwh_p else Decimal(0)
    price_c = _energy(current) / kwh_c if kwh_c else Decimal(0)
    usage_effect = (kwh_c - kwh_p) * price_p
    price_effect = (price_c - price_p) * kwh_c
    standing_effect = _other(current) - _other(previous)
    change = current.total - previous.total
    sentences = []
    direction = "higher" if change > 0 else "lower" if change < 0 else "the same as"
    if change:
        sentences.append(f"This bill is {sym}{abs(change):.2f} {direction} than the last "
                         f"({sym}{current.total} against {sym}{previous.total}).")
    else:
        sentences.append(f"This bill is the same as the last: {sym}{current.total}.")
    if kwh_c != kwh_p:
        more = "more" if kwh_c > kwh_p else "less"
        pct = f" ({(kwh_c - kwh_p) / kwh_p * 100:+.0f}%)" if kwh_p else ""
        sentences.append(f"You used {abs(kwh_c - kwh_p):.1f} kWh {more}{pct}: {kwh_c:.1f} kWh against "
                         f"{kwh_p:.1f} kWh, which changes the bill by {sym}{_q(usage_effect):+.2f}.")
    if _q(price_c, "0.0001") != _q(price_p, "0.0001"):
        sentences.append(f"Your average unit price went from {_price(price_p, current.currency)} to "
                         f"{_price(price_c, current.currency)}, which changes it by {sym}{_q(price_effect):+.2f}.")
    if days[0] != days[1] or _q(standing_effect):
        sentences.append(f"This period has {days[1]} days against {days[0]}; standing and fixed charges change "
                         f"the bill by {sym}{_q(standing_effect):+.2f}.")
    appliances: list[dict[str, str]] = []
    if appliance_kwh is not None:
        before, after = appliance_kwh
        zero = Decimal(0)
        for name in sorted(set(before) | set(after), key=lambda n: -abs(after.get(n, zero) - before.get(n, zero))):
            delta = after.get(name, zero) - before.get(name, zero)
            appliances.append({"appliance": name, "previous_kwh": f"{before.get(name, zero):.1f}",
                               "current_kwh": f"{after.get(name, zero):.1f}", "change_kwh": f"{delta:+.1f}"})
        if appliances and Decimal(appliances[0]["change_kwh"]):
            top = appliances[0]
            sentences.append(f"The biggest change is the {top['appliance'].replace('_', ' ')}: "
                             f"{top['change_kwh']} kWh ({top['previous_kwh']} to {top['current_kwh']} kWh).")
    return Explanation(
        currency=current.currency, previous_total=str(previous.total), current_total=str(current.total),
        change=str(change), days=days, kwh=(f"{kwh_p:.3f}", f"{kwh_c:.3f}"),
        unit_price=(f"{price_p:.4f}", f"{price_c:.4f}"), usage_effect=str(_q(usage_effect)),
        price_effect=str(_q(price_effect)), standing_effect=str(_q(standing_effect)), appliances=appliances,
        sentences=sentences)


def _price(value: Decimal, currency: str) -> str:
    return f"{value * 100:.2f}p/kWh" if currency == "GBP" else f"{CURRENCY_SYMBOL.get(currency, '')}{value:.4f}/kWh"
