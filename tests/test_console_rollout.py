"""The console's rollout page in a real browser (Debian's chromium through Playwright) against a
real `routing serve`: a day of shadowed batches and a canary a guard tripped."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from routing_dsl.service.launch import serving

from .conftest import ROOT, browser_or_skip
from .rollout_helpers import CLOSER, PARK_EVERYTHING, PRODUCTION, compiled, snapshot

sync_api, CHROMIUM = browser_or_skip()


def seed(db: str, folder: Path) -> None:
    """A canary of a candidate that parks everything (tripped by its first batch), then a
    shadow of another candidate over the last day: one batch an hour on the orders that came
    in that hour, acknowledged by the OMS."""
    from routing_dsl.ops.store import RunStore
    from routing_dsl.rollout.controller import Rollout
    from routing_dsl.rollout.guards import Guards
    production = compiled(PRODUCTION, "production.route")
    snap = snapshot(ship_groups=240)
    store = RunStore(db)
    store.upgrade()
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    canary = Rollout(store, "canary", [production], [compiled(PARK_EVERYTHING, "parks.route")],
                     share=20, guards=Guards(unfilled_rate=1.0, min_units=5),
                     log=lambda e: None)
    canary.start()
    first = snap.model_copy(update={"orders": snap.orders[:40]})
    for batch in canary.run_recorded(store, production, first, trigger="scheduled",
                                     started=hour - timedelta(hours=23, minutes=50),
                                     source_text=None)[1]:
        store.ack(batch=batch)
    assert canary.status == "tripped"
    shadow = Rollout(store, "shadow", [production], [compiled(CLOSER, "candidate.route")],
                     log=lambda e: None)
    shadow.start()
    for ago in range(20, 0, -1):
        sample = snap.model_copy(update={"orders": snap.orders[40 + 10 * (20 - ago):
                                                               40 + 10 * (21 - ago)]})
        for batch in shadow.run_recorded(store, production, sample, trigger="scheduled",
                                         started=hour - timedelta(hours=ago, minutes=-5),
                                         source_text=None)[1]:
            store.ack(batch=batch)
    store.dispose()
    (folder / "snapshot.json").write_text(snap.model_copy(update={
        "orders": [], "now": datetime.now(UTC) + timedelta(seconds=2)}).model_dump_json())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rollout-console")
    (folder / "production.route").write_text(PRODUCTION)
    db = f"sqlite:///{folder / 'runs.db'}"
    seed(db, folder)
    with serving([str(folder / "production.route"), "--source", str(folder / "snapshot.json"),
                  "--db", db], cwd=folder,
                 env={k: v for k, v in os.environ.items() if k != "ROUTING_TOKEN"}) as served:
        yield served.base


@pytest.fixture
def page():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        yield context.new_page()
        context.close()
        browser.close()


def test_the_rollout_page_shows_both_versions_over_time_and_the_tripped_canary(
        server, page, request, tmp_path):
    page.goto(f"{server}/console")
    page.get_by_role("link", name="Rollout").click()
    sync_api.expect(page.locator("h1")).to_have_text("Rollout")
    page.goto(f"{server}/console/rollout?period=24h")
    standings = page.locator("#standings")
    sync_api.expect(standings).to_contain_text("canary of 20% of orders")
    sync_api.expect(standings).to_contain_text("tripped")
    sync_api.expect(standings).to_contain_text("unfilled_rate: the candidate left 100.00%")
    sync_api.expect(standings).to_contain_text("shadow")
    sync_api.expect(standings).to_contain_text("2026-11-bf")
    sync_api.expect(standings).to_contain_text("20 batches shadowed")
    for chart in ("unfilled", "cost", "distance", "units", "differing"):
        if chart == "cost":
            continue  # no rate cards in this snapshot: the page says so instead
        svg = page.locator(f"#chart-rollout-{chart}")
        sync_api.expect(svg).to_be_visible()
        assert svg.locator("circle, rect").count() > 0
    # a point carries its value and its version; a point an hour, for each version
    titles = page.locator("#chart-rollout-units title").all_text_contents()
    assert any(t.endswith(" production") for t in titles)
    assert any(t.endswith(" candidate") for t in titles)
    assert page.locator("#chart-rollout-units circle").count() >= 2 * 20
    assert page.locator("#shadowed tbody tr").count() == 20
    page.locator("#shadowed tbody tr a").first.click()
    sync_api.expect(page.locator("#version")).to_contain_text("2026-11@")
    page.goto(f"{server}/console/rollout?period=24h")
    update = request.config.getoption("--update-goldens")
    target = ROOT / "docs" / "console-rollout.png" if update else tmp_path / "rollout.png"
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000
