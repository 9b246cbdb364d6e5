"""Alert rules: read from TOML (every problem named), evaluated after each batch and each
scheduler round, announced once per change of state (a JSON event, a webhook POST with
retries, a metric), whichever process sees it first."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from routing_dsl.checker import Workspace
from routing_dsl.cli import main
from routing_dsl.compiler import compile_program
from routing_dsl.ops.alerts import AlertError, Alerts, read_rules
from routing_dsl.ops.hooks import AfterBatches
from routing_dsl.ops.runner import run_recorded
from routing_dsl.ops.store import RunStore
from routing_dsl.service.app import create_app
from routing_dsl.service.state import LiveState
from routing_dsl.snapshot import load_snapshot

from .conftest import ROOT, postgres_database

EXAMPLE = ROOT / "examples" / "omnichannel"
PLAN = compile_program(Workspace().check_path(EXAMPLE / "omnichannel.route").program)
SNAPSHOT = load_snapshot(EXAMPLE / "snapshot.json")
GROUP = "Omnichannel brokering"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    else:
        holder = postgres_database("alerts")
        url = holder.__enter__()
        request.addfinalizer(lambda: holder.__exit__(None, None, None))
        store = RunStore(url)
    store.upgrade()
    yield store
    store.dispose()


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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", received
    server.shutdown()


def rules(tmp_path, text: str):
    path = tmp_path / "alerts.toml"
    path.write_text(text)
    return read_rules(path)


def failed_batch(store, hours_ago: float = 0) -> str:
    batch_id = store.start_batch(group=GROUP, product_store="STORE", plan_json=PLAN.to_json(),
                                 source_name="x", source_text=None, snapshot_hash="",
                                 trigger="scheduled",
                                 started=datetime.now(UTC) - timedelta(hours=hours_ago))
    store.fail_batch(batch_id, "source: the OMS database is down")
    return batch_id


def good_batch(store, snapshot=SNAPSHOT, hours_ago: float = 0) -> str:
    """A scheduled batch on ``snapshot`` as an OMS would have it: the batches before it
    applied (acknowledged) and the snapshot read after that, so it decides the same orders
    afresh (ops/ledger.py)."""
    batch = run_recorded(store, PLAN, snapshot, source_text=None, trigger="scheduled",
                         started=datetime.now(UTC) - timedelta(hours=hours_ago),
                         reflected_before=store.clock() + timedelta(seconds=2))[1][0]
    store.ack(batch=batch)
    return batch


def test_a_failed_batch_fires_once_and_resolves_with_the_next_good_one(store, tmp_path,
                                                                     receiver):
    url, received = receiver
    events: list = []
    alerts = Alerts(rules(tmp_path, f'webhook = "{url}"\n[[rule]]\nname = "batch failed"\n'
                                    'when = "batch_failed"\n'), log=events.append)
    assert alerts.after_batches(store, [failed_batch(store)])[0]["state"] == "firing"
    assert alerts.after_batches(store, [failed_batch(store)]) == []  # still firing: quiet
    assert alerts.firing() == [{"rule": "batch failed", "group": GROUP,
                                "message": alerts.firing()[0]["message"]}]
    # another process sharing the store does not announce it again
    other = Alerts(alerts.rules)
    assert other.after_batches(store, [failed_batch(store)]) == []
    resolved = alerts.after_batches(store, [good_batch(store)])
    assert [e["state"] for e in resolved] == ["resolved"]
    assert [e["state"] for e in events] == ["firing", "resolved"]
    assert [body["state"] for body, _ in received] == ["firing", "resolved"]
    body, key = received[0]
    assert body["rule"] == "batch failed" and body["group"] == GROUP
    assert "the OMS database is down" in body["message"]
    assert key.startswith(f"batch failed|{GROUP}|firing|")
    metrics = "\n".join(alerts.metrics())
    assert 'routing_alert_transitions_total{rule="batch failed",state="firing"} 1' in metrics
    assert "routing_alert_firing{" not in metrics  # resolved


def test_unfilled_units_above_a_threshold_or_a_multiple_of_their_average(store, tmp_path):
    few = SNAPSHOT.model_copy(update={"orders": [o for o in SNAPSHOT.orders
                                                 if o.id != "O-1003"]})
    alerts = Alerts(rules(tmp_path, '[[rule]]\nname = "spike"\nwhen = "unfilled_units"\n'
                                    'times_average = 3\nwindow = 5\n'
                                    '[[rule]]\nname = "many"\nwhen = "parked_units"\n'
                                    'queue = "UNFILLABLE_PARKING"\nabove = 30\n'))
    for hours in (5, 4, 3):  # O-1004 alone is left unfilled: 1 unit a batch
        assert alerts.after_batches(store, [good_batch(store, few, hours)]) == []
    spike = alerts.after_batches(store, [good_batch(store)])  # O-1003: 37 more units
    assert sorted(e["rule"] for e in spike) == ["many", "spike"]
    message = {e["rule"]: e["message"] for e in spike}
    assert "38 units unfilled, above 3 x the average of the last 3 batches (1)" in \
        message["spike"]
    assert "38 units parked in UNFILLABLE_PARKING, above 30" in message["many"]


def test_one_unit_and_one_batch_are_said_in_the_singular(store, tmp_path):
    """A new user's defect ("1 items"): one unit, the last batch, not "1 units" or "the last
    1 batches"."""
    few = SNAPSHOT.model_copy(update={"orders": [o for o in SNAPSHOT.orders
                                                 if o.id != "O-1003"]})
    alerts = Alerts(rules(tmp_path, '[[rule]]\nname = "one"\nwhen = "unfilled_units"\n'
                                    'above = 0.5\n[[rule]]\nname = "spike"\n'
                                    'when = "unfilled_units"\ntimes_average = 3\nwindow = 1\n'))
    [one] = alerts.after_batches(store, [good_batch(store, few, 2)])  # O-1004: 1 unit
    assert one["rule"] == "one" and ": 1 unit unfilled, above 0.5" in one["message"]
    spike = {e["rule"]: e["message"] for e in alerts.after_batches(store, [good_batch(store)])}
    assert "38 units unfilled, above 3 x the average of the last batch (1)" in spike["spike"]


