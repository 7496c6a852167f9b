"""The ingest fast path: an uplink batch decoded by msgspec, ten times faster than pydantic.

`protocols.uplink` stays the contract (the hub builds it, OpenAPI describes it). The
structs here are *derived* from those pydantic models — field names, defaults and
``ge``/``max_length`` limits — so there is one definition to change. msgspec is strict
where pydantic is lax (no "5" for an int), so the rule is one-sided: what this decoder
accepts, pydantic accepts with the same values; anything it refuses goes to the slow
path, which names each bad item (tests/cloud/test_wire.py checks both directions).

Nested parts that are rare and small (display state, appliance runs, notices) are kept
as raw JSON here and validated by pydantic against the same field definitions.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, cast, get_args

import annotated_types
import msgspec
from msgspec import structs
from pydantic import TypeAdapter
from pydantic.fields import FieldInfo

from cloud.ingest import EARLIEST_TS, MAX_POWER_W
from protocols.display import DisplayState
from protocols.readings import READING_FIELDS
from protocols.uplink import ApplianceEnergyV1, ApplianceRunV1, ReadingV1, UplinkBatch, UplinkEnvelope

#: The reading's columns in storage order: a decoded reading's astuple() is a table row.
ROW_FIELDS: tuple[str, ...] = ("channel", *READING_FIELDS)

_META_KEYS = {annotated_types.Ge: "ge", annotated_types.Gt: "gt", annotated_types.Le: "le",
              annotated_types.Lt: "lt", annotated_types.MaxLen: "max_length", annotated_types.MinLen: "min_length"}


def _meta(info: FieldInfo) -> dict[str, Any]:
    """pydantic's constraints on a field (``Field(ge=0)``) as msgspec.Meta keyword arguments."""
    out = {}
    for item in info.metadata:
        key = _META_KEYS.get(type(item))
        if key is None:
            raise TypeError(f"no msgspec equivalent for the constraint {item!r}")
        out[key] = getattr(item, key)
    return out


def _wire_type(info: FieldInfo, stricter: dict[str, Any] | None = None) -> Any:
    meta = {**_meta(info), **(stricter or {})}
    if not meta:
        return info.annotation
    args = get_args(info.annotation)
    if type(None) in args:  # the limit applies to the value, not to None
        inner = next(a for a in args if a is not type(None))
        return Annotated[inner, msgspec.Meta(**meta)] | None
    return Annotated[info.annotation, msgspec.Meta(**meta)]


def _struct(name: str, model: type[Any], order: tuple[str, ...],
            stricter: dict[str, dict[str, Any]]) -> type[msgspec.Struct]:
    fields = model.model_fields
    if set(order) != set(fields):
        raise TypeError(f"{name}: the order {order} does not name exactly the fields of {model.__name__}")
    spec = []
    for key in order:
        info = fields[key]
        wire = _wire_type(info, stricter.get(key))
        spec.append((key, wire) if info.is_required() else (key, wire, info.get_default(call_default_factory=True)))
    return msgspec.defstruct(name, spec, kw_only=True, module=__name__)


#: Beyond the schema, the fast path refuses what ingest would reject without history or clock
#: (cloud.ingest.static_reason): such a batch goes to the slow path, which names the item.
STRICTER = {"ts": {"ge": EARLIEST_TS}, "power_import_w": {"le": MAX_POWER_W}, "power_export_w": {"le": MAX_POWER_W}}
ReadingWire = _struct("ReadingWire", ReadingV1, ROW_FIELDS, STRICTER)
#: What storage and checks take: a ReadingV1, or a ReadingWire (a msgspec.Struct with the same attributes, so to a
#: type checker, which cannot see a struct made at run time, it is a ReadingV1).
if TYPE_CHECKING:
    Reading: TypeAlias = ReadingV1
else:
    Reading: TypeAlias = ReadingV1 | msgspec.Struct

_BATCH = UplinkBatch.model_fields
_NESTED = ("display", "runs", "energy", "notices")  # validated by pydantic from raw JSON
_ADAPTERS: dict[str, TypeAdapter[Any]] = {name: TypeAdapter(Annotated[_BATCH[name].annotation, _BATCH[name]])
                                           for name in _NESTED}


def _default_of(info: FieldInfo) -> Callable[[], Any]:
    """A field's default for a body that leaves it out: its factory's new list each time, not one shared."""
    if info.default_factory is None:
        return lambda: info.default
    return cast(Callable[[], Any], info.default_factory)  # UplinkBatch's factories take no arguments


_DEFAULTS = {name: _default_of(_BATCH[name]) for name in _NESTED}


class BatchWire(msgspec.Struct, kw_only=True):
    schema_version: Literal[1] = 1
    hub_id: _wire_type(_BATCH["hub_id"])  # type: ignore[valid-type]
    seq: _wire_type(_BATCH["seq"])  # type: ignore[valid-type]
    readings: Annotated[list[ReadingWire], msgspec.Meta(max_length=_meta(_BATCH["readings"])["max_length"])] = []  # type: ignore[valid-type]
    backlog: _wire_type(_BATCH["backlog"]) = None  # type: ignore[valid-type]
    display: msgspec.Raw = msgspec.Raw()  # empty: not in the body
    runs: msgspec.Raw = msgspec.Raw()
    energy: msgspec.Raw = msgspec.Raw()
    notices: msgspec.Raw = msgspec.Raw()


_DECODER = msgspec.json.Decoder(BatchWire)

@dataclass
class Incoming:
    """A batch as ingest sees it, from either path."""

    hub_id: str
    seq: int
    readings: list[Any]  # ReadingWire from the fast path; the slow path's raw items, each still to be checked
    display: DisplayState | None = None
    runs: list[ApplianceRunV1] = field(default_factory=list)
    backlog: int | None = None
    notices: list[str] = field(default_factory=list)
    fast: bool = True  # decoded here: every reading valid, floats finite
    energy: list[ApplianceEnergyV1] = field(default_factory=list)

    @classmethod
    def from_envelope(cls, env: UplinkEnvelope) -> Incoming:
        return cls(env.hub_id, env.seq, env.readings, env.display, env.runs, env.backlog, env.notices, fast=False,
                   energy=env.energy)


def decode_fast(body: bytes) -> Incoming | None:
    """The batch, or None when the slow path must look (it explains what is wrong)."""
    try:
        wire = _DECODER.decode(body)
    except msgspec.DecodeError:
        return None
    nested: dict[str, Any] = {}
    for name in _NESTED:
        raw = getattr(wire, name)
        if not raw:
            nested[name] = _DEFAULTS[name]()  # not get_default(): it inspects the factory's signature each call
            continue
        try:
            nested[name] = _ADAPTERS[name].validate_json(bytes(raw))
        except ValueError:
            return None
    return Incoming(wire.hub_id, wire.seq, wire.readings, nested["display"], nested["runs"], wire.backlog,
                    nested["notices"], energy=nested["energy"])


_COLUMNS = operator.attrgetter(*ROW_FIELDS)
_ASTUPLE: Callable[[Any], tuple[Any, ...]] = structs.astuple  # a ReadingV1 raises TypeError


def rows(prefix: tuple[Any, ...], readings: Sequence[Reading]) -> list[tuple[Any, ...]]:
    """Table rows: ``prefix`` then the reading's columns in ROW_FIELDS order."""
    try:
        return [(*prefix, *_ASTUPLE(r)) for r in readings]  # ReadingWire: fields are in row order
    except TypeError:  # ReadingV1
        return [(*prefix, *_COLUMNS(r)) for r in readings]
