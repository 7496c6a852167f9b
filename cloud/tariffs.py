"""Pricing. For now a flat tariff: one unit rate and a daily standing charge.

Money is Decimal in pence inside; a total is rounded half-up to the penny once, at the end.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from pydantic import BaseModel

PENNY = Decimal("0.01")


class FlatTariff(BaseModel):
    kind: str = "flat"
    name: str = "Flat rate"
    currency: str = "GBP"
    unit_rate_p_per_kwh: Decimal
    standing_p_per_day: Decimal

    def day_cost(self, energy_wh: int, days: int = 1) -> Decimal:
        """Cost in the currency's major unit of ``energy_wh`` plus ``days`` standing charges."""
        pence = Decimal(energy_wh) / 1000 * self.unit_rate_p_per_kwh + self.standing_p_per_day * days
        return (pence / 100).quantize(PENNY, rounding=ROUND_HALF_UP)


DEMO_TARIFF = FlatTariff(name="Demo flat rate", unit_rate_p_per_kwh=Decimal("24.50"),
                         standing_p_per_day=Decimal("60.10"))

CURRENCY_SYMBOL = {"GBP": "£", "EUR": "€", "USD": "$"}
