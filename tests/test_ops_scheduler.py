"""The scheduler: cron slots in the group's time zone (across a daylight-saving change), a
missed slot run once, paused groups skipped, structured logs, a clean stop on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
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
    subprocess.run([sys.executable, "-m", "routing_dsl", "db", "upgrade", "--db", db],
                   check=True, capture_output=True)
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
