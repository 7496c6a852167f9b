"""`ohmni nilm …`: house data for disaggregation — converters and scoring (the disaggregator comes next)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edge.nilm.appliances import NAMES
from edge.nilm.convert import convert_redd, convert_refit
from edge.nilm.house_csv import HouseCsvError, read_house
from edge.nilm.metrics import score

app = typer.Typer(help="Disaggregation data: convert datasets to house CSVs, score estimates.", no_args_is_help=True)
convert_app = typer.Typer(help="Convert REFIT or REDD files into house CSVs.", no_args_is_help=True)
app.add_typer(convert_app, name="convert")


@convert_app.command("refit")
def refit_cmd(
    day_csv: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A REFIT house_N_day.csv.")],
    labels: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="labels.csv beside it.")],
    house: Annotated[int, typer.Option(help="The REFIT house number.")],
    out: Annotated[Path, typer.Option(help="The house CSV to write.")],
) -> None:
    """A REFIT day file -> timestamp, mains and the appliance columns the house has."""
    columns = convert_refit(day_csv, labels, house, out)
    typer.echo(f"wrote {out}: mains + {', '.join(columns) or 'no known appliance'}", err=True)


@convert_app.command("redd")
def redd_cmd(
    npz: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A redd_sgn_houseN.npz.")],
    out: Annotated[Path, typer.Option(help="The house CSV to write.")],
) -> None:
    """A REDD (SGN pre-processed) house -> a house CSV with 3-second timestamps."""
    columns = convert_redd(npz, out)
    typer.echo(f"wrote {out}: mains + {', '.join(columns)}", err=True)


@app.command("score")
def score_cmd(
    truth: Annotated[Path, typer.Argument(help="House CSV with the submetered truth.")],
    estimates: Annotated[Path, typer.Argument(help="CSV of timestamp + one column per appliance (W).")],
) -> None:
    """MAE, on/off F1 and energy correctly assigned per appliance, beside the trivial floors."""
    try:
        house = read_house(truth, need_truth=True)
        est = read_house_estimates(estimates, len(house.timestamp))
    except HouseCsvError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    table = Table(title=f"{truth.name} vs {estimates.name}")
    for column in ("appliance", "MAE W", "F1", "energy share", "always-on F1", "always-off MAE W"):
        table.add_column(column)
    f1s = []
    for name, values in house.appliances.items():
        if name not in est:
            continue
        s = score(name, values, est[name])
        if s.f1 is not None:
            f1s.append(s.f1)
        table.add_row(name, f"{s.mae_w:.1f}", "n/a" if s.f1 is None else f"{s.f1:.3f}",
                      "n/a" if s.energy_share is None else f"{s.energy_share:.3f}", f"{s.always_on_f1:.3f}",
                      f"{s.always_off_mae_w:.1f}")
    Console().print(table)
    typer.echo(f"mean_f1={sum(f1s) / len(f1s):.3f}" if f1s else "mean_f1=nan")


def read_house_estimates(path: Path, rows: int) -> dict[str, object]:
    import csv

    import numpy as np

    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        names = [n for n in reader.fieldnames or [] if n in NAMES]
        data = {n: [] for n in names}
        for line, row in enumerate(reader, start=2):
            for n in names:
                try:
                    data[n].append(float(row[n]))
                except (TypeError, ValueError):
                    raise HouseCsvError(f"{path}: line {line}: '{n}' is {row[n]!r}, not a number") from None
    if any(len(v) != rows for v in data.values()):
        raise HouseCsvError(f"{path}: {len(next(iter(data.values()), []))} rows for {rows} in the truth")
    return {n: np.asarray(v) for n, v in data.items()}
