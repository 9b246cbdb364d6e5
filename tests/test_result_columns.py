"""The fast engine's result rows kept as columns (engine.resultcolumns, runtime.rows): the
result file written straight from the columns is the same bytes orjson writes for the rows'
dictionaries, and the rows read as any sequence of dictionaries does."""

from __future__ import annotations

import contextlib
import pickle
from datetime import UTC
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing_dsl.app import load_plan
from routing_dsl.bench.scenarios import PLAN, Scenario, generate
from routing_dsl.checker import Workspace
from routing_dsl.compiler import compile_program
from routing_dsl.engine import load_columnar, resultcolumns, run_fast
from routing_dsl.engine.resultcolumns import (AllocationColumns, InventoryColumns, RunStrings,
                                              UnfillableColumns)
from routing_dsl.result import dump_result
from routing_dsl.runtime import rows as result_rows
from routing_dsl.runtime.rows import ResultRows, field_values
from routing_dsl.snapshot import parse_snapshot

from .test_engines import CASES, plans, snapshots


def as_rows(result: dict) -> dict:
    """The result with its rows as lists of dictionaries, as the engines made them before."""
    return {key: list(value) if isinstance(value, ResultRows) else value
            for key, value in result.items()}


def row_writer(result: dict, pretty: bool = False) -> bytes:
    """orjson on the whole document of dictionaries: the writer the columns must match."""
    option = orjson.OPT_APPEND_NEWLINE | (orjson.OPT_INDENT_2 if pretty else 0)
    return orjson.dumps(as_rows(result), option=option)


def in_columns(rows: ResultRows) -> bool:
    return any(type(block) is not list for block in rows.blocks)


@contextlib.contextmanager
def chunks_of(size: int):
    """Rows written and made ``size`` at a time (chunk boundaries anywhere)."""
    saved = result_rows.CHUNK, resultcolumns.CHUNK
    result_rows.CHUNK = resultcolumns.CHUNK = size
    try:
        yield
    finally:
        result_rows.CHUNK, resultcolumns.CHUNK = saved


FAST_CASES = CASES


@pytest.mark.parametrize("route_file,snapshot_file", FAST_CASES,
                         ids=[f"{r.parent.name}/{s.name}" for r, s in FAST_CASES])
def test_every_example_is_written_from_columns_as_from_dictionaries(route_file, snapshot_file):
    result = run_fast(load_plan(route_file), load_columnar(snapshot_file))
    assert in_columns(result["allocations"]) or not result["allocations"]
    assert in_columns(result["inventory_after"]) or not result["inventory_after"]
    for pretty in (False, True):
        assert dump_result(result, pretty) == row_writer(result, pretty)
    with chunks_of(2):
        assert dump_result(result) == row_writer(result)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots(), plans(), st.integers(1, 5))
def test_generated_runs_are_written_from_columns_as_from_dictionaries(snapshot, the_plan,
                                                                      chunk):
    result = run_fast(the_plan, snapshot)
    with chunks_of(chunk):
        assert dump_result(result) == row_writer(result)
        assert as_rows(result)["allocations"] == list(result["allocations"])


def test_a_generated_retailer_is_written_from_columns_as_from_dictionaries():
    """Thousands of rows over several chunks, splits and moves to a queue."""
    snapshot = parse_snapshot(generate(Scenario(orders=1500, facilities=80, skus=400, seed=3)))
    the_plan = compile_program(Workspace().check_text(PLAN, name="bench.route").program)
    result = run_fast(the_plan, snapshot)
    assert len(result["allocations"]) > 1000 and result["unfillable"]
    assert dump_result(result) == row_writer(result)


# ---- the blocks themselves, with any ids and numbers ------------------------------------------

ids = st.text(max_size=12)  # quotes, backslashes, control characters, `%`, any script
names = st.text(max_size=8)


