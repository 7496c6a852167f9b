"""Read a usage CSV (``start,kwh``) with errors that name the line."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from cloud.billing.engine import Interval


class UsageError(ValueError):
    pass


def parse_start(text: str, line: int) -> datetime:
    value = text.strip()
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"line {line}: start {value!r} is neither ISO 8601 nor Unix seconds") from exc
    if stamp.tzinfo is None:
        raise UsageError(f"line {line}: start {value!r} has no UTC offset, so its instant is ambiguous")
    return stamp


def read_usage(path: Path) -> list[Interval]:
    out: list[Interval] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = [name.strip().lower() for name in reader.fieldnames or []]
        if "start" not in fields or "kwh" not in fields:
            raise UsageError(f"{path}: the header must name the columns start,kwh (found {reader.fieldnames})")
        reader.fieldnames = fields
        for line, row in enumerate(reader, start=2):
            try:
                kwh = Decimal(row["kwh"].strip())
            except (InvalidOperation, AttributeError) as exc:
                raise UsageError(f"line {line}: kwh {row['kwh']!r} is not a number") from exc
            if not kwh.is_finite() or kwh < 0:
                raise UsageError(f"line {line}: kwh {row['kwh']!r} must be a finite number >= 0")
            out.append(Interval(parse_start(row["start"] or "", line), kwh))
    return out
