"""The scheduler: cron slots in the group's time zone (across a daylight-saving change), a
missed slot run once, paused groups skipped, structured logs, a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from routing_dsl.checker import Workspace
from routing_dsl.compiler import compile_program
from routing_dsl.ops.scheduler import Scheduler, latest_slot, next_slot
from routing_dsl.ops.store import RunStore
from routing_dsl.snapshot import load_snapshot

from .conftest import ROOT

NEW_YORK = ZoneInfo("America/New_York")
EXAMPLE = ROOT / "examples" / "omnichannel"
RULES = (EXAMPLE / "omnichannel.route").read_text()


def test_a_daily_slot_in_the_spring_forward_gap_fires_once_at_3am():
    # 2027-03-14: clocks in New York jump from 02:00 to 03:00; 02:30 does not exist that day
    before = datetime(2027, 3, 13, 12, 0, tzinfo=NEW_YORK)
    first = next_slot("30 2 * * *", "America/New_York", before)
    assert first == datetime(2027, 3, 14, 3, 0, tzinfo=NEW_YORK)
    second = next_slot("30 2 * * *", "America/New_York", first)
    assert second == datetime(2027, 3, 15, 2, 30, tzinfo=NEW_YORK)
    assert (second - first).total_seconds() == 23.5 * 3600


def test_quarter_hour_slots_follow_the_wall_clock_across_the_change():
    at = datetime(2027, 3, 14, 3, 7, tzinfo=NEW_YORK)
    assert latest_slot("0 */15 * * * ?", "America/New_York", at) == datetime(
        2027, 3, 14, 3, 0, tzinfo=NEW_YORK)
    assert latest_slot("0 */15 * * * ?", "America/New_York", at).utcoffset().total_seconds() \
        == -4 * 3600
    before = datetime(2027, 3, 14, 1, 50, tzinfo=NEW_YORK)
    assert next_slot("0 */15 * * * ?", "America/New_York", before) == datetime(
        2027, 3, 14, 3, 0, tzinfo=NEW_YORK)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _scheduler(tmp_path, rules: str, clock: Clock) -> tuple[Scheduler, list]:
    (tmp_path / "catalog.route").write_text((ROOT / "examples" / "catalog.route").read_text())
    (tmp_path / ".routing-root").write_text("")
    path = tmp_path / "rules.route"
    path.write_text(rules.replace('"../catalog.route"', '"catalog.route"'))
    result = Workspace().check_path(path)
    assert not result.has_errors, result.diagnostics
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.upgrade()
    events: list = []
    scheduler = Scheduler(store, compile_program(result.program),
                          lambda: load_snapshot(EXAMPLE / "snapshot.json"),
                          log=events.append, clock=clock)
    return scheduler, events


def _daily(rules: str, cron: str) -> str:
    start = rules.index("schedule ")
    end = rules.index("\n", start)
    return rules[:start] + f'schedule "{cron}" in "America/New_York"' + rules[end:]


def test_a_daily_group_runs_once_per_day_across_the_change(tmp_path):
    clock = Clock(datetime(2027, 3, 14, 12, 0, tzinfo=NEW_YORK))
    scheduler, events = _scheduler(tmp_path, _daily(RULES, "30 2 * * *"), clock)
    assert [e["status"] for e in scheduler.run_once()] == ["succeeded"]
    clock.now = datetime(2027, 3, 14, 23, 59, tzinfo=NEW_YORK)
    assert scheduler.run_once() == []
    clock.now = datetime(2027, 3, 15, 2, 30, tzinfo=NEW_YORK)
    assert len(scheduler.run_once()) == 1
    assert [e["event"] for e in events] == ["start", "batch", "start", "batch"]


def test_missed_slots_after_downtime_run_once(tmp_path):
    clock = Clock(datetime(2027, 1, 5, 8, 0, tzinfo=NEW_YORK))
    scheduler, _ = _scheduler(tmp_path, RULES, clock)  # every 15 minutes
    assert len(scheduler.run_once()) == 1
    clock.now = datetime(2027, 1, 5, 11, 40, tzinfo=NEW_YORK)  # 14 slots missed
    assert len(scheduler.run_once()) == 1
    assert scheduler.run_once() == []
    batches = scheduler.store.batches()
    assert [b.trigger for b in batches] == ["scheduled", "scheduled"]


def test_paused_groups_never_run(tmp_path):
    paused = RULES.replace('in "America/New_York"', 'in "America/New_York" paused', 1)
    assert "paused" in paused
    scheduler, _ = _scheduler(tmp_path, paused, Clock(datetime(2027, 1, 5, 8, 0, tzinfo=UTC)))
    assert scheduler.due(datetime(2027, 1, 5, 8, 0, tzinfo=UTC)) == []
    assert scheduler.run_once() == []


def test_serve_logs_json_lines_and_stops_cleanly_on_sigterm(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    _upgrade(db)
    process = subprocess.Popen(
        [sys.executable, "-m", "routing_dsl", "serve", str(EXAMPLE / "omnichannel.route"),
         "--source", str(EXAMPLE / "snapshot.json"), "--db", db, "--poll-seconds", "0.2"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=EXAMPLE)
    lines = []
    deadline = time.monotonic() + 30
    while not any(json.loads(line)["event"] == "batch" for line in lines):
        assert time.monotonic() < deadline
        lines.append(process.stderr.readline())
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=30)
    assert process.returncode == 0
    events = [json.loads(line)["event"] for line in lines + rest.splitlines() if line]
    assert events[0] == "serving" and events[-1] == "stopped"
    assert "start" in events and "batch" in events


@pytest.mark.parametrize("expression", ["0 */15 * * * ?", "*/5 * * * *"])
def test_latest_slot_is_at_or_before_now(expression):
    now = datetime(2027, 6, 1, 12, 7, 30, tzinfo=UTC)
    slot = latest_slot(expression, "UTC", now)
    assert slot <= now and next_slot(expression, "UTC", slot) > now


def test_serve_once_runs_the_due_groups_of_several_files(tmp_path):
    from click.testing import CliRunner

    from routing_dsl.cli import main
    (tmp_path / "catalog.route").write_text((ROOT / "examples" / "catalog.route").read_text())
    (tmp_path / ".routing-root").write_text("")
    rules = RULES.replace('"../catalog.route"', '"catalog.route"')
    (tmp_path / "a.route").write_text(rules)
    (tmp_path / "b.route").write_text(rules.replace('group "Omnichannel brokering"',
                                                    'group "Second brokering"'))
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade", "--db", db]).exit_code == 0
    result = runner.invoke(main, ["serve", str(tmp_path / "a.route"), str(tmp_path / "b.route"),
                                  "--source", str(EXAMPLE / "snapshot.json"), "--db", db,
                                  "--once"])
    assert result.exit_code == 0, result.output
    batches = RunStore(db).batches()
    assert sorted(b.group for b in batches) == ["Omnichannel brokering", "Second brokering"]
    assert {b.trigger for b in batches} == {"scheduled"}
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert "serving" not in [e["event"] for e in events]  # the docs said it was printed
    [once] = [e for e in events if e["event"] == "once"]
    assert once["ran"] == ["Omnichannel brokering", "Second brokering"]
    assert once["batches"] == 2 and once["nothing_due"] is False and "at" in once["next"]
    # again: nothing is due now, and it says so (it used to print nothing at all)
    again = runner.invoke(main, ["serve", str(tmp_path / "a.route"), "--source",
                                 str(EXAMPLE / "snapshot.json"), "--db", db, "--once"])
    assert again.exit_code == 0, again.output
    [line] = again.stderr.splitlines()
    event = json.loads(line)
    assert event["event"] == "once" and event["nothing_due"] is True and event["ran"] == []
    assert event["next"]["group"] == "Omnichannel brokering"


def test_serve_runs_the_due_groups_of_many_stores_on_a_process_pool(tmp_path):
    """The due groups of a round run together, their partitions in parallel: the batches and
    every recorded move equal a sequential round's."""
    from click.testing import CliRunner

    from routing_dsl.cli import main
    folder = ROOT / "examples" / "multi_store"
    rules = (folder / "multi_store.route").read_text().replace(
        " {\n  routing", ' {\n  schedule "*/5 * * * *"\n  routing')
    assert rules.count("schedule") == 3
    (tmp_path / "stores.route").write_text(rules)
    (tmp_path / ".routing-root").write_text("")
    moves = {}
    for executor in ("local", "process"):
        db = f"sqlite:///{tmp_path / f'{executor}.db'}"
        assert CliRunner().invoke(main, ["db", "upgrade", "--db", db]).exit_code == 0
        result = CliRunner().invoke(main, [
            "serve", str(tmp_path / "stores.route"), "--source", str(folder / "snapshot.json"),
            "--db", db, "--once", "--executor", executor, "--jobs", "2"])
        assert result.exit_code == 0, result.output
        store = RunStore(db)
        assert sorted((b.group, b.status) for b in store.batches()) == [
            ("Brand A", "succeeded"), ("Brand B", "succeeded"), ("Outlet", "succeeded")]
        moves[executor] = [{k: m[k] for k in ("order", "item", "to", "quantity", "rule")}
                           for m in store.history()]
        store.dispose()
    assert moves["process"] == moves["local"] and moves["local"]