@st.composite
def allocation_blocks(draw, strings: RunStrings, n_items: int):
    n = draw(st.integers(0, 12))
    items = np.array(draw(st.lists(st.integers(0, n_items - 1), min_size=n, max_size=n)),
                     np.int64)
    n_fac = len(strings.fac_ids)
    rule_names = draw(st.lists(names, min_size=1, max_size=3))
    quantity = draw(st.lists(st.integers(1, 10 ** 6).map(float)
                             | st.floats(1e-7, 1e9, allow_nan=False), min_size=n, max_size=n))
    distance = draw(st.lists(st.floats(0, 2e4) | st.just(float("nan")), min_size=n,
                             max_size=n))
    shipping = None
    if draw(st.booleans()):
        shipping = (
            draw(st.lists(st.none() | st.floats(0, 1e5).map(lambda c: round(c, 2)),
                          min_size=n, max_size=n)),
            draw(st.lists(st.none() | st.integers(0, 30), min_size=n, max_size=n)),
            draw(st.lists(st.none() | st.dates().map(lambda d: d.isoformat()), min_size=n,
                          max_size=n)))
    return AllocationColumns(
        strings, items, np.array(draw(st.lists(st.integers(0, n_fac - 1), min_size=n,
                                               max_size=n)), np.int64),
        np.array(quantity, np.float64), draw(st.lists(ids, min_size=n, max_size=n)),
        draw(names), draw(names),
        np.array(draw(st.lists(st.integers(0, len(rule_names) - 1), min_size=n, max_size=n)),
                 np.int64),
        rule_names, draw(st.lists(st.sampled_from(["mi", "km"]), min_size=len(rule_names),
                                  max_size=len(rule_names))),
        np.array(distance, np.float64), shipping)


@st.composite
def unfillable_blocks(draw, strings: RunStrings, n_items: int):
    n = draw(st.integers(0, 12))
    rule_names = draw(st.lists(names, min_size=1, max_size=3))
    return UnfillableColumns(
        strings, np.array(draw(st.lists(st.integers(0, n_items - 1), min_size=n, max_size=n)),
                          np.int64),
        np.array(draw(st.lists(st.floats(0, 1e9), min_size=n, max_size=n)), np.float64),
        draw(names),
        np.array(draw(st.lists(st.integers(-1, len(rule_names) - 1), min_size=n, max_size=n)),
                 np.int64),
        rule_names,
        np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), np.int64),
        ("left", "auto_cancel_cleared", "auto_cancel_set", "moved"),
        np.array(draw(st.lists(st.integers(0, len(strings.fac_ids) - 1), min_size=n,
                               max_size=n)), np.int64),
        draw(st.lists(st.none() | st.datetimes(timezones=st.just(UTC)).map(
            lambda t: t.isoformat()), min_size=n, max_size=n)))


@st.composite
def inventory_blocks(draw, strings: RunStrings, n_items: int):
    n = draw(st.integers(0, 12))
    n_fac, n_prod = len(strings.fac_ids), len(strings.product_ids)
    return InventoryColumns(
        strings.fac_ids, strings.product_ids,
        np.array(draw(st.lists(st.integers(0, n_fac - 1), min_size=n, max_size=n)), np.int64),
        np.array(draw(st.lists(st.integers(0, n_prod - 1), min_size=n, max_size=n)), np.int64),
        np.array(draw(st.lists(st.floats(-1e9, 1e9), min_size=n, max_size=n)), np.float64))


@st.composite
def run_strings(draw):
    n_items = draw(st.integers(1, 6))
    tables = [draw(st.lists(ids, min_size=n_items, max_size=n_items)) for _ in range(4)]
    return RunStrings(*tables, draw(st.lists(ids, min_size=1, max_size=4))), n_items


@st.composite
def blocks(draw):
    strings, n_items = draw(run_strings())
    kind = draw(st.sampled_from([allocation_blocks, unfillable_blocks, inventory_blocks]))
    return draw(kind(strings, n_items))


@settings(max_examples=300, deadline=None)
@given(blocks(), st.integers(1, 5))
def test_a_block_writes_what_orjson_writes_for_its_rows(block, chunk):
    with chunks_of(chunk):
        written = b",".join(block.json_chunks())
    rows = block.rows(0, len(block))
    assert written == orjson.dumps(rows)[1:-1]
    assert [list(row) for row in rows] == [list(block.KEYS)] * len(rows)
    for key in block.KEYS:
        assert block.field(key) == [row[key] for row in rows]
    copied = pickle.loads(pickle.dumps(block))
    assert b",".join(copied.json_chunks()) == written


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-10 ** 9 + 1, 10 ** 9 - 1), min_size=1, max_size=20))
def test_hundredths_are_written_as_orjson_writes_the_double_nearest_them(hundredths):
    """The compiled writer writes a rounded distance from its hundredths k as the decimal
    k / 100: the text orjson writes for the double nearest it (values below 10^7)."""
    from routing_dsl.engine.jsonrows import CENTS, EntryTable, rows_json
    hundredths += [0, 5, 10, 100, 101, 110, -1, -100]
    written = rows_json([b"", b""], [CENTS], [0], np.array([hundredths], np.int64),
                        EntryTable([]), EntryTable([]))
    assert written == b",".join(orjson.dumps(k / 100) for k in hundredths)


