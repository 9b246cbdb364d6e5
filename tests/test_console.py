"""The ops console in a real browser: Debian's chromium driven by Playwright against a real
`routing serve` process with a recorded batch, checking what a person sees on each page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from routing_dsl.service.launch import serving

from .conftest import ROOT, browser_or_skip

sync_api, CHROMIUM = browser_or_skip()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`routing serve` on a free port with a generated retailer (300 orders, 40 facilities):
    sixty hours of hourly scheduled batches on the orders as they came, a failed one, and one
    batch of the whole run through the API."""
    from routing_dsl.bench.scenarios import PLAN
    folder = tmp_path_factory.mktemp("console")
    rules, snapshot = folder / "bench.route", folder / "snapshot.json"
    rules.write_text(PLAN, encoding="utf-8")
    subprocess.run([sys.executable, "-m", "routing_dsl", "gen-snapshot", "--scenario", "small",
                    "--orders", "300", "--facilities", "40", "--skus", "300", "--out",
                    str(snapshot)], check=True, capture_output=True)
    db = f"sqlite:///{folder / 'runs.db'}"
    failed = seed_history(db, rules, snapshot)
    with serving([str(rules), "--source", str(snapshot), "--db", db], cwd=folder,
                 env={k: v for k, v in os.environ.items() if k != "ROUTING_TOKEN"}) as served:
        ran = httpx.post(f"{served.base}/v1/groups/Bench/runs", timeout=60).json()
        ran["failed"] = failed
        yield served.base, ran


def seed_history(db: str, rules: Path, snapshot: Path) -> str:
    """Scheduled batches, one an hour for the last sixty hours, each on the five orders that
    came in that hour (as a scheduler on a live OMS would see them), and a round whose source
    was broken. The OMS acknowledged every batch, and the snapshot the service then reads is
    one exported after that (its `now` is moved to this moment): the ledger counts those
    decisions as held by the source (ops/ledger.py), and the service starts from it as is.
    Returns the failed batch's id."""
    import random
    from datetime import UTC, datetime, timedelta

    from routing_dsl.app import load_plan
    from routing_dsl.ops.runner import run_recorded
    from routing_dsl.ops.store import RunStore
    from routing_dsl.snapshot import load_snapshot
    plan, loaded = load_plan(rules), load_snapshot(snapshot)
    store = RunStore(db)
    store.upgrade()
    orders = list(loaded.orders)
    random.Random(26).shuffle(orders)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for ago in range(60, 0, -1):  # each order routed once, as the OMS would have it
        sample = loaded.model_copy(update={"orders": orders[5 * (ago - 1):5 * ago]})
        for batch in run_recorded(store, plan, sample, source_text=rules.read_text(),
                                  trigger="scheduled",
                                  started=hour - timedelta(hours=ago, minutes=-5))[1]:
            store.ack(batch=batch)
    failed = store.start_batch(group="Bench", product_store="STORE", plan_json=plan.to_json(),
                               source_name=str(rules), source_text=None, snapshot_hash="",
                               trigger="scheduled", started=hour - timedelta(hours=3))
    store.fail_batch(failed, "source: snapshot.json: not valid JSON: unexpected end of data")
    store.dispose()
    document = json.loads(snapshot.read_text())
    document["now"] = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    snapshot.write_text(json.dumps(document))
    return failed


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def shot(request, tmp_path):
    """``shot(page, name)``: a full-page screenshot, checked to hold a picture; written to
    docs/console-NAME.png under --update-goldens (make goldens), which docs/service.md
    shows."""
    update = request.config.getoption("--update-goldens")

    def take(page, name: str) -> None:
        target = (ROOT / "docs" / f"console-{name}.png") if update else tmp_path / f"{name}.png"
        page.screenshot(path=str(target), full_page=True)
        assert target.stat().st_size > 10_000
    return take


