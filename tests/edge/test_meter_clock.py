"""A telegram stamped in the future, decoded from the wire, is held until the next one says whether to believe it."""

from __future__ import annotations

import pytest

from edge.agent import HubAgent
from edge.config import HubConfig
from edge.meter_clock import ClockGuard
from edge.sources.serial_p1 import P1Decoder
from firmware_sim.meter import SimMeter
from protocols.readings import MeterReading

START = 1_764_072_000
YEARS_5 = 5 * 365 * 86_400


class Listed:
    """A source the agent is built with and never runs: the test hands it readings itself."""

    name, counters = "test", {}  # type: ignore[var-annotated]

    async def run(self, sink) -> None:  # pragma: no cover - not run
        raise AssertionError("not run")


def wire(stamps: list[int]) -> list[MeterReading]:
    """The readings a hub decodes from a simulated meter's telegrams stamped ``stamps`` (real DSMR 5 bytes)."""
    meter, decoder = SimMeter(), P1Decoder()
    readings = decoder.feed(b"".join(meter.telegram(meter.tick(ts, 400.0)) for ts in stamps))
    assert len(readings) == len(stamps)
    return readings


def test_one_telegram_years_ahead_is_dropped_and_the_hub_goes_on(tmp_path):
    stamps = [START + 10 * i for i in range(360)]
    glitch = START + 1805 + YEARS_5
    readings = wire([*stamps[:180], glitch, *stamps[180:]])
    cfg = HubConfig.model_validate({"hub": {"data_dir": str(tmp_path / "hub")}})
    agent = HubAgent(cfg, source=Listed())
    for i in range(0, len(readings), 7):  # in the chunks a serial port hands over
        agent.on_readings(readings[i:i + 7])
    agent.flush_nilm()
    assert agent.store.last_reading_ts() == stamps[-1]
    assert agent.status()["meter"]["counters"]["clock_jumps_dropped"] == 1
    assert agent.store.status()["backlog_readings"] == len(stamps)  # every reading but the glitch kept
    assert agent.face.state is not None and agent.face.state.ts == stamps[-1]
    # the disaggregator took every later reading, and settled them
    assert agent.nilm is not None and list(agent.nilm.state()["runs_to"].values()) == pytest.approx([stamps[-1]] * 5)
    agent.store.close()


def test_a_clock_that_really_moved_is_believed_at_the_next_telegram():
    """The hub was away three hours (or the meter was set right): the first reading after waits for the second,
    then both go on; nothing is dropped. A hub restarted goes on from its store's newest reading."""
    before = [START + 10 * i for i in range(5)]
    after = [before[-1] + 3 * 3600 + 10 * i for i in range(5)]
    guard = ClockGuard(last_ts=START - 10)
    readings = wire(before + after)
    got = guard.admit(readings[:6])
    assert [r.ts for r in got] == before and guard.held is not None
    got += guard.admit(readings[6:])
    assert [r.ts for r in got] == before + after and not guard.counters
    ahead = ClockGuard(last_ts=START + YEARS_5)  # a store whose newest reading was itself ahead: not held back
    assert [r.ts for r in ahead.admit(wire(before))] == before


def test_a_meter_clock_put_right_after_a_day_ahead_is_followed(tmp_path):
    """The meter's clock ran a day ahead for a while (many telegrams: believed) and is then put right. Every reading
    is kept, and the disaggregator and the face follow the clock back instead of waiting a day for it to catch up;
    a hub restarted while the store's newest readings are the ones stamped ahead does the same."""
    right = [START + 10 * i for i in range(720)]
    ahead = [right[-1] + 86_400 + 10 * i for i in range(1, 361)]
    after = [right[-1] + 10 * i for i in range(1, 721)]
    readings = wire(right + ahead + after)
    cfg = HubConfig.model_validate({"hub": {"data_dir": str(tmp_path / "hub")}, "nilm": {"every_s": 300}})
    agent = HubAgent(cfg, source=Listed())
    for i in range(0, len(right) + len(ahead) + 360, 7):
        agent.on_readings(readings[i:min(i + 7, len(right) + len(ahead) + 360)])
    agent.flush_nilm()
    assert agent.nilm is not None
    assert list(agent.nilm.state()["runs_to"].values()) == pytest.approx([after[359]] * 5, abs=1)  # not ahead[-1]:
    # it took the clock back
    assert agent.status()["nilm"]["meter_clock_set_back"] == 1
    assert agent.face.state is not None and agent.face.state.ts == after[359]
    agent.store.close()
    again = HubAgent(cfg, source=Listed())  # restarted: its store's newest reading is a day ahead
    for i in range(len(right) + len(ahead) + 360, len(readings), 7):
        again.on_readings(readings[i:i + 7])
    again.flush_nilm()
    assert again.nilm is not None
    assert list(again.nilm.state()["runs_to"].values()) == pytest.approx([after[-1]] * 5, abs=1)
    assert again.store.status()["backlog_readings"] == len(readings)  # nothing dropped
    again.store.close()
