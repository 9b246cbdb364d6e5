"""Rule tests: `.routetest` files (TOML) that pin down where orders go.

    rules = "omnichannel.route"        # relative to the test file
    snapshot = "snapshot.json"         # the base snapshot (a path, or a table inline)

    [[case]]
    name = "a warehouse ships a whole order"
    expect = [
      { order = "O-1001", facility = "WH_NJ", rule = "Nearest warehouse ships everything" },
      { order = "O-1004", unfilled = true, action = "moved" },
    ]

    [[case]]
    name = "with Brooklyn closed"
    what_if = ["close ST_BKN"]          # changes on the base snapshot (see whatif)
    columns = ["order", "item", "facility"]
    rows = [["O-1003", "00002", "ST_NYC"]]

A case may give its own `snapshot`. An expectation names an `order` (and optionally a
`ship_group` and an `item`) and checks any of: `facility` and `rule` (every allocation of those
lines), `quantity` (their total allocated), `unfilled` (whether something stayed open) and
`action` (what happened to it: moved, left, auto_cancel_set, auto_cancel_cleared), and, with
rate cards, `shipping_cost` (the most the lines' shares of their packages may cost together)
and `delivery_date` (the latest day any of them may arrive, `"2026-11-25"`). A failure shows
what was expected, what happened, and the rules the order went through.

The file's schema is :class:`RouteTestFile` (msgspec structs, declared once): the reader
validates against it, and the fuzzers generate files from it. A value of the wrong type, a
missing key or an unknown one is one line naming its path and what belongs there
(`rules.routetest: case[0].expect[1].quantity: expected a number, got a string`).

Coverage: each case runs with explanations; a rule *fired* when it allocated, was *passed
over* when it was tried and allocated nothing; an inventory condition was seen *true* when its
rule chose a facility, and *false* when it was the first condition to exclude one; a routing's
filter condition was seen true (false) when a ship group waiting as the case starts passes
(fails) it.
"""

from __future__ import annotations

import re
import tomllib
import typing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from xml.etree import ElementTree

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from ..checker import Workspace
from ..compiler import compile_program
from ..runtime import run_plan
from ..plan import Plan
from ..snapshot import Snapshot, SnapshotError, load_snapshot, parse_snapshot
from ..validation import MAX_INTEGER, problem
from . import whatif

class TestFileError(Exception):
    """A test file that cannot be run (the message names the file and the problem)."""


# ---- the schema -------------------------------------------------------------------------------

Text = Annotated[str, Meta(min_length=1, max_length=10_000)]
FilePath = Annotated[str, Meta(min_length=1, max_length=4096)]
Quantity = Annotated[float, Meta(ge=0, le=MAX_INTEGER)]  # the supported range
Amount = Annotated[float, Meta(ge=0, le=1e12)]
Action = Literal["moved", "left", "auto_cancel_set", "auto_cancel_cleared"]