def test_the_dashboard_shows_the_period_with_failures_and_health_first(server, page, shot):
    base, ran = server
    page.goto(f"{base}/console?period=7d")
    sync_api.expect(page.locator("h1")).to_have_text("Dashboard")
    # the failed batch and the scheduler's health come before the figures
    order = page.evaluate("""[...document.querySelectorAll('main > section, main > .cards')]
                             .map(e => e.id)""")
    assert order[:3] == ["health", "failed", "figures"]
    sync_api.expect(page.locator("#failed")).to_contain_text(ran["failed"][:8])
    sync_api.expect(page.locator("#failed")).to_contain_text("not valid JSON")
    sync_api.expect(page.locator("#scheduler-state")).to_contain_text("running")
    assert int(page.locator("#batches-succeeded").inner_text()) == 61  # 60 hourly + the API's
    assert page.locator("#batches-failed").inner_text() == "1"
    assert int(page.locator("#units-routed").inner_text().replace(",", "")) > 1000
    for figure in ("#fill-rate", "#split-rate"):
        assert page.locator(figure).inner_text().endswith("%")
    assert page.locator("#mean-distance").inner_text().endswith(" mi")
    # charts over time: a bar per day, stacked by status; lines for the rates
    assert page.locator("#chart-batches rect.bar").count() >= 3
    assert page.locator("#chart-batches rect.s-failed").count() == 1
    assert page.locator("#chart-rates polyline").count() == 2
    assert page.locator("#parked tbody tr").count() >= 1
    assert "UNFILLABLE_PARKING" in page.locator("#parked").inner_text()
    shot(page, "dashboard")
    page.select_option("select[name=period]", "24h")
    page.click("form.filters button")
    assert "period=24h" in page.url
    assert page.locator("#chart-units rect.bar").count() >= 20  # by hour now
    page.fill("input[name=until]", "2001-01-01")
    page.fill("input[name=since]", "2001-01-01")
    page.click("form.filters button")
    assert page.locator("#batches-succeeded").inner_text() == "0"


def test_the_batches_page_lists_filters_pages_and_compares(server, page):
    base, ran = server
    [batch_id] = ran["batches"]
    page.goto(f"{base}/console/batches")
    row = page.locator("#batches tbody tr").first
    sync_api.expect(row).to_contain_text(batch_id[:8])
    sync_api.expect(row).to_contain_text("succeeded")
    sync_api.expect(row).to_contain_text("Bench")
    assert str(ran["allocations"]) in row.inner_text()
    assert page.locator("#batches tbody tr").count() == 50  # a page
    page.click("#older")
    older = page.locator("#batches tbody tr td:nth-child(3)").all_inner_texts()
    assert older and batch_id[:8] not in older
    page.goto(f"{base}/console/batches")
    page.select_option("select[name=status]", "failed")
    page.click("form.filters button")
    assert page.locator("#batches tbody tr").count() == 1
    page.goto(f"{base}/console/batches")
    page.select_option("select[name=group]", "Bench")
    page.fill("input[name=until]", "2001-01-01")
    page.click("form.filters button")
    sync_api.expect(page.locator("p.empty")).to_have_text("No batches match.")
    assert "until=2001-01-01" in page.url
    page.goto(f"{base}/console/batches")
    page.locator("#batches tbody tr").nth(1).locator("input[name=a]").check()
    page.locator("#batches tbody tr").nth(0).locator("input[name=b]").check()
    page.click("text=Compare A with B")
    sync_api.expect(page.locator("h1")).to_have_text("Compare two batches")
    assert page.locator("#comparison tbody tr").count() >= 5
    assert batch_id[:8] in page.locator("#comparison thead").inner_text()


def test_a_batch_shows_its_figures_chart_and_labelled_map(server, page, shot):
    base, ran = server
    [batch_id] = ran["batches"]
    page.goto(f"{base}/console/batches")
    page.click(f"text={batch_id[:8]}")
    sync_api.expect(page.locator("h1")).to_contain_text("Bench")
    sync_api.expect(page.locator("#allocations")).to_have_text(str(ran["allocations"]))
    assert page.locator("#split-rate").inner_text().endswith("%")
    assert page.locator("#mean-distance").inner_text().endswith(" mi")
    rules = page.locator("#rules tbody tr")
    assert rules.count() >= 5  # the plan's rules that allocated
    unfilled = page.locator("#reasons tbody tr td:last-child").all_inner_texts()
    assert unfilled and all(cell.isdigit() for cell in unfilled)  # counts, as a person reads
    assert page.locator("#facility-chart rect").count() >= 2
    assert page.locator("#rule-costs").count() == 0  # no optimize: no optimisation section
    assert page.locator("#shipment-map rect.facility").count() >= 2
    assert page.locator("#shipment-map circle.destination").count() >= 2
    labels = page.locator("#shipment-map text.facility-label").all_text_contents()
    busiest = page.locator("#facility-chart text").first.text_content()
    assert busiest in labels  # the busiest facilities are named on the map
    clusters = page.locator("#shipment-map g.cluster text").all_text_contents()
    assert clusters and all(int(n) >= 2 for n in clusters)
    assert sum(int(n) for n in clusters) <= page.locator(
        "#shipment-map circle.destination").count()
    shot(page, "batch")
    page.click("#compare-previous")
    sync_api.expect(page.locator("h1")).to_have_text("Compare two batches")


