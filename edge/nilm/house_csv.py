"""House CSVs: `timestamp` (Unix seconds), `mains` (W) and any appliance columns (W).

Reading checks what a user's file gets wrong and names the line: a missing column, text in
a number, NaN, negative power, power no home draws, timestamps out of order, repeated or not
in Unix seconds (milliseconds are the usual slip), bytes that are not UTF-8. No silent repair
of values: a file that breaks a rule is refused with the first offending line. Two repairs
of form, because spreadsheets and archives make them: a UTF-8 byte-order mark (Excel's "CSV
UTF-8") is ignored, and a gzip-compressed file is read as the CSV inside it.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import math
import os
import sys
import zlib
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO, cast

import numpy as np

from edge.nilm.appliances import NAMES
from protocols.readings import MAX_EPOCH_S


class HouseCsvError(ValueError):
    pass


@dataclass
class House:
    name: str
    timestamp: np.ndarray  # float64 seconds
    mains: np.ndarray  # float64 W
    appliances: dict[str, np.ndarray]  # submetered truth, W

    def subset(self, keep: np.ndarray | slice) -> House:
        """The rows where ``keep`` holds (a stretch of the house's time), every column alike (a slice: views)."""
        return House(self.name, self.timestamp[keep], self.mains[keep],
                     {k: v[keep] for k, v in self.appliances.items()})

    def copy(self) -> House:
        return House(self.name, self.timestamp.copy(), self.mains.copy(),
                     {k: v.copy() for k, v in self.appliances.items()})

    def held_at(self, step_s: float) -> House:
        """The house as a meter reading every ``step_s`` would give it (DSMR 5: 1 s, DSMR 4: 10 s): at each step, the
        last reading at or before it, the appliances' truth alike. What the bench and the tests read a house as."""
        ts = np.arange(self.timestamp[0], self.timestamp[-1] + step_s, step_s)
        i = np.searchsorted(self.timestamp, ts, side="right") - 1
        return House(self.name, ts, self.mains[i], {name: v[i] for name, v in self.appliances.items()})


#: No home draws this much: a UK single-phase supply stops at about 23 kW, a large three-phase one near 70 kW,
#: and the REFIT and REDD homes peak at 12 kW. Above it a column is in the wrong unit (mW), or corrupt.
MAX_W = 100_000.0
#: Unix seconds before 2100; a timestamp past it is most likely in milliseconds (1420675200000 for 2015).
MAX_TIMESTAMP = float(MAX_EPOCH_S)


@dataclass(frozen=True)
class Rule:
    """What a column's value must be: ``holds(value)``, else the line is refused saying ``"'column' is " +
    wrong(value)``."""

    holds: Callable[[float], bool]
    wrong: Callable[[float], str]


#: Power (mains, and every appliance column, truth or estimate): checked in order, the first broken is named.
POWER_RULES = (
    Rule(lambda w: w >= 0, lambda w: f"negative ({w:g} W)"),
    Rule(lambda w: w <= MAX_W, lambda w: f"{w:g} W, more than any home draws ({MAX_W / 1000:g} kW); watts expected"),
)
#: The timestamp (the rows' order is checked apart: it needs the line before).
TIMESTAMP_RULES = (
    Rule(lambda t: 0 <= t <= MAX_TIMESTAMP,
         lambda t: f"{t:.0f}, not in Unix seconds (1970 to 2100)"
                   + ("; in milliseconds? divide by 1000" if t > MAX_TIMESTAMP else "")),
)


@contextmanager
def opened(path: Path) -> Iterator[tuple[TextIO, BinaryIO]]:
    """``path`` as UTF-8 text, a leading byte-order mark dropped, gzip unpacked (by its magic bytes, whatever the
    name), and the file's own bytes beneath it (gzip's packed ones: how far it has been read); an unreadable path
    raises ``HouseCsvError`` with the reason."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise HouseCsvError(f"{path}: {exc.strerror or exc}") from None
    with raw:
        try:
            packed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
        except OSError as exc:
            raise HouseCsvError(f"{path}: {exc.strerror or exc}") from None
        inner = cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb")) if packed else raw
        # bytes that are not UTF-8 are kept (as lone surrogates) so the row that holds them can be named: decoding
        # strictly fails a whole 8 KB chunk ahead of its line
        with io.TextIOWrapper(inner, encoding="utf-8-sig", errors="surrogateescape", newline="") as text:
            yield text, raw


def not_utf8(text: str) -> bool:
    """Whether ``text`` holds bytes that were not UTF-8 (``opened`` keeps them as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _csv_rows(path: Path, f: TextIO) -> Iterator[list[str]]:
    """The CSV rows of ``f``; a gzip file cut short or corrupt, or a broken quote, stops it with its line, not a
    traceback."""
    reader = csv.reader(f)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except (EOFError, gzip.BadGzipFile, zlib.error, csv.Error) as exc:
            raise HouseCsvError(f"{path}: line {reader.line_num + 1}: {exc}") from None
        yield row


def _number(path: Path, line: int, name: str, text: str) -> float:
    """``text`` (column ``name`` of ``line``) as a finite number, or the error that names them."""
    try:
        value = float(text)
    except ValueError:
        what = "bytes that are not UTF-8 text" if not_utf8(text) else "not a number"
        raise HouseCsvError(f"{path}: line {line}: '{name}' is {text!r}, {what}") from None
    if not math.isfinite(value):
        raise HouseCsvError(f"{path}: line {line}: '{name}' is {text!r}, not a finite number")
    return value


def _value(path: Path, line: int, name: str, text: str) -> float:
    """Column ``name`` of ``line`` as a number its rules allow, or the error naming the first rule it breaks."""
    value = _number(path, line, name, text)
    for rule in TIMESTAMP_RULES if name == "timestamp" else POWER_RULES:
        if not rule.holds(value):
            raise HouseCsvError(f"{path}: line {line}: '{name}' is {rule.wrong(value)}")
    return value


def _checked_rows(path: Path, reader: Iterator[list[str]], index: dict[str, int],
                  width: int) -> Iterator[tuple[int, list[float]]]:
    """Each row of ``reader`` that is not blank, as its line and the values of ``index``'s columns (in its order),
    each held to its column's rules; the first that breaks one is named with its line. A row with more values than
    the header's ``width`` columns is refused (blank ones after the last aside, as a trailing comma leaves): "1,234"
    for 1234 W would otherwise be read as 1 W, and every column after it shifted."""
    for line, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) > width and any(c.strip() for c in row[width:]):
            raise HouseCsvError(f"{path}: line {line}: {len(row)} values, but the header names {width} columns: a "
                                "stray comma, or a number written with a thousands separator ('1,234')?")
        values = []
        for name, i in index.items():
            if i >= len(row):
                raise HouseCsvError(f"{path}: line {line}: no value for '{name}'")
            values.append(_value(path, line, name, row[i]))
        yield line, values


#: How far an estimate's timestamp may be from its truth row's: a tool that wrote whole seconds of a truth kept in
#: fractions is still on the right row; a row a reading (1 s or more) away is not.
SAME_ROW_S = 1.0


class EstimateRows:
    """An estimates CSV (``timestamp`` and one column per appliance, W, one row per row of the truth it is scored
    against: what ``disaggregate`` writes), read as many rows at a time as the truth's blocks hold, so two files of
    any length are compared in bounded memory. Every value is held to the power rules (a negative estimate would
    flatter its score); where it has a ``timestamp``, each row's must be its truth row's (within ``SAME_ROW_S``), so
    estimates of another house, or cut short at the start, are named rather than scored. A context manager: once
    entered, ``known`` is its appliance columns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.known: list[str] = []
        self.taken = 0  # rows taken so far
        self._stack = ExitStack()

    def __enter__(self) -> EstimateRows:
        with ExitStack() as stack:
            text, _ = stack.enter_context(opened(self.path))
            reader = _csv_rows(self.path, text)
            header = [h.strip() for h in next(reader, [])]
            self.known = [name for name in header if name in NAMES]
            self._index = {name: header.index(name) for name in (["timestamp"] if "timestamp" in header else [])
                           + self.known}
            self._rows = _checked_rows(self.path, reader, self._index, len(header))
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def take(self, truth: House) -> dict[str, np.ndarray]:
        """The appliance columns of the next rows, one per row of ``truth`` (fewer where the file ends first)."""
        lines, values = array("q"), array("d")
        for line, row in itertools.islice(self._rows, len(truth.timestamp)):
            lines.append(line)
            values.extend(row)
        got = np.frombuffer(values, dtype=np.float64).reshape(len(lines), len(self._index))
        columns = dict(zip(self._index, got.T, strict=True))
        self.taken += len(lines)
        if "timestamp" in columns:
            stamps = columns.pop("timestamp")
            apart = np.flatnonzero(np.abs(stamps - truth.timestamp[:len(stamps)]) >= SAME_ROW_S)
            if len(apart):
                i = int(apart[0])
                raise HouseCsvError(
                    f"{self.path}: line {lines[i]}: timestamp {stamps[i]:.0f}, where the truth's row "
                    f"{self.taken - len(lines) + i + 1} has {truth.timestamp[i]:.0f}: one row of estimates for each "
                    "row of the truth, in its order (are they of another house?)")
        return columns

    def rest(self) -> int:
        """How many rows are left (each still checked)."""
        return sum(1 for _ in self._rows)


#: Rows in a block when a house is read a block at a time: 65,536 rows of seven columns are 3.7 MB.
BLOCK_ROWS = 65_536


#: Separators a spreadsheet may save a "CSV" with (a European locale's Excel uses ';'), by what to call them.
OTHER_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "bars"}


def _header_hint(header: list[str], column: str) -> str:
    """Why a header lacks ``column``, where the slip is a usual one: a file separated by other than commas
    (its whole header is one field), or the column named in other case. '' where neither."""
    if len(header) == 1:
        for sep, name in OTHER_SEPARATORS.items():
            if sep in header[0]:
                return f"; the file is separated by {name}: a house CSV's are commas (and '.' for decimals)"
    for found in header:
        if found.lower() == column:
            return f"; column names are lower case: rename '{found}' to '{column}'"
    return ""


#: Readings further apart than this (their median) are sparser than any meter the models are made for (a P1 port
#: reports every 1 s on DSMR 5, every 10 s on DSMR 4; REFIT's rows are 6-8 s apart): a kettle's boil is then a few
#: readings. The sparsest band of ``INTERVAL_NOTES``.
SPARSE_S = 12.0

#: What a meter's interval (the median between readings) costs the disaggregator, by band: up to each bound, what the
#: commands and ``ohmni hub status`` say of it (None: nothing, the models are made for it). Figures from
#: ``python -m bench.nilm_sampling`` (2026-12-07): the first REFIT split's model on its five unseen houses, mean F1
#: over the five appliances, 0.643 held at 1 s and 0.634 as REFIT recorded them (7 s), 0.538 held at 10 s, 0.452 at
#: 14 s. A model learned from REFIT held at 10 s did no better (0.525; docs/nilm.md, "Not done").
INTERVAL_NOTES: tuple[tuple[float, str | None], ...] = (
    (8.0, None),
    (SPARSE_S, "DSMR 2.2-4 meters' 10 s, at which the washing machine's and the dishwasher's runs are found less often "
               "than at 1-7 s (on unseen REFIT houses held at 10 s, mean F1 0.54 against 0.63 as recorded at 7 s; the "
               "washing machine 0.18 against 0.42, the dishwasher 0.48 against 0.64)"),
    (np.inf, "the models are made for a meter's 1-10 s, and short runs (a kettle's boil, a microwave's minutes) span "
             "few readings this sparse: expect fewer of them found"),
)


def interval_note(step_s: float) -> str | None:
    """What to warn of where readings lie a median ``step_s`` apart (``INTERVAL_NOTES``); None where nothing. An
    interval no band holds (NaN) gets the sparsest band's warning, not silence."""
    return next((note for bound, note in INTERVAL_NOTES if step_s <= bound), INTERVAL_NOTES[-1][1])


def median_step(timestamp: Sequence[float] | np.ndarray) -> float:
    """The median seconds between consecutive readings (at least two): a meter's interval, as the commands and
    ``ohmni hub status`` read it, so a gap or a burst does not move it."""
    return float(np.median(np.diff(np.asarray(timestamp, dtype=np.float64))))


def sparse_note(timestamp: np.ndarray) -> str | None:
    """What the commands warn of where ``timestamp``'s readings lie further apart than the models are made for."""
    if len(timestamp) < 2:
        return None
    step = median_step(timestamp)
    note = interval_note(step)
    return None if note is None else f"readings a median {step:.0f} s apart; {note} (docs/nilm.md, 'Data decisions')"


class HouseBlocks:
    """A house CSV a block of rows at a time, each line checked as ``read_house`` checks it (which is this, in one
    block), so a file of any length is read in bounded memory and a bad line is named when it is reached. A context
    manager: once entered, ``name`` and ``known`` (its appliance columns, in the header's order) are set, and
    ``fraction_read()`` says how far through the file's bytes the blocks have got (for a command's progress)."""

    def __init__(self, path: Path, need_truth: bool = False, rows: int = BLOCK_ROWS) -> None:
        self.path, self.need_truth, self.rows = path, need_truth, max(1, rows)
        self.name = path.stem
        self.known: list[str] = []
        self._stack = ExitStack()

    def __enter__(self) -> HouseBlocks:
        with ExitStack() as stack:  # closed again if the header is refused
            text, self._raw = stack.enter_context(opened(self.path))
            self._size = os.fstat(self._raw.fileno()).st_size
            self._reader = _csv_rows(self.path, text)
            self._index = self._header()
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def fraction_read(self) -> float:
        return min(1.0, self._raw.tell() / self._size) if self._size else 1.0

    def _header(self) -> dict[str, int]:
        path = self.path
        try:
            header = [h.strip() for h in next(self._reader)]
        except StopIteration:
            raise HouseCsvError(f"{path}: empty file") from None
        if not_utf8("".join(header)):
            raise HouseCsvError(f"{path}: line 1: bytes that are not UTF-8 text; save the file as UTF-8 CSV")
        for column in ("timestamp", "mains"):
            if column not in header:
                raise HouseCsvError(f"{path}: line 1: no '{column}' column (found {', '.join(header)})"
                                    + _header_hint(header, column))
        self.known = [name for name in header if name in NAMES]
        self._width = len(header)
        if self.need_truth and not self.known:
            raise HouseCsvError(f"{path}: line 1: no appliance column ({', '.join(NAMES)}) to learn or score from")
        return {name: header.index(name) for name in ("timestamp", "mains", *self.known)}

    def _block(self, columns: dict[str, array[float]]) -> House:
        data = {name: np.frombuffer(values, dtype=np.float64) for name, values in columns.items()}
        return House(self.name, data["timestamp"], data["mains"], {name: data[name] for name in self.known})

    def __iter__(self) -> Iterator[House]:
        path, index = self.path, self._index

        def empty() -> dict[str, array[float]]:
            # one array of doubles per column, 8 bytes a value: a year of 8 s readings (4 million rows) is 220 MB
            # where a list of rows of Python floats took seven times that
            return {name: array("d") for name in index}

        columns, previous, rows = empty(), -math.inf, 0
        stamps = columns["timestamp"]
        for line, values in _checked_rows(path, self._reader, index, self._width):
            for name, value in zip(index, values, strict=True):
                columns[name].append(value)
            ts = stamps[-1]
            if ts <= previous:
                what = "repeats" if ts == previous else "goes back in time from"
                raise HouseCsvError(f"{path}: line {line}: timestamp {ts:.0f} {what} the line before "
                                    f"({previous:.0f}); sort the file and drop duplicates")
            previous = ts
            rows += 1
            if len(stamps) >= self.rows:
                yield self._block(columns)
                columns = empty()
                stamps = columns["timestamp"]
        if not rows:
            raise HouseCsvError(f"{path}: no data rows")
        if stamps:
            yield self._block(columns)


def read_house(path: Path, need_truth: bool = False) -> House:
    """The whole of a house CSV, every line checked (``HouseBlocks`` reads one a block at a time)."""
    with HouseBlocks(path, need_truth, rows=sys.maxsize) as blocks:
        [house] = blocks
    return house


def write_house(path: Path, timestamp: np.ndarray, mains: np.ndarray | None,
                appliances: dict[str, np.ndarray]) -> None:
    with path.open("w", newline="") as f:
        writer = HouseWriter(f, mains is not None, list(appliances))
        writer.write(timestamp, mains, appliances)


class HouseWriter:
    """A house CSV written a stretch of rows at a time: ``timestamp``, ``mains`` if ``with_mains``, then the
    ``appliances`` columns."""

    def __init__(self, f: TextIO, with_mains: bool, appliances: list[str]) -> None:
        self._csv = csv.writer(f)
        self._csv.writerow(["timestamp"] + (["mains"] if with_mains else []) + appliances)
        self.names = appliances

    def write(self, timestamp: np.ndarray, mains: np.ndarray | None, appliances: dict[str, np.ndarray]) -> None:
        arrays = [timestamp] + ([mains] if mains is not None else []) + [appliances[name] for name in self.names]
        for row in zip(*arrays, strict=True):
            # the timestamp as it was read (a fractional second kept), so rows join back to the input's
            self._csv.writerow([f"{row[0]:.15g}", *(f"{v:.1f}" for v in row[1:])])