class Expectation(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What one case expects of an order (narrowed to a ship group or an item)."""

    order: Text
    ship_group: Text | UnsetType = UNSET
    item: Text | UnsetType = UNSET
    facility: Text | UnsetType = UNSET
    rule: Text | UnsetType = UNSET
    quantity: Quantity | UnsetType = UNSET
    unfilled: bool | UnsetType = UNSET
    action: Action | UnsetType = UNSET
    shipping_cost: Amount | UnsetType = UNSET
    delivery_date: date | UnsetType = UNSET


KEYS = ("order", "ship_group", "item")
CHECKS = tuple(name for name in Expectation.__struct_fields__ if name not in KEYS)
Column = Literal[KEYS + CHECKS]  # type: ignore[valid-type]


class Case(Struct, forbid_unknown_fields=True):
    """One run of the rules, on the file's snapshot (or its own) with what-if changes."""

    name: Text | UnsetType = UNSET
    snapshot: FilePath | dict[str, Any] | UnsetType = UNSET
    what_if: list[Annotated[str, Meta(max_length=10_000)]] = []
    expect: list[Expectation] = []
    columns: list[Column] | UnsetType = UNSET
    rows: list[list[Any]] = []


class RouteTestFile(Struct, forbid_unknown_fields=True):
    """A `.routetest` file."""

    rules: FilePath
    case: list[Case] = []
    snapshot: FilePath | dict[str, Any] | UnsetType = UNSET


_KNOWN = {"": RouteTestFile, "case": Case, "expect": Expectation}
def _problem(error: msgspec.ValidationError) -> tuple[str, str]:
    """msgspec's one error as (path, what belongs there), in the file's words."""
    path, what = problem(error, object_word="a table")
    if what.startswith("invalid enum value"):
        allowed = typing.get_args(Action if path.endswith("action") else Column)
        what += f" (one of: {', '.join(allowed)})"
    unknown = re.fullmatch(r"object contains unknown field (.*)", what)
    if unknown:
        owner = _KNOWN[re.sub(r"\[\d+\]", "", path).rpartition(".")[2]]
        noun = "check" if owner is Expectation else "key"
        allowed = CHECKS if owner is Expectation else owner.__struct_fields__
        what = f"unknown {noun} {unknown.group(1)} ({noun}s: {', '.join(allowed)})"
    return path, what


def validate(document: Any, name: str) -> RouteTestFile:
    """The document (as TOML reads it) checked against the schema, or one TestFileError."""
    if isinstance(document, dict) and "rules" not in document:
        raise TestFileError(f"{name}: `rules` must name the .route file the cases test")
    try:
        found = msgspec.convert(document, RouteTestFile)
    except msgspec.ValidationError as error:
        path, what = _problem(error)
        raise TestFileError(f"{name}: {path + ': ' if path else ''}{what}") from None
    return found


def _file_path(value: str, where: str) -> str:
    if any(ord(c) < 32 or c == "\x7f" for c in value):
        raise TestFileError(f"{where}: expected a file path, got text with control characters")
    return value


@dataclass
class CaseResult:
    file: str
    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class Coverage:
    """Per (rules file, routing, rule): fired, passed over; per condition (its source label):
    true, false."""

    rules: dict[tuple, dict] = field(default_factory=dict)
    conditions: dict[tuple, dict] = field(default_factory=dict)
    filters: dict[tuple, dict] = field(default_factory=dict)  # routing filter conditions

    def add_plan(self, plan: Plan) -> None:
        for group in plan.groups:
            for routing in group.routings:
                for condition in routing.filters:
                    label = (plan.source, routing.name,
                             condition.source.label() if condition.source else "",
                             _filter_text(condition))
                    self.filters.setdefault(label, {"true": False, "false": False})
                for rule in routing.rules:
                    key = (plan.source, routing.name, rule.name)
                    self.rules.setdefault(key, {"fired": False, "passed_over": False})
                    for condition in rule.conditions:
                        if condition.source is not None:
                            label = (*key, condition.source.label(),
                                     _condition_text(condition, rule))
                            self.conditions.setdefault(label, {"true": False, "false": False})

    def add_run(self, plan: Plan, result: dict) -> None:
        for entry in result.get("explanations", []):
            for rule in entry["rules"]:
                key = (plan.source, entry["routing"], rule["rule"])
                seen = self.rules.setdefault(key, {"fired": False, "passed_over": False})
                seen["fired" if rule["outcome"] != "nothing" else "passed_over"] = True
                for label, state in self.conditions.items():
                    if label[:3] != key:
                        continue
                    if rule["chosen"]:
                        state["true"] = True
                    if any(reason.get("source") == label[3] for reason in rule["not_chosen"]):
                        state["false"] = True

    def add_filters(self, plan: Plan, snapshot: Snapshot) -> None:
        """Each routing filter condition against every unit waiting when the case starts
        (in a queue of the group's store): seen true when some unit passes it, false when some
        unit fails it."""
        from ..runtime import Context, eligible_units, order_predicate
        ctx = Context(snapshot)
        for group in plan.groups:
            for routing in group.routings:
                units = eligible_units(ctx, group.product_store, routing.item_mode)
                for condition in routing.filters:
                    label = (plan.source, routing.name,
                             condition.source.label() if condition.source else "",
                             _filter_text(condition))
                    state = self.filters.setdefault(label, {"true": False, "false": False})
                    predicate = order_predicate(condition, ctx)
                    for unit in units:
                        state["true" if predicate(unit) else "false"] = True
                        if state["true"] and state["false"]:
                            break

    def _states(self):
        return [*self.rules.values(), *self.conditions.values(), *self.filters.values()]

    def percent(self) -> float:
        states = self._states()
        seen = sum(v for state in states for v in state.values())
        return 100.0 * seen / (2 * len(states)) if states else 100.0

    def to_json(self) -> dict:
        return {"percent": round(self.percent(), 1),
                "rules": [{"file": f, "routing": r, "rule": n, **state}
                          for (f, r, n), state in self.rules.items()],
                "conditions": [{"file": f, "routing": r, "rule": n, "source": s,
                                "condition": c, **state}
                               for (f, r, n, s, c), state in self.conditions.items()],
                "filters": [{"file": f, "routing": r, "source": s, "condition": c, **state}
                            for (f, r, s, c), state in self.filters.items()]}

    def text(self) -> str:
        lines = [f"coverage: {self.percent():.0f}% ("
                 f"{sum(s['fired'] for s in self.rules.values())}/{len(self.rules)} rules fired, "
                 f"{sum(s['passed_over'] for s in self.rules.values())}/{len(self.rules)} passed "
                 f"over, {sum(s['true'] for s in self.conditions.values())}/"
                 f"{len(self.conditions)} conditions seen true, "
                 f"{sum(s['false'] for s in self.conditions.values())}/{len(self.conditions)} "
                 f"seen false, {sum(s['true'] for s in self.filters.values())}/"
                 f"{len(self.filters)} filter conditions seen true, "
                 f"{sum(s['false'] for s in self.filters.values())}/{len(self.filters)} seen "
                 "false)"]
        for (file, routing, source, text), seen in self.filters.items():
            lines.append(f"  {file}: {routing} filter {text} ({source}): "
                         f"{_marks(seen, 'true', 'false')}")
        for (file, routing, rule), state in self.rules.items():
            lines.append(f"  {file}: {routing} / {rule}: "
                         f"{_marks(state, 'fired', 'passed over')}")
            for (f, r, n, source, text), seen in self.conditions.items():
                if (f, r, n) == (file, routing, rule):
                    lines.append(f"      {text} ({source}): {_marks(seen, 'true', 'false')}")
        return "\n".join(lines)


def run_file(path: Path, coverage: Coverage | None = None) -> list[CaseResult]:
    """Run every case of one test file."""
    document = validate(_read(path), str(path))
    plan = _plan(path, document)
    if not document.case:
        raise TestFileError(f"{path}: no [[case]] to run")
    expectations = [_expectations(case, f"{path}: case[{index}]")
                    for index, case in enumerate(document.case)]
    if coverage is not None:
        coverage.add_plan(plan)
    results = []
    for number, (case, expected) in enumerate(zip(document.case, expectations, strict=True),
                                              start=1):
        name = case.name or f"case {number}"
        where = f"{path}: case {name!r}"
        given = case.snapshot if case.snapshot is not UNSET else document.snapshot
        snapshot = _snapshot(path, given, where)
        try:
            changes = [whatif.parse(text, f"{where}: what_if") for text in case.what_if]
            snapshot = whatif.apply(snapshot, changes)
        except whatif.WhatIfError as error:
            raise TestFileError(str(error)) from None
        outcome = run_plan(plan, snapshot, explain=True)
        if coverage is not None:
            coverage.add_run(plan, outcome)
            coverage.add_filters(plan, snapshot)
        result = CaseResult(str(path), name)
        orders = {o.id for o in snapshot.orders}
        for expectation in expected:
            if expectation["order"] not in orders:
                result.failures.append(f"order {expectation['order']!r}: not in the snapshot "
                                       "(a typo, or the wrong snapshot?)")
                continue
            problem = _check(expectation, outcome)
            if problem:
                result.failures.append(problem + _explained(outcome, expectation["order"]))
        results.append(result)
    return results


def junit(results: list[CaseResult]) -> bytes:
    """JUnit XML: one test suite per file, one test case per case."""
    suites = ElementTree.Element("testsuites")
    for file in dict.fromkeys(r.file for r in results):
        mine = [r for r in results if r.file == file]
        suite = ElementTree.SubElement(suites, "testsuite", name=file, tests=str(len(mine)),
                                       failures=str(sum(not r.passed for r in mine)))
        for result in mine:
            case = ElementTree.SubElement(suite, "testcase", classname=file, name=result.name)
            for failure in result.failures:
                element = ElementTree.SubElement(case, "failure",
                                                 message=failure.splitlines()[0])
                element.text = failure
    return ElementTree.tostring(suites, encoding="utf-8", xml_declaration=True)


# ---- reading ----------------------------------------------------------------------------------

def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise TestFileError(f"{path}: {getattr(error, 'strerror', None) or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise TestFileError(f"{path}: not valid TOML: {error}") from None
    except RecursionError:
        raise TestFileError(f"{path}: not valid TOML: nested too deeply") from None


def _plan(path: Path, document: RouteTestFile) -> Plan:
    rules = _file_path(document.rules, f"{path}: rules")
    source = (path.parent / rules)
    try:
        found = source.suffix == ".route" and source.is_file()
    except OSError as error:  # a name too long for the file system
        raise TestFileError(f"{path}: rules {rules!r}: {error.strerror}") from None
    if not found:
        raise TestFileError(f"{path}: rules {rules!r}: no such .route file")
    result = Workspace().check_path(source)
    errors = [d for d in result.diagnostics if d.is_error]
    if errors:
        first = errors[0]
        raise TestFileError(f"{path}: rules {rules!r} do not compile: {first.code} "
                            f"{first.message} (`routing check {source}` shows all)")
    return compile_program(result.program)


def _snapshot(path: Path, given, where: str) -> Snapshot:
    try:
        if isinstance(given, dict):
            return parse_snapshot(given, f"{where}: snapshot")
        if isinstance(given, str):
            return load_snapshot(path.parent / _file_path(given, f"{where}: snapshot"))
    except SnapshotError as error:
        raise TestFileError(f"{where}: snapshot: " + "; ".join(error.problems[:3])) from None
    raise TestFileError(f"{where}: needs a `snapshot` (a path, or a table), here or at the top")


def _expectations(case: Case, where: str) -> list[dict]:
    """The case's expectations, as dicts of the keys given; rows are checked against the
    schema like `expect` entries, with their place in the table."""
    found = [msgspec.to_builtins(e, builtin_types=(date,)) for e in case.expect]
    columns = case.columns if case.columns is not UNSET else None
    for index, row in enumerate(case.rows):
        if columns is None or len(row) != len(columns):
            raise TestFileError(f"{where}: each row needs one value per column {columns}")
        try:
            expectation = msgspec.convert(dict(zip(columns, row, strict=True)), Expectation)
        except msgspec.ValidationError as error:
            key, what = _problem(error)
            column = f"[{columns.index(key)}] ({key})" if key in columns else ""
            raise TestFileError(f"{where}.rows[{index}]{column}: {what}") from None
        found.append(msgspec.to_builtins(expectation, builtin_types=(date,)))
    if not found:
        raise TestFileError(f"{where}: nothing to check (give `expect` or `columns` and `rows`)")
    for expectation in found:
        if not set(expectation) & set(CHECKS):
            raise TestFileError(f"{where}: the expectation for {expectation['order']!r} checks "
                                f"nothing (checks: {', '.join(CHECKS)})")
    return found


# ---- checking ---------------------------------------------------------------------------------

def _matches(row: dict, expectation: dict) -> bool:
    return all(row[k] == expectation[k] for k in KEYS if k in expectation)


def _check(expectation: dict, result: dict) -> str | None:
    placed = [a for a in result["allocations"] if _matches(a, expectation)]
    left = [u for u in result["unfillable"] if _matches(u, expectation)]
    what = " ".join(f"{k} {expectation[k]}" for k in KEYS if k in expectation)
    problems = []
    for check in ("facility", "rule"):
        if check in expectation:
            actual = sorted({a[check] for a in placed})
            if actual != [expectation[check]]:
                problems.append(f"{check}: expected {expectation[check]!r}, got "
                                f"{', '.join(map(repr, actual)) or 'no allocation'}")
    if "shipping_cost" in expectation:
        costs = [a.get("shipping_cost") for a in placed]
        if not placed or None in costs:
            problems.append(f"shipping_cost: expected at most {expectation['shipping_cost']}, "
                            f"got {'no allocation' if not placed else 'an unknown cost'}")
        elif round(sum(costs), 2) > expectation["shipping_cost"] + 1e-9:
            problems.append(f"shipping_cost: expected at most {expectation['shipping_cost']}, "
                            f"got {sum(costs):.2f}")
    if "delivery_date" in expectation:
        dates = [a.get("delivery_date") for a in placed]
        if not placed or None in dates or max(dates) > str(expectation["delivery_date"]):
            shown = "no allocation" if not placed else (
                "an unknown date" if None in dates else max(dates))
            problems.append(f"delivery_date: expected by {expectation['delivery_date']}, got "
                            f"{shown}")
    if "quantity" in expectation:
        total = sum(a["quantity"] for a in placed)
        if abs(total - expectation["quantity"]) > 1e-9:
            problems.append(f"quantity: expected {expectation['quantity']}, got {total:g}")
    # a line left open by one routing may be filled by a later one: it is open at the end
    # when no routing after its last unfilled record allocated it
    runs = [run["routing"] for batch in result["batches"] for run in batch["runs"]]
    order = {name: position for position, name in enumerate(runs)}
    last: dict[tuple, dict] = {}
    for u in left:
        last[(u["ship_group"], u["item"])] = u
    still_open = [u for key, u in last.items() if not any(
        (a["ship_group"], a["item"]) == key
        and order.get(a["routing"], -1) > order.get(u["routing"], -1) for a in placed)]
    if "unfilled" in expectation and bool(still_open) != bool(expectation["unfilled"]):
        shown = ", ".join(f"{u['item']} x{u['quantity']:g} ({u['action']})" for u in still_open)
        problems.append(f"unfilled: expected {bool(expectation['unfilled'])}, got "
                        f"{shown or 'everything filled'}")
    if "action" in expectation:
        actions = sorted({u["action"] for u in still_open})
        if actions != [expectation["action"]]:
            problems.append(f"action: expected {expectation['action']!r}, got "
                            f"{', '.join(map(repr, actions)) or 'nothing left open'}")
    if not problems:
        return None
    return f"{what}: " + "; ".join(problems)


def _explained(result: dict, order: str) -> str:
    lines = []
    for entry in result.get("explanations", []):
        if entry["order"] != order:
            continue
        for rule in entry["rules"]:
            chosen = ", ".join(c["facility"] for c in rule["chosen"])
            reasons = "; ".join(f"{r['condition']}: {r['count']}" for r in rule["not_chosen"][:3])
            lines.append(f"    {entry['routing']} / {rule['rule']}: {rule['outcome']}"
                         + (f" ({chosen})" if chosen else "")
                         + (f"; not chosen: {reasons}" if reasons else ""))
    return ("\n  what happened:\n" + "\n".join(lines)) if lines else \
        "\n  what happened: no routing took the order"


_UNITS = {"distance": lambda rule: f" {rule.distance_unit}", "transit_days": lambda rule: " days"}


def _condition_text(condition, rule) -> str:
    """The condition as the rules write it, with its unit (`distance <= 250 mi`)."""
    if condition.field == "facility_group":
        ids = condition.ids[0] if len(condition.ids) == 1 else f"[{', '.join(condition.ids)}]"
        return f"facility_group {condition.op} {ids}"
    if condition.field == "delivery_date":
        return f"delivery_date {condition.op} promise_date"
    if condition.op == "not within":
        return f"not {condition.field} within {int(condition.number)} days"
    number = condition.number
    shown = int(number) if number is not None and float(number).is_integer() else number
    unit = _UNITS.get(condition.field, lambda rule: "")(rule)
    return f"{condition.field} {condition.op} {shown}{unit}"


def _filter_text(condition) -> str:
    if condition.op in ("is null", "is not null"):
        return f"{condition.field} {condition.op}"
    if condition.field == "promise_date":
        return f"promise_date {condition.op} {condition.days} days"
    if condition.count is not None:
        return f"{condition.field} {condition.op} {condition.count}"
    ids = condition.ids[0] if len(condition.ids) == 1 and condition.op in ("==", "!=") \
        else f"[{', '.join(condition.ids)}]"
    return f"{condition.field} {condition.op} {ids}"


def _marks(state: dict, yes: str, no: str) -> str:
    keys = list(state)
    return f"{yes} {'yes' if state[keys[0]] else 'NO'}, {no} {'yes' if state[keys[1]] else 'NO'}"
