"""The coach: previews, explanations and nudges, checked by hand and by property."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.billing.engine import Interval, price
from cloud.coach.explain import explain
from cloud.coach.nudges import ShiftPrefs, always_on, fits, profile_kwh, shift_nudge, tariff_switch
from cloud.coach.periods import billing_period
from cloud.coach.preview import preview
from cloud.coach.uses import uses
from cloud.tariffs.model import DynamicRates, FlatRates, Price, Tariff, TariffVersion, Window, WindowRates
from protocols.uplink import ApplianceRunV1

LONDON = ZoneInfo("Europe/London")


def e7(night: str = "0.09", day: str = "0.30") -> Tariff:
    return Tariff(name="E7", versions=[TariffVersion(
        unit_rates=WindowRates(default_name="Day", default_rate=Decimal(day),
                               windows=[Window(name="Night", start=time(0, 30), end=time(7, 30), rate=Decimal(night))]),
        standing_charge_per_day=Decimal("0.50"))])


def flat(rate: str = "0.245", standing: str = "0.601") -> Tariff:
    return Tariff(name="Flat", versions=[TariffVersion(unit_rates=FlatRates(rate=Decimal(rate)),
                                                       standing_charge_per_day=Decimal(standing))])


def washer_run(start: datetime) -> ApplianceRunV1:
    profile = [2000.0] * 30 + [200.0] * 90  # heat for half an hour, then wash: 1.3 kWh
    return ApplianceRunV1(appliance="washing_machine", start=int(start.timestamp()),
                          end=int(start.timestamp()) + 120 * 60, energy_wh=1300, peak_w=2000, profile_w=profile)


def test_washing_machine_nudge_prices_the_run_at_both_starts():
    run = washer_run(datetime(2025, 1, 15, 9, 10, tzinfo=LONDON))
    nudge = shift_nudge(run, e7(), LONDON, ShiftPrefs(not_before=time(5, 0)))
    assert nudge is not None
    # 1.3 kWh at 30p = 39p, at 9p = 11.7p: 27.3p saved
    assert nudge.saving == "0.27"
    assert nudge.proposed_start.astimezone(LONDON).time() == time(5, 0)
    assert nudge.message == ("Your washing machine ran at 09:10 and used 1.3 kWh; starting at 05:00 would have "
                             "cost 27p less.")


def test_quiet_hours_and_minimum_saving_are_respected():
    run = washer_run(datetime(2025, 1, 15, 9, 10, tzinfo=LONDON))
    assert shift_nudge(run, e7(), LONDON, ShiftPrefs(quiet_start=time(22, 0), quiet_end=time(7, 0))) is None
    assert shift_nudge(run, e7(), LONDON, ShiftPrefs(min_saving=Decimal("0.50"))) is None


def test_a_run_the_hub_was_unsure_of_gets_no_nudge():
    """Disaggregation says how likely a run is right; below even odds the coach does not tell the home about it."""
    run = washer_run(datetime(2025, 1, 15, 9, 10, tzinfo=LONDON))
    assert shift_nudge(run.model_copy(update={"confidence": 0.42}), e7(), LONDON) is None
    assert shift_nudge(run.model_copy(update={"confidence": 0.61}), e7(), LONDON).saving == "0.27"
    assert shift_nudge(run.model_copy(update={"confidence": 0.42}), e7(), LONDON,
                       ShiftPrefs(min_confidence=0.4)) is not None


def test_only_an_appliance_a_home_can_start_later_is_told_to():
    """The same 1.3 kWh at 09:10 on Economy 7 saves 27p by 05:00 whatever ran it, but only a wash can wait: a kettle,
    microwave or fridge runs when it is needed, so its run gets no nudge; a home's own list can say otherwise."""
    run = washer_run(datetime(2025, 1, 15, 9, 10, tzinfo=LONDON))
    for appliance in ("washing_machine", "dishwasher", "tumble_dryer"):
        nudge = shift_nudge(run.model_copy(update={"appliance": appliance}), e7(), LONDON)
        assert nudge is not None and nudge.saving == "0.27", appliance
    for appliance in ("kettle", "microwave", "fridge"):
        assert shift_nudge(run.model_copy(update={"appliance": appliance}), e7(), LONDON) is None, appliance
    assert shift_nudge(run.model_copy(update={"appliance": "kettle"}), e7(), LONDON,
                       ShiftPrefs(appliances=frozenset({"kettle"}))).saving == "0.27"


