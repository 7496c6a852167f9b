"""Dates and times as people read them on the pages and at the command line ("7 December 2026"); the pages'
JavaScript writes the same (dashboards/static/home.js)."""

from __future__ import annotations

from datetime import UTC, date, datetime


def spoken_day(day: date | str) -> str:
    """"7 December 2026"; an ISO date is read first."""
    d = date.fromisoformat(day) if isinstance(day, str) else day
    return f"{d.day} {d:%B %Y}"


def spoken_moment(at: datetime) -> str:
    """"7 December 2026, 19:27 UTC": a time read out to someone in any zone."""
    at = at.astimezone(UTC)
    return f"{spoken_day(at.date())}, {at:%H:%M} UTC"
