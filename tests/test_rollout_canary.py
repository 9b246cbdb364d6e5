"""Canaries (issue 25): a deterministic share of the orders routed by a candidate version for
real, the rest by production, on one ledger; guards that send everything back to production
when they trip; state in the run store, so promote, abort and restarts keep it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from routing_dsl.cli import main
from routing_dsl.ops import schema as t
from routing_dsl.ops.store import plan_hash
from routing_dsl.rollout import records
from routing_dsl.rollout.canary import bucket, in_share, parse_share
from routing_dsl.rollout.controller import Rollout
from routing_dsl.rollout.guards import Guards
from routing_dsl.service.state import LiveState

from .rollout_helpers import (CLOSER, PARK_EVERYTHING, PRODUCTION, compiled, database,
                              snapshot)
from .test_ledger import assert_within_stock

BACKENDS = ["sqlite", "postgresql"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def batches_by_version(store) -> dict[str, set[str]]:
    """The orders each version allocated or left unfilled, by plan hash."""
    b, a, u = t.batches.c, t.allocations.c, t.unfillable.c
    found: dict[str, set[str]] = {}
    with store.engine.connect() as connection:
        for column in (a, u):
            query = sa.select(b.plan_hash, column.order_id).where(b.id == column.batch_id)
            for digest, order in connection.execute(query):
                found.setdefault(digest, set()).add(order)
    return found


@pytest.fixture
def receiver():
    """A webhook receiver on loopback: the bodies and Idempotency-Keys it was sent."""
    received: list[tuple[dict, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((json.loads(body), self.headers["Idempotency-Key"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_):
            pass
    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/rollout", received
    server.shutdown()


# ---- the share ----

def test_the_canary_share_is_deterministic_and_within_two_points_on_10000_orders():
    ids = [f"O-{k}" for k in range(10_000)]
    for share in (10.0, 2.5, 50.0):
        chosen = [i for i in ids if in_share(i, share)]
        assert abs(100 * len(chosen) / len(ids) - share) <= 2, share
    assert all(in_share(i, 100) for i in ids[:100])
    # the same orders in another process, whatever its hash seed (not Python's hash())
    mine = [i for i in ids if in_share(i, 10)]
    code = ("from routing_dsl.rollout.canary import in_share\n"
            "print(','.join(f'O-{k}' for k in range(10000) if in_share(f'O-{k}', 10)))")
    theirs = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True)
    assert theirs.stdout.strip().split(",") == mine
    assert bucket("O-1") == bucket("O-1") and 0 <= bucket("O-1") < 10_000


@pytest.mark.parametrize("text, share", [("10%", 10.0), ("10", 10.0), (" 2.5 % ", 2.5),
                                         ("100%", 100.0)])
def test_a_share_reads_as_a_percent(text, share):
    assert parse_share(text) == share


@pytest.mark.parametrize("text", ["0%", "101%", "ten", "-5%", "10.123%", ""])
def test_a_share_out_of_range_is_refused(text):
    with pytest.raises(ValueError, match="is not a share such as 10%"):
        parse_share(text)


# ---- batches ----

@pytest.mark.parametrize("backend", BACKENDS)
def test_a_canary_routes_its_share_for_real_on_one_ledger_and_sells_nothing_twice(
        backend, tmp_path):
    # scarce stock: both versions want the same units
    snap = snapshot(ship_groups=400, facilities=12, products=15)
    production = compiled(PRODUCTION, "production.route")
    candidate = compiled(CLOSER, "candidate.route")
    with database(backend, tmp_path) as store:
        rollout = Rollout(store, "canary", [production], [candidate], share=30,
                          log=lambda e: None)
        rollout.start()
        result, ids = rollout.run_recorded(store, production, snap, trigger="scheduled")
        assert len(ids) == 2 and [b["group"] for b in result["batches"]] == ["Bench"] * 2
        routed = batches_by_version(store)
        ours = routed[plan_hash(candidate.to_json())]
        theirs = routed[plan_hash(production.to_json())]
        assert ours and ours == {o.id for o in snap.orders if in_share(o.id, 30)} & (
            ours | theirs)
        assert not ours & theirs
        assert result["unfillable"], "the stock should run short for this test to mean much"
        assert_within_stock(store, json.loads(snap.model_dump_json()))
        # both versions' figures, per batch, for the guards
        rows = records.canary_batches(store, rollout.record.id)
        assert sorted(r["role"] for r in rows) == ["candidate", "production"]
        assert rollout.status == "active"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_guard_trips_on_a_candidate_that_parks_everything_and_production_takes_over(
        backend, tmp_path, receiver):
    url, received = receiver
    snap = snapshot(ship_groups=300)
    production = compiled(PRODUCTION, "production.route")
    candidate = compiled(PARK_EVERYTHING, "parks.route")
    events: list[dict] = []
    guards = Guards(unfilled_rate=1.0, cost_per_unit=5.0, window=200, min_units=20,
                    webhook=url)
    with database(backend, tmp_path) as store:
        rollout = Rollout(store, "canary", [production], [candidate], share=20, guards=guards,
                          log=events.append)
        rollout.start()
        _, first = rollout.run_recorded(store, production, snap, trigger="scheduled")
        assert len(first) == 2  # production's batch and the candidate's
        assert rollout.status == "tripped"
        (tripped,) = [e for e in events if e["event"] == "canary_tripped"]
        assert tripped["reason"].startswith("unfilled_rate: the candidate left 100.00%")
        assert tripped["candidate_figures"]["parked_units"] > 0
        json.dumps(tripped)  # one JSON line
        ((posted, key),) = received
        assert posted["event"] == "canary_tripped" and key == f"canary|{rollout.record.id}|tripped"
        stored = records.get(store, rollout.record.id)
        assert stored.status == "tripped" and stored.reason == tripped["reason"]
        # the very next batch is production's alone, the share's orders included
        fresh = snap.model_copy(update={"orders": [o.model_copy(update={"id": "N-" + o.id})
                                                   for o in snap.orders]})
        result, second = rollout.run_recorded(store, production, fresh, trigger="scheduled")
        assert len(second) == 1
        assert {a["order"] for a in result["allocations"]} & {
            o.id for o in fresh.orders if in_share(o.id, 20)}
        with store.engine.connect() as connection:
            digest = connection.execute(sa.select(t.batches.c.plan_hash).where(
                t.batches.c.id == second[0])).scalar()
        assert digest == plan_hash(production.to_json())


def test_a_routing_error_of_the_candidate_trips_the_canary(tmp_path):
    snap = snapshot()
    production = compiled(PRODUCTION, "production.route")
    candidate = compiled(CLOSER, "candidate.route")
    events: list[dict] = []
    with database("sqlite", tmp_path) as store:
        rollout = Rollout(store, "canary", [production], [candidate], share=50,
                          log=events.append)
        rollout.start()

        def failing(plan, snapshot, **options):
            if plan is candidate:
                raise RuntimeError("the candidate broke")
            from routing_dsl.engine import route
            return route(plan, snapshot, **options)
        _, ids = rollout.run_recorded(store, production, snap, trigger="scheduled",
                                      router=failing)
        assert rollout.status == "tripped"
        assert records.get(store, rollout.record.id).reason.startswith(
            "routing_errors: the candidate failed: RuntimeError: the candidate broke")
        failed = [b for b in store.batches(10) if b.status == "failed"]
        assert len(failed) == 1 and len(ids) == 1  # the candidate's batch, closed as failed


# ---- decisions ----

def test_a_decision_is_taken_by_the_version_its_order_belongs_to(tmp_path):
    snap = snapshot()
    production = compiled(PRODUCTION, "production.route")
    candidate = compiled(CLOSER, "candidate.route")
    orders = [o.model_copy(update={"id": f"API-{k}"}) for k, o in enumerate(snap.orders[:40])]
    with database("sqlite", tmp_path) as store:
        rollout = Rollout(store, "canary", [production], [candidate], share=50,
                          log=lambda e: None)
        rollout.start()
        state = LiveState([production], lambda: snap, store=store, rollout=rollout)
        state.refresh()
        for order in orders:
            state.commit(order, f"k-{order.id}")
        assert rollout.drain()
        routed = batches_by_version(store)
        ours = routed.get(plan_hash(candidate.to_json()), set())
        theirs = routed.get(plan_hash(production.to_json()), set())
        assert ours == {o.id for o in orders if in_share(o.id, 50)} & (ours | theirs)
        assert ours and theirs and not ours & theirs
        rows = records.canary_batches(store, rollout.record.id)
        assert {r["role"] for r in rows} == {"production", "candidate"}
        assert {r["trigger"] for r in rows} == {"api"}


def test_a_quote_is_decided_by_the_version_a_commit_would_take(tmp_path):
    snap = snapshot()
    production = compiled(PRODUCTION, "production.route")
    candidate = compiled(PARK_EVERYTHING, "parks.route")
    orders = [o.model_copy(update={"id": f"Q-{k}"}) for k, o in enumerate(snap.orders[:20])]
    with database("sqlite", tmp_path) as store:
        rollout = Rollout(store, "canary", [production], [candidate], share=50,
                          log=lambda e: None)
        rollout.start()
        state = LiveState([production], lambda: snap, store=store, rollout=rollout)
        state.refresh()
        for order in orders:
            quoted = state.quote(order)
            if in_share(order.id, 50):  # the candidate parks everything
                assert not quoted["lines"] and {u["queue"] for u in quoted["unfilled"]} == {
                    "PARK"}
            else:
                assert not any(u["queue"] == "PARK" and u["rule"] == "Nothing is close enough"
                               for u in quoted["unfilled"])


# ---- state in the run store ----

def test_restarting_mid_canary_keeps_its_state_and_promote_and_abort_reach_it(tmp_path):
    snap = snapshot()
    production = compiled(PRODUCTION, "production.route")
    candidate = compiled(CLOSER, "candidate.route")
    with database("sqlite", tmp_path) as store:
        first = Rollout(store, "canary", [production], [candidate], share=25,
                        guards=Guards(unfilled_rate=2.0), log=lambda e: None)
        started = first.start()
        first.run_recorded(store, production, snap, trigger="scheduled")
        # a new process with the same candidate resumes the same canary, figures and all
        events: list[dict] = []
        again = Rollout(store, "canary", [production], [candidate], share=25,
                        guards=Guards(unfilled_rate=2.0), log=events.append)
        resumed = again.start()
        assert resumed.id == started.id and again.status == "active"
        assert events[0]["resumed"] is True and events[0]["share"] == 25
        assert len(records.canary_batches(store, resumed.id)) == 2
        db = store.url
        status = json.loads(invoke("rollout", "status", "--db", db, "--format", "json").stdout)
        assert [(s["mode"], s["status"], s["share"]) for s in status] == [
            ("canary", "active", 25.0)]
        assert status[0]["window"]["candidate"]["units_routed"] > 0
        text = invoke("rollout", "status", "--db", db).stdout
        assert "canary #1 of 25% of orders: 2026-11-bf beside 2026-11" in text
        assert "guards: all hold" in text
        # promoted from the command line: every process follows the run store's row
        done = invoke("rollout", "promote", "--db", db)
        assert done.exit_code == 0 and "promoted 2026-11-bf" in done.stdout
        again.refresh()
        assert again.promoted
        fresh = snap.model_copy(update={"orders": [o.model_copy(update={"id": "N-" + o.id})
                                                   for o in snap.orders]})
        _, ids = again.run_recorded(store, production, fresh, trigger="scheduled")
        assert len(ids) == 1 and store.batches(1, batch_id=ids[0])[0].version_label == \
            "2026-11-bf"
        later = Rollout(store, "canary", [production], [candidate], share=25,
                        log=lambda e: None)
        later.start()
        assert later.promoted  # after a restart too
        refused = invoke("rollout", "abort", "--db", db)
        assert refused.exit_code == 2
        assert "no canary in progress (the last one, of 2026-11-bf, was promoted" in \
            refused.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_aborted_canary_stays_aborted_after_a_restart(backend, tmp_path):
    production = compiled(PRODUCTION, "production.route")
    candidate = compiled(CLOSER, "candidate.route")
    with database(backend, tmp_path) as store:
        rollout = Rollout(store, "canary", [production], [candidate], share=10,
                          log=lambda e: None)
        rollout.start()
        done = invoke("rollout", "abort", "--db", store.url, "--reason", "wrong week")
        assert done.exit_code == 0, done.output
        assert "2026-11 routes every order" in done.stdout
        restarted = Rollout(store, "canary", [production], [candidate], share=10,
                            log=lambda e: None)
        restarted.start()
        assert restarted.status == "aborted" and not restarted.canary_active
        assert restarted.plans_for(snapshot().orders[0], [production]) == [production]
        assert records.get(store, rollout.record.id).reason == "wrong week"
        # a canary of another candidate ends the one in progress
        other = compiled(CLOSER.replace("2026-11-bf", "2026-12"), "other.route")
        fresh = Rollout(store, "canary", [production], [other], share=10, log=lambda e: None)
        fresh.start()
        newer = Rollout(store, "canary", [production], [candidate.model_copy(
            update={"version_label": "2026-11-bf-2"})], share=10, log=lambda e: None)
        newer.start()
        assert records.get(store, fresh.record.id).status == "aborted"
        assert "replaced by a canary of 2026-11-bf-2" in records.get(
            store, fresh.record.id).reason


# ---- the command line and a real service ----

def _files(tmp_path, snap) -> dict:
    (tmp_path / "production.route").write_text(PRODUCTION)
    (tmp_path / "candidate.route").write_text(CLOSER)
    (tmp_path / "parks.route").write_text(PARK_EVERYTHING)
    (tmp_path / "snapshot.json").write_text(snap.model_dump_json())
    return {name: str(tmp_path / name) for name in
            ("production.route", "candidate.route", "parks.route", "snapshot.json")}


def test_bad_rollout_options_and_guard_files_are_refused_naming_the_problem(tmp_path):
    files = _files(tmp_path, snapshot(ship_groups=10))
    base = ["serve", files["production.route"], "--source", files["snapshot.json"], "--db",
            str(tmp_path / "runs.db"), "--once"]
    guards = tmp_path / "guards.toml"
    guards.write_text('unfilled_rate = -1\ncolour = "red"\nwindow = "many"\n')
    bad = invoke(*base, "--canary", files["candidate.route"], "--canary-share", "10%",
                 "--guards", str(guards))
    assert bad.exit_code == 2
    assert f"error: {guards}: unfilled_rate: Input should be greater than or equal to 0" in \
        bad.stderr
    assert f"error: {guards}: colour: unknown key" in bad.stderr
    assert f"error: {guards}: window: Input should be a valid integer" in bad.stderr
    for extra, said in (
            (["--canary", files["candidate.route"]], "--canary needs --canary-share"),
            (["--canary", files["candidate.route"], "--canary-share", "ten"],
             "--canary-share: 'ten' is not a share such as 10%"),
            (["--canary-share", "10%"], "--canary-share goes with --canary"),
            (["--shadow", files["candidate.route"], "--canary", files["candidate.route"],
              "--canary-share", "5%"], "--shadow and --canary: one candidate at a time"),
            (["--canary", files["snapshot.json"], "--canary-share", "5%"],
             "not a routing plan")):
        refused = invoke(*base, *extra)
        assert refused.exit_code == 2, (extra, refused.output)
        assert said in refused.stderr, (extra, refused.stderr)
    assert invoke(*base, "--version-label", "").exit_code == 2


def test_serve_runs_a_canary_that_survives_a_restart_and_follows_abort(tmp_path):
    from routing_dsl.service.launch import serving
    snap = snapshot(ship_groups=60)
    files = _files(tmp_path, snap)
    db = str(tmp_path / "runs.db")
    assert invoke("db", "upgrade", "--db", db).exit_code == 0
    arguments = [files["production.route"], "--source", files["snapshot.json"], "--db", db,
                 "--canary", files["candidate.route"], "--canary-share", "50%"]
    orders = [json.loads(o.model_copy(update={"id": f"API-{k}"}).model_dump_json())
              for k, o in enumerate(snap.orders[:60])]
    ours = [o for o in orders if in_share(o["id"], 50)]
    theirs = [o for o in orders if not in_share(o["id"], 50)]

    def commit(base: str, order: dict) -> str:
        answer = httpx.post(f"{base}/v1/decisions", json={
            "order": order, "commit": True, "idempotency_key": order["id"]}, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()["batches"][0]

    def version_of(batch_id: str) -> str:
        listed = json.loads(invoke("batches", "--db", db, "--format", "json",
                                   "--limit", "1000").stdout)
        return next(b["version_label"] for b in listed if b["id"] == batch_id)

    with serving(arguments) as served:
        assert version_of(commit(served.base, ours[0])) == "2026-11-bf"
        assert version_of(commit(served.base, theirs[0])) == "2026-11"
        ran = httpx.post(f"{served.base}/v1/groups/Bench/runs", timeout=60).json()
        assert len(ran["batches"]) == 2  # production's batch and the candidate's
        first = json.loads(invoke("rollout", "status", "--db", db, "--format", "json").stdout)
    assert '"event": "rollout"' in served.stderr and '"resumed": false' in served.stderr
    with serving(arguments) as served:  # a new process: the same canary, resumed
        assert version_of(commit(served.base, ours[1])) == "2026-11-bf"
        status = json.loads(invoke("rollout", "status", "--db", db, "--format", "json").stdout)
        assert status[0]["id"] == first[0]["id"] and status[0]["status"] == "active"
        assert invoke("rollout", "abort", "--db", db).exit_code == 0
        deadline = time.monotonic() + 10  # the service reads the row every second
        while version_of(commit(served.base, ours[-1])) != "2026-11":
            assert time.monotonic() < deadline, "the service did not follow the abort"
            ours.pop()
            time.sleep(0.3)
    assert '"resumed": true' in served.stderr and '"status": "aborted"' in served.stderr
