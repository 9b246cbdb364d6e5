"""The HTTP service, in process (ASGI) and fuzzed from its OpenAPI document: decisions equal
the batch engine's, bad requests get problem documents, never a 500."""

from __future__ import annotations

import json

import pytest
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from routing_dsl.checker import Workspace
from routing_dsl.compiler import compile_program
from routing_dsl.interpreter import run_plan
from routing_dsl.ops.store import RunStore
from routing_dsl.service.app import create_app
from routing_dsl.service.state import LiveState
from routing_dsl.snapshot import load_snapshot

from .conftest import ROOT

EXAMPLE = ROOT / "examples" / "omnichannel"
PLAN = compile_program(Workspace().check_path(EXAMPLE / "omnichannel.route").program)
DOCUMENT = json.loads((EXAMPLE / "snapshot.json").read_text())


def make_app(store=None):
    state = LiveState([PLAN], lambda: load_snapshot(EXAMPLE / "snapshot.json"))
    state.refresh()
    return create_app(state, store)


@pytest.fixture
def client():
    with TestClient(make_app()) as client:
        yield client


def test_a_quote_equals_the_batch_decision_for_that_order(client):
    order = DOCUMENT["orders"][1]
    answer = client.post("/v1/decisions", json={"order": order})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    alone = dict(DOCUMENT, orders=[order])
    from routing_dsl.snapshot import parse_snapshot
    expected = run_plan(PLAN, parse_snapshot(alone))
    assert [(line["item"], line["facility"], line["quantity"]) for line in body["lines"]] == [
        (a["item"], a["facility"], a["quantity"]) for a in expected["allocations"]]
    assert body["explanations"][0]["rules"]
    assert client.get("/healthz").json()["status"] == "ok"


def test_a_quote_has_no_side_effects(client):
    order = DOCUMENT["orders"][1]
    first = client.post("/v1/decisions", json={"order": order}).json()
    second = client.post("/v1/decisions", json={"order": order}).json()
    assert first == second


@pytest.mark.parametrize("body, status, words", [
    ({"order": {"id": "X"}}, 422, "invalid request"),
    ({"order": DOCUMENT["orders"][0], "commit": True}, 422, "invalid request"),
    ({"order": DOCUMENT["orders"][0], "commit": 0}, 422, "invalid request"),
    ({"order": dict(DOCUMENT["orders"][0], ship_groups=[
        dict(DOCUMENT["orders"][0]["ship_groups"][0], facility="NOWHERE")])}, 422,
     "cannot decide this order"),
    ({"order": DOCUMENT["orders"][0], "extra": 1}, 422, "invalid request"),
])
def test_bad_decision_requests_get_problem_documents(client, body, status, words):
    answer = client.post("/v1/decisions", json=body)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert words in answer.json()["title"]


def test_not_json_and_unknown_routes(client):
    answer = client.post("/v1/decisions", content=b"{not json",
                         headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert client.get("/v1/nothing").status_code == 404
    assert client.get("/v1/batches").status_code == 409  # no run store


def test_runs_batches_history_and_metrics_with_a_store(tmp_path):
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.upgrade()
    with TestClient(make_app(store)) as client:
        client.post("/v1/decisions", json={"order": DOCUMENT["orders"][0]})
        ran = client.post("/v1/groups/Omnichannel brokering/runs")
        assert ran.status_code == 200, ran.text
        [batch_id] = ran.json()["batches"]
        assert client.get(f"/v1/batches/{batch_id}").json()["trigger"] == "api"
        assert client.get("/v1/batches").json()[0]["id"] == batch_id
        assert client.get("/v1/batches/nope").status_code == 404
        assert client.post("/v1/groups/nope/runs").status_code == 404
        moves = client.get("/v1/orders/O-1002/history").json()
        assert {m["order"] for m in moves} == {"O-1002"}
        metrics = client.get("/metrics").text
        assert "routing_decisions_total 1" in metrics
        assert 'routing_batches{status="succeeded"} 1' in metrics
        assert client.post("/v1/state/refresh").status_code == 200


SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", make_app())


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_the_api_never_answers_500_to_any_request(case):
    # Every check but one: a body can match the schema and still name a facility that does
    # not exist, which is a 422 no JSON Schema can foresee.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


def test_routing_serve_answers_http_and_stops_on_sigterm(tmp_path):
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    subprocess.run([sys.executable, "-m", "routing_dsl", "db", "upgrade", "--db", db],
                   check=True, capture_output=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "routing_dsl", "serve", str(EXAMPLE / "omnichannel.route"),
         "--source", str(EXAMPLE / "snapshot.json"), "--db", db, "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=EXAMPLE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz").json()["status"] == "ok":
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        answer = httpx.post(f"{base}/v1/decisions", json={"order": DOCUMENT["orders"][1]})
        assert answer.status_code == 200 and answer.json()["lines"]
        assert httpx.get(f"{base}/openapi.json").json()["paths"]["/v1/decisions"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors


def test_the_service_doc_example_is_decided(client):
    import re
    doc = (ROOT / "docs" / "service.md").read_text()
    body = json.loads(re.search(r"<!-- tested: decision -->\n```json\n(.*?)```", doc,
                                re.S).group(1))
    answer = client.post("/v1/decisions", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["lines"][0]["facility"]