# ---- the rows as a sequence ------------------------------------------------------------------

@st.composite
def sequences(draw):
    """A ResultRows of column blocks and appended dictionaries, and the same rows as a
    list."""
    strings, n_items = draw(run_strings())
    rows, expected = ResultRows(), []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            block = draw(allocation_blocks(strings, n_items))
            rows.add_columns(block)
            expected.extend(block.rows(0, len(block)))
        else:
            for _ in range(draw(st.integers(1, 3))):
                row = {"order": draw(ids), "quantity": draw(st.integers(1, 9))}
                rows.append(row)
                expected.append(row)
    return rows, expected


@settings(max_examples=300, deadline=None)
@given(sequences(), st.data())
def test_the_rows_behave_as_the_list_of_their_dictionaries(pair, data):
    rows, expected = pair
    assert len(rows) == len(expected) and bool(rows) == bool(expected)
    assert list(rows) == expected and rows == expected and expected == rows
    assert rows == ResultRows(expected) and rows != expected + [{"order": "extra"}]
    for index in range(-len(expected), len(expected)):
        assert rows[index] == expected[index]
    for index in (len(expected), -len(expected) - 1):
        with pytest.raises(IndexError):
            rows[index]
    start, stop = data.draw(st.integers(-8, 8)), data.draw(st.integers(-8, 8))
    step = data.draw(st.sampled_from([None, 1, 2, -1]))
    assert rows[start:stop:step] == expected[start:stop:step]
    assert field_values(rows, "order") == [row["order"] for row in expected]
    assert pickle.loads(pickle.dumps(rows)) == expected
    joined = b",".join(chunk for chunk in rows.json_chunks() if chunk)
    assert joined == orjson.dumps(expected)[1:-1]
    gathered: list = []
    gathered += rows
    assert gathered == expected
    keep = data.draw(st.integers(0, len(expected)))
    del rows[keep:]
    assert rows == expected[:keep] and len(rows) == keep
    rows.append({"order": "after", "quantity": 1})
    assert rows[-1] == {"order": "after", "quantity": 1} and len(rows) == keep + 1


def test_an_appended_row_is_the_same_dictionary():
    """The reference allocator prices a package after appending its rows: what it reads
    back is the dictionary it appended."""
    rows, row = ResultRows(), {"order": "O-1", "shipping_cost": None}
    rows.append(row)
    rows[-1]["shipping_cost"] = 4.5
    assert rows[0] is row and list(rows) == [{"order": "O-1", "shipping_cost": 4.5}]


def test_run_writes_the_reference_scenario_in_pieces_as_one_document(tmp_path):
    """`routing run --out` writes the file piece by piece: the same bytes as the whole
    document at once (and as orjson on the dictionaries)."""
    from click.testing import CliRunner

    from routing_dsl.cli import main

    snapshot = tmp_path / "snapshot.json"
    snapshot.write_bytes(orjson.dumps(generate(Scenario(orders=400, facilities=30, skus=120,
                                                        seed=5))))
    rules = tmp_path / "bench.route"
    rules.write_text(PLAN, encoding="utf-8")
    out = tmp_path / "result.json"
    answer = CliRunner().invoke(main, ["run", str(rules), "--snapshot", str(snapshot), "--out",
                                       str(out), "--engine", "fast"])
    assert answer.exit_code == 0, answer.output
    result = run_fast(load_plan(Path(rules)), load_columnar(snapshot))
    assert out.read_bytes() == dump_result(result) == row_writer(result)


near_halves = st.tuples(st.integers(-10 ** 9, 10 ** 9), st.integers(-3, 3)).map(
    lambda pair: float(np.nextafter((pair[0] + 0.5) / 100, np.inf * pair[1]))
    if pair[1] else (pair[0] + 0.5) / 100)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_infinity=False) | near_halves, max_size=40))
def test_distances_are_rounded_as_python_rounds_them(values):
    """The writer rounds a block's distances with numpy, where Python's `round(d, 2)` is the
    contract: the same floats, ties and near-ties included."""
    mine = resultcolumns.rounded(np.array(values, np.float64)).tolist()
    python = [round(v, 2) for v in values]
    assert orjson.dumps(mine) == orjson.dumps(python)
