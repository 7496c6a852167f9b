"""Bills to the penny: hand-worked examples through `ohmni bill`, and properties of the engine."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from cloud.billing.engine import Interval, price
from cloud.tariffs.model import FlatRates, Tariff, TariffVersion, Window, WindowRates
from ohmni.cli import app
from tests.mutation import mutated

runner = CliRunner()
LONDON = ZoneInfo("Europe/London")


def write_usage(path: Path, rows: list[tuple[datetime, str]]) -> Path:
    path.write_text("start,kwh\n" + "".join(f"{start.isoformat()},{kwh}\n" for start, kwh in rows))
    return path


def half_hours(day_start_utc: datetime, n: int, kwh: str = "1") -> list[tuple[datetime, str]]:
    return [(day_start_utc + timedelta(minutes=30 * i), kwh) for i in range(n)]


def run_bill(tmp_path: Path, tariff: Tariff, usage: list[tuple[datetime, str]], date_from: str, date_to: str,
             *extra: str) -> dict:
    (tmp_path / "t.json").write_text(tariff.model_dump_json())
    write_usage(tmp_path / "u.csv", usage)
    result = runner.invoke(app, ["bill", "--tariff", str(tmp_path / "t.json"), "--usage", str(tmp_path / "u.csv"),
                                 "--from", date_from, "--to", date_to, "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


def economy7() -> Tariff:
    return Tariff(name="Economy 7", versions=[TariffVersion(
        unit_rates=WindowRates(default_name="Day", default_rate=Decimal("0.30"),
                               windows=[Window(name="Night", start=time(0, 30), end=time(7, 30),
                                               rate=Decimal("0.09"))]),
        standing_charge_per_day=Decimal("0.50"))])


def test_flat_48_half_hours_at_50p_plus_standing_charge(tmp_path):
    tariff = Tariff(name="Flat", versions=[TariffVersion(unit_rates=FlatRates(rate=Decimal("0.50")),
                                                         standing_charge_per_day=Decimal("0.101"))])
    bill = run_bill(tmp_path, tariff, half_hours(datetime(2025, 1, 8, tzinfo=UTC), 48), "2025-01-08", "2025-01-09")
    assert bill["total"] == "24.10" and bill["currency"] == "GBP"
    lines = {line["description"]: line for line in bill["lines"]}
    assert lines["Energy"]["quantity"] == "48" and lines["Energy"]["amount"] == "24.00"
    assert lines["Standing charge"]["amount"] == "0.101"


def test_economy7_on_the_23_hour_day(tmp_path):
    # 2025-03-30: clocks go forward at 01:00 GMT; 46 half-hours, 12 of them in 00:30-07:30 on the wall clock
    bill = run_bill(tmp_path, economy7(), half_hours(datetime(2025, 3, 30, tzinfo=UTC), 46),
                    "2025-03-30", "2025-03-31")
    lines = {line["description"]: line for line in bill["lines"]}
    assert lines["Night"]["quantity"] == "12" and lines["Day"]["quantity"] == "34"
    assert bill["total"] == "11.78" and bill["missing_intervals"] == 0


def test_economy7_on_the_25_hour_day(tmp_path):
    # 2025-10-26: 01:00-02:00 happens twice; both are night on the wall clock: 16 night half-hours of 50
    start = datetime(2025, 10, 25, 23, tzinfo=UTC)  # local midnight BST
    bill = run_bill(tmp_path, economy7(), half_hours(start, 50), "2025-10-26", "2025-10-27")
    lines = {line["description"]: line for line in bill["lines"]}
    assert lines["Night"]["quantity"] == "16" and lines["Day"]["quantity"] == "34"
    assert bill["total"] == "12.14"


def test_agile_prices_and_a_standing_charge_change_mid_period(tmp_path):
    day = datetime(2025, 1, 8, tzinfo=UTC)
    results = [{"value_exc_vat": (10 + i % 48) / 1.05, "value_inc_vat": 10 + i % 48,
                "valid_from": (day + timedelta(minutes=30 * i)).isoformat(),
                "valid_to": (day + timedelta(minutes=30 * (i + 1))).isoformat()} for i in range(96)]
    (tmp_path / "rates.json").write_text(json.dumps({"count": 96, "results": results[::-1]}))
    (tmp_path / "standing.json").write_text(json.dumps({"count": 2, "results": [
        {"value_exc_vat": 42.857, "value_inc_vat": 45, "valid_from": "2025-01-09T00:00:00Z", "valid_to": None},
        {"value_exc_vat": 38.095, "value_inc_vat": 40, "valid_from": "2024-01-01T00:00:00Z",
         "valid_to": "2025-01-09T00:00:00Z"}]}))
    out = tmp_path / "agile.json"
    imported = runner.invoke(app, ["tariff", "import", "octopus", "--unit-rates", str(tmp_path / "rates.json"),
                                   "--standing-charges", str(tmp_path / "standing.json"), "--out", str(out)])
    assert imported.exit_code == 0, imported.output
    tariff = Tariff.model_validate_json(out.read_text())
    bill = run_bill(tmp_path, tariff, half_hours(day, 96), "2025-01-08", "2025-01-10")
    # energy: 2 x sum(10..57)p = 2 x 1608p; standing 40p then 45p
    assert Decimal(bill["total"]) == Decimal("32.16") + Decimal("0.85")
    standing = [line for line in bill["lines"] if line["description"] == "Standing charge"]
    assert sorted(line["rate"] for line in standing) == ["0.4", "0.45"]


def test_a_unit_rate_without_a_start_is_a_clear_error(tmp_path):
    rates = {"count": 1, "results": [{"value_inc_vat": 24.5, "valid_from": None, "valid_to": None}]}
    (tmp_path / "rates.json").write_text(json.dumps(rates))
    out = tmp_path / "t.json"
    imported = runner.invoke(app, ["tariff", "import", "octopus", "--unit-rates", str(tmp_path / "rates.json"),
                                   "--out", str(out)])
    said = "".join(imported.output.split())  # the console wraps long lines, within a path too (a long TMPDIR)
    assert imported.exit_code == 2 and "rates.jsonvalid_from:missing" in said, imported.output
    assert not out.exists()


def urdb_record() -> dict:
    weekday = [[1 if 16 <= h <= 20 else 0 for h in range(24)] for _ in range(12)]
    weekend = [[0] * 24 for _ in range(12)]
    return {"items": [{"name": "E-TOU test", "utility": "Test Utility",
                       "energyratestructure": [
                           [{"max": 10, "rate": 0.10, "adj": 0.01, "unit": "kWh"}, {"rate": 0.20, "unit": "kWh"}],
                           [{"rate": 0.30, "adj": 0.02, "unit": "kWh"}]],
                       "energyweekdayschedule": weekday, "energyweekendschedule": weekend,
                       "fixedchargefirstmeter": 10, "fixedchargeunits": "$/month"}]}


def test_urdb_tiers_periods_and_a_fixed_charge(tmp_path):
    (tmp_path / "urdb.json").write_text(json.dumps(urdb_record()))
    out = tmp_path / "urdb-tariff.json"
    imported = runner.invoke(app, ["tariff", "import", "urdb", str(tmp_path / "urdb.json"), "--out", str(out),
                                   "--tz", "America/Los_Angeles"])
    assert imported.exit_code == 0, imported.output
    tariff = Tariff.model_validate_json(out.read_text())
    la_midnight = datetime(2025, 1, 15, tzinfo=ZoneInfo("America/Los_Angeles"))  # a Wednesday
    hours = [(la_midnight + timedelta(hours=h), "1") for h in range(24)]
    bill = run_bill(tmp_path, tariff, hours, "2025-01-15", "2025-01-16")
    lines = {line["description"]: line for line in bill["lines"]}
    # off-peak 19 kWh: 10 at 0.11 then 9 at 0.20; peak 5 kWh at 0.32; $10 a month
    assert lines["Period 1 tier 1"]["quantity"] == "10" and lines["Period 1 tier 2"]["quantity"] == "9"
    assert lines["Period 2"]["quantity"] == "5" and lines["Fixed charge"]["amount"] == "10"
    assert bill["total"] == "14.50" and bill["currency"] == "USD"


def test_a_price_typed_in_pence_is_refused_with_the_pounds_it_likely_meant(tmp_path):
    """The commonest slip in a hand-written tariff: 24.50 for 24.50p. Billed, it would be a bill a hundred times
    too big; refused, the error names the price and the figure meant."""
    tariff = json.loads(Tariff(name="Flat", versions=[TariffVersion(unit_rates=FlatRates(rate=Decimal("0.2450")))])
                        .model_dump_json())
    tariff["versions"][0]["unit_rates"]["rate"] = "24.50"
    (tmp_path / "t.json").write_text(json.dumps(tariff))
    write_usage(tmp_path / "u.csv", half_hours(datetime(2025, 1, 8, tzinfo=UTC), 48))
    result = runner.invoke(app, ["bill", "--tariff", str(tmp_path / "t.json"), "--usage", str(tmp_path / "u.csv"),
                                 "--from", "2025-01-08", "--to", "2025-01-09"])
    said = " ".join(result.output.split())
    assert result.exit_code == 2, said
    assert ("versions.0.unit_rates.rate: 24.50 GBP a kWh is more than any GBP tariff charges (at most 10); "
            "prices are in GBP, not pence: 0.2450 GBP?") in said
    # a US fixed charge typed in cents, from a URDB record: the import says so and writes nothing
    record = urdb_record()
    record["items"][0]["fixedchargefirstmeter"] = 1500
    (tmp_path / "urdb.json").write_text(json.dumps(record))
    imported = runner.invoke(app, ["tariff", "import", "urdb", str(tmp_path / "urdb.json"), "--out",
                                   str(tmp_path / "out.json"), "--tz", "America/Los_Angeles"])
    said = " ".join(imported.output.split())
    assert imported.exit_code == 2 and not (tmp_path / "out.json").exists(), said
    assert "fixed_charge_per_month: 1500 USD a month is more than any USD tariff charges (at most 620)" in said
    assert "not cents: 15.00 USD?" in said


def test_the_dearest_prices_on_record_are_tariffs_and_a_currency_is_an_iso_code():
    def flat_doc(rate: str, currency: str, **charges: str) -> dict:
        version = {"unit_rates": {"type": "flat", "rate": rate}, **charges}
        return {"name": "t", "currency": currency, "versions": [version]}

    def flat(rate: str, currency: str, **charges: str) -> Tariff:
        return Tariff.model_validate(flat_doc(rate, currency, **charges))

    # ERCOT's $9 a kWh (February 2021), JEPX's ¥251 (January 2021), a yen tariff's ¥1,500 a month
    assert flat("9", "USD").versions[0].unit_rates.rate == Decimal(9)
    assert flat("251", "JPY", fixed_charge_per_month="1500").currency == "JPY"
    # Agile's cap and a negative plunge, a price each half hour
    day = datetime(2025, 1, 8, tzinfo=UTC)
    agile = Tariff.model_validate({"name": "Agile", "versions": [{"unit_rates": {"type": "dynamic", "prices": [
        {"valid_from": (day + timedelta(minutes=30 * i)).isoformat(), "rate": rate}
        for i, rate in enumerate(["1.00", "-0.50"])]}}]})
    assert [p.rate for p in agile.versions[0].unit_rates.prices] == [Decimal("1.00"), Decimal("-0.50")]
    # a currency Ohmni has no bound for is held only to the bound on corrupt figures
    assert flat("24.50", "SEK").currency == "SEK"
    plunge = {"type": "dynamic", "prices": [{"valid_from": day.isoformat(), "rate": "-12"}]}
    for doc, words in [
        (flat_doc("10.01", "GBP"), "unit_rates.rate: 10.01 GBP a kWh is more than any GBP tariff charges (at most 10)"),
        (flat_doc("0.20", "GBP", standing_charge_per_day="60.10"), "standing_charge_per_day: 60.10 GBP a day"),
        ({"name": "t", "versions": [{"unit_rates": plunge}]},
         "-12 GBP a kWh is more than any GBP tariff charges (at most 10); prices are in GBP, not pence: -0.12 GBP?"),
        (flat_doc("0.20", "gbp"), "currency 'gbp' is not an ISO 4217 code (three capitals: GBP, EUR, USD)"),
    ]:
        with pytest.raises(ValidationError, match=re.escape(words)):
            Tariff.model_validate(doc)


def test_minimum_bill_tops_up(tmp_path):
    tariff = Tariff(name="Min", currency="USD", timezone="UTC", versions=[TariffVersion(
        unit_rates=FlatRates(rate=Decimal("0.10")), minimum_charge_per_month=Decimal("20"))])
    bill = run_bill(tmp_path, tariff, half_hours(datetime(2025, 2, 1, tzinfo=UTC), 48, "0.25"),
                    "2025-02-01", "2025-02-02")
    assert bill["total"] == "20.00"
    assert any(line["description"].startswith("Minimum charge") and Decimal(line["amount"]) == Decimal("18.80")
               for line in bill["lines"])


def test_missing_intervals_are_reported_not_priced_as_zero(tmp_path):
    rows = half_hours(datetime(2025, 1, 8, tzinfo=UTC), 48)
    del rows[10:13]
    tariff = Tariff(name="Flat", versions=[TariffVersion(unit_rates=FlatRates(rate=Decimal("0.50")))])
    (tmp_path / "t.json").write_text(tariff.model_dump_json())
    write_usage(tmp_path / "u.csv", rows)
    result = runner.invoke(app, ["bill", "--tariff", str(tmp_path / "t.json"), "--usage", str(tmp_path / "u.csv"),
                                 "--from", "2025-01-08", "--to", "2025-01-09", "--json"])
    assert result.exit_code == 0
    assert "3 interval(s)" in result.stderr and "05:00:00+00:00 to 2025-01-08T06:30:00+00:00" in result.stderr
    bill = json.loads(result.stdout)
    assert bill["missing_intervals"] == 3 and bill["total"] == "22.50"


def test_bad_usage_rows_name_their_line(tmp_path):
    tariff = Tariff(name="Flat", versions=[TariffVersion(unit_rates=FlatRates(rate=Decimal("0.50")))])
    (tmp_path / "t.json").write_text(tariff.model_dump_json())
    for body, message in (("start,kwh\n2025-01-08T00:00:00+00:00,1\n2025-01-08T00:30:00+00:00,lots\n", "line 3"),
                          ("start,kwh\n2025-01-08T00:00:00,1\n", "no UTC offset"),
                          ("begin,energy\n1,1\n", "start,kwh"),
                          ("start,kwh\n1736294400,-1\n", "line 2"),
                          # a decimal comma: billed as 1 kWh before
                          ("start,kwh\n1736294400,1,5\n", "line 2: more values than the header has columns ('5' "
                                                            "left over): a decimal comma?"),
                          # these two raised decimal.InvalidOperation and OverflowError with a traceback
                          ("start,kwh\n1736294400,1e308\n", "line 2: kwh '1e308' is more than any home uses"),
                          ("start,kwh\n999999999999999999999,1\n", "line 2: start '999999999999999999999' is out "
                                                                    "of range"),
                          # a spreadsheet's UTF-16 export
                          ("start,kwh\n1736294400,1\n".encode("utf-16"), "not UTF-8 text (byte 0)"),
                          ("\ufeffstart,kwh\n1736294400,x\n".encode(), "line 2: kwh 'x' is not a number")):
        path = tmp_path / "u.csv"
        path.write_bytes(body) if isinstance(body, bytes) else path.write_text(body)
        result = runner.invoke(app, ["bill", "--tariff", str(tmp_path / "t.json"), "--usage",
                                     str(tmp_path / "u.csv"), "--from", "2025-01-08", "--to", "2025-01-09"])
        assert result.exit_code == 2 and message in " ".join(result.stderr.split()), (body, result.stderr)


def test_text_output_shows_lines_and_total(tmp_path):
    (tmp_path / "t.json").write_text(economy7().model_dump_json())
    write_usage(tmp_path / "u.csv", half_hours(datetime(2025, 1, 8, tzinfo=UTC), 48))
    result = runner.invoke(app, ["bill", "--tariff", str(tmp_path / "t.json"), "--usage", str(tmp_path / "u.csv"),
                                 "--from", "2025-01-08", "--to", "2025-01-09"])
    assert result.exit_code == 0
    assert "Night" in result.stdout and "Total" in result.stdout and "£" in result.stdout


usage_values = st.lists(st.decimals(min_value=0, max_value=5, places=3), min_size=96 * 3, max_size=96 * 3)


@settings(max_examples=40, deadline=None)
@given(values=usage_values, split=st.integers(min_value=1, max_value=2))
def test_bill_is_additive_over_adjacent_periods(values, split):
    start = datetime(2025, 3, 29, tzinfo=UTC)  # spans the spring clock change
    usage = [Interval(start + timedelta(minutes=30 * i), v) for i, v in enumerate(values)]
    d0 = date(2025, 3, 29)
    whole = price(economy7(), usage, d0, d0 + timedelta(days=3), LONDON)
    a = price(economy7(), usage, d0, d0 + timedelta(days=split), LONDON)
    b = price(economy7(), usage, d0 + timedelta(days=split), d0 + timedelta(days=3), LONDON)
    assert abs(whole.total - (a.total + b.total)) <= Decimal("0.01")
    assert whole.subtotal == a.subtotal + b.subtotal  # exact before rounding


def agile_results(n: int = 3) -> dict:
    day = datetime(2025, 1, 8, tzinfo=UTC)
    half = timedelta(minutes=30)
    return {"count": n, "results": [{"value_inc_vat": 10 + i, "valid_from": (day + i * half).isoformat(),
                                     "valid_to": (day + (i + 1) * half).isoformat()} for i in range(n)]}


def test_an_import_of_any_shape_is_a_tariff_or_a_clear_error(tmp_path):
    """The Octopus and URDB documents of the tests above with fields, at any depth, replaced by other JSON: each
    import gives a tariff or an error naming the file (a list where a time was, a row that is null, a rate of
    "abc", a start date past 9999 once raised AttributeError, decimal.InvalidOperation or OverflowError)."""
    from cloud.tariffs import importers

    path = tmp_path / "doc.json"

    @settings(max_examples=600, deadline=None, derandomize=True)
    @given(st.data(), st.booleans())
    def imported_or_refused(data: st.DataObject, octopus: bool) -> None:
        doc = agile_results() if octopus else urdb_record()
        for _ in range(data.draw(st.integers(1, 3))):
            doc = mutated(doc, data)
        path.write_text(json.dumps(doc))
        try:
            importers.octopus(path, path) if octopus else importers.urdb(path, "UTC")
        except importers.ImportError_ as exc:
            assert str(exc).startswith(str(path)), exc
        except ValidationError:
            pass  # read, but the tariff made is not one Ohmni prices: the command says so

    imported_or_refused()
    path.write_text(json.dumps({"results": [None]}))
    result = runner.invoke(app, ["tariff", "import", "octopus", "--unit-rates", str(path), "--out",
                                 str(tmp_path / "t.json")])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and 'not the Octopus API shape {"results": [...]}: results.0: Input should be' in said
