"""Campaigns on the surfaces that read files and statements: `.routetest` TOML (generated from
its schema), what-if statements (from their grammar) and HotWax group exports (from the
export's schema). Each runs in-process on the starter project; an input must give a result or
the surface's own error (one line naming the file or statement), never another exception.
"""

from __future__ import annotations

import random
import traceback
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import tomli_w

from .lsp import Finding, Tally
from .values import TOML_HOSTILE, Values, mutate


def crash_finding(surface: str, described: str, error: BaseException) -> Finding:
    where = traceback.extract_tb(error.__traceback__)[-1]
    return Finding(surface, described, f"{type(error).__name__}: {str(error)[:200]} "
                                       f"({Path(where.filename).name}:{where.lineno})")


def shortened(text: str) -> str:
    return text if len(text) <= 400 else text[:397] + "..."


class Project:
    """The starter project, compiled once: its ids feed the generators."""

    def __init__(self, folder: Path):
        from ..checker import Workspace
        from ..compiler import compile_program
        from ..snapshot import load_snapshot
        from . import starter_project
        self.folder = starter_project(folder)
        self.rules = self.folder / "routes.route"
        self.plan = compile_program(Workspace().check_path(self.rules).program)
        self.snapshot = load_snapshot(self.folder / "snapshot.json")
        self.orders = [o.id for o in self.snapshot.orders]
        self.items = sorted({i.id for o in self.snapshot.orders for sg in o.ship_groups
                             for i in sg.items})
        self.facilities = [f.id for f in self.snapshot.facilities]
        self.products = sorted({r.product for r in self.snapshot.inventory})
        self.rule_names = [r.name for g in self.plan.groups for rt in g.routings
                           for r in rt.rules]


# ---- what-if statements, from the grammar ------------------------------------------------------

HOSTILE_NUMBERS = ("nan", "NaN", "inf", "-inf", "1e5", "1e999", "9" * 400, str(2**53 + 1),
                   str(-2**53 - 1), str(2**64), "-0", "0.0000001", "+5", "5.", ".5", "1_000",
                   "\u0661\u0662", "-", "", "0x10", "\u00bd", "9" * 5000)
HOSTILE_IDS = ('"a b"', '"=="', "\u202e", "x" * 300, "WH_NX", '""', "é", "\x00")


def whatif_statements(rng: random.Random, project: Project, count: int) -> list[str]:
    """Statements derived from the what-if grammar: each slot filled with a valid value or a
    hostile one, sometimes with a word dropped, repeated or mangled."""
    from ..authoring.whatif import GRAMMAR, Slot
    from ..validation import MAX_INTEGER
    numbers = {"quantity": ["0", "1", "12", "2.5", "-3", str(MAX_INTEGER), "100"],
               "limit": ["0", "1", "7", "none", str(MAX_INTEGER)]}
    ids = {"facility": project.facilities, "product": project.products}
    found = []
    for _ in range(count):
        parts = []
        for part in rng.choice(list(GRAMMAR.values())):
            if not isinstance(part, Slot):
                parts.append(part)
            elif part.kind == "id":
                hostile = rng.random() < 0.15
                parts.append(rng.choice(HOSTILE_IDS if hostile else ids[part.name]))
            else:
                hostile = rng.random() < 0.4
                parts.append(rng.choice(HOSTILE_NUMBERS if hostile else numbers[part.kind]))
        roll = rng.random()
        if roll < 0.05 and len(parts) > 1:
            del parts[rng.randrange(len(parts))]
        elif roll < 0.1:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(parts))
        elif roll < 0.13:
            parts = [p.upper() for p in parts]
        found.append(rng.choice([" ", "  ", "\t"]).join(parts))
    return found


def whatif_campaign(seed: int, count: int, project: Project) -> Tally:
    """Each statement parsed, applied to the starter snapshot and routed by both engines,
    the result written as `routing run` writes it."""
    from ..authoring.whatif import WhatIfError, apply, parse
    from ..engine import route
    from ..result import dump_result
    tally = Tally()
    for statement in whatif_statements(random.Random(seed), project, count):
        tally.inputs += 1
        try:
            snapshot = apply(project.snapshot, [parse(statement)])
        except WhatIfError as error:
            tally.refused += 1
            if "\n" in str(error) or not str(error).startswith("--what-if"):
                tally.findings.append(Finding("what-if", statement, f"message: {error}"))
            continue
        except Exception as error:  # noqa: BLE001 - the finding
            tally.findings.append(crash_finding("what-if", repr(statement), error))
            continue
        try:
            for engine in ("reference", "fast"):
                dump_result(route(project.plan, snapshot, engine=engine))
            tally.accepted += 1
        except Exception as error:  # noqa: BLE001 - the finding
            tally.findings.append(crash_finding("what-if", repr(statement), error))
    return tally