def test_two_batches_on_one_snapshot_show_what_they_decided_differently(server, page):
    base, ran = server
    again = httpx.post(f"{base}/v1/groups/Bench/runs", timeout=60).json()
    page.goto(f"{base}/console/compare?a={ran['batches'][0]}&b={again['batches'][0]}")
    # the second run decided what the first left (the first's reservations stand until the
    # OMS acknowledges them), so the units are not compared one by one
    sync_api.expect(page.locator("h1")).to_have_text("Compare two batches")
    assert page.locator("#compare-rules tbody tr").count() >= 1


def test_orders_are_found_by_prefix_product_and_facility_and_paged(server, page, shot):
    base, ran = server
    page.goto(f"{base}/console")
    page.fill("header input[name=q]", "ORD-00001")
    page.press("header input[name=q]", "Enter")
    rows = page.locator("#orders tbody tr td:first-child").all_inner_texts()
    assert rows and all(r.startswith("ORD-00001") for r in rows) and rows == sorted(rows)
    assert len(rows) == 50
    page.click("#next")
    more = page.locator("#orders tbody tr td:first-child").all_inner_texts()
    assert more and more[0] > rows[-1] and all(r.startswith("ORD-00001") for r in more)
    shot(page, "orders")
    page.goto(f"{base}/console/stock?facility=WH-00000")
    product = page.locator("#stock tbody tr td:first-child").first.inner_text()
    page.goto(f"{base}/console/orders")
    page.fill("main input[name=q]", product)
    page.select_option("select[name=by]", "product")
    page.click("form.filters button")
    found = page.locator("#orders tbody tr").count()
    assert found >= 1
    page.goto(f"{base}/console/orders?q=WH-00000&by=facility")
    assert page.locator("#orders tbody tr").count() >= 1
    page.goto(f"{base}/console/orders?q=nothing-like-this")
    sync_api.expect(page.locator("p.empty")).to_have_text("No order matches.")


def test_an_order_shows_where_it_is_its_decisions_and_why_not_elsewhere(server, page, shot):
    base, ran = server
    page.goto(f"{base}/console/batches/{ran['batches'][0]}")
    page.locator("a[href^='/console/orders/']").first.click()
    sync_api.expect(page.locator("h1")).to_contain_text("Order")
    assert page.locator("#current tbody tr").count() >= 1
    assert "Taken since load" in page.locator("#current thead").inner_text()
    decisions = page.locator("#decisions tbody tr")
    assert decisions.count() >= 1
    assert ran["batches"][0][:8] in page.locator("#decisions").inner_text()
    sync_api.expect(page.locator("#history tbody tr").first).to_contain_text("allocated")
    tried = page.locator(".rules-tried").first
    sync_api.expect(tried).to_contain_text("routing")
    assert tried.locator("tbody tr").count() >= 1
    # the replay against the state as loaded chose where the batch sent the items
    went = set(page.locator("#history tbody tr td:nth-child(5)").all_inner_texts())
    chosen = " ".join(page.locator(".rules-tried tbody tr td:nth-child(3)").all_inner_texts())
    assert went and any(facility in chosen for facility in went)
    shot(page, "order")


