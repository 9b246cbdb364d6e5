"""Shadow runs (issue 25): a candidate version routes every batch and committed decision
beside production, on the same state, in the same process, and applies nothing; both
versions' figures and the units they decide differently are kept per batch."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from routing_dsl.cli import main
from routing_dsl.engine import route
from routing_dsl.ops.scheduler import Scheduler
from routing_dsl.rollout import records
from routing_dsl.rollout.controller import Rollout, check_groups
from routing_dsl.rollout.kpis import Promises, batch_kpis, batch_rows, differences
from routing_dsl.service.app import create_app
from routing_dsl.service.state import LiveState

from .rollout_helpers import (CLOSER, PARK_EVERYTHING, PRODUCTION, compiled, count, database,
                              reached, snapshot)

BACKENDS = ["sqlite", "postgresql"]


def api_orders(base, count: int = 6):
    """New orders for the API, waiting in _NA_ like the snapshot's."""
    return [o.model_copy(update={"id": f"API-{k}"}) for k, o in enumerate(base.orders[:count])]


def serve_a_day(store, snap, *, shadow_of=None, events=None):
    """A scheduled batch, then committed decisions, on one live state (with a shadow of
    ``shadow_of`` when given): the rollout (or None) and the answers."""
    production = compiled(PRODUCTION, "production.route")
    rollout = None
    if shadow_of is not None:
        rollout = Rollout(store, "shadow", [production], [shadow_of], log=(
            events.append if events is not None else None))
        rollout.start()
    state = LiveState([production], lambda: snap, store=store, rollout=rollout)
    state.refresh()
    state.run_groups(production, frozenset(["Bench"]), trigger="scheduled")
    state.refresh()
    answers = [json.loads(state.commit(order, f"key-{order.id}"))
               for order in api_orders(snap)]
    if rollout is not None:
        assert rollout.drain()
    return rollout, answers


@pytest.mark.parametrize("backend", BACKENDS)
def test_shadow_decisions_never_reach_the_outbox_the_ledger_or_the_history(backend, tmp_path):
    snap = snapshot()
    candidate = compiled(CLOSER, "candidate.route")
    with database(backend, tmp_path, "shadowed") as shadowed, \
            database(backend, tmp_path, "alone") as alone:
        rollout, answers = serve_a_day(shadowed, snap, shadow_of=candidate)
        _, alone_answers = serve_a_day(alone, snap)
        # what decisions wrote is production's alone, row for row, as if no shadow ran
        assert reached(shadowed) == reached(alone)
        assert [a["lines"] for a in answers] == [a["lines"] for a in alone_answers]
        assert count(shadowed, "outbox") > 0 and count(shadowed, "history") > 0
        versions = {row[3] for row in reached(shadowed)["versions"]}
        assert versions == {"2026-11"}  # no batch of the candidate
        # ... and the candidate's figures are kept, per batch, beside production's
        batches = records.shadow_batches(shadowed, limit=100)
        assert {b.trigger for b in batches} == {"scheduled", "api"}
        assert len(batches) == 1 + sum(len(a["batches"]) for a in answers)
        assert all(b.candidate["version_label"] == "2026-11-bf" for b in batches)
        assert any(b.differing_units for b in batches)
        rollout.stop()


def test_shadow_and_production_figures_equal_two_separate_runs_on_the_same_snapshot(tmp_path):
    snap = snapshot(ship_groups=300)
    production = compiled(PRODUCTION, "production.route")
    candidate = compiled(CLOSER, "candidate.route")
    with database("sqlite", tmp_path) as store:
        rollout = Rollout(store, "shadow", [production], [candidate], log=lambda e: None)
        rollout.start()
        result, ids = rollout.run_recorded(store, production, snap, trigger="scheduled")
        (batch,) = records.shadow_batches(store)
    assert batch.batch_id == ids[0]
    promises = Promises(snap)
    stores = {o.id: o.product_store for o in snap.orders}
    for plan, side in ((production, batch.production), (candidate, batch.candidate)):
        alone = route(plan, snap)  # a separate run on the same snapshot
        expected = batch_kpis(*batch_rows(alone, plan.groups[0], stores), promises)
        assert side["kpis"] == expected
    old, new = route(production, snap), route(candidate, snap)
    changed, shown = differences((old["allocations"], old["unfillable"]),
                                 (new["allocations"], new["unfillable"]))
    assert batch.differing_units == changed > len(batch.differences) == len(shown) == 50
    assert batch.differences == shown
    assert batch.production["kpis"].units_routed == sum(
        a["quantity"] for a in result["allocations"])


def test_a_committed_decision_is_shadowed_on_the_state_it_was_decided_on(tmp_path):
    snap = snapshot()
    production = compiled(PRODUCTION, "production.route")
    candidate = compiled(PARK_EVERYTHING.replace("park-everything", "parks"), "parks.route")
    with database("sqlite", tmp_path) as store:
        rollout = Rollout(store, "shadow", [production], [candidate], log=lambda e: None)
        rollout.start()
        state = LiveState([production], lambda: snap, store=store, rollout=rollout)
        state.refresh()
        order = api_orders(snap, 1)[0]
        before = state.order_snapshot(order)
        with TestClient(create_app(state)) as client:
            answer = client.post("/v1/decisions", json={
                "order": json.loads(order.model_dump_json()), "commit": True,
                "idempotency_key": "k-1"}).json()
        assert rollout.drain()
        (batch,) = records.shadow_batches(store)
    assert [batch.batch_id] == answer["batches"]
    expected = route(candidate, before, engine="reference")
    promises = Promises(before)
    stores = {order.id: "STORE"}
    assert batch.candidate["kpis"] == batch_kpis(
        *batch_rows(expected, candidate.groups[0], stores), promises)
    assert batch.candidate["kpis"].parked_units == sum(
        i.quantity for g in order.ship_groups for i in g.items)
    assert batch.production["kpis"].units_routed == sum(
        line["quantity"] for line in answer["lines"])


