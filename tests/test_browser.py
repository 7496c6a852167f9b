"""The pages in a real headless Chromium (Playwright driving Debian's /usr/bin/chromium):
what they show equals what the API says, and the agent console's search works by hand.

Screenshots go to test-artifacts/screenshots (or $OHMNI_ARTIFACTS/screenshots).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cloud.words import spoken_day
from tests.conftest import REPO
from tests.fixtures import missing

pytestmark = pytest.mark.e2e
SHOTS = Path(os.environ.get("OHMNI_ARTIFACTS", REPO / "test-artifacts")) / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        missing("Chromium not found (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install -e '.[dev]')")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # Debian's Chromium, never a downloaded one; as root it needs --no-sandbox
        launched = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1000, "height": 1400})
    yield context.new_page()
    context.close()



def gbp(amount: str) -> str:
    """Pounds as the pages show money: "£1,234.56"."""
    return f"£{Decimal(amount):,.2f}"

def test_the_dashboard_shows_the_apis_figures(running_home, page):
    page.goto(f"{running_home['cloud']}/login?key={running_home['key']}")
    page.wait_for_url(f"{running_home['cloud']}/")
    page.wait_for_function("document.getElementById('bill-so-far').textContent !== '–'")
    summary = page.request.get(f"{running_home['cloud']}/api/v1/household/summary").json()
    coach = page.request.get(f"{running_home['cloud']}/api/v1/household/coach").json()
    assert page.text_content("#power-w") == str(summary["power_w"])
    assert page.text_content("#today-kwh") == summary["today"]["kwh"]
    assert page.text_content("#today-cost") == summary["today"]["cost"]
    assert page.text_content("#bill-so-far") == coach["preview"]["so_far"]
    assert page.text_content("#bill-projected") == coach["preview"]["projected"]
    # dates as people read them; the bill's end as its last day (the API's is the day after, exclusive)
    preview = coach["preview"]
    last_day = date.fromisoformat(preview["period_end"]) - timedelta(days=1)
    seen = (f" (Ohmni has seen it from {spoken_day(preview['covered_from'])})"
            if preview["covered_from"] != preview["period_start"] else "")
    assert page.text_content("#bill-period") == (
        f"{spoken_day(preview['period_start'])} to {spoken_day(last_day.isoformat())}{seen}")
    assert page.text_content("#today-date") == spoken_day(summary["today"]["date"])
    page.wait_for_function("/ at /.test(document.getElementById('updated').textContent)")  # the live refresh's
    assert re.fullmatch(r"\d{1,2} [A-Z][a-z]+ 20\d\d at \d\d:\d\d:\d\d", page.text_content("#updated"))
    shown = [[td.inner_text() for td in tr.query_selector_all("td")]
             for tr in page.query_selector_all("#appliances tr")]
    assert all(a["currency"] == "GBP" for a in coach["appliances"])
    expected = [[a["appliance"].replace("_", " "), str(a["runs"]), a["kwh"], gbp(a["cost"])]
                for a in coach["appliances"]] or [["No appliance runs seen yet."]]
    assert shown == expected
    # a run counts once it has ended, its kWh as they are settled (a dishwasher still going: 0 runs, its kWh so far)
    assert [th.inner_text() for th in page.query_selector_all("[aria-labelledby=appliances-h] th")] == [
        "Appliance", "Finished runs", "kWh", "Cost"]
    page.wait_for_selector("#chart .main-svg")  # Plotly, served by the cloud itself, drew the chart
    page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)
    # usable on a phone
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("document.documentElement.scrollWidth <= 390", timeout=5000)  # no sideways scrolling
    page.screenshot(path=str(SHOTS / "dashboard-phone.png"), full_page=True)


def test_history_by_day_week_and_month(running_home, page):
    cloud = running_home["cloud"]
    page.goto(f"{cloud}/login?key={running_home['key']}")
    for span in ("week", "month", "day"):
        page.click(f"button[data-span={span}]")
        page.wait_for_selector(f"#history[data-span={span}] .main-svg")
        history = page.request.get(f"{cloud}/api/v1/household/history?span={span}").json()
        shaded = [b for b in history["bands"] if b["level"] != "standard"]
        assert page.get_attribute("#history", "data-shaded") == str(len(shaded))
        # the key names only what is shaded: this home's flat rate has neither cheap nor peak hours
        levels = [level for level in ("cheap", "peak") if any(b["level"] == level for b in shaded)]
        key = page.text_content("#history-key")
        assert key == (f"Shaded: {' and '.join(levels)} hours of your tariff." if levels
                       else "Your tariff charges the same at every hour shown."), key
        assert page.get_attribute(f"button[data-span={span}]", "aria-pressed") == "true"
        bars = page.evaluate("document.getElementById('history').data[0].y")
        assert bars == [float(b["kwh"]) for b in history["bars"]]
        # the axis spans the window asked for, whatever the bars (a first day has one, whose width Plotly guessed)
        # (in Plotly's own terms, which read a date in the browser's zone)
        shown, window = page.evaluate("([a, b]) => { const ax = document.getElementById('history')._fullLayout.xaxis;"
                                      " return [ax.range.map((r) => ax.r2l(r)),"
                                      " [a, b].map((t) => ax.d2l(new Date(t * 1000)))]; }",
                                      [history["bands"][0]["start"], history["bands"][-1]["end"]])
        assert shown == window, (shown, window)
    page.screenshot(path=str(SHOTS / "history.png"), full_page=True)


def test_accepting_a_nudge_on_the_dashboard(running_home, page):
    cloud = running_home["cloud"]
    page.goto(f"{cloud}/login?key={running_home['key']}")
    first = page.wait_for_selector("#nudges li.nudge[data-status=open]")
    nudge_id = first.get_attribute("data-id")
    first.query_selector("button[data-decision=accept]").click()
    page.wait_for_selector(f"#nudges li[data-id='{nudge_id}'][data-status=accepted]")
    nudges = {n["id"]: n for n in page.request.get(f"{cloud}/api/v1/household/coach").json()["nudges"]}
    assert nudges[nudge_id]["status"] == "accepted"
    page.screenshot(path=str(SHOTS / "nudge-accepted.png"), full_page=True)


def test_an_agent_signs_in_searches_and_sees_what_the_household_saw(running_home, page):
    cloud = running_home["cloud"]
    page.goto(f"{cloud}/agent")
    page.fill("#username", "demo-agent")
    page.keyboard.press("Tab")  # keyboard: from the user name to the password
    page.keyboard.type(running_home["agent_password"])
    with page.expect_navigation():  # to the console, its scripts loaded (the search is theirs)
        page.keyboard.press("Enter")
    page.fill("#q", "SW1A 1AA")
    page.select_option("#reason", "billing query")
    page.click("#search button[type=submit]")
    page.click("#results button[data-household=hh-demo]")
    page.wait_for_function("document.getElementById('hh-bill').textContent !== '–'")
    context = page.request.get(f"{cloud}/api/v1/agent/households/hh-demo?reason=billing%20query").json()
    preview = context["coach"]["preview"]
    assert preview["currency"] == "GBP"  # money as the householder's page shows it, not "0.92 GBP"
    assert page.text_content("#hh-bill") == gbp(preview["so_far"])
    assert page.text_content("#hh-projected") == gbp(preview["projected"])
    today = context["summary"]["today"]
    assert page.text_content("#hh-today") == f"{today['kwh']} kWh, {gbp(today['cost'])}"
    assert page.text_content("#hh-power") == f"{context['summary']['power_w']} W"
    # the appliances as the householder's page shows them for this bill, so the agent explains the same figures
    shown = [li.inner_text() for li in page.query_selector_all("#hh-appliances li")]
    assert shown == ([f"{a['appliance'].replace('_', ' ')}: {a['runs']} finished run{'' if a['runs'] == 1 else 's'}, "
                      f"{a['kwh']} kWh, {gbp(a['cost'])}" for a in context["coach"]["appliances"]] or ["none"])
    assert page.text_content("#hh-name") == "The Demo Household"
    nudges = [li.inner_text() for li in page.query_selector_all("#hh-nudges li")]
    figure = {"always_on": "costs"}  # the floor's cost is not a saving to promise
    assert nudges == ([f"{n['message']} ({figure.get(n['kind'], 'saves')} {gbp(n['saving'])}"
                       f"{' a year' if n['annual'] else ''})" for n in context["coach"]["nudges"]] or ["none"])
    assert any(n["kind"] == "always_on" for n in context["coach"]["nudges"])  # the home has a floor to show
    # what the household was told, each stamped in UTC to the second (a stamp carries milliseconds)
    told = [li.inner_text() for li in page.query_selector_all("#hh-notifications li")]
    assert context["notifications"] and told == [
        f"{datetime.fromtimestamp(round(n['created_at']), UTC):%Y-%m-%dT%H:%M:%SZ} {n['kind']}: {n['message']}"
        for n in context["notifications"]]
    page.wait_for_selector("#hh-chart .main-svg")
    assert page.get_attribute("#hh-chart", "data-gaps") == str(len(context["gaps_24h"]))
    assert page.inner_text("#hh-hubs").startswith(f"hub-demo: {context['hubs'][0]['verdict']}")
    page.fill("#note-text", "Explained the standing charge")
    page.click("#note button[type=submit]")
    page.wait_for_selector("#hh-notes li:has-text('Explained the standing charge')")
    page.screenshot(path=str(SHOTS / "agent-console.png"), full_page=True)


def test_the_hubs_display_page_draws_the_face(running_home, page):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(f"{running_home['hub']}/display")
    page.wait_for_selector("#face svg")
    # the shared home's meter sends for its first 30 s: later, the display says it has gone quiet ("– W"), and which
    # it says may change between two looks: the page must show what the hub's state says, at one of three looks
    for _ in range(3):
        state = page.request.get(f"{running_home['hub']}/api/display").json()
        shown = "– W" if state.get("stale_s") else f"{state['power_w']} W"
        try:
            page.wait_for_function("([power, reason]) => document.getElementById('power').textContent === power "
                                   "&& document.getElementById('reason').textContent === reason",
                                   arg=[shown, state["reason"]], timeout=10_000)
            break
        except PlaywrightTimeout:
            continue
    else:
        raise AssertionError(f"the page never showed the hub's state {state}")
    # the reading and its reason sit centred under the face, as a display across the room is read
    face, power, reason = (page.locator(sel).evaluate(
        "e => { const r = document.createRange(); r.selectNodeContents(e); const b = r.getBoundingClientRect();"
        " return b.left + b.width / 2; }") for sel in ("#face", "#power", "#reason"))
    assert abs(power - face) < 2 and abs(reason - face) < 2, (face, power, reason)
    page.screenshot(path=str(SHOTS / "display.png"))


def test_the_display_page_says_when_the_meter_has_gone_quiet(page):
    """The hub's own display app (edge/display_server.py) whose last reading arrived ten minutes ago: the page shows
    no power for now, and why, not the last face as if it were current."""
    import threading
    import time

    import uvicorn

    from edge.display_server import display_app
    from ohmni.demo import free_port
    from protocols.display import DisplayState, Face

    last = DisplayState(ts=1_764_028_800, face=Face.SMILE, power_w=300, reason="below your usual 0.5 kW")
    app = display_app(lambda: last, lambda: {}, lambda since: [], lambda: 600.0)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    try:
        while not server.started:
            time.sleep(0.05)
        page.goto(f"http://127.0.0.1:{server.config.port}/display")
        page.wait_for_function("document.getElementById('power').textContent === '– W'")
        assert page.text_content("#reason") == "No reading from the meter for 10 min: is its cable in? (last: 300 W)"
        assert page.locator("#face").get_attribute("data-face") == "neutral"
        # the face stays centred over a reason wider than itself (it was pushed to the left of the reason's width)
        face, power, reason = (page.locator(sel).evaluate(
            "e => { const r = document.createRange(); r.selectNodeContents(e); const b = r.getBoundingClientRect();"
            " return b.left + b.width / 2; }") for sel in ("#face", "#power", "#reason"))
        assert page.locator("#reason").evaluate("e => e.getBoundingClientRect().width") > 600  # wider than the face
        assert abs(power - face) < 2 and abs(reason - face) < 2, (face, power, reason)
        page.screenshot(path=str(SHOTS / "display-quiet.png"))
    finally:
        server.should_exit = True
        serving.join(10)


def test_the_dashboard_says_when_ohmni_cannot_be_asked(page, tmp_path):
    """A cloud whose PostgreSQL goes away (a restart, a failover): the page kept its figures as if current, without
    a word. It now says Ohmni is not answering and from when its figures are, and says nothing once it answers."""
    import tempfile
    import threading
    import time

    import httpx
    import uvicorn

    from cloud.app import create_app
    from cloud.auth import new_secret
    from cloud.settings import CloudSettings
    from ohmni.demo import free_port
    from protocols.uplink import ReadingV1, UplinkBatch
    from tests.fixtures.postgres import start_postgres

    folder = Path(tempfile.mkdtemp(prefix="ohmni-pg-"))  # not under pytest's folder: the server runs as postgres
    pg = start_postgres(folder)
    key = new_secret()
    (tmp_path / "hub").write_text(new_secret())
    (tmp_path / "key").write_text(key)
    settings = CloudSettings(data_dir=tmp_path / "cloud", bootstrap_demo=True, database_url=pg.url,
                             demo_hub_token_file=tmp_path / "hub", demo_householder_key_file=tmp_path / "key",
                             notify_every_s=0, outage_check_s=0)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=free_port(),
                                           log_level="warning"))
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    try:
        while not server.started:
            time.sleep(0.05)
        cloud = f"http://127.0.0.1:{server.config.port}"
        now = int(time.time())
        batch = UplinkBatch(hub_id="hub-demo", seq=1, readings=[ReadingV1(
            ts=now - 60, meter_id="E1", import_t1_wh=1_000_000, import_t2_wh=0, export_t1_wh=0, export_t2_wh=0,
            power_import_w=450, power_export_w=0)])
        sent = httpx.post(f"{cloud}/api/v1/hub/batches", content=batch.model_dump_json(), timeout=10,
                          headers={"Authorization": f"Bearer {(tmp_path / 'hub').read_text()}"})
        assert sent.status_code == 200, sent.text
        page.goto(f"{cloud}/login?key={key}")
        page.wait_for_url(f"{cloud}/")
        page.wait_for_function("/ at /.test(document.getElementById('updated').textContent)")  # a refresh came
        assert page.locator("#unreachable").is_hidden()
        pg.stop()
        page.wait_for_selector("#unreachable", state="visible", timeout=20_000)
        said = page.text_content("#unreachable")
        assert said.startswith("Ohmni is not answering just now: the figures below are from "), said
        assert page.text_content("#updated") in said and said.endswith("Trying again…")
        page.screenshot(path=str(SHOTS / "dashboard-unreachable.png"))
        pg.start()
        page.wait_for_selector("#unreachable", state="hidden", timeout=30_000)
    finally:
        server.should_exit = True
        serving.join(10)
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_the_community_page_shows_the_apis_areas(running_home, page):
    page.goto(f"{running_home['cloud']}/community")
    api = page.request.get(f"{running_home['cloud']}/api/v1/community/areas").json()
    shown = page.query_selector_all("#areas li.area")
    assert [li.get_attribute("data-district") for li in shown] == [a["district"] for a in api["areas"]]
    if not api["areas"]:  # the test home is one hub: no district has the three a status needs
        assert "enough hubs" in page.inner_text("#areas")
    # the time the statuses are for, as a reader reads it, and as a machine does
    at = datetime.fromtimestamp(api["clock"], UTC)
    assert page.get_attribute("#clock", "datetime") == at.isoformat()
    assert page.inner_text("#clock") == f"{at.day} {at:%B %Y, %H:%M} UTC"  # "7 December", not "07 December"
    page.screenshot(path=str(SHOTS / "community.png"))


CONTRAST = """(els) => els.map((el) => {
  const rgba = (s) => { const v = s.match(/[\\d.]+/g).map(Number); return v.length === 4 ? v : [...v, 1]; };
  const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const lum = ([r, g, b]) => 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  const layers = [];  // backgrounds from the element up to the first opaque one
  for (let e = el; e; e = e.parentElement) {
    const c = rgba(getComputedStyle(e).backgroundColor);
    if (c[3] > 0) layers.push(c);
    if (c[3] === 1) break;
  }
  let back = [255, 255, 255];  // the canvas under everything
  for (const [r, g, b, a] of layers.reverse()) back = [r * a + back[0] * (1 - a), g * a + back[1] * (1 - a),
                                                       b * a + back[2] * (1 - a)];
  const [x, y] = [lum(rgba(getComputedStyle(el).color)), lum(back)].sort((p, q) => q - p);
  return [el.tagName + "." + el.className, (x + 0.05) / (y + 0.05)];
})"""


def test_the_dashboard_reads_well_and_works_from_the_keyboard(running_home, page):
    page.goto(f"{running_home['cloud']}/login?key={running_home['key']}")
    page.wait_for_selector("#nudges li.nudge")
    ratios = page.eval_on_selector_all("h1, h2, p, dt, dd, span, a, button, li, th, td, time", CONTRAST)
    low = [(name, round(r, 2)) for name, r in ratios if r < 4.5]
    assert not low, low  # WCAG AA for body text
    reached, outlined = set(), True
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate("""() => { const e = document.activeElement;
            return [e.tagName, e.textContent.trim().slice(0, 30), getComputedStyle(e).outlineStyle]; }""")
        reached.add(focused[1])
        outlined = outlined and (focused[0] == "BODY" or focused[2] != "none")
    assert {"Sign out", "Day", "Week", "Month"} <= reached
    assert any(text.startswith("Half-hourly use and cost") for text in reached)
    assert outlined  # every stop shows where the focus is
