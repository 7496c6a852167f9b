"""The ingest fast path (cloud.wire) against the contract (protocols.uplink).

The rule is one-sided: whatever the msgspec decoder accepts, pydantic accepts with the same
values and ingest's clock-free checks pass; anything else goes to the slow path.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from cloud.ingest import EARLIEST_TS, MAX_POWER_W, static_reason
from cloud.wire import ROW_FIELDS, ReadingWire, decode_fast, rows
from protocols.uplink import ReadingV1, UplinkBatch

GOOD: dict[str, Any] = {"ts": 1_764_028_800, "meter_id": "E0012345", "import_t1_wh": 1_000, "import_t2_wh": 2_000,
        "export_t1_wh": 0, "export_t2_wh": 0, "power_import_w": 350, "power_export_w": 0, "voltage_l1_v": 231.5}


def body(*readings: Any, **extra: Any) -> bytes:
    return json.dumps({"schema_version": 1, "hub_id": "hub-1", "seq": 7, "readings": list(readings),
                       **extra}).encode()


def test_the_struct_is_derived_from_the_model() -> None:
    assert set(ReadingWire.__struct_fields__) == set(ReadingV1.model_fields)
    assert ReadingWire.__struct_fields__ == ROW_FIELDS
    for name, info in ReadingV1.model_fields.items():
        if not info.is_required():
            assert getattr(ReadingWire(**{k: GOOD[k] for k in GOOD if k != "voltage_l1_v"}), name) == info.default


def test_a_good_batch_decodes_to_the_contracts_values() -> None:
    raw = body(GOOD, {**GOOD, "ts": GOOD["ts"] + 1, "channel": "solar", "gas_m3": 12.5},
               display={"ts": 1, "face": "smile", "power_w": 300, "reason": "a quiet hour"},
               runs=[{"appliance": "kettle", "start": 10, "end": 100, "energy_wh": 50, "peak_w": 2900}],
               energy=[{"appliance": "fridge", "start": 1800, "energy_wh": 41.5}],
               notices=["kept at 1-minute resolution"], backlog=3)
    fast = decode_fast(raw)
    slow = UplinkBatch.model_validate_json(raw)
    assert fast is not None and fast.fast
    assert (fast.hub_id, fast.seq, fast.backlog, fast.notices) == (slow.hub_id, slow.seq, slow.backlog, slow.notices)
    assert fast.display == slow.display and fast.runs == slow.runs and fast.energy == slow.energy
    assert fast.energy[0].energy_wh == 41.5
    assert rows(("hh",), fast.readings) == rows(("hh",), slow.readings)


def test_what_the_slow_path_must_explain_is_refused() -> None:
    for bad in ({**GOOD, "ts": EARLIEST_TS - 1}, {**GOOD, "power_import_w": MAX_POWER_W + 1},
                {**GOOD, "import_t1_wh": -1}, {**GOOD, "ts": "1764028800"}, {k: v for k, v in GOOD.items()
                                                                            if k != "meter_id"}):
        assert decode_fast(body(GOOD, bad)) is None, bad
    assert decode_fast(body(GOOD).replace(b"231.5", b"NaN")) is None
    assert decode_fast(body(GOOD).replace(b"231.5", b"1e999")) is None
    assert decode_fast(body(GOOD, runs=[{"appliance": "kettle", "start": 10, "end": 10, "energy_wh": 1,
                                         "peak_w": 1}])) is None  # a run must end after it starts
    assert decode_fast(body(GOOD, energy=[{"appliance": "fridge", "start": 60, "energy_wh": 1}])) is None
    assert decode_fast(body(GOOD, schema_version=2)) is None
    assert decode_fast(b"{not json") is None


_values = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=100))
_like = {int: st.integers(min_value=-10, max_value=2**64), float: st.floats(allow_nan=True, allow_infinity=True),
         str: st.text(max_size=100)}


def _field(good: Any) -> st.SearchStrategy[Any]:
    """Mostly the good value, often another of its type (some out of range), sometimes garbage,
    so that both paths are taken."""
    return st.integers(0, 19).flatmap(lambda i: st.just(good) if i < 15 else _like[type(good)] if i < 19
                                      else _values)


_reading = st.fixed_dictionaries({k: _field(v) for k, v in GOOD.items()},
                                 optional={"channel": st.one_of(_like[str], _values), "gas_m3": _values,
                                           "tariff": _values, "power_failures": _values})


@settings(max_examples=300, deadline=None)
@given(st.lists(_reading, max_size=3))
def test_what_the_fast_path_accepts_the_contract_accepts_with_the_same_values(readings: list[dict]) -> None:
    raw = body(*readings)
    fast = decode_fast(raw)
    event(f"fast path took it: {fast is not None}")
    if fast is None:
        return
    slow = UplinkBatch.model_validate_json(raw)  # raises if the fast path let through what pydantic refuses
    for a, b in zip(fast.readings, slow.readings, strict=True):
        for name in ROW_FIELDS:
            x, y = getattr(a, name), getattr(b, name)
            assert x == y and type(x) is type(y) or (isinstance(x, float) and math.isclose(x, y)), name
        assert static_reason(b) is None
