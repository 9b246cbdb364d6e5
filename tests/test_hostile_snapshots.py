"""Snapshots, plans and outputs a merchant can trust: bad input is exit 2 with a JSON path,
never a crash; outputs respect the file system; terminal output cannot be forged."""

from __future__ import annotations

import copy
import json
import os
import random
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from routing_dsl.cli import main
from routing_dsl.compiler import compile_program
from routing_dsl.checker import Workspace
from routing_dsl.interpreter import run_plan
from routing_dsl.plan import PlanError, load_plan
from routing_dsl.runtime.rows import plain
from routing_dsl.snapshot import Snapshot, SnapshotError, load_snapshot, parse_snapshot

from .conftest import ROOT

EXAMPLE = ROOT / "examples" / "omnichannel"
SOURCE = str(EXAMPLE / "omnichannel.route")
SNAPSHOT = json.loads((EXAMPLE / "snapshot.json").read_text())


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def write(tmp_path: Path, document, name: str = "snap.json") -> str:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def run_snapshot(tmp_path: Path, document):
    return invoke("run", SOURCE, "--snapshot", write(tmp_path, document))


# ---- numbers, ids, dates -------------------------------------------------------------------

@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize("field", ["atp", "minimum_stock", "sales_velocity"])
def test_non_finite_inventory_numbers_are_refused(tmp_path, literal, field):
    document = copy.deepcopy(SNAPSHOT)
    document["inventory"][0][field] = 12345.5
    text = json.dumps(document).replace("12345.5", literal)
    result = run_snapshot(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert f"inventory[0].{field}: {literal} is outside the supported range (finite numbers " \
        "up to 9007199254740991)" in result.stderr


def test_non_finite_quantity_is_refused(tmp_path):
    text = json.dumps(SNAPSHOT).replace('"quantity": 2', '"quantity": NaN', 1)
    result = run_snapshot(tmp_path, text)
    assert result.exit_code == 2
    assert ".quantity: NaN is outside the supported range" in result.stderr


# ---- the supported numeric range (routing_dsl/validation.py): one test per boundary -------

LARGEST = 2**53 - 1
RANGE = "is outside the supported range (finite numbers up to 9007199254740991)"
# Where a number goes, as a JSON path and the setter that puts a marker there.
PLACES = {
    "inventory[0].atp": lambda d, v: d["inventory"][0].update(atp=v),
    "inventory[0].minimum_stock": lambda d, v: d["inventory"][0].update(minimum_stock=v),
    "inventory[1].sales_velocity": lambda d, v: d["inventory"][1].update(sales_velocity=v),
    "orders[0].ship_groups[0].items[0].quantity":
        lambda d, v: d["orders"][0]["ship_groups"][0]["items"][0].update(quantity=v),
    "orders[1].ship_groups[0].items[0].unit_price":
        lambda d, v: d["orders"][1]["ship_groups"][0]["items"][0].update(unit_price=v),
    "facilities[0].max_orders_per_day": lambda d, v: d["facilities"][0].update(
        max_orders_per_day=v),
    "facilities[0].orders_today": lambda d, v: d["facilities"][0].update(orders_today=v),
    "facilities[0].groups.WAREHOUSES": lambda d, v: d["facilities"][0]["groups"].update(
        WAREHOUSES=v),
    "shipment_methods[2].delivery_days": lambda d, v: d["shipment_methods"][2].update(
        delivery_days=v),
}


def _with_number(tmp_path, place: str, literal: str) -> Path:
    """The example snapshot with ``literal`` written, as is, at ``place``."""
    document = copy.deepcopy(SNAPSHOT)
    PLACES[place](document, "@@number@@")
    return Path(write(tmp_path, json.dumps(document).replace('"@@number@@"', literal)))


def _refusals(path: Path) -> list[list[str]]:
    """The problems each loader (the reference one, the fast engine's) finds."""
    from routing_dsl.engine import load_columnar
    found = []
    for loader in (load_snapshot, load_columnar):
        with pytest.raises(SnapshotError) as error:
            loader(path)
        found.append(error.value.problems)
    return found


def _refused_alike(tmp_path, place: str, literal: str, shown: str | None = None) -> None:
    path = _with_number(tmp_path, place, literal)
    reference, fast = _refusals(path)
    assert reference == fast == [f"{path}: {place}: {shown or literal} {RANGE}"]
    for engine in ("reference", "fast"):  # the CLI: exit 2, nothing written
        out = tmp_path / f"{engine}.json"
        result = invoke("run", SOURCE, "--snapshot", str(path), "--engine", engine,
                        "--out", str(out))
        assert result.exit_code == 2, result.output
        assert f"{place}: {shown or literal} {RANGE}" in result.stderr
        assert not out.exists()


def test_the_largest_supported_integer_is_routed_alike_by_both_engines(tmp_path):
    document = copy.deepcopy(SNAPSHOT)
    for place in PLACES:
        PLACES[place](document, LARGEST)
    document["facilities"][0]["orders_today"] = LARGEST - 1  # room for one more ship group
    document["orders"][0]["ship_groups"][0]["items"][0]["adjustments"] = -LARGEST
    document["inventory"][0]["minimum_stock"] = -LARGEST  # net stock 2^54 - 2: a float's
    path = write(tmp_path, document)
    outputs = {}
    for engine in ("reference", "fast"):
        out = tmp_path / f"{engine}.json"
        result = invoke("run", SOURCE, "--snapshot", path, "--engine", engine, "--out",
                        str(out))
        assert result.exit_code == 0, result.output  # accepted, and the result is written
        outputs[engine] = out.read_bytes()
    assert outputs["reference"] == outputs["fast"]
    routed = json.loads(outputs["fast"])
    assert {"facility": "WH_NJ", "orders_today": LARGEST} in routed["facility_counts_after"]


@pytest.mark.parametrize("place", PLACES)
def test_2_to_the_53_is_refused_with_its_path_by_both_loaders(tmp_path, place):
    _refused_alike(tmp_path, place, str(2**53))


@pytest.mark.parametrize("place", PLACES)
def test_2_to_the_64_is_refused_with_its_path_by_both_loaders(tmp_path, place):
    _refused_alike(tmp_path, place, str(2**64))


@pytest.mark.parametrize("place", PLACES)
def test_1e400_is_refused_with_its_path_by_both_loaders(tmp_path, place):
    _refused_alike(tmp_path, place, "1e400")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("place", ["inventory[0].atp", "orders[0].ship_groups[0].items[0].quantity",
                                   "facilities[0].orders_today"])
def test_nan_and_infinity_are_refused_with_their_path_by_both_loaders(tmp_path, place, literal):
    _refused_alike(tmp_path, place, literal)


def test_minus_2_to_the_53_is_refused_where_negative_numbers_are_allowed(tmp_path):
    _refused_alike(tmp_path, "inventory[0].atp", str(-2**53))


def test_a_number_too_long_for_the_json_reader_is_refused_with_its_path(tmp_path):
    _refused_alike(tmp_path, "inventory[0].atp", "9" * 5000, "9" * 37 + "...")
    _refused_alike(tmp_path, "facilities[0].orders_today", "1" + "0" * 5000,
                   "1" + "0" * 36 + "...")


def test_a_folder_snapshot_refuses_the_same_numbers(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps({k: SNAPSHOT[k] for k in
                                                  ("format", "now", "timezone")}))
    for name in ("product_stores", "facilities", "products", "shipment_methods", "orders"):
        (folder / f"{name}.json").write_text(json.dumps(SNAPSHOT[name]))
    rows = [{**row, "atp": 2**64 if k == 1 else row["atp"]}
            for k, row in enumerate(SNAPSHOT["inventory"])]
    (folder / "inventory.csv").write_text("facility,product,atp\n" + "".join(
        f"{r['facility']},{r['product']},{r['atp']}\n" for r in rows))
    reference, fast = _refusals(folder)
    assert reference == fast == [f"{folder}: inventory[1].atp: {2**64} {RANGE}"]


def test_the_json_schema_states_the_range_of_every_number():
    """Every number of the snapshot schema has bounds within the supported range: a new
    numeric field without a range type (validation.py) fails here."""
    schema = Snapshot.model_json_schema()
    unbounded = []

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") in ("number", "integer"):
                low = node.get("minimum", node.get("exclusiveMinimum"))
                high = node.get("maximum", node.get("exclusiveMaximum"))
                if low is None or high is None or low < -LARGEST or high > LARGEST:
                    unbounded.append(where)
                assert not {"ge", "le", "gt", "lt"} & set(node), where  # JSON Schema words
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}[{index}]")
    walk(schema, "$")
    assert unbounded == []
    item = schema["$defs"]["Item"]["properties"]["quantity"]
    assert (item["exclusiveMinimum"], item["maximum"]) == (0, LARGEST)