# ---- .routetest files, from the schema ----------------------------------------------------------

def routetest_documents(rng: random.Random, project: Project, count: int,
                        mutate_share: float = 0.8) -> list[tuple[str, str]]:
    """(TOML text, what was broken): documents generated from the `.routetest` schema with
    the project's ids, most broken at one TOML path, a few damaged as text."""
    from ..authoring.ruletests import CHECKS, Case, Expectation, RouteTestFile
    statements = whatif_statements(rng, project, 50)
    pools = {
        "rules": lambda r: r.choice(["routes.route"] * 30 + ["missing.route", "snapshot.json"]),
        "snapshot": lambda r: r.choice(["snapshot.json"] * 30 + ["missing.json", "routes.route"]),
        "order": lambda r: r.choice(project.orders + ["NOPE"]),
        "ship_group": lambda r: r.choice(["00001", "00002"]),
        "item": lambda r: r.choice(project.items),
        "facility": lambda r: r.choice(project.facilities),
        "rule": lambda r: r.choice(project.rule_names),
        "what_if": lambda r: r.sample(statements, r.choice([0, 0, 1, 2])),
        "delivery_date": lambda r: date(2026, 11, r.randint(20, 30)),
    }
    values = Values(rng, pools, max_depth=4)
    documents = []
    for _ in range(count):
        document: RouteTestFile = values.make(RouteTestFile)
        if not document.case:
            document.case.append(values.make(Case))
        if document.snapshot is msgspec.UNSET:
            document.snapshot = "snapshot.json"
        for case in document.case:
            _fill_rows(rng, values, case)
            if not case.expect and not case.rows:
                case.expect.append(values.make(Expectation))
            for expectation in case.expect:  # each checks something (the schema cannot say)
                if not any(getattr(expectation, k) is not msgspec.UNSET for k in CHECKS):
                    expectation.facility = rng.choice(project.facilities)
        data = msgspec.to_builtins(document, builtin_types=(date,))
        note = "valid"
        if rng.random() < mutate_share:
            data, note = mutate(rng, data, TOML_HOSTILE)
        try:
            text = tomli_w.dumps(data) if isinstance(data, dict) else f"x = {data!r}\n"
        except (TypeError, ValueError):
            text = repr(data)
        if rng.random() < 0.05:  # damaged as text: cut, or a stray byte
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(["", "[", '"', "\x00", "=", "\n[[case]]\n"])
            note = "damaged text"
        documents.append((text, note))
    return documents


def _fill_rows(rng: random.Random, values: Values, case) -> None:
    """Rows that fit their columns (the schema cannot say so: each row has one value per
    column, of that column's type)."""
    import typing

    from ..authoring.ruletests import Expectation
    if case.columns is msgspec.UNSET:
        case.rows = []
        return
    if "order" not in case.columns:
        case.columns = ["order", *case.columns]
    if len(case.columns) == 1:
        case.columns.append("facility")
    hints = typing.get_type_hints(Expectation, include_extras=True)
    case.rows = [[_unset_free(values, hints[column], column) for column in case.columns]
                 for _ in range(rng.choice([1, 1, 2, 3]))]


def _unset_free(values: Values, hint, name: str) -> Any:
    for _ in range(20):
        found = values.make(hint, name)
        if found is not msgspec.UNSET:
            return msgspec.to_builtins(found, builtin_types=(date,))
    return "x"


def routetest_campaign(seed: int, count: int, project: Project) -> Tally:
    """Each generated file run as `routing test` runs it: cases, or one TestFileError line."""
    from ..authoring.ruletests import TestFileError, run_file
    tally = Tally()
    path = project.folder / "fuzz.routetest"
    for text, note in routetest_documents(random.Random(seed), project, count):
        tally.inputs += 1
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            run_file(path)
            tally.accepted += 1
        except TestFileError as error:
            tally.refused += 1
            message = str(error)
            if "\n" in message or not message.startswith(str(path)):
                tally.findings.append(Finding(".routetest", f"{note}: {shortened(text)}",
                                              f"message: {message[:300]}"))
        except Exception as error:  # noqa: BLE001 - the finding
            tally.findings.append(crash_finding(".routetest", f"{note}: {shortened(text)}", error))
    path.unlink(missing_ok=True)
    return tally



# ---- HotWax group exports, from the export's schema --------------------------------------------