# ---- daylight saving ends: a wall-clock slot shown twice runs once ----

def test_a_daily_slot_shown_twice_when_daylight_saving_ends_is_one_slot():
    # 2027-11-07: New York's clocks go from 01:59 EDT back to 01:00 EST; 01:30 shows twice
    first = datetime(2027, 11, 7, 5, 30, tzinfo=UTC)   # 01:30 EDT
    second = datetime(2027, 11, 7, 6, 30, tzinfo=UTC)  # 01:30 EST
    def latest(expression, now):
        return latest_slot(expression, "America/New_York", now).astimezone(UTC)
    assert latest("30 1 * * *", second) == first
    assert latest("30 1 * * *", second + timedelta(minutes=20)) == first
    after = next_slot("30 1 * * *", "America/New_York", first)
    assert after.astimezone(UTC) == datetime(2027, 11, 8, 6, 30, tzinfo=UTC)
    # a schedule of every hour measures intervals: it fires in both copies of 01:00
    assert latest("0 * * * *", second) == datetime(2027, 11, 7, 6, 0, tzinfo=UTC)
    assert latest("0 * * * *", first) == datetime(2027, 11, 7, 5, 0, tzinfo=UTC)


def test_a_daily_group_runs_once_on_the_fall_back_day(tmp_path):
    clock = Clock(datetime(2027, 11, 7, 1, 30, tzinfo=NEW_YORK))  # 01:30 EDT, first showing
    scheduler, events = _scheduler(tmp_path, _daily(RULES, "30 1 * * *"), clock)
    assert [e["status"] for e in scheduler.run_once()] == ["succeeded"]
    for moment in (datetime(2027, 11, 7, 5, 59, tzinfo=UTC),   # 01:59 EDT
                   datetime(2027, 11, 7, 6, 30, tzinfo=UTC),   # 01:30 EST, shown again
                   datetime(2027, 11, 7, 6, 45, tzinfo=UTC),
                   datetime(2027, 11, 7, 12, 0, tzinfo=UTC)):
        clock.now = moment
        assert scheduler.run_once() == [], moment
    fresh, _ = _scheduler(tmp_path, _daily(RULES, "30 1 * * *"), clock)  # from the store too
    clock.now = datetime(2027, 11, 7, 6, 31, tzinfo=UTC)
    assert fresh.run_once() == []
    clock.now = datetime(2027, 11, 8, 1, 30, tzinfo=NEW_YORK)
    assert len(scheduler.run_once()) == 1
    assert len(scheduler.store.batches()) == 2