def test_no_field_overrides_the_bounds_of_its_range_type():
    """pydantic lets a range type's `ge` silently replace a field's own (`Count = Field(ge=1)`
    would accept 0): a field gives its bounds through its type only."""
    import annotated_types
    import pydantic
    doubled = []
    models = [Snapshot]
    seen = set()
    while models:
        model = models.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            kinds = [type(m) for m in info.metadata
                     if isinstance(m, annotated_types.BaseMetadata)]
            if len(kinds) != len(set(kinds)):
                doubled.append(f"{model.__name__}.{name}")
            for arg in _types_in(info.annotation):
                if isinstance(arg, type) and issubclass(arg, pydantic.BaseModel):
                    models.append(arg)
    assert doubled == []


def _types_in(annotation):
    import typing
    yield annotation
    for arg in typing.get_args(annotation):
        yield from _types_in(arg)


@pytest.mark.parametrize("now", ["9999-12-31T23:00:00+00:00", "0001-01-01T00:00:00+00:00"])
def test_now_out_of_range_is_refused(tmp_path, now):
    result = run_snapshot(tmp_path, {**SNAPSHOT, "now": now})
    assert result.exit_code == 2
    assert "now: must be between the years 1970 and 9000" in result.stderr


def test_a_time_zone_of_slashes_is_refused_not_opened(tmp_path):
    result = run_snapshot(tmp_path, {**SNAPSHOT, "timezone": "/".join(["a"] * 800)})
    assert result.exit_code == 2
    assert "timezone: unknown time zone" in result.stderr
    assert len(result.stderr) < 400


