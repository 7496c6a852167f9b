"""Read a usage CSV (``start,kwh``) with errors that name the line."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO

from cloud.billing.engine import Interval


class UsageError(ValueError):
    pass


#: More than any home uses in one row, however long the row (a 100 A supply, flat out for a month, is 17 MWh):
#: past it the value is in the wrong unit (Wh) or corrupt, and a bill of it would be nonsense (or past Decimal's
#: 28 digits).
MAX_KWH = Decimal(1_000_000)


def parse_start(text: str, line: int) -> datetime:
    value = text.strip()
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (OverflowError, OSError) as exc:  # digits, but no time a clock shows
        raise UsageError(f"line {line}: start {value!r} is out of range as Unix seconds") from exc
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
    """Every row of the CSV at ``path``; the first bad one (or bytes that are not UTF-8 text) named by its line."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            return _rows(path, f)
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start}); save it as CSV UTF-8") from None
    except csv.Error as exc:
        raise UsageError(f"{path}: not a CSV file: {exc}") from None


def _rows(path: Path, f: TextIO) -> list[Interval]:
    out: list[Interval] = []
    reader = csv.DictReader(f)
    fields = [name.strip().lower() for name in reader.fieldnames or []]
    if "start" not in fields or "kwh" not in fields:
        raise UsageError(f"{path}: the header must name the columns start,kwh (found {reader.fieldnames})")
    reader.fieldnames = fields
    for line, row in enumerate(reader, start=2):
        extra = [value for value in row.get(None, []) if value.strip()]
        if extra:  # a decimal comma, "1,5" for 1.5 kWh, would otherwise be billed as 1 kWh
            raise UsageError(f"line {line}: more values than the header has columns ({', '.join(map(repr, extra))} "
                             "left over): a decimal comma? write 1.5, not 1,5")
        try:
            kwh = Decimal(row["kwh"].strip())
        except (InvalidOperation, AttributeError) as exc:
            raise UsageError(f"line {line}: kwh {row['kwh']!r} is not a number") from exc
        if not kwh.is_finite() or kwh < 0:
            raise UsageError(f"line {line}: kwh {row['kwh']!r} must be a finite number >= 0")
        if kwh > MAX_KWH:
            raise UsageError(f"line {line}: kwh {row['kwh']!r} is more than any home uses ({MAX_KWH} kWh "
                             "in a row); is the column in Wh?")
        out.append(Interval(parse_start(row["start"] or "", line), kwh))
    return out