# ---- a slot whose batch died runs again, once ----

_KILLED_MID_BATCH = """
import sys, time
from datetime import datetime
from zoneinfo import ZoneInfo
from routing_dsl.checker import Workspace
from routing_dsl.compiler import compile_program
from routing_dsl.engine import route
from routing_dsl.ops.scheduler import Scheduler
from routing_dsl.ops.store import RunStore
from routing_dsl.snapshot import load_snapshot

def stuck(*args, **kwargs):
    print("routing", flush=True)
    time.sleep(600)

from pathlib import Path
plan = compile_program(Workspace().check_path(Path(sys.argv[1])).program)
scheduler = Scheduler(RunStore(sys.argv[2]), plan, lambda: load_snapshot(Path(sys.argv[3])),
                      log=lambda event: None,
                      clock=lambda: datetime.fromisoformat(sys.argv[4]))
scheduler.router = stuck
scheduler.run_once()
"""


def test_a_slot_whose_batch_died_runs_again_once(tmp_path):
    clock = Clock(datetime(2027, 1, 5, 8, 1, tzinfo=NEW_YORK))
    scheduler, events = _scheduler(tmp_path, RULES, clock)  # every 15 minutes
    # a real process starts the slot's batch and is killed (-9) in the middle of it
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_MID_BATCH, str(tmp_path / "rules.route"),
         scheduler.store.url, str(EXAMPLE / "snapshot.json"), clock.now.isoformat()],
        stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "routing\n"
    child.kill()
    child.wait()
    assert [b.status for b in scheduler.store.batches()] == ["running"]
    # the next round closes the dead batch and runs the slot again
    assert [e["status"] for e in scheduler.run_once()] == ["succeeded"]
    assert [e.get("rerun") for e in events if e["event"] == "start"] == [True]
    assert any(e["event"] == "closed_stale" for e in events)
    assert sorted(b.status for b in scheduler.store.batches()) == ["failed", "succeeded"]
    assert scheduler.run_once() == []
    # a slot whose rerun died as well is not run a third time, by this process or another
    clock.now = datetime(2027, 1, 5, 8, 16, tzinfo=NEW_YORK)
    for _ in range(2):
        died = scheduler.store.start_batch(
            group="Omnichannel brokering", product_store="STORE", plan_json="{}",
            source_name="rules.route", source_text=None, snapshot_hash="", trigger="scheduled",
            started=clock.now)
        scheduler.store.fail_batch(died, "the process running this batch stopped")
    fresh, _ = _scheduler(tmp_path, RULES, clock)
    assert fresh.run_once() == [] and scheduler.run_once() == []
    assert len(scheduler.store.batches()) == 4


