"""Campaigns on the JSON contracts: plans (routing-plan/1) and results (routing-result/1),
generated from their JSON Schemas (`routing schema plan`, `routing schema result`).

- Plans: compiled plans of the starter project and plans generated from the plan schema
  (with the project's ids), most broken at one JSON path, each run by the application layer
  as `routing run PLAN --snapshot S` runs it. A plan gives a result (both engines the same
  bytes, when both can run it) or one line naming the file and the path, never another
  exception.
- Results: documents generated from the result schema, most broken at one path. The
  contract's validator accepts a document or names the path; every document it accepts must
  be read by everything that reads results: the JSON writer (`routing run --out`), the rows of
  `--format csv|table`, `routing diff`'s comparison and figures, and the run store's
  recording. No command reads result files back; these are the contract's readers.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from .lsp import Finding, Tally
from .surfaces import Project, crash_finding, shortened
from .values import JSON_HOSTILE, SchemaValues, mutate

# ---- plans ----------------------------------------------------------------------------------------


def plan_ids(project: Project) -> list[str]:
    """The ids the project's plan and snapshot name."""
    return sorted({i for g in project.plan.groups for rt in g.routings
                   for c in [*rt.filters, *(c for r in rt.rules for c in r.conditions)]
                   for i in c.ids}
                  | {name for f in project.snapshot.facilities for name in f.groups}
                  | set(project.facilities) | {"WEB_CHANNEL", "STANDARD", "NEXT_DAY"})


def plan_pools(project: Project) -> dict:
    """Ids and names the project's plan and snapshot know, for the generated plans."""
    ids = plan_ids(project)
    queues = [f.id for f in project.snapshot.facilities if f.virtual]
    stores = [s.id for s in project.snapshot.product_stores] or ["STORE"]
    return {
        "ids": lambda r: r.sample(ids, r.choice([1, 1, 2])),
        "product_store": lambda r: r.choice(stores),
        "move_to_queue": lambda r: r.choice([*queues, None]),
        "cron": lambda r: r.choice([None, "0 */15 * * * ?", "*/5 * * * *"]),
        "timezone": lambda r: r.choice([None, "America/New_York", "UTC"]),
        "priority_order": lambda r: r.sample(["HIGH", "NORMAL", "LOW"], r.choice([0, 3])),
    }


def fit_conditions(rng: random.Random, document: dict, ids: list[str]) -> None:
    """Most conditions of a generated plan made to fit their field, from the criteria
    vocabulary (the operators the field takes, the kind of value it compares with), so that
    most generated plans get past the plan's semantic check and run."""
    from .. import vocabulary as v

    def fit(step: dict, level: str) -> None:
        spec = v.field_spec(step.get("field"), level)
        if spec is None or rng.random() < 0.1:
            return
        step["op"] = op = rng.choice(list(spec.operators))
        if op in v.NULLS:
            return
        if spec.value == "promise":
            step["ids"] = ["promise_date"]
        elif spec.value in v.ID_KINDS:
            step["ids"] = rng.sample(ids, 1 if op in v.EQUALITY else rng.choice([1, 2]))
        else:
            limit = v.MEASURE_LIMITS[spec.value]
            number = rng.choice([0, 1, 3, 100, 1000, limit])
            step["days" if level == "order" else "number"] = number
    for group in document.get("groups", ()):
        for routing in group.get("routings", ()):
            for step in routing.get("filters", ()):
                fit(step, "order")
            for rule in routing.get("rules", ()):
                for step in rule.get("conditions", ()):
                    fit(step, "inventory")


def plan_documents(rng: random.Random, project: Project, count: int,
                   mutate_share: float = 0.8) -> list[tuple[str, str]]:
    """(JSON text, what was broken): the project's compiled plan or a plan generated from
    the plan schema, most broken at one JSON path, a few damaged as text."""
    from ..plan import Plan
    schema = Plan.model_json_schema()
    make = SchemaValues(rng, schema, plan_pools(project), max_depth=7)
    compiled = json.loads(project.plan.to_json())
    ids = plan_ids(project)
    documents = []
    for _ in range(count):
        if rng.random() < 0.4:
            document = compiled
        else:
            document = make.make(schema)
            fit_conditions(rng, document, ids)
        note = "valid"
        if rng.random() < mutate_share:
            document, note = mutate(rng, document, JSON_HOSTILE)
        text = json.dumps(document, ensure_ascii=rng.random() < 0.5)
        if rng.random() < 0.04:  # damaged as text
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(["", "{", '"', "\x00", ",", "]]"])
            note = "damaged text"
        documents.append((text, note))
    return documents


def run_plan_file(path: Path, snapshot: Path) -> bytes:
    """What `routing run PLAN --snapshot S` writes: the result, by the application layer,
    with both engines (their bytes must be equal)."""
    from .. import app
    from ..result import dump_result
    engines = ["reference", "fast"]
    written = [dump_result(app.run(app.RunRequest(source=path, snapshot=str(snapshot),
                                                  engine=engine)).result)
               for engine in engines]
    if any(w != written[0] for w in written):
        raise EnginesDisagree(f"{path}: the engines' results differ")
    return written[0]


class EnginesDisagree(Exception):
    """Both engines ran a plan and wrote different results."""


