"""Billing periods that start on the household's own billing day."""

from __future__ import annotations

from datetime import date


def _add_months(day: date, months: int, billing_day: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(billing_day, 28))


def billing_period(today: date, billing_day: int) -> tuple[date, date]:
    """The period containing ``today``: [start, end) from one billing day to the next.

    Billing days above 28 are treated as 28, so every month has one.
    """
    day = min(max(billing_day, 1), 28)
    start = date(today.year, today.month, day)
    if today < start:
        start = _add_months(start, -1, day)
    return start, _add_months(start, 1, day)


def previous_period(period_start: date, billing_day: int) -> tuple[date, date]:
    return _add_months(period_start, -1, min(max(billing_day, 1), 28)), period_start