# ---- supervision: a failed round is recorded, retried with backoff, reported ----

def test_a_round_that_cannot_read_its_source_is_recorded_reported_and_retried(tmp_path):
    from routing_dsl.ops.scheduler import backoff
    from routing_dsl.snapshot import SnapshotError
    clock = Clock(datetime(2027, 1, 5, 8, 1, tzinfo=NEW_YORK))
    scheduler, events = _scheduler(tmp_path, RULES, clock)
    good = scheduler.source
    half = (EXAMPLE / "snapshot.json").read_text()[:700]
    half_written = tmp_path / "half.json"
    half_written.write_text(half)
    scheduler.source = lambda: load_snapshot(half_written)
    for attempt in (1, 2):
        assert scheduler.supervised_round(most=30) == backoff(attempt, 30) == attempt
    with pytest.raises(SnapshotError):
        load_snapshot(half_written)
    failing = scheduler.supervision.failing()[scheduler.name]
    assert failing["failures"] == 2 and failing["error"].startswith("source: ")
    assert "failing since" in scheduler.supervision.problems()[0]
    # one failed batch for the slot, however many retries, with the error
    [failed] = scheduler.store.batches()
    assert failed.status == "failed" and failed.error.startswith("source: ")
    assert [e["event"] for e in events].count("round_failed") == 2
    scheduler.source = good  # the file is whole again: the retry routes the slot
    assert scheduler.supervised_round() is None
    assert scheduler.supervision.problems() == []
    assert sorted(b.status for b in scheduler.store.batches()) == ["failed", "succeeded"]
    assert events[-1]["event"] == "recovered"
    assert scheduler.supervision.rounds == {"failed": 2, "succeeded": 1}
    assert [backoff(n, 30) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


# ---- `routing serve --port` under supervision (real processes) ----

EVERY_2S = "*/2 * * * * ?"


def _project(tmp_path, cron: str = EVERY_2S) -> tuple:
    """A rules file scheduled every 2 s, its snapshot, and a migrated SQLite run store."""
    (tmp_path / "catalog.route").write_text((ROOT / "examples" / "catalog.route").read_text())
    (tmp_path / ".routing-root").write_text("")
    rules = tmp_path / "rules.route"
    rules.write_text(_daily(RULES, cron).replace('"../catalog.route"', '"catalog.route"'))
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text((EXAMPLE / "snapshot.json").read_text())
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    _upgrade(db)
    return rules, snapshot, db


def _upgrade(db: str) -> None:
    """Migrate the run store in this process: the served process is what these tests drive;
    `routing db upgrade` as a command has tests of its own."""
    store = RunStore(db)
    try:
        store.upgrade()
    finally:
        store.dispose()


def _with_new_order(snapshot, order_id: str) -> None:
    """The OMS adds an order to the source (a copy of O-1001, whose product is in stock)."""
    document = json.loads((EXAMPLE / "snapshot.json").read_text())
    document["orders"].append(dict(document["orders"][0], id=order_id))
    snapshot.write_text(json.dumps(document))


def _eventually(condition, timeout: float = 30.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def _decided(db: str, order_id: str) -> bool:
    """Whether a scheduled batch decided ``order_id`` (allocated it or left it unfilled)."""
    store = RunStore(db)
    try:
        for record in store.batches(1000):
            if record.trigger != "scheduled" or record.status != "succeeded":
                continue
            detail = store.batch_detail(record.id)
            if any(row["order_id"] == order_id
                   for row in detail["allocations"] + detail["unfillable"]):
                return True
        return False
    finally:
        store.dispose()


def _serve(rules, snapshot, db, cwd, **options):
    from routing_dsl.service.launch import serving
    env = {k: v for k, v in os.environ.items() if k != "ROUTING_TOKEN"}
    return serving([str(rules), "--source", str(snapshot), "--db", db,
                    "--poll-seconds", "0.2"], cwd=cwd, env=env, **options)


QUOTE = {"order": json.loads((EXAMPLE / "snapshot.json").read_text())["orders"][1]}


def test_with_port_each_round_reads_new_orders_from_the_source(tmp_path):
    rules, snapshot, db = _project(tmp_path)
    with _serve(rules, snapshot, db, tmp_path):
        _eventually(lambda: _decided(db, "O-1001"))
        _with_new_order(snapshot, "NEW-1")
        _eventually(lambda: _decided(db, "NEW-1"))


def test_a_half_written_source_keeps_serving_and_the_next_whole_one_is_routed(tmp_path):
    import httpx
    rules, snapshot, db = _project(tmp_path)
    whole = snapshot.read_text()
    with _serve(rules, snapshot, db, tmp_path) as served:
        _eventually(lambda: _decided(db, "O-1001"))
        snapshot.write_text(whole[: len(whole) // 2])  # the OMS is halfway through writing it
        health = _eventually(lambda: (lambda h: h if h["status"] == "degraded" else None)(
            httpx.get(f"{served.base}/healthz").json()))
        assert "source: " in health["reasons"][0] and "rules.route" in health["reasons"][0]
        assert httpx.get(f"{served.base}/healthz").status_code == 200  # decisions still work
        quote = httpx.post(f"{served.base}/v1/decisions", json=QUOTE)
        assert quote.status_code == 200 and quote.json()["lines"]
        failed = [b for b in httpx.get(f"{served.base}/v1/batches").json()
                  if b["status"] == "failed"]
        assert failed and failed[0]["error"].startswith("source: ")
        metrics = httpx.get(f"{served.base}/metrics").text
        assert "routing_scheduler_failing 1" in metrics
        assert "routing_scheduler_failures_total 0" not in metrics
        _with_new_order(snapshot, "NEW-2")  # written whole at last
        _eventually(lambda: httpx.get(f"{served.base}/healthz").json()["status"] == "ok")
        _eventually(lambda: _decided(db, "NEW-2"))
    events = [json.loads(line)["event"] for line in served.stderr.splitlines() if line]
    assert "round_failed" in events and "recovered" in events and events[-1] == "stopped"
    assert served.process.returncode == 0


def test_serve_starts_on_a_half_written_source_and_loads_it_once_whole(tmp_path):
    import httpx
    rules, snapshot, db = _project(tmp_path, cron="0 0 1 1 * ?")  # no slot during the test
    whole = snapshot.read_text()
    snapshot.write_text(whole[:500])
    with _serve(rules, snapshot, db, tmp_path,
                ready=lambda answer: answer.status_code == 503) as served:
        health = httpx.get(f"{served.base}/healthz")
        assert health.json()["status"] == "loading"
        assert health.json()["reasons"][0].startswith("live state: failing since")
        refused = httpx.post(f"{served.base}/v1/decisions", json=QUOTE)
        assert refused.status_code == 503 and refused.headers["retry-after"]
        snapshot.write_text(whole)
        _eventually(lambda: httpx.get(f"{served.base}/healthz").json()["status"] == "ok")
        assert httpx.post(f"{served.base}/v1/decisions", json=QUOTE).json()["lines"]


def test_the_scheduler_survives_a_database_outage(tmp_path):
    """PostgreSQL behind a proxy the test takes down for a few seconds: rounds fail, /healthz
    says degraded (still 200: quotes need no database) and /metrics counts the failures; once
    the database is back the scheduler recovers by itself and routes the next slots."""
    import httpx

    from .conftest import postgres_database
    from .tcpproxy import TcpProxy
    rules, snapshot, _ = _project(tmp_path)
    with postgres_database("outage") as direct:
        _upgrade(direct)
        proxy = TcpProxy(("127.0.0.1", 5432)).start()
        db = direct.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        try:
            with _serve(rules, snapshot, db, tmp_path) as served:
                base = served.base

                def scheduled(status: str) -> list:
                    return [b for b in httpx.get(f"{base}/v1/batches").json()
                            if b["trigger"] == "scheduled" and b["status"] == status]
                _eventually(lambda: scheduled("succeeded"))
                proxy.stop()
                health = _eventually(lambda: (lambda h: h if h["status"] == "degraded" else
                                              None)(httpx.get(f"{base}/healthz").json()))
                assert "rules.route" in health["reasons"][0]

                def failures() -> int:
                    metrics = httpx.get(f"{base}/metrics").text
                    assert "routing_scheduler_up 1" in metrics
                    return int(re.search(r"routing_scheduler_failures_total (\d+)",
                                         metrics).group(1))
                # a few retries, with backoff (1 s, then 2 s): wait for the second failure
                # rather than sleeping a fixed time
                _eventually(lambda: failures() >= 2)
                assert httpx.get(f"{base}/healthz").status_code == 200
                assert httpx.post(f"{base}/v1/decisions", json=QUOTE).json()["lines"]
                down = httpx.get(f"{base}/v1/batches")
                assert down.status_code == 503 and down.headers["retry-after"]
                assert failures() >= 2
                proxy.start()
                back = datetime.now(UTC)
                _eventually(lambda: httpx.get(f"{base}/healthz").json()["status"] == "ok")
                _eventually(lambda: [b for b in scheduled("succeeded")
                                     if datetime.fromisoformat(b["started"]) > back])
                # what the outage cut off mid-batch was closed, not left running
                _eventually(lambda: not scheduled("running"), timeout=10)
        finally:
            proxy.stop()
    events = [json.loads(line) for line in served.stderr.splitlines() if line]
    assert any(e["event"] == "round_failed" for e in events)
    assert any(e["event"] == "recovered" for e in events)
    assert served.process.returncode == 0
