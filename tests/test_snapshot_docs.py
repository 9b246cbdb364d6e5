"""docs/snapshot.md: its example routes as it says, its field tables are generated from the
models, and every field of the JSON Schema is described."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from routing_dsl.cli import main
from routing_dsl.snapshot import Snapshot, render_generated

from .conftest import ROOT

DOC = (ROOT / "docs" / "snapshot.md").read_text(encoding="utf-8")


def _block(marker: str, language: str) -> str:
    return re.search(rf"<!-- tested: {marker} -->\n```{language}\n(.*?)```", DOC, re.S).group(1)


def test_the_example_routes_as_the_doc_says(tmp_path):
    (tmp_path / "snapshot.json").write_text(_block("snapshot", "json"))
    (tmp_path / "rules.route").write_text(_block("rules", "route"))
    out = tmp_path / "result.json"
    result = CliRunner().invoke(main, ["run", str(tmp_path / "rules.route"), "--snapshot",
                                       str(tmp_path / "snapshot.json"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    [allocation] = document["allocations"]
    miles = re.search(r"ships O-1 from WH_NJ \(([\d.]+) miles away\)", DOC).group(1)
    assert (allocation["facility"], allocation["distance"]) == ("WH_NJ", float(miles))
    assert "leaves WH_NJ with 8 units" in DOC
    assert document["inventory_after"] == [{"facility": "WH_NJ", "product": "SKU-1", "atp": 8}]


def test_the_field_tables_are_generated_from_the_models():
    assert render_generated(DOC) == DOC


def test_every_schema_field_has_a_description():
    schema = Snapshot.model_json_schema()
    missing = []
    for name, model in [("Snapshot", schema)] + list(schema["$defs"].items()):
        assert model.get("description"), name
        missing += [f"{name}.{field}" for field, spec in model["properties"].items()
                    if not spec.get("description")]
    assert missing == []


def test_the_rate_card_example_prices_as_the_doc_says():
    from routing_dsl.shipping import RateModel
    from routing_dsl.snapshot import parse_snapshot

    method = json.loads(_block("rate-card", "json"))
    snapshot = parse_snapshot({
        "format": "routing-snapshot/1", "now": "2026-11-23T09:30:00-05:00",
        "timezone": "America/New_York", "shipment_methods": [method],
        "facilities": [{"id": "WH", "handling_cost": 1.0}]})
    model = RateModel(snapshot, None, snapshot.now)
    cost = model.cost(model.card("STANDARD", "UPS"), 0, 0, 5.0, 0.0)
    assert "+ 1.00 = 12.20" in DOC and round(cost, 2) == 12.20


def test_the_optimization_section_is_the_optimised_examples():
    from routing_dsl.interpreter import run_plan
    from routing_dsl.snapshot import load_snapshot

    folder = ROOT / "examples" / "optimize"
    result = run_plan(_compiled(folder / "optimize.route"),
                      load_snapshot(folder / "snapshot.json"))
    assert json.loads(_block("optimization", "json")) == result["optimization"]


def _compiled(path):
    from routing_dsl.checker import Workspace
    from routing_dsl.compiler import compile_program
    return compile_program(Workspace().check_path(path).program)


def test_the_rejection_example_is_a_valid_item():
    from routing_dsl.snapshot import Item

    item = Item.model_validate_json(_block("rejections", "json"))
    [rejection] = item.rejections
    assert (rejection.facility, rejection.reason, rejection.at.isoformat()) == (
        "ST_NYC", "NOT_IN_STOCK", "2026-11-22T10:00:00-05:00")
