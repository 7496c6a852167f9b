"""Runs as a home counts them: one wash, not the pieces a hub sent of it.

A hub sends a run for each stretch where an appliance is on. Disaggregation's calls, and a plug's
watts, dip under the on line inside one use: a washer pauses between drum turns, a dishwasher
between its heatings, a microwave's magnetron cycles, and the calls on a fridge's compressor
flicker (REFIT house 2's day: 154 fridge runs sent, a median 17 s long and 27 s apart, where its
channel shows 17 cycles; one wash in 28 pieces). Priced piece by piece, no piece of a wash is worth
a shift nudge; counted, a fridge "ran" 150 times a day. So the coach joins an appliance's runs that
lie at most ``PAUSE_S`` apart into one use, with the energy of its pieces spread over their own
minutes (a gap draws nothing), before it counts or prices them.
"""

from __future__ import annotations

from collections.abc import Iterable

from cloud.summary import SETTLEMENT_S
from protocols.uplink import PROFILE_MINUTES, ApplianceEnergyV1, ApplianceRunV1

#: The longest pause inside one use of each appliance, in seconds. Longer than the pauses of a program or a
#: flickering call, shorter than the rest between two uses: a fridge's compressor rests for ten minutes or more, a
#: second boil of a kettle is a second use.
PAUSE_S = {"kettle": 60, "microwave": 120, "fridge": 180, "washing_machine": 600, "dishwasher": 600,
           "tumble_dryer": 600, "washer_dryer": 600}
DEFAULT_PAUSE_S = 60


def uses(runs: Iterable[ApplianceRunV1]) -> list[ApplianceRunV1]:
    """The runs with each appliance's pieces at most ``PAUSE_S`` apart joined, in order of start; a use is at most a
    day long (the profile a run carries), so calls on a fridge that never rest make a use a day, not one for ever."""
    out: list[ApplianceRunV1] = []
    going: dict[str, list[ApplianceRunV1]] = {}
    for run in sorted(runs, key=lambda r: (r.start, r.appliance)):
        pieces = going.get(run.appliance)
        if (pieces and run.start - max(p.end for p in pieces) <= PAUSE_S.get(run.appliance, DEFAULT_PAUSE_S)
                and run.end - pieces[0].start <= PROFILE_MINUTES * 60):  # a use is at most a profile's day long
            pieces.append(run)
            continue
        if pieces:
            out.append(_joined(pieces))
        going[run.appliance] = [run]
    out += [_joined(pieces) for pieces in going.values()]
    return sorted(out, key=lambda r: (r.start, r.appliance))


def _joined(pieces: list[ApplianceRunV1]) -> ApplianceRunV1:
    """One use of its pieces: its profile each piece's energy over that piece's own minutes, as its profile shares it
    (so the use is priced at the energy sent, however the pieces' minutes overlap), nothing in the pauses."""
    if len(pieces) == 1:
        return pieces[0]
    start, end = pieces[0].start, max(p.end for p in pieces)
    shapes = [(p, (p.start - start) // 60, p.profile_w or [1.0] * max(1, round((p.end - p.start) / 60)))
              for p in pieces]
    minutes = [0.0] * min(PROFILE_MINUTES, max(offset + len(shape) for _, offset, shape in shapes))
    for piece, offset, shape in shapes:
        total = sum(shape) or 1.0
        for i, w in enumerate(shape[:max(0, len(minutes) - offset)]):
            minutes[offset + i] += piece.energy_wh * w / total * 60  # Wh in a minute -> mean W
    length = sum(p.end - p.start for p in pieces)
    return ApplianceRunV1(
        appliance=pieces[0].appliance, start=start, end=end, energy_wh=round(sum(p.energy_wh for p in pieces), 1),
        peak_w=max(p.peak_w for p in pieces), profile_w=[round(w, 1) for w in minutes],
        confidence=round(sum(p.confidence * (p.end - p.start) for p in pieces) / max(1, length), 3))


def settled_to(energy: Iterable[ApplianceEnergyV1]) -> dict[str, int]:
    """How far the hub has settled each appliance: the end of the last half hour it sent of it (it settles that
    appliance's runs at least that far). A hub settles an appliance its plug measures within minutes and the rest
    two hours behind, so one horizon for all would call a disaggregated wash whole while its pieces still come.
    Empty for a hub that sends no half hours."""
    out: dict[str, int] = {}
    for e in energy:
        out[e.appliance] = max(out.get(e.appliance, 0), e.start + SETTLEMENT_S)
    return out


def is_whole(use: ApplianceRunV1, settled: dict[str, int]) -> bool:
    """Whether no more of this use can come: the hub has settled its appliance past its end and a pause after it.
    A nudge is told once, so a wash is priced when it is whole, not from its first pieces (with no half hours to
    tell, at once; an appliance the hub sent none of is judged by the furthest it sent)."""
    if not settled:
        return True
    reached = settled.get(use.appliance, max(settled.values()))
    return use.end + PAUSE_S.get(use.appliance, DEFAULT_PAUSE_S) <= reached
