"""The run store on real databases: SQLite files and the PostgreSQL server on 127.0.0.1
(each test in its own database, dropped after; skipped only when the server is absent)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from routing_dsl.cli import main
from routing_dsl.ops.store import RunStore, StoreError, database_url

from .conftest import ROOT, postgres_database

EXAMPLE = ROOT / "examples" / "omnichannel"
SOURCE = str(EXAMPLE / "omnichannel.route")
SNAPSHOT = str(EXAMPLE / "snapshot.json")
@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'routing.db'}"
        return
    with postgres_database("routing_test") as url:
        yield url


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


# Routing that holds its store's lock for several seconds, long after a second process has
# started and loaded the snapshot (the fast engine routes this in a fraction of a second).
SLOWLY = ["--engine", "reference", "--explain"]


@pytest.fixture(scope="module")
def slow_run(tmp_path_factory):
    """A plan and a snapshot that take a few seconds to route (on the reference engine, see
    SLOWLY): time to kill or race a run, and short enough (about 2.5 s of CPU) for a second
    run to wait it out within its 10 s even on a busy machine."""
    from routing_dsl.bench.suite import BENCH_ROUTE, generate
    folder = tmp_path_factory.mktemp("slow")
    (folder / "big.json").write_text(
        generate(facilities=400, ship_groups=5_000, products=3000).model_dump_json())
    (folder / "bench.route").write_text(BENCH_ROUTE)
    return folder / "bench.route", folder / "big.json"


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from routing_dsl.ops.store import _config
    return ScriptDirectory.from_config(_config(None)).get_current_head()


def test_upgrade_creates_the_schema_and_postgresql_commands_refuse_an_empty_database(db_url):
    first = invoke("history", "--db", db_url)
    if db_url.startswith("sqlite"):  # the embedded default: created on first use
        assert first.exit_code == 0, first.output
        assert f"note: created the run store sqlite:///{db_url[10:]} (revision " \
               f"{head_revision()})" in first.stderr
    else:  # PostgreSQL keeps the explicit upgrade, and says so
        assert first.exit_code == 2
        assert "has no run store" in first.stderr and "routing db upgrade" in first.stderr
        for command in (["batches"], ["outbox", "list"], ["purge", "--older-than", "1d"]):
            refused = invoke(*command, "--db", db_url)
            assert refused.exit_code == 2 and "routing db upgrade" in refused.stderr, command
    done = invoke("db", "upgrade", "--db", db_url)
    assert done.exit_code == 0, done.output
    assert f"run store at revision {head_revision()}" in done.stdout
    assert invoke("db", "upgrade", "--db", db_url).exit_code == 0  # idempotent
    again = invoke("history", "--db", db_url)
    assert again.exit_code == 0 and "note:" not in again.stderr


def test_an_old_schema_is_refused_until_upgraded(tmp_path):
    from alembic import command

    from routing_dsl.ops.store import _config
    store = RunStore(f"sqlite:///{tmp_path / 'old.db'}")
    with store.engine.begin() as connection:
        command.upgrade(_config(connection), "0001")
    with pytest.raises(StoreError, match="is at revision 0001; run `routing db upgrade"):
        store.require_current()
    assert store.upgrade() == head_revision()
    store.require_current()
    store.dispose()


def test_an_old_sqlite_store_is_upgraded_on_first_use_and_says_so(tmp_path):
    from alembic import command

    from routing_dsl.ops.store import _config
    store = RunStore(f"sqlite:///{tmp_path / 'old.db'}")
    with store.engine.begin() as connection:
        command.upgrade(_config(connection), "0001")
    store.dispose()
    result = invoke("history", "--db", str(tmp_path / "old.db"))
    assert result.exit_code == 0, result.output
    assert f"from revision 0001 to {head_revision()}" in result.stderr


def test_a_recorded_run_reads_back_as_the_result_says(db_url, tmp_path):
    assert invoke("db", "upgrade", "--db", db_url).exit_code == 0
    out = tmp_path / "result.json"
    result = invoke("run", SOURCE, "--snapshot", SNAPSHOT, "--db", db_url, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "recorded 1 batch" in result.stderr
    document = json.loads(out.read_text())
    store = RunStore(db_url)
    [batch] = store.batches()
    assert (batch.group, batch.product_store, batch.status, batch.trigger) == (
        "Omnichannel brokering", "STORE", "succeeded", "manual")
    assert batch.allocations == len(document["allocations"])
    assert batch.unfillable == len(document["unfillable"])
    assert batch.attempted_items == document["batches"][0]["runs"][0]["attempted_items"]
    moves = store.history()
    allocated = [m for m in moves if m["reason"] == "allocated"]
    assert [(m["order"], m["item"], m["to"], m["quantity"]) for m in allocated] == [
        (a["order"], a["item"], a["facility"], a["quantity"]) for a in document["allocations"]]
    moved = [m for m in moves if m["reason"] == "moved_to_queue"]
    assert len(moved) == sum(1 for u in document["unfillable"] if u["action"] == "moved")
    assert all(m["from"] == "_NA_" for m in moves)
    one = invoke("history", "--db", db_url, "--order", "O-1002", "--format", "json")
    assert {row["order"] for row in json.loads(one.stdout)} == {"O-1002"}
    store.dispose()


def test_purge_deletes_old_batches_and_what_they_recorded(db_url):
    assert invoke("db", "upgrade", "--db", db_url).exit_code == 0
    assert invoke("run", SOURCE, "--snapshot", SNAPSHOT, "--db", db_url, "--out", "-"
                  ).exit_code == 0
    store = RunStore(db_url)
    assert store.purge(timedelta(days=30)) == 0
    assert len(store.history()) > 0
    # decisions the OMS has not acknowledged keep their batch: their reservations apply
    assert "purged 0 batches" in invoke("purge", "--db", db_url, "--older-than", "0m").stdout
    assert store.ack(batch=store.batches()[0].id) > 0
    result = invoke("purge", "--db", db_url, "--older-than", "0m")
    assert result.exit_code == 0 and "purged 1 batch" in result.stdout
    assert store.history() == [] and store.batches() == []
    assert store.ledger(reflected_before=None) == []
    bad = invoke("purge", "--db", db_url, "--older-than", "soon")
    assert bad.exit_code == 2 and "not an age" in bad.stderr
    store.dispose()


def test_a_killed_run_leaves_no_partial_batch_and_is_closed_next_time(db_url, tmp_path,
                                                                     slow_run):
    route, big = slow_run
    assert invoke("db", "upgrade", "--db", db_url).exit_code == 0
    process = subprocess.Popen([sys.executable, "-m", "routing_dsl", "run", str(route),
                                "--snapshot", str(big), "--db", db_url, "--out",
                                str(tmp_path / "r.json"), *SLOWLY],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = RunStore(db_url)
    deadline = time.monotonic() + 60
    while not [b for b in store.batches() if b.status == "running"]:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    [batch] = store.batches()
    assert batch.status == "running"
    with store.engine.connect() as connection:
        for table in ("allocations", "unfillable", "history", "runs", "outbox"):
            assert connection.exec_driver_sql(f"select count(*) from {table}").scalar() == 0
    later = invoke("history", "--db", db_url)
    assert "closed 1 batch left running" in later.stderr
    [closed] = store.batches()
    assert closed.status == "failed" and "stopped before it finished" in closed.error
    assert not list(tmp_path.glob("r.json*")) and not list(tmp_path.glob(".r.json*"))
    store.dispose()


def test_urls_and_errors():
    assert database_url("x.db").startswith("sqlite:////")
    assert database_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    with pytest.raises(StoreError, match="cannot reach"):
        RunStore("postgresql+psycopg://nobody:secret@127.0.0.1:1/none").require_current()
    result = invoke("history", "--db", "postgresql://nobody:secret@127.0.0.1:1/none")
    assert result.exit_code == 2 and "secret" not in result.output


def test_the_operations_doc_commands_run(tmp_path, monkeypatch):
    import re
    import shlex

    doc = (ROOT / "docs" / "operations.md").read_text()
    block = re.search(r"<!-- tested: sqlite -->\n```sh\n(.*?)```", doc, re.S).group(1)
    snapshot = json.loads(Path(SNAPSHOT).read_text())
    snapshot["orders"][0]["id"] = "O-1"
    (tmp_path / "snapshot.json").write_text(json.dumps(snapshot))
    (tmp_path / "rules.route").write_text(Path(SOURCE).read_text().replace(
        '"../catalog.route"', '"catalog.route"'))
    (tmp_path / "catalog.route").write_text((ROOT / "examples" / "catalog.route").read_text())
    (tmp_path / ".routing-root").write_text("")
    monkeypatch.chdir(tmp_path)
    for line in block.strip().splitlines():
        words = shlex.split(line)
        assert words[0] == "routing"
        result = invoke(*words[1:])
        assert result.exit_code == 0, (line, result.output)
    history = invoke("history", "--db", "runs.db", "--format", "json")
    assert history.exit_code == 0


def test_two_processes_racing_for_one_store_take_turns_and_sell_nothing_twice(db_url,
                                                                              slow_run):
    route, big = slow_run
    assert invoke("db", "upgrade", "--db", db_url).exit_code == 0
    # --wait: the second waits as long as the first may take on a loaded machine
    command = [sys.executable, "-m", "routing_dsl", "run", str(route), "--snapshot", str(big),
               "--db", db_url, "--out", "-", "--wait", "110"]
    first = subprocess.Popen([*command, *SLOWLY], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    store = RunStore(db_url)
    deadline = time.monotonic() + 60
    while not [b for b in store.batches() if b.status == "running"]:
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    # the second waits for the first's partition, then routes what the first left
    second = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, timeout=120)
    assert first.wait(timeout=120) == 0
    assert second.returncode == 0, second.stderr
    batches = sorted(store.batches(), key=lambda b: b.started)
    assert [b.status for b in batches] == ["succeeded", "succeeded"]
    assert batches[0].allocations > 0 and batches[1].allocations < batches[0].allocations
    from .test_ledger import assert_within_stock
    assert_within_stock(store, json.loads(big.read_text()))
    store.dispose()


def test_a_partition_that_stays_busy_is_skipped_after_the_wait(db_url):
    from routing_dsl.app import load_plan
    from routing_dsl.ops.locks import PartitionLock
    from routing_dsl.ops.runner import run_recorded
    from routing_dsl.snapshot import load_snapshot
    store = RunStore(db_url)
    store.upgrade()
    plan, snapshot = load_plan(Path(SOURCE)), load_snapshot(Path(SNAPSHOT))
    with PartitionLock(store, ["STORE"], wait=0) as held:
        assert held
        started = time.monotonic()
        result, [batch_id] = run_recorded(store, plan, snapshot, source_text=None, wait=0.3)
        assert time.monotonic() - started >= 0.25  # it waited (up to one retry short)
    [skipped] = store.batches()
    assert skipped.status == "skipped" and result["allocations"] == []
    assert "another run holds product store 'STORE'" in skipped.error
    result, _ = run_recorded(store, plan, snapshot, source_text=None, wait=0.3)
    assert result["allocations"]  # free again
    store.dispose()


def test_run_wait_says_how_long_a_busy_partition_is_waited_for(tmp_path):
    from routing_dsl.ops.locks import PartitionLock
    db_url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = RunStore(db_url)
    store.upgrade()
    with PartitionLock(store, ["STORE"], wait=0) as held:
        assert held
        started = time.monotonic()
        result = invoke("run", SOURCE, "--snapshot", SNAPSHOT, "--db", db_url, "--out", "-",
                        "--wait", "0.4")
        assert time.monotonic() - started >= 0.35
    assert result.exit_code == 0, result.output
    assert [b.status for b in store.batches()] == ["skipped"]
    assert invoke("run", SOURCE, "--snapshot", SNAPSHOT, "--db", db_url, "--out", "-",
                  "--wait", "-1").exit_code == 2
    store.dispose()


def test_an_expired_sqlite_lease_is_taken_over(tmp_path):
    from routing_dsl.ops.locks import StoreLock
    store = RunStore(f"sqlite:///{tmp_path / 'lease.db'}")
    store.upgrade()
    with StoreLock(store, "S", lease_seconds=0.3) as first:
        assert first
        with StoreLock(store, "S") as second:
            assert not second  # renewed while held
    with StoreLock(store, "S") as again:
        assert again
    dead = StoreLock(store, "S", lease_seconds=0.2)
    assert dead._take_lease()  # a holder that dies without releasing or renewing
    with StoreLock(store, "S") as blocked:
        assert not blocked
    time.sleep(0.3)
    with StoreLock(store, "S") as taken:
        assert taken
    store.dispose()


def test_each_batch_fills_the_outbox_which_the_oms_acknowledges(db_url, tmp_path):
    assert invoke("db", "upgrade", "--db", db_url).exit_code == 0
    out = tmp_path / "r.json"
    assert invoke("run", SOURCE, "--snapshot", SNAPSHOT, "--db", db_url, "--out", str(out)
                  ).exit_code == 0
    document = json.loads(out.read_text())
    listed = invoke("outbox", "list", "--db", db_url)
    assert listed.exit_code == 0
    pending = json.loads(listed.stdout)
    allocations = [p["decision"] for p in pending if p["kind"] == "allocation"]
    assert allocations == document["allocations"]
    moved = [p for p in pending if p["kind"] == "move_to_queue"]
    assert len(moved) == sum(1 for u in document["unfillable"] if u["action"] == "moved")
    first = str(pending[0]["id"])
    assert "acknowledged 1 decision" in invoke("outbox", "ack", first, "--db", db_url).stdout
    assert "acknowledged 0 decisions" in invoke("outbox", "ack", first, "--db", db_url).stdout
    batch = pending[0]["batch"]
    invoke("outbox", "ack", "--batch", batch, "--db", db_url)
    assert json.loads(invoke("outbox", "list", "--db", db_url).stdout) == []
    assert invoke("outbox", "ack", "--db", db_url).exit_code == 2


def test_a_webhook_gets_each_batch_once_applied_with_retries(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = []

    class Receiver(BaseHTTPRequestHandler):
        calls = 0

        def do_POST(self):  # noqa: N802 - the http.server protocol
            Receiver.calls += 1
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if Receiver.calls == 1:  # the first delivery fails: the sender must retry
                self.send_response(503)
            else:
                received.append((self.headers["Idempotency-Key"], body))
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        db = f"sqlite:///{tmp_path / 'runs.db'}"
        assert invoke("db", "upgrade", "--db", db).exit_code == 0
        url = f"http://127.0.0.1:{server.server_address[1]}/batches"
        out = tmp_path / "r.json"
        result = invoke("run", SOURCE, "--snapshot", SNAPSHOT, "--db", db, "--webhook", url,
                        "--out", str(out))
        assert result.exit_code == 0, result.output
    finally:
        server.shutdown()
    [(key, body)] = received
    [batch] = RunStore(db).batches()
    assert key == batch.id == body["batch"]
    assert body["allocations"] == json.loads(out.read_text())["allocations"]
    assert Receiver.calls == 2


def test_an_unreachable_webhook_is_a_warning_and_the_outbox_keeps_the_decisions(tmp_path,
                                                                             monkeypatch):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    assert invoke("db", "upgrade", "--db", db).exit_code == 0
    from routing_dsl.ops import sinks
    monkeypatch.setattr(sinks.Webhook, "first_delay", 0.01)  # retry quickly in the test
    result = invoke("run", SOURCE, "--snapshot", SNAPSHOT, "--db", db, "--webhook",
                    "http://127.0.0.1:1/nothing", "--out", "-")
    assert result.exit_code == 0
    assert "webhook http://127.0.0.1:1/nothing failed" in result.stderr
    assert json.loads(invoke("outbox", "list", "--db", db).stdout)
    refused = invoke("run", SOURCE, "--snapshot", SNAPSHOT, "--db", db, "--webhook", "ftp://x")
    assert refused.exit_code == 2


def test_a_batch_that_is_still_running_elsewhere_is_not_closed(db_url, slow_run):
    route, big = slow_run
    assert invoke("db", "upgrade", "--db", db_url).exit_code == 0
    process = subprocess.Popen([sys.executable, "-m", "routing_dsl", "run", str(route),
                                "--snapshot", str(big), "--db", db_url, "--out", "-", *SLOWLY],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = RunStore(db_url)
    deadline = time.monotonic() + 60
    while not [b for b in store.batches() if b.status == "running"]:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    looked = invoke("history", "--db", db_url)  # another process opens the store meanwhile
    assert looked.exit_code == 0 and "closed" not in looked.stderr
    assert process.wait(timeout=120) == 0
    assert [b.status for b in store.batches()] == ["succeeded"]
    store.dispose()


def test_the_default_sqlite_store_is_created_on_first_use(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROUTING_DB", raising=False)
    result = invoke("history")
    assert result.exit_code == 0, result.output
    assert "note: created the run store" in result.stderr
    assert (tmp_path / "routing.db").is_file()
    missing = invoke("history", "--db", str(tmp_path / "no" / "such" / "dir.db"))
    assert missing.exit_code == 2 and "cannot reach" in missing.stderr


def test_a_recorded_run_keeps_its_shipping_costs(db_url, tmp_path):
    assert invoke("db", "upgrade", "--db", db_url).exit_code == 0
    folder = ROOT / "examples" / "shipping_cost"
    out = tmp_path / "result.json"
    result = invoke("run", str(folder / "shipping_cost.route"), "--snapshot",
                    str(folder / "snapshot.json"), "--db", db_url, "--out", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    store = RunStore(db_url)
    [batch] = store.batches()
    detail = store.batch_detail(batch.id)
    [run] = detail["runs"]
    [expected] = document["batches"][0]["runs"]
    assert {k: run[k] for k in ("shipping_cost", "packages", "split_orders", "late_items")} == \
        {k: expected[k] for k in ("shipping_cost", "packages", "split_orders", "late_items")}
    assert [(a["shipping_cost"], a["transit_days"], a["delivery_date"])
            for a in detail["allocations"]] == [
        (a["shipping_cost"], a["transit_days"], a["delivery_date"])
        for a in document["allocations"]]
    store.dispose()


def test_serve_starts_on_a_fresh_sqlite_file(tmp_path):
    from routing_dsl.service.launch import serving
    db = tmp_path / "fresh.db"
    with serving([SOURCE, "--source", SNAPSHOT, "--db", str(db)], cwd=tmp_path) as served:
        import httpx
        assert httpx.get(f"{served.base}/console").status_code == 200
        assert isinstance(httpx.get(f"{served.base}/v1/batches").json(), list)
    assert db.is_file()
    assert "note: created the run store" in served.stderr


def test_an_optimised_batch_keeps_its_optimization_section(db_url, tmp_path):
    """Migration 0010: each optimised routing run of a batch, as the result's `optimization`
    section says, read back with the batch (and gone with it); the migration goes down to
    0009 and up again."""
    from alembic import command

    from routing_dsl.ops.store import _config
    folder = ROOT / "examples" / "optimize"
    assert invoke("db", "upgrade", "--db", db_url).exit_code == 0
    out = tmp_path / "result.json"
    ran = invoke("run", str(folder / "optimize.route"), "--snapshot",
                 str(folder / "snapshot.json"), "--db", db_url, "--out", str(out))
    assert ran.exit_code == 0, ran.output
    [section] = json.loads(out.read_text())["optimization"]["routings"]
    store = RunStore(db_url)
    [batch] = store.batches()
    [kept] = store.batch_detail(batch.id)["optimizations"]
    assert (kept["routing"], kept["mode"], kept["status"], kept["rules_cost"],
            kept["optimized_cost"], kept["saving"], kept["lower_bound"], kept["gap"]) == (
        "Web orders", "apply", "optimal", 99.95, 84.42, 15.53, 84.42, 0.0)
    assert (kept["rules"], kept["optimized"], kept["rule_costs"]) == (
        section["rules"], section["optimized"], section["rule_costs"])
    assert store.purge(timedelta(seconds=-60)) == 0  # the OMS has not acknowledged it yet
    store.ack(batch=batch.id)
    assert store.purge(timedelta(seconds=-60)) == 1
    with store.engine.begin() as connection:
        assert connection.exec_driver_sql("select count(*) from optimizations").scalar() == 0
        command.downgrade(_config(connection), "0009")
    with store.engine.begin() as connection:
        assert "optimizations" not in sa_tables(connection)
        command.upgrade(_config(connection), "head")
    with store.engine.begin() as connection:
        assert "optimizations" in sa_tables(connection)
    store.dispose()


def sa_tables(connection) -> set[str]:
    import sqlalchemy as sa
    return set(sa.inspect(connection).get_table_names())


def test_postgresql_run_store_connections_never_jit_compile():
    """Without fresh statistics (autovacuum off or behind) the console's rollup trigger was
    estimated at millions of rows and JIT-compiled at every commit (~100 ms of the database's
    CPU each: 8 commits/s once 12,000 batches were stored)."""
    with postgres_database("routing_jit") as url:
        store = RunStore(url)
        store.upgrade()
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("show jit").scalar() == "off"
        store.dispose()
