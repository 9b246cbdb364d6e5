"""Snapshot validation: every problem named with its JSON path."""

from __future__ import annotations

import copy
import json

import pytest

from routing_dsl.snapshot import SnapshotError, parse_snapshot

from .conftest import ROOT

BASE = json.loads((ROOT / "examples" / "omnichannel" / "snapshot.json").read_text())


def problems(change) -> list[str]:
    data = copy.deepcopy(BASE)
    change(data)
    with pytest.raises(SnapshotError) as error:
        parse_snapshot(data, "s.json")
    return error.value.problems


def test_the_example_snapshot_is_valid():
    assert parse_snapshot(copy.deepcopy(BASE)).format == "routing-snapshot/1"


def test_now_needs_an_offset():
    found = problems(lambda d: d.update(now="2026-11-23T09:30:00"))
    assert found == ["s.json: now: needs a UTC offset, e.g. 2026-11-23T09:30:00-05:00, "
                     'got "2026-11-23T09:30:00"']


def test_unknown_time_zone():
    assert problems(lambda d: d.update(timezone="Mars/Olympus"))[0].startswith(
        "s.json: timezone: unknown time zone 'Mars/Olympus'")


def test_wrong_format_tag():
    assert "format" in problems(lambda d: d.update(format="routing-snapshot/2"))[0]


def test_unknown_nested_field_is_refused():
    def change(d):
        d["facilities"][0]["max_order_per_day"] = 3
    assert problems(change) == ["s.json: facilities[0].max_order_per_day: unknown field"]


def test_duplicate_ids_and_dangling_references():
    def change(d):
        d["facilities"].append(copy.deepcopy(d["facilities"][0]))
        d["inventory"][0]["facility"] = "NOWHERE"
        d["orders"][0]["ship_groups"][0]["facility"] = "NOWHERE"
    found = problems(change)
    assert any("facilities[" in p and "duplicate id 'WH_NJ'" in p for p in found)
    assert "s.json: inventory[0].facility: unknown facility 'NOWHERE'" in found
    assert "s.json: orders[0].ship_groups[0].facility: unknown facility 'NOWHERE'" in found


def test_cancelled_more_than_ordered():
    def change(d):
        d["orders"][0]["ship_groups"][0]["items"][0]["cancel_quantity"] = 99
    assert problems(change) == [
        "s.json: orders[0].ship_groups[0].items[0].cancel_quantity: more than quantity"]


def test_all_problems_are_reported_together():
    def change(d):
        d["orders"][0]["ship_groups"][0]["items"][0]["quantity"] = 0
        d["facilities"][0]["lat"] = 123
    found = problems(change)
    assert len(found) == 2
