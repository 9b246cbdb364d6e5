"""The HTTP service fuzzed from its OpenAPI document (routing_dsl/fuzz/http.py), the
console's pages included: in process (ASGI) and against a real `routing serve`; and with
schemathesis over the whole document, console parameters included. No 500, ever; a broken
input gets a 4xx naming what was broken. Each finding is a named test below."""

from __future__ import annotations

import copy
import json

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from routing_dsl.fuzz import http
from routing_dsl.service.launch import serving

from .test_fuzz_surfaces import no_findings


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    served = http.Service(tmp_path_factory.mktemp("http"))
    yield served
    served.close()


@pytest.fixture
def client(service):
    with TestClient(service.app, raise_server_exceptions=False) as client:
        yield client


def test_generated_requests_get_an_answer_and_never_a_500(service):
    no_findings(http.campaign(22, 600, service))


def test_generated_requests_to_a_real_routing_serve_never_get_a_500(service):
    with serving(service.serve_arguments()) as served:
        tally = http.campaign(23, 150, service, base_url=served.base)
    no_findings(tally)
    assert served.process.returncode == 0, served.stderr
    assert "Traceback" not in served.stderr


def test_the_document_fuzzed_covers_the_console_and_every_published_operation(service):
    covered = {(o.method, o.path) for o in http.operations(service.document)}
    published = {(m.upper(), p) for p, ms in service.app.openapi()["paths"].items() for m in ms}
    assert published <= covered
    assert {("GET", "/console/orders"), ("GET", "/console/queues/{queue}"),
            ("GET", "/console/stock"), ("GET", "/console/batches")} <= covered


def test_schemathesis_finds_no_500_in_the_console_pages(service):
    """schemathesis over the console's operations (from the document with the pages in)."""
    from hypothesis import given
    app = service.app
    if not any(getattr(r, "path", "") == "/openapi-fuzz.json" for r in app.routes):
        app.add_api_route("/openapi-fuzz.json", lambda: service.document,
                          include_in_schema=False)
    schema = schemathesis.openapi.from_asgi("/openapi-fuzz.json", app)
    operations = [result.ok() for result in schema.get_all_operations()
                  if result.ok().path.startswith("/console")
                  and not result.ok().path.startswith("/console/static")]
    assert len(operations) >= 9
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            # an id can fit the schema and name nothing (404): no schema foresees that
            case.call_and_validate(excluded_checks=[positive_data_acceptance])
        check()


# ---- findings ------------------------------------------------------------------------------------

def _order(service, **changes) -> dict:
    document = json.loads((service.project.folder / "snapshot.json").read_text())
    order = copy.deepcopy(document["orders"][0])
    order.update(changes)
    return order


def _post(client, body: dict | str, commit: bool = False, key: str = "k"):
    if isinstance(body, dict):
        body = json.dumps({"order": body, **({"commit": True, "idempotency_key": key}
                                             if commit else {})})
    return client.post("/v1/decisions", content=body,
                       headers={"content-type": "application/json"})


@pytest.mark.parametrize("number", ["18446744073709551616", "9007199254740993", "1e300",
                                    "-9007199254740993"])
@pytest.mark.parametrize("field", ["quantity", "unit_price"])
def test_a_quote_and_a_commit_with_a_number_beyond_2_53_are_the_same_422(service, client,
                                                                        number, field):
    """Found by the issue's campaign and again by the HTTP one: a quote with a quantity of
    2^64 answered 500 (orjson could not write it) and a commit 200; 2^53 + 1 (which a float
    rounds to 2^53) was quoted as if it were 2^53."""
    order = _order(service)
    order["ship_groups"][0]["items"][0][field] = 7  # replaced in the text, as sent
    text = json.dumps(order).replace(f'"{field}": 7', f'"{field}": {number}', 1)
    where = f"order.ship_groups.0.items.0.{field}"
    key = f"n{number}{field}"
    answers = [_post(client, f'{{"order": {text}}}'),
               _post(client, f'{{"order": {text}, "commit": true, "idempotency_key": "{key}"}}')]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"].startswith(f"{where}: "), answer.text
    assert answers[0].json() == answers[1].json()
    if not number.startswith("-"):  # a negative quantity is refused by its own bound first
        assert "is outside the supported range (finite numbers up to 9007199254740991)" in \
            answers[0].json()["detail"]


def test_a_non_finite_quantity_is_a_422_naming_it(service, client):
    text = json.dumps({"order": _order(service)})
    text = text.replace('"quantity": 2', '"quantity": 1e999', 1)
    answer = _post(client, text)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("order.ship_groups.0.items.0.quantity: ")


def test_a_nul_in_a_body_is_a_422_naming_the_field(service, client):
    """Found by the HTTP campaign: the NUL check said `body: ...`, not where."""
    answer = _post(client, _order(service, product_store="\x00"))
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("order.product_store: a string holds a NUL")


def test_a_commit_for_a_store_no_group_routes_names_the_field(service, client):
    """Found by the HTTP campaign: the 422 did not say which field was wrong."""
    answer = _post(client, _order(service, product_store="NOPE"), commit=True, key="nope-1")
    assert answer.status_code == 422
    assert answer.json()["detail"] == ("order.product_store: no group routes product store "
                                       "'NOPE'")


def test_a_quote_no_routing_takes_says_why(service, client):
    """A new user's defect: the quote answered 200 with empty lists and no reason, where
    `routing explain` gives one."""
    answer = _post(client, _order(service, product_store="NOPE"))
    assert answer.status_code == 200
    assert answer.json()["not_routed"] == ["no group routes product store 'NOPE'"]
    parked = _order(service)
    parked["ship_groups"][0]["facility"] = service.project.facilities[0]
    body = _post(client, parked).json()
    assert body["lines"] == [] and body["unfilled"] == []
    assert any("which is not a queue" in reason for reason in body["not_routed"])
    assert any("fails the filter `queue == _NA_`" in reason for reason in body["not_routed"])
    routed = _post(client, _order(service)).json()
    assert routed["lines"] and routed["not_routed"] == []


@pytest.mark.fuzz
@pytest.mark.parametrize("seed", range(3))
def test_generated_requests_long(service, seed):
    no_findings(http.campaign(1000 + seed, 5000, service))


@pytest.mark.fuzz
def test_schemathesis_published_operations_long(service):
    from hypothesis import given
    schema = schemathesis.openapi.from_asgi("/openapi.json", service.app)
    for result in schema.get_all_operations():
        @given(case=result.ok().as_strategy())
        @settings(max_examples=300, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(excluded_checks=[positive_data_acceptance])
        check()