def plan_campaign(seed: int, count: int, project: Project) -> Tally:
    """Each generated plan written to a file and run (see the module)."""
    from ..app import AppError
    tally = Tally()
    path = project.folder / "fuzz.plan.json"
    snapshot = project.folder / "snapshot.json"
    for text, note in plan_documents(random.Random(seed), project, count):
        tally.inputs += 1
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        described = f"{note}: {shortened(text)}"
        try:
            run_plan_file(path, snapshot)
            tally.accepted += 1
        except AppError as error:
            tally.refused += 1
            lines = error.lines
            if len(lines) != 1 or "\n" in lines[0] or not lines[0].startswith(str(path)):
                tally.findings.append(Finding("plan", described, f"message: {lines}"))
        except Exception as error:  # noqa: BLE001 - the finding
            tally.findings.append(crash_finding("plan", described, error))
    path.unlink(missing_ok=True)
    return tally


# ---- results --------------------------------------------------------------------------------------

def result_pools(project: Project) -> dict:
    """Result rows that name the project's orders, facilities and products, so that the
    readers which join them (diff) find matches."""
    def date(r):
        return r.choice([None, "2026-11-25", "2026-12-01"])

    def moment(r):
        return r.choice([None, "2026-11-25T00:00:00-05:00", "2026-12-01T10:30:00+00:00"])
    return {
        "order": lambda r: r.choice(project.orders),
        "ship_group": lambda r: r.choice(["00001", "00002"]),
        "item": lambda r: r.choice(project.items),
        "product": lambda r: r.choice(project.products),
        "facility": lambda r: r.choice(project.facilities),
        "delivery_date": date, "auto_cancel_date": moment,
        "explanations": lambda r: None,
    }


def result_documents(rng: random.Random, project: Project, count: int,
                     mutate_share: float = 0.7) -> list[tuple[Any, str]]:
    """(document, what was broken): results generated from the result schema (or the
    project's own result), most broken at one JSON path."""
    from ..engine import route
    from ..result import Result, dump_result
    schema = Result.model_json_schema()
    make = SchemaValues(rng, schema, result_pools(project), max_depth=5)
    own = json.loads(dump_result(route(project.plan, project.snapshot)))
    documents = []
    for _ in range(count):
        document = own if rng.random() < 0.3 else make.make(schema)
        note = "valid"
        if rng.random() < mutate_share:
            document, note = mutate(rng, document, JSON_HOSTILE)
        documents.append((document, note))
    return documents


def read_result(document: Any, base: dict, store, project: Project) -> None:
    """Everything that reads a result, on ``document``: the JSON writer, the rows of the
    csv and table formats, diff's comparison (against ``base``) and figures, and the run
    store's recording of its batches (the rows of the project's snapshot: a result names
    the lines of the snapshot it came from)."""
    from datetime import UTC, datetime

    from ..app import result_rows
    from ..authoring.diff import compare, figures, shipping_totals
    from ..ops import ledger
    from ..result import dump_result
    dump_result(document)
    dump_result(document, pretty=True)
    for row in result_rows(document):
        for value in row.values():
            str(value)
    compare(base, document)
    compare(document, base)
    figures(document)
    shipping_totals(document)
    states = ledger.item_states(project.snapshot.orders)

    def known(row: dict) -> bool:
        return (row["order"], row["ship_group"], row["item"]) in states
    for batch in document["batches"][:5]:  # each the same way: a few are enough
        allocations = [a for a in document["allocations"]
                       if a["group"] == batch["group"] and known(a)]
        unfillable = [u for u in document["unfillable"] if known(u)]
        decisions = ledger.decisions(batch["group"], allocations, unfillable, states,
                                     product_store=batch["product_store"], day="2026-11-25",
                                     at=datetime.now(UTC))
        batch_id = store.start_batch(group=batch["group"], product_store=batch["product_store"],
                                     plan_json="{}", source_name="fuzz.route", source_text=None,
                                     snapshot_hash="fuzz")
        store.finish_batch(batch_id, batch, allocations, unfillable, decisions)
        store.ack(batch=batch_id)  # the OMS applied it: the next document may decide it again


def result_campaign(seed: int, count: int, project: Project, store_url: str) -> Tally:
    """Each generated result, as JSON text, validated against the contract (refused: naming
    the path) and, when valid, read by every reader (see the module)."""
    from pydantic import ValidationError

    from ..engine import route
    from ..ops.store import RunStore
    from ..result import Result
    tally = Tally()
    store = RunStore(store_url)
    store.upgrade()
    base = route(project.plan, project.snapshot)
    try:
        for document, note in result_documents(random.Random(seed), project, count):
            tally.inputs += 1
            described = f"{note}: {shortened(repr(document))}"
            text = json.dumps(document)  # as a reader gets it: JSON text
            try:
                Result.model_validate_json(text, strict=True)
            except ValidationError as error:
                tally.refused += 1
                first = error.errors()[0]
                if not first.get("loc") and first["type"] != "json_invalid" and \
                        isinstance(document, dict):
                    tally.findings.append(Finding("result", described,
                                                  f"refusal names no path: {first}"))
                continue
            except Exception as error:  # noqa: BLE001 - the finding
                tally.findings.append(crash_finding("result", described, error))
                continue
            document = json.loads(text)
            try:
                read_result(document, base, store, project)
                tally.accepted += 1
            except Exception as error:  # noqa: BLE001 - the finding
                tally.findings.append(crash_finding("result", described, error))
    finally:
        store.dispose()
    return tally