def test_dynamic_prices_are_used_only_once_published():
    day = datetime(2025, 1, 15, tzinfo=UTC)
    prices = [Price(valid_from=day + timedelta(minutes=30 * i), valid_to=day + timedelta(minutes=30 * (i + 1)),
                    rate=Decimal("0.05") if i >= 40 else Decimal("0.25")) for i in range(48)]
    tariff = Tariff(name="Agile", versions=[TariffVersion(unit_rates=DynamicRates(prices=prices))])
    run = washer_run(day + timedelta(hours=9))
    published = shift_nudge(run, tariff, ZoneInfo("UTC"))
    assert published is not None and published.proposed_start.hour >= 20
    # tomorrow's prices are not out: a horizon before the cheap evening gives nothing cheaper
    assert shift_nudge(run, tariff, ZoneInfo("UTC"), published_until=day + timedelta(hours=19)) is None


windows = st.tuples(st.integers(0, 47), st.integers(1, 47), st.decimals("0.01", "0.60", places=2))


@settings(max_examples=60, deadline=None)
@given(window=windows, default=st.decimals("0.01", "0.60", places=2), start_slot=st.integers(0, 95),
       minutes=st.integers(5, 180), watts=st.lists(st.floats(0, 3000), min_size=1, max_size=5),
       quiet=st.booleans(), not_before=st.none() | st.integers(0, 23))