def test_a_late_scheduler_fires_and_a_scheduled_batch_resolves_it(store, tmp_path):
    alerts = Alerts(rules(tmp_path, '[[rule]]\nname = "late"\nwhen = "scheduler_late"\n'
                                    'slots = 2\n'))
    good_batch(store, hours_ago=2)  # a group due every 15 minutes, last run 2 hours ago
    [event] = alerts.after_round(store, PLAN, datetime.now(UTC))
    assert event["state"] == "firing" and event["value"] >= 7
    assert "slots behind its schedule" in event["message"]
    good_batch(store)
    assert [e["state"] for e in alerts.after_round(store, PLAN, datetime.now(UTC))] == \
        ["resolved"]


@pytest.mark.parametrize("text, problem", [
    ('[[rule]]\nname = "x"\nwhen = "sunrise"\n', "rule.0.when"),
    ('[[rule]]\nname = "x"\nwhen = "unfilled_units"\n', "needs `above` or `times_average`"),
    ('[[rule]]\nname = "x"\nwhen = "batch_failed"\nabove = 3\n', "takes no `above`"),
    ('[[rule]]\nname = "x"\nwhen = "unfilled_units"\nabove = 1\nqueue = "Q"\n',
     "`queue` goes with parked_units"),
    ('[[rule]]\nname = "x"\nwhen = "scheduler_late"\n', "`slots` goes with scheduler_late"),
    ('[[rule]]\nname = "x"\nwhen = "batch_failed"\n[[rule]]\nname = "x"\n'
     'when = "batch_failed"\n', "rule names must differ: x"),
    ('webhook = "ftp://x"\n', "http:// or https://"),
    ('[[rule]]\nname = "x"\nwhen = "batch_failed"\ncolour = "red"\n', "rule.0.colour"),
    ('[[rule]\n', "alerts.toml"),
])
def test_a_bad_alert_file_names_each_problem(tmp_path, text, problem):
    with pytest.raises(AlertError) as caught:
        rules(tmp_path, text)
    assert any(problem in line and "alerts.toml" in line for line in caught.value.problems), \
        caught.value.problems


def test_routing_run_announces_alerts_as_json_events(tmp_path):
    (tmp_path / "alerts.toml").write_text('[[rule]]\nname = "unfilled"\n'
                                          'when = "unfilled_units"\nabove = 10\n')
    result = CliRunner().invoke(main, ["run", str(EXAMPLE / "omnichannel.route"), "--snapshot",
                                       str(EXAMPLE / "snapshot.json"), "--db",
                                       str(tmp_path / "runs.db"), "--alerts",
                                       str(tmp_path / "alerts.toml"), "--out", "-"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [(e["event"], e["rule"], e["state"]) for e in events] == [
        ("alert", "unfilled", "firing")]
    (tmp_path / "bad.toml").write_text('[[rule]]\nname = "x"\nwhen = "sunrise"\n')
    bad = CliRunner().invoke(main, ["run", str(EXAMPLE / "omnichannel.route"), "--snapshot",
                                    str(EXAMPLE / "snapshot.json"), "--db",
                                    str(tmp_path / "runs.db"), "--alerts",
                                    str(tmp_path / "bad.toml")])
    assert bad.exit_code == 2 and "bad.toml: rule.0.when" in bad.stderr


def test_the_service_shows_alerts_in_metrics_and_on_the_dashboard(tmp_path):
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.upgrade()
    state = LiveState([PLAN], lambda: SNAPSHOT, store=store)
    state.refresh()
    alerts = Alerts(rules(tmp_path, '[[rule]]\nname = "unfilled"\nwhen = "unfilled_units"\n'
                                    'above = 10\n'))
    after = AfterBatches(alerts=alerts)
    with TestClient(create_app(state, store, after=after)) as client:
        assert client.post(f"/v1/groups/{GROUP}/runs").status_code == 200
        metrics = client.get("/metrics").text
        assert f'routing_alert_firing{{rule="unfilled",group="{GROUP}"}} 1' in metrics
        assert 'routing_alert_transitions_total{rule="unfilled",state="firing"} 1' in metrics
        dashboard = client.get("/console").text
        assert 'id="alerts"' in dashboard and "alert unfilled" in dashboard
    store.dispose()