def hotwax_documents(rng: random.Random, count: int,
                     mutate_share: float = 0.6) -> list[tuple[Any, str]]:
    """(document, what was broken): exports generated from the GroupExport schema, with
    HotWax's own codes in its enum fields, most broken at one JSON path."""
    from ..interchange import hotwax as h
    from .values import JSON_HOSTILE
    from ..criteria import REGISTRY
    # HotWax's name of every criterion that has one (the registry's), its unit filter, sorts
    # with a direction, and a name HotWax has that routing does not read
    fields = [*dict.fromkeys(c.hotwax for c in REGISTRY.all() if c.hotwax),
              "measurementSystem", "inventoryForAllocation desc", "orderDate desc",
              "weekOfSupply"]
    values = ["_NA_", "WAREHOUSES", "STORES, WAREHOUSES", "NEXT_DAY", "80", "2", "2.5", "0",
              "METRIC", "IMPERIAL", "Y", "N", "true", "", "PRE-ORDER", "a,b,,c", "-1", "1e400",
              None]
    pools = {
        "conditionTypeEnumId": lambda r: r.choice(["ENTCT_FILTER"] * 3 + ["ENTCT_SORT_BY"]),
        "fieldName": lambda r: r.choice(fields),
        "operator": lambda r: r.choice([*h.OPERATORS, None, "like"]),
        "fieldValue": lambda r: r.choice(values),
        "statusId": lambda r: r.choice([*h.STATUS["ROUTING"], *h.STATUS["RULE"],
                                        "ROUTING_PAUSED"]),
        "assignmentEnumId": lambda r: r.choice(["ORA_SINGLE", "ORA_MULTI", None]),
        "actionTypeEnumId": lambda r: r.choice(["ORA_NEXT_RULE", "ORA_MV_TO_QUEUE",
                                                "ORA_AUTO_CANCEL_DAYS", "ORA_RM_CANCEL_DATE"]),
        "actionValue": lambda r: r.choice(["3", "true", "UNFILLABLE_PARKING", "", None, 2]),
        "cronExpression": lambda r: r.choice(["0 */15 * * * ?", "*/5 * * * *", "bad cron"]),
        "paused": lambda r: r.choice(["Y", "N", True, False, None]),
        "productStoreId": lambda r: r.choice(["STORE", "OMS-STORE", ""]),
        "sequenceNum": lambda r: r.choice([1, 2, 3, None, 2.5]),
        "description": lambda r: r.choice([None, "Web orders", "two\nlines", "\x00", "é" * 3]),
    }
    make = Values(rng, pools, max_depth=5)
    documents = []
    for _ in range(count):
        data = msgspec.to_builtins(make.make(h.GroupExport))
        note = "valid"
        if rng.random() < mutate_share:
            data, note = mutate(rng, data, JSON_HOSTILE)
        documents.append((data, note))
    return documents


def hotwax_campaign(seed: int, count: int) -> Tally:
    """Each export imported: a checked `.route` text (which exports back to the same
    meaning), or problems each naming a JSON path, or one schema error line."""
    from ..checker import Workspace
    from ..interchange.hotwax import (HotWaxImportError, HotWaxSchemaError, canonical,
                                      export_group, import_group)
    tally = Tally()
    for document, note in hotwax_documents(random.Random(seed), count):
        tally.inputs += 1
        described = f"{note}: {shortened(repr(document))}"
        try:
            text, _ = import_group(document, name="group.json")
        except HotWaxSchemaError as error:
            tally.refused += 1
            if "\n" in str(error) or not str(error).startswith("group.json"):
                tally.findings.append(Finding("hotwax", described, f"message: {error}"))
            continue
        except HotWaxImportError as error:
            tally.refused += 1
            bad = [p for p in error.problems if "\n" in p or not p.startswith("group.json")]
            if bad:
                tally.findings.append(Finding("hotwax", described, f"message: {bad[0]}"))
            continue
        except Exception as error:  # noqa: BLE001 - the finding
            tally.findings.append(crash_finding("hotwax", described, error))
            continue
        tally.accepted += 1
        try:  # what was imported exports back to the same meaning, and is then stable
            [group] = Workspace().check_text(text, name="imported.route").program.groups
            again = export_group(group)
            if canonical(again) != canonical(document):
                tally.findings.append(Finding("hotwax", described,
                                              "the round trip changed the meaning"))
            [group] = Workspace().check_text(import_group(again)[0],
                                             name="again.route").program.groups
            if export_group(group) != again:
                tally.findings.append(Finding("hotwax", described,
                                              "a second round trip changed the export"))
        except Exception as error:  # noqa: BLE001 - the finding
            tally.findings.append(crash_finding("hotwax", described, error))
    return tally
