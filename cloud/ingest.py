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
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from protocols.uplink import ReadingV1

EARLIEST_TS = 946_684_800  # 2000-01-01T00:00:00Z
FUTURE_SLACK_S = 86_400
MAX_POWER_W = 1_000_000
REGISTER_WRAP_WH = 1_000_000_000  # DSMR: 6 integer digits of kWh
_FLOATS = ("voltage_l1_v", "voltage_l2_v", "voltage_l3_v", "gas_m3")


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


def check(items: list[tuple[int, ReadingV1]], previous: dict[str, ReadingV1], now: float | None = None,
          checked: Checked | None = None) -> Checked:
    """Semantic checks in time order; ``previous`` holds the last stored reading per channel."""
    result = checked or Checked()
    clock = now if now is not None else time.time()
    last = dict(previous)
    for index, r in sorted(items, key=lambda pair: pair[1].ts):
        reason = None
        if r.ts > clock + FUTURE_SLACK_S:
            reason = ("future_timestamp", f"timestamp {r.ts} is {(r.ts - clock) / 3600:.0f} h in the future")
        elif r.ts < EARLIEST_TS:
            reason = ("past_timestamp", f"timestamp {r.ts} is before 2000")
        elif any(getattr(r, f) is not None and not math.isfinite(getattr(r, f)) for f in _FLOATS):
            reason = ("not_finite", "a value is NaN or infinite")
        elif r.power_import_w > MAX_POWER_W or r.power_export_w > MAX_POWER_W:
            reason = ("absurd_value", f"power {max(r.power_import_w, r.power_export_w)} W is not a home's")
        else:
            before = last.get(r.channel)
            if before is not None and before.ts < r.ts:
                if before.meter_id != r.meter_id:
                    result.events["meter_replaced"] += 1
                else:
                    for name, now_wh, then_wh in (("import", r.import_t1_wh + r.import_t2_wh,
                                                   before.import_t1_wh + before.import_t2_wh),
                                                  ("export", r.export_t1_wh + r.export_t2_wh,
                                                   before.export_t1_wh + before.export_t2_wh)):
                        if now_wh < then_wh:
                            if then_wh > REGISTER_WRAP_WH * 0.9 and now_wh < REGISTER_WRAP_WH * 0.1:
                                result.events["register_rollover"] += 1
                            else:
                                reason = ("negative_delta", f"{name} register went back from {then_wh} Wh to "
                                                            f"{now_wh} Wh on meter {r.meter_id}")
                                break
        if reason is not None:
            result.rejected.append(problem(index, reason[0], reason[1], r.ts))
            continue
        result.good.append(r)
        if r.channel not in last or last[r.channel].ts < r.ts:
            last[r.channel] = r
    return result