def _naive(document):
    document = copy.deepcopy(document)
    for order in document["orders"]:
        if order.get("order_date"):
            order["order_date"] = order["order_date"][:19]
        for group in order["ship_groups"]:
            for item in group["items"]:
                if item.get("promised_date"):
                    item["promised_date"] = item["promised_date"][:19]
    return document


@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo", "America/Los_Angeles"])
def test_naive_times_are_read_in_the_snapshot_zone_whatever_the_machine_tz(tmp_path, zone):
    path = write(tmp_path, _naive(SNAPSHOT))
    source = str(ROOT / "examples" / "promise_date" / "promise_date.route")
    snapshot = str(ROOT / "examples" / "promise_date" / "snapshot.json")
    promise = json.loads(Path(snapshot).read_text())
    naive_promise = write(tmp_path, _naive(promise), "promise.json")
    env = {**os.environ, "TZ": zone}
    outputs = []
    for route, snap in ((SOURCE, path), (source, naive_promise)):
        done = subprocess.run([sys.executable, "-m", "routing_dsl", "run", route, "--snapshot",
                               snap], capture_output=True, text=True, env=env, check=False)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    reference = run_plan(compile_program(Workspace().check_path(Path(SOURCE)).program),
                         parse_snapshot(SNAPSHOT))
    assert json.loads(outputs[0])["allocations"] == reference["allocations"]
    expected = json.loads((ROOT / "examples" / "promise_date" / "expected.json").read_text())
    assert json.loads(outputs[1])["allocations"] == expected["allocations"]


def test_a_naive_time_gets_the_snapshot_zone():
    snapshot = parse_snapshot(_naive(SNAPSHOT))
    order = snapshot.orders[0]
    assert order.order_date.tzinfo is not None
    assert order.order_date.utcoffset() == order.order_date.astimezone(
        __import__("zoneinfo").ZoneInfo(SNAPSHOT["timezone"])).utcoffset()