def test_the_scheduler_shadows_each_round_and_routing_shadow_reports_it(tmp_path):
    snap = snapshot()
    production = compiled(PRODUCTION.replace('group "Bench" for store STORE {',
                                             'group "Bench" for store STORE {\n'
                                             '  schedule "*/15 * * * *"'), "production.route")
    candidate = compiled(CLOSER, "candidate.route")
    with database("sqlite", tmp_path) as store:
        rollout = Rollout(store, "shadow", [production], [candidate], log=lambda e: None)
        rollout.start()
        scheduler = Scheduler(store, production, lambda: snap, log=lambda e: None,
                              clock=lambda: datetime(2026, 11, 23, 15, 0, tzinfo=UTC))
        scheduler.rollout = rollout
        ran = scheduler.run_once()
        assert [e["status"] for e in ran] == ["succeeded"]
        assert count(store, "batches") == 1
    db = str(tmp_path / "runs.db")
    text = CliRunner().invoke(main, ["shadow", "--db", db])
    assert text.exit_code == 0, text.output
    assert "2026-11 -> 2026-11-bf" in text.stdout
    assert "total over 1 batch" in text.stdout and "differing units" in text.stdout
    assert "units routed" in text.stdout and "mean distance" in text.stdout
    shown = json.loads(CliRunner().invoke(main, ["shadow", "--db", db, "--format", "json"]
                                          ).stdout)
    (batch,) = shown["batches"]
    assert batch["batch"] == ran[0]["batch"] and batch["trigger"] == "scheduled"
    assert batch["production"]["version"] == "2026-11"
    assert batch["candidate"]["version"] == "2026-11-bf"
    for key in ("units_routed", "allocations", "packages", "split_orders", "shipping_cost",
                "mean_distance", "late_units", "unfilled_units", "parked_units"):
        assert key in batch["production"] and key in batch["candidate"]
    assert shown["total"]["differing_units"] == batch["differing_units"] > 0
    later = CliRunner().invoke(main, ["shadow", "--db", db, "--since", "2999-01-01"])
    assert later.exit_code == 0 and "no batch was shadowed" in later.stdout


def test_the_console_shows_the_rollout_with_a_chart_over_time(tmp_path):
    snap = snapshot()
    candidate = compiled(CLOSER, "candidate.route")
    with database("sqlite", tmp_path) as store:
        rollout, _ = serve_a_day(store, snap, shadow_of=candidate)
        production = compiled(PRODUCTION, "production.route")
        state = LiveState([production], lambda: snap, store=store, rollout=rollout)
        state.refresh()
        with TestClient(create_app(state)) as client:
            page = client.get("/console/rollout?period=24h")
            assert page.status_code == 200
            assert 'id="chart-rollout-unfilled"' in page.text
            assert 'id="chart-rollout-differing"' in page.text
            assert "<script" not in page.text and "http" not in page.text.split("<main>")[1]
            assert "2026-11-bf" in page.text and 'id="shadowed"' in page.text
            assert client.get("/console/rollout?period=1y").status_code == 422
            listing = client.get("/console/batches").text
            assert "2026-11@" in listing  # the version column: label and short hash
        rollout.stop()


def test_a_candidate_must_have_productions_groups():
    production = [compiled(PRODUCTION, "production.route")]
    other = compiled(PRODUCTION.replace('group "Bench"', 'group "Other"'), "other.route")
    assert check_groups("shadow", production, [other]) == [
        "the candidate's group 'Other' is not production's"]
    assert "production's group 'Bench' is not in the candidate" in \
        check_groups("canary", production, [other])[1]
    assert check_groups("canary", production, [compiled(CLOSER, "c.route")]) == []


def test_bench_measures_what_a_shadow_costs():
    import re
    result = CliRunner().invoke(main, ["bench", "--shadow", "--facilities", "30",
                                       "--ship-groups", "100", "--products", "40",
                                       "--rounds", "1", "--decisions", "20"])
    assert result.exit_code == 0, result.output
    ratios = re.findall(r": (\d+\.\d\d)x", result.stdout)
    assert len(ratios) == 2 and all(float(r) > 0 for r in ratios), result.stdout
    assert "batch:" in result.stdout and "20 commits" in result.stdout


def test_serve_once_shadows_the_round_it_runs(tmp_path):
    scheduled = PRODUCTION.replace('group "Bench" for store STORE {',
                                   'group "Bench" for store STORE {\n  schedule "* * * * *"')
    (tmp_path / "production.route").write_text(scheduled)
    (tmp_path / "candidate.route").write_text(CLOSER)
    (tmp_path / "snapshot.json").write_text(snapshot(ship_groups=50).model_dump_json())
    db = str(tmp_path / "runs.db")
    ran = CliRunner().invoke(main, ["serve", str(tmp_path / "production.route"), "--source",
                                    str(tmp_path / "snapshot.json"), "--db", db, "--once",
                                    "--shadow", str(tmp_path / "candidate.route")])
    assert ran.exit_code == 0, ran.output
    events = [json.loads(line) for line in ran.stderr.splitlines() if line.startswith("{")]
    assert {"event": "rollout", "mode": "shadow", "status": "active", "resumed": False}.items() \
        <= next(e for e in events if e["event"] == "rollout").items()
    shown = json.loads(CliRunner().invoke(main, ["shadow", "--db", db, "--format", "json"]
                                          ).stdout)
    assert shown["total"]["batches"] == 1
    assert shown["batches"][0]["candidate"]["version"] == "2026-11-bf"
