"""Snapshots generated from the snapshot JSON Schema (routing_dsl/fuzz/snapshots.py), most
broken at one place: both loaders refuse them with the same one-line messages or read the
same content, and both engines route what they read to the same bytes. `make test` runs a
short seeded campaign; `pytest -m fuzz` long ones over several seeds. Each finding is a named
test in the file of what it broke (test_engines.py: `delivery_date` without rate cards)."""

from __future__ import annotations

import json
import random

import pytest

from routing_dsl.fuzz.snapshots import (FromSchema, examples, snapshot_documents,
                                        snapshots_campaign)
from routing_dsl.snapshot import Snapshot, SnapshotError, parse_snapshot
from routing_dsl.validation import MAX_INTEGER


def no_findings(tally) -> None:
    assert not tally.findings, "\n".join(f"{f.input}\n  -> {f.problem}"
                                         for f in tally.findings[:10])
    assert tally.accepted > tally.inputs // 5 and tally.refused > tally.inputs // 5


def test_generated_snapshots_are_read_and_routed_alike_by_both_loaders_and_engines(tmp_path):
    no_findings(snapshots_campaign(21, 150, tmp_path))


def test_the_generator_follows_the_schema(tmp_path):
    """Unbroken documents are valid nearly always (the rest name ids on purpose), they route,
    and the range's edges are among their numbers."""
    documents = snapshot_documents(random.Random(4), examples(tmp_path), 150, mutate_share=0)
    valid = routed = 0
    edges = False
    for text, example, _ in documents:
        edges = edges or str(MAX_INTEGER) in text
        try:
            snapshot = parse_snapshot(text, "generated.json")
        except SnapshotError:
            continue
        valid += 1
        from routing_dsl.engine import route
        routed += bool(route(example.plan, snapshot, engine="reference")["allocations"])
    assert valid > 0.85 * len(documents) and routed > 0.05 * len(documents) and edges


def test_numbers_stay_within_each_schema_bound():
    schema = Snapshot.model_json_schema()
    make = FromSchema(schema, random.Random(1), {}, edge=0.5)
    node = schema["$defs"]["Item"]["properties"]["quantity"]
    values = [make.make(node) for _ in range(200)]
    assert all(0 < v <= MAX_INTEGER for v in values) and MAX_INTEGER in values
    zone = schema["$defs"]["RateZone"]["properties"]["transit_days"]
    assert {make.make(zone) for _ in range(200)} <= set(range(366))


def test_mutated_documents_hold_what_the_loaders_must_refuse(tmp_path):
    texts = [t for t, _, note in snapshot_documents(random.Random(9), examples(tmp_path), 300,
                                                    mutate_share=1.0)]
    joined = "\n".join(texts)
    for written in ("NaN", "Infinity", str(2**64), "\\u0000", "x" * 5000):
        assert written in joined, written
    for text in texts:  # JSON as readers meet it (NaN and Infinity as Python writes them)
        json.loads(text)


@pytest.mark.fuzz
@pytest.mark.parametrize("seed", range(3))
def test_generated_snapshots_long(tmp_path, seed):
    no_findings(snapshots_campaign(2100 + seed, 2000, tmp_path))