def test_a_nudge_never_reports_a_loss_nor_proposes_a_run_that_does_not_fit(
        window, default, start_slot, minutes, watts, quiet, not_before):
    start_h, length, rate = window
    w_start = time(start_h // 2, 30 * (start_h % 2))
    end_slot = (start_h + length) % 48
    tariff = Tariff(name="TOU", versions=[TariffVersion(unit_rates=WindowRates(
        default_rate=default, windows=[Window(name="Cheap", start=w_start,
                                              end=time(end_slot // 2, 30 * (end_slot % 2)), rate=rate)]))])
    start = datetime(2025, 6, 10, tzinfo=LONDON) + timedelta(minutes=15 * start_slot)
    profile = [watts[i % len(watts)] for i in range(minutes)]
    run = ApplianceRunV1(appliance="dishwasher", start=int(start.timestamp()),
                         end=int(start.timestamp()) + minutes * 60, energy_wh=sum(profile) / 60,
                         peak_w=max(profile), profile_w=profile)
    prefs = ShiftPrefs(quiet_start=time(23) if quiet else None, quiet_end=time(6) if quiet else None,
                       not_before=time(not_before) if not_before is not None else None, min_saving=Decimal(0))
    nudge = shift_nudge(run, tariff, LONDON, prefs)
    if nudge is not None:
        assert Decimal(nudge.saving) >= 0
        assert fits(tariff, LONDON, nudge.proposed_start, minutes, prefs, None)


def test_billing_periods_follow_the_billing_day():
    assert billing_period(date(2025, 3, 20), 15) == (date(2025, 3, 15), date(2025, 4, 15))
    assert billing_period(date(2025, 3, 10), 15) == (date(2025, 2, 15), date(2025, 3, 15))
    assert billing_period(date(2025, 1, 3), 31) == (date(2024, 12, 28), date(2025, 1, 28))


def half_hourly(start: datetime, days: int, kwh: str = "1") -> list[Interval]:
    return [Interval(start + timedelta(minutes=30 * i), Decimal(kwh)) for i in range(48 * days)]


def test_preview_so_far_and_projection_are_exact_for_a_steady_home():
    history = half_hourly(datetime(2025, 1, 1, tzinfo=UTC), 10)  # 48 kWh a day, Jan 1-10
    now = history[-1].start
    p = preview(flat(), LONDON, 1, now, history)
    day_cost = Decimal(48) * Decimal("0.245") + Decimal("0.601")  # 12.361
    assert (p.period_start, p.period_end) == (date(2025, 1, 1), date(2025, 2, 1))
    assert p.so_far == str((day_cost * 10).quantize(Decimal("0.01")))
    assert p.projected == str((day_cost * 31).quantize(Decimal("0.01")))
    assert p.projected_low == p.projected_high == p.projected  # no day-to-day spread
    assert p.history_days == 10


def test_preview_band_widens_with_a_home_that_varies():
    history = []
    for day in range(10):
        history += half_hourly(datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=day), 1, "1" if day % 2 else "2")
    p = preview(flat(), LONDON, 1, history[-1].start, history)
    assert Decimal(p.projected_low) < Decimal(p.projected) < Decimal(p.projected_high)


def test_explanation_splits_the_change_exactly():
    last = price(flat("0.20"), half_hourly(datetime(2025, 1, 1, tzinfo=UTC), 31, "0.5"),
                 date(2025, 1, 1), date(2025, 2, 1), LONDON)
    this = price(flat("0.25"), half_hourly(datetime(2025, 2, 1, tzinfo=UTC), 28, "0.6"),
                 date(2025, 2, 1), date(2025, 3, 1), LONDON)
    ex = explain(last, this, ({"kettle": Decimal(20)}, {"kettle": Decimal(21), "dishwasher": Decimal(30)}))
    parts = Decimal(ex.usage_effect) + Decimal(ex.price_effect) + Decimal(ex.standing_effect)
    assert abs(parts - Decimal(ex.change)) <= Decimal("0.02")
    assert "higher" in ex.sentences[0] and "28 days against 31" in " ".join(ex.sentences)
    assert "dishwasher" in ex.sentences[-1]
    assert ex.unit_price == ("0.2000", "0.2500")


def test_always_on_load_and_its_yearly_cost():
    history = []
    for i in range(48 * 3):
        start = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=30 * i)
        history.append(Interval(start, Decimal("0.1") if start.hour in (2, 3) else Decimal("0.4")))
    nudge = always_on(history, flat(), LONDON)
    # floor 0.1 kWh per half-hour = 200 W; 200 W x 8760 h = 1752 kWh at 24.5p
    assert nudge is not None and nudge.saving == "429.24" and "200 W" in nudge.message


def test_no_always_on_load_is_claimed_before_a_night_is_seen():
    """A home that joined at 08:00, a washer or a kettle in each of its first eight hours: its quietest half-hour
    by day (0.3 kWh, 600 W) is no always-on load, and pricing it a year long would promise a fortune. At its first
    night the floor is the night's (200 W)."""
    day = [Interval(datetime(2025, 1, 1, 8, tzinfo=UTC) + timedelta(minutes=30 * i), Decimal("0.3") + i % 3)
           for i in range(16)]
    assert always_on(day, flat(), LONDON) is None
    night = [Interval(datetime(2025, 1, 2, 1, tzinfo=UTC) + timedelta(minutes=30 * i), Decimal("0.1"))
             for i in range(8)]
    nudge = always_on(day + night, flat(), LONDON)
    assert nudge is not None and "about 200 W, even at night" in nudge.message and nudge.saving == "429.24"


def test_tariff_switch_reprices_the_real_usage():
    night_use = [Interval(s.start, Decimal("2") if 1 <= s.start.hour < 7 else Decimal("0.1"))
                 for s in half_hourly(datetime(2025, 1, 1, tzinfo=UTC), 30)]
    nudges = tariff_switch(night_use, flat("0.30", "0.50"), [e7()], LONDON, date(2025, 1, 31), days=30)
    assert len(nudges) == 1 and "E7" in nudges[0].message
    # a day: 12 half-hours x 2 kWh + the 00:30 and 07:00 half-hours x 0.1 kWh in the night band,
    # 24.2 kWh at 9p instead of 30p = 5.082 saved; day rates and standing charges are equal
    assert Decimal(nudges[0].saving) == (Decimal("5.082") * 365).quantize(Decimal("0.01"))


def wash_in_pieces(start: datetime, pauses_s: tuple[int, ...]) -> list[ApplianceRunV1]:
    """A wash as a hub sends it: pieces of 4 minutes at 3 kW (0.2 kWh each) with pauses between them."""
    out, t = [], int(start.timestamp())
    for pause in (*pauses_s, None):
        out.append(ApplianceRunV1(appliance="washing_machine", start=t, end=t + 240, energy_wh=200, peak_w=3000,
                                  confidence=0.8, profile_w=[3000.0] * 4))
        t += 240 + (pause or 0)
    return out


def test_a_wash_sent_in_pieces_is_one_use_and_priced_whole():
    """Six pieces of a wash 2 to 5 minutes apart: each alone saves 4p by 05:00 on Economy 7 (under the 5p worth
    saying, so no nudge), the wash 25p; it is one use, with all of its energy, priced over its own minutes."""
    pieces = wash_in_pieces(datetime(2025, 1, 15, 9, 10, tzinfo=LONDON), (120, 300, 180, 120, 240))
    assert all(shift_nudge(p, e7(), LONDON, ShiftPrefs(not_before=time(5, 0))) is None for p in pieces)
    [wash] = uses(pieces)
    assert (wash.start, wash.end) == (pieces[0].start, pieces[-1].end) and wash.energy_wh == 1200
    assert wash.confidence == 0.8 and wash.peak_w == 3000
    assert sum(profile_kwh(wash)) == Decimal("1.2")  # its energy, over its own minutes, none in the pauses
    assert wash.profile_w[4:6] == [0.0, 0.0]
    nudge = shift_nudge(wash, e7(), LONDON, ShiftPrefs(not_before=time(5, 0)))
    assert nudge is not None and nudge.saving == "0.25" and "used 1.2 kWh" in nudge.message
    # a pause longer than a wash's (ten minutes) is the next wash; a second boil a few minutes on, the next cup
    assert len(uses(wash_in_pieces(datetime(2025, 1, 15, 9, 10, tzinfo=LONDON), (120, 660)))) == 2
    kettle = [ApplianceRunV1(appliance="kettle", start=s, end=s + 150, energy_wh=120, peak_w=2900)
              for s in (1000, 1400)]
    assert uses(kettle) == kettle


def test_a_days_flickering_fridge_is_counted_by_its_cycles(data_dir, tmp_path):
    """REFIT houses 2, 5 and 9 through the shipped model: the hub sends hundreds of fridge runs a day (its calls
    flicker on the compressor's plateau), a count no home would believe; joined into uses they come within a
    quarter of the cycles the fridges' own channels show, and no watt-hour is lost or made."""
    from edge.nilm.convert import convert_refit
    from edge.nilm.disaggregate import disaggregate_with_confidence
    from edge.nilm.house_csv import read_house
    from edge.nilm.live import runs_from
    from edge.nilm.model import pretrained

    folder = data_dir / "nilm/refit_1day_2015-01-08"
    sent, joined, cycles = 0, 0, 0
    for n in (2, 5, 9):
        convert_refit(folder / f"house_{n}_day.csv", folder / "labels.csv", n, tmp_path / f"{n}.csv")
        house = read_house(tmp_path / f"{n}.csv", need_truth=True)
        estimates, confidence = disaggregate_with_confidence(house.timestamp, house.mains, pretrained())
        runs = [r.to_uplink() for r in runs_from(house.timestamp, estimates, confidence)]
        fridge = [r for r in runs if r.appliance == "fridge"]
        together = [r for r in uses(runs) if r.appliance == "fridge"]
        assert abs(sum(r.energy_wh for r in together) - sum(r.energy_wh for r in fridge)) < 0.1 * len(together)
        sent, joined = sent + len(fridge), joined + len(together)
        cycles += sum(r.appliance == "fridge" for r in uses(r.to_uplink() for r in runs_from(
            house.timestamp, {"fridge": house.appliances["fridge"]})))
    assert sent > 4 * cycles and abs(joined - cycles) <= 0.25 * cycles, (sent, joined, cycles)


def test_calls_that_never_rest_make_a_use_a_day_with_all_their_energy():
    """A fridge called on for 35 hours with a minute's pause every 20 minutes (a home whose calls never rest): the
    coach made one use of it and failed building its profile past a day (an IndexError on every coach call). Now a
    use is at most a day, as a run's profile is, and every watt-hour is in one."""
    runs = [ApplianceRunV1(appliance="fridge", start=1000 + 1260 * i, end=2200 + 1260 * i, energy_wh=30, peak_w=90,
                           profile_w=[90.0] * 20) for i in range(100)]
    days = uses(runs)
    assert len(days) == 2 and all(u.end - u.start <= 86400 for u in days)
    assert sum(u.energy_wh for u in days) == 3000
    assert all(sum(profile_kwh(u)) * 1000 == pytest.approx(u.energy_wh, abs=0.1) for u in days)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["fridge", "washing_machine", "kettle", "heat_pump"]),
                          st.integers(0, 3 * 86400), st.integers(1, 30 * 3600), st.floats(0, 5000),
                          st.lists(st.floats(0, 4000), max_size=40)), max_size=60))
def test_uses_keep_every_watt_hour_and_never_fail(pieces):
    """Any runs a hub may send (overlapping, long, with or without profiles): joining them never fails, keeps each
    appliance's energy, and a use spans more than a day only where one run already did."""
    runs = [ApplianceRunV1(appliance=a, start=s, end=s + d, energy_wh=e, peak_w=1, profile_w=p)
            for a, s, d, e, p in pieces]
    joined = uses(runs)
    for name in {r.appliance for r in runs}:
        sent = sum(r.energy_wh for r in runs if r.appliance == name)
        together = [u for u in joined if u.appliance == name]
        assert sum(u.energy_wh for u in together) == pytest.approx(sent, abs=0.1 * len(runs) + 1e-6)
    longest = max((r.end - r.start for r in runs), default=0)
    assert all(u.end - u.start <= max(86400, longest) for u in joined)
