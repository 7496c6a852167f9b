"""Is it just me? Loss of supply by postcode district, from the hubs' own telemetry.

Evidence, per hub (table ``hub_status``, moved forward by every stored batch):
- silence: no reading for SILENT_S while other hubs keep reporting. Silence is measured
  against the newest reading any hub has sent (the network's clock), not the wall clock, so
  a simulated home, or a cloud that was itself away, does not make every home look silent;
- the meter's power-failure counter going up (it reports the cut once power is back);
- a voltage of 0 V in the last reading.
One silent home is usually its Wi-Fi; many in one district at once is the supply. A district
is shown as an outage when at least MIN_HOMES hubs there are silent or show a cut and they
are at least half of the district's reporting hubs; the confidence is that share. Districts
with fewer than MIN_HOMES hubs are never shown, so the page points at no single home.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Literal

from pydantic import BaseModel

from cloud.storage.base import Storage
from cloud.storage.people import PeopleStore

SILENT_S = 45  # hubs upload every ~10 s: four missed uploads is silence, and a cut shows within a minute
RECENT_S = 3 * 3600  # a hub silent longer than this is gone, not cut off: left out
FAILURE_WINDOW_S = 15 * 60  # a power-failure count this recent is evidence of a cut
MIN_HOMES = 3
OUTAGE_SHARE = 0.5

Status = Literal["outage", "some homes silent", "normal"]


def district(postcode: str) -> str:
    """The outward code of a UK postcode ("SW1A 1AA" -> "SW1A"); otherwise the text before a space."""
    compact = re.sub(r"\s+", "", postcode.upper())
    if " " in postcode.strip():
        return postcode.strip().upper().split()[0]
    return compact[:-3] if len(compact) > 4 else compact


class AreaStatus(BaseModel):
    district: str
    status: Status
    homes_reporting: int
    homes_affected: int
    confidence: float
    since: int | None  # the earliest last reading of the affected hubs
    message: str


def _summary(name: str, homes: int, affected: int, since: int | None) -> AreaStatus:
    share = affected / homes if homes else 0.0
    if affected >= MIN_HOMES and share >= OUTAGE_SHARE:
        status: Status = "outage"
        message = (f"Probably a power cut: {affected} of {homes} homes with an Ohmni hub in {name} stopped "
                   f"reporting or saw their supply fail. It is not just you.")
    elif affected:
        status = "some homes silent"
        message = (f"{affected} of {homes} homes in {name} are quiet, which is usually their own Wi-Fi or hub; "
                   "no sign of a wider cut.")
    else:
        status, message = "normal", f"All {homes} homes with a hub in {name} are reporting."
    return AreaStatus(district=name, status=status, homes_reporting=homes, homes_affected=affected,
                      confidence=round(share if status == "outage" else 1 - share, 2), since=since, message=message)


def areas(hubs: list[dict[str, Any]]) -> tuple[list[AreaStatus], int | None]:
    """Every district with at least MIN_HOMES recent hubs, and the network clock used."""
    if not hubs:
        return [], None
    clock = max(h["last_ts"] for h in hubs)
    by_district: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for h in hubs:
        if clock - h["last_ts"] <= RECENT_S:
            by_district[district(h["postcode"])].append(h)
    out = []
    for name, members in sorted(by_district.items()):
        if len(members) < MIN_HOMES:
            continue
        affected = [h for h in members if clock - h["last_ts"] > SILENT_S or h["voltage_v"] == 0
                    or (h["last_failure_ts"] is not None and clock - h["last_failure_ts"] <= FAILURE_WINDOW_S)]
        since = min((h["last_ts"] for h in affected), default=None)
        out.append(_summary(name, len(members), len(affected), since))
    return out, clock


async def check_and_notify(store: Storage) -> list[AreaStatus]:
    """Work the areas out and tell every household in a district with an outage, once per outage."""
    assert isinstance(store, PeopleStore)
    found, _ = areas(await store.hub_statuses())
    outages = {a.district: a for a in found if a.status == "outage"}
    if outages:
        for household_id, postcode in await store.household_postcodes():
            area = outages.get(district(postcode))
            if area is not None:
                # one notification per household and outage: the key is the district and its start
                await store.add_notification(household_id, "outage", f"{area.district}:{area.since}", area.message)
    return found
