"""The ops console in a real browser: Debian's chromium driven by Playwright against a real
`routing serve` process with a recorded batch, checking what a person sees on each page."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from routing_dsl.service.launch import serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install -e '.[dev]')")
if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (make test installs it with apt-get when it can)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`routing serve` on a free port with a generated retailer (300 orders, 40 facilities)
    and one batch of the benchmark plan recorded."""
    from routing_dsl.bench.scenarios import PLAN
    folder = tmp_path_factory.mktemp("console")
    rules, snapshot = folder / "bench.route", folder / "snapshot.json"
    rules.write_text(PLAN, encoding="utf-8")
    subprocess.run([sys.executable, "-m", "routing_dsl", "gen-snapshot", "--scenario", "small",
                    "--orders", "300", "--facilities", "40", "--skus", "300", "--out",
                    str(snapshot)], check=True, capture_output=True)
    db = f"sqlite:///{folder / 'runs.db'}"
    subprocess.run([sys.executable, "-m", "routing_dsl", "db", "upgrade", "--db", db],
                   check=True, capture_output=True)
    with serving([str(rules), "--source", str(snapshot), "--db", db], cwd=folder,
                 env={k: v for k, v in os.environ.items() if k != "ROUTING_TOKEN"}) as served:
        ran = httpx.post(f"{served.base}/v1/groups/Bench/runs", timeout=60).json()
        yield served.base, ran


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


def test_the_batches_page_lists_the_batch_and_filters_it(server, page):
    base, ran = server
    [batch_id] = ran["batches"]
    page.goto(f"{base}/console")
    row = page.locator("#batches tbody tr").first
    sync_api.expect(row).to_contain_text(batch_id[:8])
    sync_api.expect(row).to_contain_text("succeeded")
    sync_api.expect(row).to_contain_text("Bench")
    assert str(ran["allocations"]) in row.inner_text()
    page.select_option("select[name=group]", "Bench")
    page.fill("input[name=until]", "2001-01-01")
    page.click("button[type=submit]")
    sync_api.expect(page.locator("p.empty")).to_have_text("No batches match.")
    assert "until=2001-01-01" in page.url


def test_a_batch_shows_its_figures_chart_and_map(server, page, tmp_path):
    base, ran = server
    [batch_id] = ran["batches"]
    page.goto(f"{base}/console")
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
    assert page.locator("#shipment-map rect.facility").count() >= 2
    assert page.locator("#shipment-map circle.destination").count() >= 2
    page.screenshot(path=str(tmp_path / "batch.png"), full_page=True)
    assert (tmp_path / "batch.png").stat().st_size > 10_000


def test_an_order_shows_where_it_went_and_why_not_elsewhere(server, page):
    base, ran = server
    page.goto(f"{base}/console/batches/{ran['batches'][0]}")
    page.locator("a[href^='/console/orders/']").first.click()
    sync_api.expect(page.locator("h1")).to_contain_text("Order")
    sync_api.expect(page.locator("#history tbody tr").first).to_contain_text("allocated")
    tried = page.locator(".rules-tried").first
    sync_api.expect(tried).to_contain_text("routing")
    assert tried.locator("tbody tr").count() >= 1
    # the replay against the state as loaded chose where the batch sent the items
    went = set(page.locator("#history tbody tr td:nth-child(5)").all_inner_texts())
    chosen = " ".join(page.locator(".rules-tried tbody tr td:nth-child(3)").all_inner_texts())
    assert went and all(facility in chosen for facility in went)


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
    for path in ("/console", f"/console/batches/{batch_id}",
                 f"/console/batches/{batch_id}/rules", f"/console/orders/{order}"):
        response = page.goto(f"{base}{path}")
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, path
        assert response.headers["x-content-type-options"] == "nosniff"
        # the bundled stylesheet applies (body margin 0, not the browser's 8px)
        assert page.evaluate("getComputedStyle(document.body).margin") == "0px", path
    page.goto(f"{base}/console/batches/{batch_id}")
    background = page.evaluate(
        "getComputedStyle(document.querySelector('#shipment-map')).backgroundColor")
    assert background == "rgb(246, 248, 250)"  # from the stylesheet, not an inline style
    assert refused == []
    with pytest.raises(sync_api.Error):  # and a script smuggled into a page would not run
        page.add_script_tag(content="document.title = 'owned'")
    assert page.title() != "owned"