def test_the_queues_say_what_waits_how_long_and_what_comes_next(server, page, shot):
    base, _ = server
    page.goto(f"{base}/console/queues")
    rows = page.locator("#queues tbody tr")
    assert rows.count() >= 2
    # the API's batch left nothing open in _NA_ (its reservations stand until the OMS
    # acknowledges them): what it could not fill waits in the queue it was moved to
    table = {cells[0]: cells for cells in (row.locator("td").all_inner_texts()
                                           for row in rows.all())}
    assert int(table["_NA_"][1]) == 0
    assert "Bench / Express" in table["_NA_"][-1]  # the routings that draw from it, in order
    queue, cells = next((q, c) for q, c in table.items() if int(c[1]) >= 1)
    assert float(cells[2].replace(",", "")) >= 1
    shot(page, "queues")
    page.click(f"#queues a:text('{queue}')")
    sync_api.expect(page.locator("h1")).to_have_text(f"Queue {queue}")
    first = page.locator("#waiting tbody tr").first
    assert "Bench /" in first.inner_text() or "no routing takes it" in first.inner_text()
    dates = [d for d in page.locator("#waiting tbody tr td:nth-child(5)").all_inner_texts()
             if d != "—"]
    assert dates == sorted(dates)  # oldest first
    shot(page, "queue")
    first.locator("a:text('why')").click()
    assert page.url.endswith("#why")
    sync_api.expect(page.locator("#why")).to_have_text("Rules tried")


def test_stock_shows_reserved_available_and_daily_counts(server, page, shot):
    base, ran = server
    page.goto(f"{base}/console/stock")
    facilities = page.locator("#facilities tbody tr")
    assert facilities.count() >= 10
    page.goto(f"{base}/console/stock?facility=WH-00000")
    sync_api.expect(page.locator("#daily")).to_contain_text("Orders today")
    reserved = [float(x.replace(",", "")) for x in
                page.locator("#stock td.reserved").all_inner_texts()]
    assert any(r > 0 for r in reserved)  # the API's batch took stock here since the load
    row = page.locator("#stock tbody tr").first.locator("td").all_inner_texts()
    stock, held, taken, available = (float(c.replace(",", "")) for c in row[1:5])
    assert available == stock - held - taken
    shot(page, "stock")
    product = row[0]
    page.click(f"#stock a:text('{product}')")
    assert page.locator("#stock tbody tr").count() >= 1
    assert "Orders today / limit" in page.locator("#stock thead").inner_text()


def test_the_rule_files_are_highlighted(server, page):
    base, ran = server
    page.goto(f"{base}/console/batches/{ran['batches'][0]}/rules")
    source = page.locator("#source")
    sync_api.expect(source).to_contain_text('group "Bench" for store STORE')
    keywords = page.locator("#source .t-keyword").all_inner_texts()
    assert {"group", "routing", "rule"} <= set(keywords)


def test_unknown_batches_are_404_problems(server):
    base, _ = server
    answer = httpx.get(f"{base}/console/batches/nope")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_the_pages_keep_to_a_content_security_policy_that_allows_no_script(server, page):
    base, ran = server
    [batch_id] = ran["batches"]
    refused = []
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    order = httpx.get(f"{base}/console/batches/{batch_id}").text.split(
        'href="/console/orders/', 1)[1].split('"', 1)[0]
    for path in ("/console", "/console/batches", f"/console/batches/{batch_id}",
                 f"/console/batches/{batch_id}/rules", f"/console/orders/{order}",
                 "/console/orders?q=ORD", "/console/queues", "/console/queues/_NA_",
                 "/console/stock", "/console/stock?facility=WH-00000",
                 f"/console/compare?a={batch_id}&b={ran['failed']}"):
        response = page.goto(f"{base}{path}")
        assert response.status == 200, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, path
        assert response.headers["x-content-type-options"] == "nosniff"
        # the bundled stylesheet applies (body margin 0, not the browser's 8px)
        assert page.evaluate("getComputedStyle(document.body).margin") == "0px", path
        assert "style=" not in page.content()
    page.goto(f"{base}/console/batches/{batch_id}")
    background = page.evaluate(
        "getComputedStyle(document.querySelector('#shipment-map')).backgroundColor")
    assert background == "rgb(246, 248, 250)"  # from the stylesheet, not an inline style
    page.goto(f"{base}/console")
    fill = page.evaluate("getComputedStyle(document.querySelector('#chart-batches rect.s-failed'))"
                         ".fill")
    assert fill == "rgb(207, 34, 46)"  # chart colours come from the stylesheet too
    assert refused == []
    with pytest.raises(sync_api.Error):  # and a script smuggled into a page would not run
        page.add_script_tag(content="document.title = 'owned'")
    assert page.title() != "owned"