# ---- folder snapshots ----------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "snap"
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps(
        {k: SNAPSHOT[k] for k in ("format", "now", "timezone")}))
    for name in ("product_stores", "facilities", "products", "shipment_methods", "orders"):
        (folder / f"{name}.json").write_text(json.dumps(SNAPSHOT[name]))
    (folder / "inventory.csv").write_text("facility,product,atp\nWH_NJ,RUN-8,3\n")
    return folder


def folder_error(folder: Path) -> str:
    with pytest.raises(SnapshotError) as raised:
        load_snapshot(folder)
    return str(raised.value)


def test_folder_loads(folder):
    assert load_snapshot(folder).inventory[0].atp == 3


def test_csv_row_with_an_extra_cell(folder):
    (folder / "inventory.csv").write_text("facility,product,atp\nWH_NJ,RUN-8,3,oops\n")
    assert folder_error(folder).endswith("inventory.csv:2: 1 more cells than the header has "
                                         "columns")


def test_csv_and_ndjson_that_are_not_utf8(folder):
    (folder / "inventory.csv").write_bytes(b"facility,product,atp\nWH_\xff,RUN-8,3\n")
    assert "inventory.csv: not UTF-8 text" in folder_error(folder)
    (folder / "inventory.csv").unlink()
    (folder / "orders.json").unlink()
    (folder / "orders.ndjson").write_bytes(b'{"id": "\xfe"}\n')
    assert "orders.ndjson:1: not UTF-8 text" in folder_error(folder)


def test_csv_cell_over_128_kib(folder):
    (folder / "inventory.csv").write_text("facility,product,atp\n" + "x" * 140_000 + ",P,1\n")
    assert "inventory.csv:2: field larger than field limit" in folder_error(folder)


def test_deeply_nested_json_in_a_collection_file(folder):
    (folder / "products.json").write_text("[" * 100_000 + "]" * 100_000)
    assert "products.json: JSON nested too deeply" in folder_error(folder)


def test_unknown_files_in_a_folder_are_refused(folder):
    (folder / "order.json").write_text("[]")
    (folder / ".DS_Store").write_text("")
    assert "unknown file 'order.json' in a snapshot folder" in folder_error(folder)


def test_a_collection_given_twice_is_refused(folder):
    (folder / "orders.ndjson").write_text("")
    assert "orders is given twice (orders.json, orders.ndjson)" in folder_error(folder)


# ---- plans are validated like source ----------------------------------------------------------

def _plan() -> dict:
    result = Workspace().check_path(EXAMPLE / "omnichannel.route")
    return json.loads(compile_program(result.program).to_json())


@pytest.mark.parametrize("change, message", [
    (lambda p: p["groups"][0]["routings"][0]["filters"][0].update(op="<"),
     "operator '<' does not fit 'queue'"),
    (lambda p: p["groups"][0]["routings"][0]["filters"].append(
        {"field": "promise_date", "op": "in", "ids": ["X"]}),
     "operator 'in' does not fit 'promise_date'"),
    (lambda p: p["groups"][0]["routings"][0]["rules"][1]["conditions"].append(
        {"field": "distance", "op": "<="}), "'distance' needs a number"),
    (lambda p: p["groups"][0]["routings"][0]["rules"][1]["actions"].update(
        auto_cancel_days=1_000_000_000), "is out of range"),
    (lambda p: p["groups"][0]["routings"][0]["rules"][1].update(shipment_threshold=-1),
     "is out of range"),
])
def test_a_plan_from_json_gets_the_checkers_validation(change, message):
    plan = _plan()
    change(plan)
    with pytest.raises(PlanError, match=message):
        load_plan(json.dumps(plan))


def test_a_compiled_plan_passes_validation():
    load_plan(json.dumps(_plan()))


def test_a_deeply_nested_plan_is_refused():
    with pytest.raises(PlanError, match="nested too deeply"):
        load_plan("[" * 100_000)


# ---- exit codes and files ------------------------------------------------------------------

