"""`ohmni bill` and `ohmni tariff import …`: price usage and bring tariffs in, from files."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from pydantic import ValidationError
from rich.console import Console, JustifyMethod
from rich.table import Table

from cloud.billing.engine import BillingError, price
from cloud.billing.usage_csv import UsageError, read_usage
from cloud.tariffs import importers
from cloud.tariffs.model import CURRENCY_SYMBOL, Tariff

err = Console(stderr=True)
tariff_app = typer.Typer(help="Tariffs: import them from the formats they come in.", no_args_is_help=True)
import_app = typer.Typer(help="Import a tariff into Ohmni's JSON model (docs/tariffs.md).", no_args_is_help=True)
tariff_app.add_typer(import_app, name="import")


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {message}")
    return typer.Exit(2)


def load_tariff(path: Path) -> Tariff:
    try:
        return Tariff.model_validate_json(path.read_bytes())  # bytes: pydantic names bad UTF-8 as bad JSON
    except ValidationError as exc:
        raise _fail(f"{path}: not a valid tariff: {importers.first_error(exc)}") from None
    except OSError as exc:
        raise _fail(f"cannot read tariff {path}: {exc.strerror}") from None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(f"unknown time zone {name!r} (use an IANA name such as Europe/London)") from None


def _write(tariff: Tariff, out: Path) -> None:
    out.write_text(tariff.model_dump_json(indent=2, exclude_none=True) + "\n")
    err.print(f"wrote {out}: {tariff.name}, {len(tariff.versions)} version(s)")


@import_app.command("octopus")
def import_octopus(
    unit_rates: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="API response of unit rates.")],
    out: Annotated[Path, typer.Option(help="Where to write the tariff JSON.")],
    standing_charges: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                          help="API response of standing charges.")] = None,
    name: Annotated[str, typer.Option(help="The tariff's name.")] = "Octopus tariff",
    payment_method: Annotated[str, typer.Option(help="Keep rows for this payment method (or none).")] = "DIRECT_DEBIT",
) -> None:
    """Octopus Energy REST API responses; a household pays the VAT-inclusive figures."""
    try:
        tariff = importers.octopus(unit_rates, standing_charges, name, payment_method or None)
    except importers.ImportError_ as exc:
        raise _fail(str(exc)) from None
    except ValidationError as exc:  # read, but not a tariff Ohmni can price (a negative standing charge)
        raise _fail(f"{unit_rates}: the tariff it makes is not valid: {importers.first_error(exc)}") from None
    _write(tariff, out)


@import_app.command("urdb")
def import_urdb(
    record: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="URDB record JSON.")],
    out: Annotated[Path, typer.Option(help="Where to write the tariff JSON.")],
    tz: Annotated[str, typer.Option(help="IANA zone of the schedules' local time, e.g. America/Los_Angeles.")],
    name: Annotated[str | None, typer.Option(help="The tariff's name (default: utility and rate name).")] = None,
) -> None:
    """An OpenEI Utility Rate Database record, bare or in an ``items`` list."""
    _zone(tz)
    try:
        tariff = importers.urdb(record, tz, name)
    except importers.ImportError_ as exc:
        raise _fail(str(exc)) from None
    except ValidationError as exc:
        raise _fail(f"{record}: the tariff it makes is not valid: {importers.first_error(exc)}") from None
    _write(tariff, out)


def _date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _fail(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


def bill(
    tariff: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Tariff JSON (docs/tariffs.md).")],
    usage: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="CSV with columns start,kwh.")],
    date_from: Annotated[str, typer.Option("--from", help="First local date billed (YYYY-MM-DD).")],
    date_to: Annotated[str, typer.Option("--to", help="Local date the bill ends before (exclusive).")],
    tz: Annotated[str | None, typer.Option(help="Zone of the dates (default: the tariff's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the bill as JSON.")] = False,
) -> None:
    """Price a usage CSV under a tariff: line items and the total, to the penny."""
    model = load_tariff(tariff)
    zone = _zone(tz or model.timezone)
    try:
        intervals = read_usage(usage)
        result = price(model, intervals, _date(date_from, "--from"), _date(date_to, "--to"), zone)
    except (UsageError, BillingError) as exc:
        raise _fail(str(exc)) from None
    if result.missing_count:
        first = ", ".join(f"{a.isoformat()} to {b.isoformat()}" for a, b in result.missing[:3])
        more = f" and {len(result.missing) - 3} more gaps" if len(result.missing) > 3 else ""
        err.print(f"[yellow]warning:[/] {result.missing_count} interval(s) of {result.interval_s} s have no usage "
                  f"and are not priced: {first}{more}")
    if as_json:
        json.dump(result.as_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    symbol = CURRENCY_SYMBOL.get(result.currency, result.currency + " ")
    table = Table(title=f"{result.tariff}: {result.date_from} to {result.date_to} ({result.timezone})")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("Description", "left"), ("Quantity", "right"), ("Unit", "left"), ("Rate", "right"), ("Amount", "right"))
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for line in result.lines:
        table.add_row(line.description, format(line.quantity, "f"), line.unit, format(line.rate, "f"),
                      f"{symbol}{format(line.amount, 'f')}")
    table.add_section()
    table.add_row("Total", "", "", "", f"{symbol}{result.total}")
    Console().print(table)
