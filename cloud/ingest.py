"""Ingest validation: every reading is checked on its own, bad ones named, good ones kept.

Rules (each rejection is an RFC 7807 problem whose ``instance`` points at the item):
- a timestamp more than a day in the future, or before 2000 (no smart meter then);
- a value that is not a finite number, or absurd for a home (power over 1 MW);
- an import or export register lower than the meter's previous one — unless the meter id
  changed (a meter replacement, kept and counted) or the register wrapped past its last
  digit (a rollover at 1,000,000 kWh, kept and counted).
"""

from __future__ import annotations

import math
import operator
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from protocols.uplink import ReadingV1

EARLIEST_TS = 946_684_800  # 2000-01-01T00:00:00Z
FUTURE_SLACK_S = 86_400
MAX_POWER_W = 1_000_000
REGISTER_WRAP_WH = 1_000_000_000  # DSMR: 6 integer digits of kWh
_floats = operator.attrgetter("voltage_l1_v", "voltage_l2_v", "voltage_l3_v", "gas_m3")


def _all_finite(values: tuple[float | None, ...]) -> bool:
    total = sum(x for x in values if x is not None)  # NaN or ±inf anywhere makes the sum not finite
    return math.isfinite(total) or all(x is None or math.isfinite(x) for x in values)


def problem(index: int, reason: str, detail: str, ts: int | None = None) -> dict[str, Any]:
    return {"type": f"https://ohmni.invalid/problems/{reason}", "title": reason.replace("_", " "), "status": 422,
            "detail": detail, "instance": f"#/readings/{index}", "ts": ts, "reason": reason}


@dataclass
class Checked:
    good: list[ReadingV1] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)  # meter_replaced, register_rollover


def parse_items(items: Iterable[Any], checked: Checked) -> list[tuple[int, ReadingV1]]:
    """Validate each raw item against the reading schema; the broken ones become problems."""
    out = []
    for index, item in enumerate(items):
        try:
            out.append((index, ReadingV1.model_validate(item)))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "item"
            checked.rejected.append(problem(index, "invalid_reading", f"{where}: {first['msg']}",
                                            item.get("ts") if isinstance(item, dict) else None))
    return out


def static_reason(r: Any) -> tuple[str, str] | None:
    """The checks that need no history and no clock: what cloud.wire's decoder also enforces."""
    if r.ts < EARLIEST_TS:
        return "past_timestamp", f"timestamp {r.ts} is before 2000"
    if not _all_finite(_floats(r)):
        return "not_finite", "a value is NaN or infinite"
    if r.power_import_w > MAX_POWER_W or r.power_export_w > MAX_POWER_W:
        return "absurd_value", f"power {max(r.power_import_w, r.power_export_w)} W is not a home's"
    return None


def check(items: list[tuple[int, Any]], previous: Mapping[str, Any], now: float | None = None,
          checked: Checked | None = None, prechecked: bool = False) -> Checked:
    """Semantic checks in time order; ``previous`` holds the last stored reading per channel.

    Readings are ReadingV1 or cloud.wire.ReadingWire (the same attributes). This loop runs
    for every reading the cloud takes in, so it reads each attribute once.
    ``prechecked``: the decoder already enforced :func:`static_reason` (cloud.wire does).
    """
    result = checked or Checked()
    future = (now if now is not None else time.time()) + FUTURE_SLACK_S
    # per channel: (ts, meter_id, import Wh, export Wh) of the latest good reading
    last = {ch: (r.ts, r.meter_id, r.import_t1_wh + r.import_t2_wh, r.export_t1_wh + r.export_t2_wh)
            for ch, r in previous.items()}
    ordered = items if all(a[1].ts <= b[1].ts for a, b in zip(items, items[1:], strict=False)) else \
        sorted(items, key=lambda pair: pair[1].ts)
    good, events = result.good, result.events
    for index, r in ordered:
        ts = r.ts
        reason = None
        if ts > future:
            reason = ("future_timestamp", f"timestamp {ts} is {(ts - future + FUTURE_SLACK_S) / 3600:.0f} h "
                                          "in the future")
        elif not prechecked:
            reason = static_reason(r)
        imp, exp = r.import_t1_wh + r.import_t2_wh, r.export_t1_wh + r.export_t2_wh
        before = last.get(r.channel)
        if reason is None and before is not None and before[0] < ts and not (imp >= before[2] and exp >= before[3]
                                                                          and r.meter_id == before[1]):
            if before[1] != r.meter_id:
                events["meter_replaced"] += 1
            else:
                for name, now_wh, then_wh in (("import", imp, before[2]), ("export", exp, before[3])):
                    if now_wh < then_wh:
                        if then_wh > REGISTER_WRAP_WH * 0.9 and now_wh < REGISTER_WRAP_WH * 0.1:
                            events["register_rollover"] += 1
                        else:
                            reason = ("negative_delta", f"{name} register went back from {then_wh} Wh to "
                                                        f"{now_wh} Wh on meter {r.meter_id}")
                            break
        if reason is not None:
            result.rejected.append(problem(index, reason[0], reason[1], ts))
            continue
        good.append(r)
        if before is None or before[0] < ts:
            last[r.channel] = (ts, r.meter_id, imp, exp)
    return result