def test_a_routing_that_fails_at_run_time_exits_4_and_still_writes(tmp_path):
    document = copy.deepcopy(SNAPSHOT)
    document["facilities"] = [f for f in document["facilities"]
                              if f["id"] != "UNFILLABLE_PARKING"]
    document["inventory"] = [r for r in document["inventory"]
                             if r["facility"] != "UNFILLABLE_PARKING"]
    out = tmp_path / "result.json"
    result = invoke("run", SOURCE, "--snapshot", write(tmp_path, document), "--out", str(out))
    assert result.exit_code == 4, result.output
    assert "error: a routing failed" in result.stderr
    assert json.loads(out.read_text())["batches"][0]["runs"][0]["error"]


def test_out_dash_is_standard_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("run", SOURCE, "--snapshot", str(EXAMPLE / "snapshot.json"), "--out", "-")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["format"] == "routing-result/1"
    assert not (tmp_path / "-").exists()


def test_new_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "plan.json"
        assert invoke("compile", SOURCE, "-o", str(out)).exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_fmt_keeps_mode_and_writes_through_links(tmp_path):
    target = tmp_path / "real.route"
    target.write_text('group "G" for store S {routing "R" {rule "r" {assign single}}}\n')
    target.chmod(0o755)
    link = tmp_path / "link.route"
    link.symlink_to(target)
    assert invoke("fmt", str(link)).exit_code == 0
    assert link.is_symlink()
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert target.read_text().startswith('group "G" for store S {\n')


def test_stale_temporary_files_are_recognisable_and_cleaned(tmp_path):
    out = tmp_path / "result.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".result.json.routing-tmp.{dead}.abcd1234"
    stale.write_text("partial")
    alive = tmp_path / f".result.json.routing-tmp.{os.getpid()}.abcd1234"
    alive.write_text("being written")
    result = invoke("run", SOURCE, "--snapshot", str(EXAMPLE / "snapshot.json"), "--out",
                    str(out))
    assert result.exit_code == 0
    assert not stale.exists() and alive.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, alive.name])


def test_ids_cannot_forge_terminal_lines(tmp_path):
    document = copy.deepcopy(SNAPSHOT)
    forged = "O-1001\nerror: everything is on fire\x1b[31m"
    text = json.dumps(document).replace('"O-1001"', json.dumps(forged))
    result = invoke("explain", SOURCE, "--snapshot", write(tmp_path, text), "--order", forged)
    assert result.exit_code == 0, result.output
    assert "\nerror: everything" not in result.stdout
    assert "\x1b" not in result.stdout
    assert "O-1001\\x0aerror" in result.stdout


def test_a_missing_file_is_one_line_without_usage():
    result = invoke("run", "missing.route", "--snapshot", "missing.json")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Usage:" not in result.output


def test_every_error_message_has_one_style(tmp_path):
    for args in (["check", "nothing.route"], ["run", SOURCE, "--snapshot", "nope.json"],
                 ["compile", str(ROOT / "README.md")], ["explain", SOURCE, "--snapshot",
                 str(EXAMPLE / "snapshot.json"), "--order", "NOPE"], ["schema", "nope"]):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        first = result.stderr.splitlines()[0]
        assert first.startswith("error: "), (args, first)


# ---- a seeded fuzz of the snapshot loader and the engine -----------------------------------

VALUES = [None, True, -1, 0, 1e308, "NaN", "", "\x00", "x" * 1000, [], {}, [[[]]],
          "2026-11-23T09:30:00", "9999-12-31T23:59:59+00:00", "²", "9" * 500, 3.5, "WH_NJ"]


def _mutate(rng: random.Random, document):
    document = copy.deepcopy(document)
    for _ in range(rng.randint(1, 4)):
        node = document
        path = []
        while isinstance(node, (dict, list)) and node and rng.random() < 0.8:
            key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
            path.append((node, key))
            node = node[key]
        if not path:
            continue
        parent, key = path[-1]
        choice = rng.random()
        if choice < 0.15 and isinstance(parent, dict):
            del parent[key]
        elif choice < 0.25 and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        else:
            parent[key] = copy.deepcopy(rng.choice(VALUES))
    return document


