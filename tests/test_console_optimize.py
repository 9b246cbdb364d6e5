"""The console's batch page of an optimised batch in a real browser (Debian's chromium driven by
Playwright) against a real `routing serve` on examples/optimize: what the rules cost against
the optimum, the bound and the gap, and the rules that cost most (issue 24)."""

from __future__ import annotations

import os
from urllib.parse import quote

import httpx
import pytest

from routing_dsl.service.launch import serving

from .conftest import ROOT, browser_or_skip

sync_api, CHROMIUM = browser_or_skip()

EXAMPLE = ROOT / "examples" / "optimize"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`routing serve` on the optimised example, with one batch run through the API."""
    folder = tmp_path_factory.mktemp("optimize-console")
    db = f"sqlite:///{folder / 'runs.db'}"
    with serving([str(EXAMPLE / "optimize.route"), "--source", str(EXAMPLE / "snapshot.json"),
                  "--db", db], cwd=folder,
                 env={k: v for k, v in os.environ.items() if k != "ROUTING_TOKEN"}) as server:
        ran = httpx.post(f"{server.base}/v1/groups/{quote('Optimised routing')}/runs",
                         timeout=120)
        assert ran.status_code == 200, ran.text
        yield server.base, ran.json()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


def test_an_optimised_batch_shows_the_rules_against_the_optimum(served, browser, request,
                                                                  tmp_path):
    base, ran = served
    [batch_id] = ran["batches"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{base}/console/batches/{batch_id}")
    sync_api.expect(page.locator("#optimization-1")).to_have_text(
        "Optimisation · Web orders")
    figures = {name: page.locator(f"#{name}").inner_text()
               for name in ("rules-cost", "optimized-cost", "saving", "lower-bound", "gap")}
    assert figures == {"rules-cost": "99.95", "optimized-cost": "84.42", "saving": "15.53",
                       "lower-bound": "84.42", "gap": "0.00%"}
    assert "15.5%" in page.locator(".cards.optimization").inner_text()
    sides = [row.split("\t") for row in
             page.locator("#optimization-sides tbody tr").all_inner_texts()]
    # the rules: 4 packages, an order split, a unit late; the optimum: 3, none, none
    assert sides == [["Rules", "99.95", "4", "1", "1", "0"],
                     ["Optimum", "84.42", "3", "0", "0", "0"]]
    assert page.locator("#rule-costs tbody tr").all_inner_texts() == [
        "Nearest facility\t3\t15.53"]
    # the shipped allocations are the optimum's (mode apply)
    assert page.locator("#shipping-cost").inner_text() == "84.42"
    update = request.config.getoption("--update-goldens")
    target = (ROOT / "docs" / "console-batch-optimization.png") if update \
        else tmp_path / "batch-optimization.png"
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000
    context.close()

