"""`ohmni nilm …`: train, disaggregate and evaluate on house CSVs; convert REFIT and REDD into them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.console import Console
from rich.table import Table

from edge.nilm.appliances import NAMES

if TYPE_CHECKING:
    from edge.nilm.disaggregate import Part
    from edge.nilm.house_csv import House, HouseBlocks
    from edge.nilm.model import Model

# NumPy and the models are imported inside the commands: every `ohmni` process registers this
# group, and a hub that does not disaggregate should not carry NumPy in its memory.

app = typer.Typer(help="Disaggregation: train, disaggregate, evaluate; convert datasets; score estimates.",
                  no_args_is_help=True)
convert_app = typer.Typer(help="Convert REFIT or REDD files into house CSVs.", no_args_is_help=True)
app.add_typer(convert_app, name="convert")


@contextmanager
def _refused() -> Iterator[None]:
    """A file the command cannot read (``HouseCsvError``, a converter's too): its error, exit 2, no traceback."""
    from edge.nilm.house_csv import HouseCsvError

    try:
        yield
    except HouseCsvError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@convert_app.command("refit")
def refit_cmd(
    day_csv: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A REFIT house_N_day.csv.")],
    out: Annotated[Path, typer.Option(help="The house CSV to write.")],
    labels: Annotated[Path | None, typer.Option(
        dir_okay=False, help="REFIT's labels.csv (default: the one beside DAY_CSV).")] = None,
    house: Annotated[int | None, typer.Option(
        help="The REFIT house number (default: the number after 'house' in DAY_CSV's name).")] = None,
) -> None:
    """A REFIT day file -> timestamp, mains and the appliance columns the house has."""
    from edge.nilm.convert import convert_refit, refit_house_number

    with _refused():
        number = refit_house_number(day_csv) if house is None else house
        columns = convert_refit(day_csv, labels or day_csv.parent / "labels.csv", number, out)
    typer.echo(f"wrote {out}: house {number}, mains + {', '.join(columns) or 'no known appliance'}", err=True)


@convert_app.command("redd")
def redd_cmd(
    npz: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A redd_sgn_houseN.npz.")],
    out: Annotated[Path, typer.Option(help="The house CSV to write.")],
) -> None:
    """A REDD (SGN pre-processed) house -> a house CSV with 3-second timestamps."""
    from edge.nilm.convert import convert_redd

    with _refused():
        columns = convert_redd(npz, out)
    typer.echo(f"wrote {out}: mains + {', '.join(columns)}", err=True)


#: ``--model`` where the shipped model will do: a user with no submetered data of their own can still run it.
ModelOption = Annotated[Path | None, typer.Option(
    "--model", help="A model from `ohmni nilm train` or `adapt` (default: the shipped one, learned on all 20 REFIT "
                    "houses).")]


def _model(path: Path | None) -> Model:
    """The model in ``path``, or the shipped one when None; one that cannot be read is named, exit 2."""
    from edge.nilm.model import ModelFileError, load, pretrained

    if path is None:
        return pretrained()
    try:
        return load(path)
    except ModelFileError as exc:  # its message starts with the path
        typer.echo(f"error: cannot read the model {exc}", err=True)
        raise typer.Exit(2) from None


#: How many days the learner reads in all, by default (edge/nilm/days.py says why and which days).
MAX_DAYS = 28
MaxDaysOption = Annotated[int, typer.Option(
    min=1, help="Days to learn from in all, shared among the houses: each longer house gives whole days, those its "
                "appliances ran first. Memory grows about 40 MB a day (28: about 1.2 GB).")]


def _learned_from(paths: list[Path], max_days: int) -> list[House]:
    """The houses ``train`` and ``adapt`` learn from, each cut to its share of ``max_days`` as it is read."""
    from edge.nilm.days import read_within

    with _refused():
        return read_within(paths, max_days, progress=lambda line: typer.echo(line, err=True))


class _Progress:
    """A house longer than a chunk (``CHUNK_S``) goes a part at a time: say how far, about every twentieth of the
    file, and when it is done; a house that goes whole says nothing. Its first part also says whether the house is
    read sparser than the models are made for (``sparse_note``: a DSMR 4 meter's 10 s, or sparser than any meter):
    disaggregated all the same, with a warning."""

    def __init__(self, blocks: HouseBlocks) -> None:
        from edge.nilm.disaggregate import CHUNK_S

        self.blocks, self.days = blocks, CHUNK_S / 86_400
        self.parts, self.said, self.twentieth = 0, 0, 0

    def part(self, part: Part) -> None:
        from edge.nilm.house_csv import sparse_note

        note = sparse_note(part.house.timestamp) if not self.parts else None
        if note:
            typer.echo(f"warning: {self.blocks.path}: {note}", err=True)
        self.parts += 1
        twentieth = int(self.blocks.fraction_read() * 20)
        if not part.whole and twentieth > self.twentieth:
            self.twentieth = twentieth
            self._say()

    def end(self) -> None:
        if self.parts > 1 and self.said != self.parts:
            self._say()

    def _say(self) -> None:
        self.said = self.parts
        typer.echo(f"{self.blocks.name}: {self.parts} part{'s' if self.parts != 1 else ''} of {self.days:g} days "
                   f"disaggregated, {self.blocks.fraction_read():.0%} of the file read", err=True)


@contextmanager
def _written(path: Path) -> Iterator[TextIO]:
    """``path`` written whole or not at all: the rows go to ``path.partial`` beside it, renamed to ``path`` when
    all are in, so a file refused half way (a bad line a million rows in) leaves ``path`` as it was."""
    partial = path.with_name(path.name + ".partial")
    try:
        f = partial.open("w", newline="")
    except OSError as exc:
        typer.echo(f"error: cannot write {path}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    try:
        with f:
            yield f
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@app.command("train")
def train_cmd(
    houses: Annotated[list[Path], typer.Argument(help="House CSVs with submetered appliance columns.")],
    out: Annotated[Path, typer.Option(help="Where to write the model (JSON).")],
    trees: Annotated[int, typer.Option(min=5, max=500, help="Trees per booster: fewer train faster and fit "
                                                                "less.")] = 80,
    max_days: MaxDaysOption = MAX_DAYS,
) -> None:
    """Learn each appliance's signature and its trees from submetered houses (two houses or more each)."""
    from edge.nilm.model import learn, save

    model = learn(_learned_from(houses, max_days), trees=trees,
                  progress=lambda msg: typer.echo(msg, err=True))
    if not model.appliances:  # a model that detects nothing is no model: nothing written
        typer.echo("error: no appliance learned: each needs two houses or more with its channel, and runs in "
                   f"them ({len(houses)} house{'s' if len(houses) != 1 else ''} given); nothing written"
                   + ("; to fit the shipped model to one home, use 'ohmni nilm adapt'" if len(houses) == 1 else ""),
                   err=True)
        raise typer.Exit(2)
    save(model, out)
    missing = [name for name in NAMES if name not in model.appliances]
    if missing:
        typer.echo(f"not learned (will not be detected): {', '.join(missing)}", err=True)
    typer.echo(f"wrote {out} ({out.stat().st_size} bytes)", err=True)


@app.command("adapt")
def adapt_cmd(
    houses: Annotated[list[Path], typer.Argument(help="House CSVs of one home, with the appliance columns its "
                                                      "plugs give (`ohmni hub nilm-export`).")],
    out: Annotated[Path, typer.Option(help="Where to write the adapted model (JSON).")],
    model_path: ModelOption = None,
    trees: Annotated[int, typer.Option(min=1, max=200, help="Trees each booster adds.")] = 20,
    max_days: MaxDaysOption = MAX_DAYS,
) -> None:
    """Adapt a model to one home: its boosters go on learning from the home's own submetered appliances."""
    from edge.nilm.adapt import adapt
    from edge.nilm.model import save

    base = _model(model_path)
    model = adapt(base, _learned_from(houses, max_days), trees=trees,
                  progress=lambda msg: typer.echo(msg, err=True))
    save(model, out)
    typer.echo(f"wrote {out} ({out.stat().st_size} bytes)", err=True)


@app.command("disaggregate")
def disaggregate_cmd(
    house: Annotated[Path, typer.Argument(help="House CSV (only timestamp and mains are read).")],
    out: Annotated[Path, typer.Option(help="Estimates CSV: timestamp + one column per appliance (W).")],
    model_path: ModelOption = None,
    runs: Annotated[Path | None, typer.Option(
        help="Also write the appliance runs, as the hub sends them: appliance, start, end, energy_wh, peak_w, "
             "confidence (how likely such a call is right).")] = None,
) -> None:
    """Estimate each appliance's power from the whole-house signal alone, one row per input row. A file of any
    length is read, disaggregated and written a fortnight at a time; the outputs appear only when whole."""
    import csv

    from edge.nilm.disaggregate import disaggregate_parts
    from edge.nilm.house_csv import HouseBlocks, HouseWriter
    from edge.nilm.live import RunsOfParts

    model = _model(model_path)
    with _refused(), HouseBlocks(house) as blocks, ExitStack() as outputs:
        estimates = HouseWriter(outputs.enter_context(_written(out)), False, list(model.appliances))
        runs_file = outputs.enter_context(_written(runs)) if runs is not None else None
        found, said, rows = RunsOfParts(), _Progress(blocks), 0
        for part in disaggregate_parts(blocks, model):
            estimates.write(part.house.timestamp, None, part.watts)
            found.add(part.house.timestamp, part.watts, part.confidence)
            rows += len(part.house.timestamp)
            said.part(part)
            del part  # not held while the next is worked out
        said.end()
        if runs_file is not None:
            ran = found.end()
            writer = csv.writer(runs_file)
            writer.writerow(("appliance", "start", "end", "energy_wh", "peak_w", "confidence"))
            writer.writerows((r.appliance, r.start, r.end, f"{r.energy_wh:.1f}", f"{r.peak_w:.1f}",
                              f"{r.confidence:.3f}") for r in ran)
    typer.echo(f"wrote {out}: {rows} rows, {', '.join(model.appliances)}", err=True)
    if runs is not None:
        typer.echo(f"wrote {runs}: {len(ran)} runs", err=True)


@app.command("evaluate")
def evaluate_cmd(
    houses: Annotated[list[Path], typer.Argument(help="House CSVs with the submetered truth.")],
    model_path: ModelOption = None,
) -> None:
    """Disaggregate each house and print per appliance and on average: MAE, F1, energy share, and how often its
    calls were right beside the confidence the model gave them. Houses of any length are read a fortnight at a
    time."""
    import numpy as np

    from edge.nilm.disaggregate import disaggregate_parts
    from edge.nilm.house_csv import HouseBlocks
    from edge.nilm.metrics import Tally

    model = _model(model_path)
    if model_path is None:  # a REFIT house scored by it is not a home it never saw
        typer.echo("scoring the shipped model, learned on all 20 REFIT houses: on a REFIT house it scores "
                   "what it learned from (python -m bench.nilm scores houses each model never saw)", err=True)
    tallies: dict[str, Tally] = {}
    with _refused():
        for path in houses:  # every header checked before any house is disaggregated
            with HouseBlocks(path, need_truth=True):
                pass
        for path in houses:
            with HouseBlocks(path, need_truth=True) as blocks:
                said = _Progress(blocks)
                for part in disaggregate_parts(blocks, model):
                    for name, truth in part.house.appliances.items():
                        nothing = np.zeros(len(truth))
                        tallies.setdefault(name, Tally(name)).add(truth, part.watts.get(name, nothing),
                                                                  part.confidence.get(name, nothing))
                    said.part(part)
                    del part  # not held while the next is worked out
                said.end()
    _print_scores({name: t.score() for name, t in tallies.items()}, "evaluation",
                  {name: t.calls_right() for name, t in tallies.items()})


def _print_scores(scores: dict, title: str, calls: dict | None = None) -> None:
    table = Table(title=title)
    columns = ["appliance", "MAE W", "F1", "energy share", "always-on F1", "always-off MAE W"]
    for column in columns + (["calls right (said)"] if calls else []):
        table.add_column(column)
    for name, s in scores.items():
        right, said = calls[name] if calls else (None, None)
        table.add_row(name, f"{s.mae_w:.1f}", "n/a" if s.f1 is None else f"{s.f1:.3f}",
                      "n/a" if s.energy_share is None else f"{s.energy_share:.3f}", f"{s.always_on_f1:.3f}",
                      f"{s.always_off_mae_w:.1f}",
                      *([] if not calls else ["n/a" if right is None else f"{right:.2f} ({said:.2f})"]))
    Console(width=120).print(table)
    f1s = [s.f1 for s in scores.values() if s.f1 is not None]
    maes = [s.mae_w for s in scores.values()]
    typer.echo(f"mean_f1={sum(f1s) / len(f1s):.3f} mean_mae_w={sum(maes) / len(maes):.1f}" if f1s
               else "mean_f1=nan")


@app.command("score")
def score_cmd(
    files: Annotated[list[Path], typer.Argument(
        help="TRUTH.csv ESTIMATES.csv, and more such pairs to pool: a house CSV with the submetered truth, then a CSV "
             "of timestamp + one column per appliance (W), one row per row of the truth (`disaggregate`'s).")],
) -> None:
    """MAE, on/off F1 and energy correctly assigned per appliance, beside the trivial floors; pairs are pooled, as
    the shared scorer pools them. Files of any length are compared a block of rows at a time."""
    from edge.nilm.house_csv import EstimateRows, HouseBlocks, HouseCsvError
    from edge.nilm.metrics import Tally

    if len(files) % 2:
        typer.echo(f"error: {len(files)} files: give them in pairs, each truth followed by its estimates", err=True)
        raise typer.Exit(2)
    tallies: dict[str, Tally] = {}
    with _refused():
        for truth, estimates in zip(files[::2], files[1::2], strict=True):
            with HouseBlocks(truth, need_truth=True) as blocks, EstimateRows(estimates) as est:
                missing = [name for name in blocks.known if name not in est.known]
                if missing:
                    raise HouseCsvError(f"{estimates}: line 1: no '{missing[0]}' column, which {truth.name} has "
                                        f"(found {', '.join(est.known) or 'no appliance column'})")
                rows = 0
                for house in blocks:
                    rows += len(house.timestamp)
                    got = est.take(house)
                    if est.taken < rows:
                        continue  # it ended first: the truth's rows are counted, to say how many it lacks
                    for name, truth_w in house.appliances.items():
                        tallies.setdefault(name, Tally(name)).add(truth_w, got[name])
                written = est.taken + est.rest()
                if written != rows:
                    raise HouseCsvError(f"{estimates}: {written} rows for {rows} in {truth}")
    more = len(files) // 2 - 1
    title = f"{files[0].name} vs {files[1].name}" + (f" and {more} more pair{'s' if more > 1 else ''}" if more else "")
    _print_scores({name: t.score() for name, t in tallies.items()}, title)