@pytest.mark.parametrize("seed", range(6))
def test_fuzz_snapshots_never_crash_the_engine(seed):
    plan = compile_program(Workspace().check_path(EXAMPLE / "omnichannel.route").program)
    rng = random.Random(seed)
    for _ in range(40):
        document = _mutate(rng, SNAPSHOT)
        text = json.dumps(document).replace('"NaN"', "NaN") if rng.random() < 0.3 \
            else json.dumps(document)
        try:
            snapshot = parse_snapshot(text, "fuzz.json")
        except SnapshotError as error:
            assert error.problems and all(p.startswith("fuzz.json") for p in error.problems)
            continue
        result = run_plan(plan, snapshot)
        json.dumps(result, allow_nan=False, default=plain)  # the rows: a sequence


# ---- a new user's first afternoon ------------------------------------------------------------

def test_init_writes_a_project_that_routes_out_of_the_box(tmp_path, monkeypatch):
    project = tmp_path / "project"
    assert invoke("init", str(project)).exit_code == 0
    monkeypatch.chdir(project)
    assert invoke("check", "routes.route").exit_code == 0
    result = invoke("run", "routes.route", "--snapshot", "snapshot.json", "--out", "r.json")
    assert result.exit_code == 0, result.output
    document = json.loads((project / "r.json").read_text())
    assert len(document["allocations"]) >= 2 and document["warnings"] == []
    again = invoke("init", str(project))
    assert again.exit_code == 2 and "would overwrite" in again.stderr


def test_a_store_without_a_queue_is_a_warning(tmp_path):
    document = copy.deepcopy(SNAPSHOT)
    for facility in document["facilities"]:
        if facility.get("virtual"):
            facility["product_stores"] = ["ANOTHER_STORE"]
    result = run_snapshot(tmp_path, document)
    assert result.exit_code == 0
    assert "has no queue in the snapshot" in result.stderr
    assert "no ship group was eligible" in result.stderr


def test_no_eligible_unit_is_a_warning(tmp_path):
    document = copy.deepcopy(SNAPSHOT)
    for order in document["orders"]:
        order["status"] = "CREATED"
    result = run_snapshot(tmp_path, document)
    assert "warning: group 'Omnichannel brokering': no ship group was eligible" in result.stderr


def test_colour_on_a_terminal_only_and_never_with_no_color(monkeypatch):
    broken = str(ROOT / "tests" / "golden" / "diagnostics" / "RT201.route")
    coloured = CliRunner().invoke(main, ["check", broken], color=True)
    assert "\x1b[31m" in coloured.stdout and "error[RT201]" in coloured.stdout
    plain = CliRunner().invoke(main, ["check", broken])  # not a terminal
    assert "\x1b[" not in plain.output
    monkeypatch.setenv("NO_COLOR", "1")
    forced = CliRunner().invoke(main, ["check", broken], color=True)
    assert "\x1b[" not in forced.output


def test_a_queue_missing_from_the_snapshot_is_named(tmp_path):
    # it was reported as "no ship group was eligible (approved, waiting in a queue ...)"
    document = copy.deepcopy(SNAPSHOT)
    document["facilities"] = [f for f in document["facilities"] if f["id"] != "_NA_"]
    for order in document["orders"]:
        for group in order["ship_groups"]:
            group["facility"] = "UNFILLABLE_PARKING" if any(
                f["id"] == "UNFILLABLE_PARKING" for f in document["facilities"]) else "WH_NJ"
    result = run_snapshot(tmp_path, document)
    assert result.exit_code == 0, result.output
    assert ("routing 'Web orders' filters on queue '_NA_', which the snapshot does not have"
            in result.stderr)
    assert "no ship group was eligible" not in result.stderr


@pytest.mark.parametrize("now", ["-1", "1700000000"])
def test_a_timestamp_of_digits_is_refused_as_not_iso_8601(tmp_path, now):
    """Timestamps are ISO 8601 text for every reader: pydantic alone would read a string of
    digits as a Unix time, which the orders' msgspec decoder refuses."""
    result = run_snapshot(tmp_path, {**SNAPSHOT, "now": now})
    assert result.exit_code == 2
    assert f'now: expected an ISO 8601 timestamp such as 2026-11-23T09:30:00-05:00, got "{now}"' \
        in result.stderr
