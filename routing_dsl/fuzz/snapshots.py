"""Snapshots generated from the snapshot JSON Schema, for both loaders and both engines.

Documents are generated from `Snapshot.model_json_schema()` (every object, array, enum, format
and number range it states; numbers reach the range's edges), with ids drawn from an example
the fast engine runs (its facilities, queues, products, groups, stores, shipment methods), so
that most documents route. Most are then broken at one place by :func:`.values.mutate`: a
value of the wrong type, a number outside the supported range, a missing or unknown field, a
huge string, a NUL.

Each document is written to a file and read by both loaders (`snapshot.load_snapshot` and
the fast engine's `engine.load_columnar`). Both must refuse it with the same messages, each
one line naming the file, or both read the same content (the same `snapshot_digest`). A
document both read is routed by both engines (`reference` and `fast`), whose results must be
writable and the same bytes. Anything else is a finding.
"""

from __future__ import annotations

import json
import random
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..validation import MAX_INTEGER
from .lsp import Finding, Tally
from .values import JSON_HOSTILE, mutate

# The examples whose plans the fast engine runs: each document routes with one of them.
EXAMPLES = ("omnichannel", "shipping_cost", "express_first", "backorder_parking",
            "item_groups", "store_first_split", "multi_store")
# Besides the shared hostile values: strings a database column or a terminal chokes on, and
# ids holding what the fast loader cuts its pieces at (`},`).
SNAPSHOT_HOSTILE = JSON_HOSTILE + ("x" * 100_000, "\x00" * 3, "WH_NJ\x00", "\u2028", "\x1b[2J",
                                   'P},{"facility": "WH_NJ"', "} ,", '\\"},', "]")
NUMBERS = (0, 0, 1, 1, 2, 3, 5, 10, 100, 2.5, 0.25, -1, -3.5)
SIZES = {"facilities": (3, 8), "products": (1, 5), "orders": (1, 6), "ship_groups": (1, 2),
         "items": (1, 3), "inventory": (0, 6), "product_stores": (1, 2),
         "shipment_methods": (0, 4)}


def _short(text: str) -> str:
    return text if len(text) <= 300 else text[:297] + "..."


class FromSchema:
    """Valid values of a JSON Schema (the subset pydantic writes: `$ref`, `anyOf`, `const`,
    `enum`, objects with `properties` and `additionalProperties`, arrays with item counts,
    strings with lengths and a date-time format, numbers with bounds). A value whose field
    name, or `parent.field`, has a pool is drawn from the pool instead."""

    def __init__(self, schema: dict, rng: random.Random, pools: dict, edge: float = 0.05,
                 sizes: dict | None = None):
        self.definitions = schema.get("$defs", {})
        self.rng, self.pools, self.edge = rng, pools, edge
        self.sizes = sizes or {}  # array name -> (fewest, most) items, within the schema's

    def make(self, node: dict, path: tuple[str, ...] = ()) -> Any:
        rng = self.rng
        for key in (".".join(path[-2:]), path[-1] if path else ""):
            if key in self.pools:
                return self.pools[key](rng)
        if "$ref" in node:
            return self.make(self.definitions[node["$ref"].rsplit("/", 1)[-1]], path)
        if "anyOf" in node:
            arms = node["anyOf"]
            real = [a for a in arms if a.get("type") != "null"]
            if len(real) < len(arms) and (not real or rng.random() < 0.3):
                return None
            return self.make(rng.choice(real), path)
        if "const" in node:
            return node["const"]
        if "enum" in node:
            return rng.choice(node["enum"])
        kind = node.get("type")
        if kind == "object":
            return self._object(node, path)
        if kind == "array":
            low, high = self.sizes.get(path[-1] if path else "", (0, 4))
            low = max(low, node.get("minItems", 0))
            high = max(low, min(high, node.get("maxItems", high)))
            return [self.make(node.get("items", {}), path) for _ in range(rng.randint(low, high))]
        if kind == "string":
            return self._string(node, path)
        if kind in ("number", "integer"):
            return self._number(node, kind == "integer")
        if kind == "boolean":
            return rng.random() < 0.7
        if kind == "null":
            return None
        return rng.choice([0, "a", True, None])

    def _object(self, node: dict, path: tuple[str, ...]) -> dict:
        required = set(node.get("required", ()))
        value = {key: self.make(sub, (*path, key))  # at the top, every collection
                 for key, sub in node.get("properties", {}).items()
                 if key in required or not path or self.rng.random() < 0.7}
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            keys = self.pools.get(f"{path[-1]}.keys") if path else None
            for _ in range(self.rng.randint(0, 2)):
                key = keys(self.rng) if keys else self.rng.choice(["a", "B_2", "x y"])
                value[key] = self.make(extra, (*path, "*"))
        return value

    def _string(self, node: dict, path: tuple[str, ...]) -> str:
        rng = self.rng
        if node.get("format") == "date-time":
            moment = datetime(2026, 11, 23, 9, 30) + timedelta(hours=rng.randint(-24 * 20,
                                                                                 24 * 20))
            offset = rng.choice(["-05:00", "+00:00", "Z", "+05:30", ""])  # "": local time
            return moment.isoformat() + offset
        if "pattern" in node:  # the one pattern of the schema: a same-day cutoff, HH:MM
            return f"{rng.randint(0, 23):02d}:{rng.choice([0, 15, 30, 59]):02d}"
        text = rng.choice(["A", "x1", "Name", "two words", "é", "NEXT_DAY", "10001"])
        low, high = node.get("minLength", 0), node.get("maxLength", 100)
        return (text * max(1, low))[:high] if len(text) < low or len(text) > high else text

    def _number(self, node: dict, whole: bool) -> float | int:
        rng = self.rng
        low = node.get("minimum", node.get("exclusiveMinimum"))
        high = node.get("maximum", node.get("exclusiveMaximum"))
        exclusive = "exclusiveMinimum" in node
        if rng.random() < self.edge and high is not None:  # the edges of the range
            value = rng.choice([high, high] + ([] if low is None or exclusive else [low]))
        else:
            value = rng.choice(NUMBERS)
            if low is not None and (value < low or (exclusive and value <= low)):
                value = low + rng.choice([1, 2, 0.5])
            if high is not None and value > high:
                value = high
        return int(value) if whole else value


@dataclass
class Example:
    """An example's plan and the ids its snapshot uses: the generator's pools."""

    name: str
    plan: Any
    snapshot: dict

    @classmethod
    def load(cls, folder: Path) -> Example:
        from ..app import load_plan
        rules = folder / "routes.route"  # the starter project's; an example has one file
        rules = rules if rules.is_file() else next(folder.glob("*.route"))
        return cls(folder.name, load_plan(rules),
                   json.loads((folder / "snapshot.json").read_text(encoding="utf-8")))

    def pools(self) -> dict:
        s = self.snapshot
        facilities = [f["id"] for f in s["facilities"]]
        queues = [f["id"] for f in s["facilities"] if f.get("virtual")]
        products = [p["id"] for p in s["products"]]
        stores = [p["id"] for p in s["product_stores"]]
        groups = sorted({g for f in s["facilities"] for g in f.get("groups", {})})
        methods = s.get("shipment_methods", [])
        cards = [m["rates"] for m in methods if m.get("rates")]
        categories = sorted({c for p in s["products"] for c in p.get("categories", [])})
        channels = sorted({o["sales_channel"] for o in s["orders"] if o.get("sales_channel")})
        counter = iter(range(10**9))

        def some(values, most=1.0):
            return lambda r: r.choice(values) if values and r.random() < most else \
                f"X{next(counter)}"
        return {
            "now": lambda r: s["now"], "timezone": lambda r: s["timezone"],
            "product_stores.id": some(stores), "facilities.id": some(facilities, 0.95),
            "products.id": some(products, 0.95), "shipment_methods.id": some(
                [m["id"] for m in methods] or ["STANDARD"]),
            "orders.id": lambda r: f"O-{next(counter)}",
            "ship_groups.id": lambda r: f"{next(counter):05d}",
            "items.id": lambda r: f"{next(counter):05d}",
            "facility": some(facilities), "product": some(products),
            "product_store": some(stores), "facilities.product_stores": lambda r: r.sample(
                stores, r.randint(1, len(stores))) if stores else [],
            "groups.keys": some(groups), "categories": lambda r: r.sample(
                categories, r.randint(0, min(2, len(categories)))),
            "parent": lambda r: r.choice([None, None, "STYLE-1", "STYLE-2"]),
            "ship_groups.facility": lambda r: r.choice(queues[:1] * 6 + queues + facilities[:1]),
            "virtual": lambda r: r.random() < 0.05,
            "lat": lambda r: r.choice([r.uniform(25, 48)] * 8 + [None, 90, -90]),
            "lon": lambda r: r.choice([r.uniform(-123, -70)] * 8 + [None, 180, -180]),
            "max_orders_per_day": lambda r: r.choice([None] * 6 + [0, 1, 2, 100, MAX_INTEGER]),
            "orders_today": lambda r: r.choice([0, 0, 0, 1, 3, MAX_INTEGER - 1]),
            "enable_brokering": lambda r: r.random() < 0.95,
            "allow_brokering": lambda r: r.random() < 0.9,
            "origin_facility": lambda r: r.choice([None, *facilities[:3]]),
            "shipment_method": some([m["id"] for m in methods] + [None]),
            "carrier": lambda r: r.choice(["UPS", None]),
            "sales_channel": lambda r: r.choice(channels * 3 + [None, "OTHER"]),
            "priority": lambda r: r.choice(["HIGH", "MEDIUM", "LOW", None]),
            "status": lambda r: r.choice(["APPROVED"] * 12 + ["CREATED"]),
            "excluded_facilities": lambda r: r.sample(facilities, r.choice([0, 0, 0, 1])),
            "rates": lambda r: r.choice(cards) if cards and r.random() < 0.7 else None,
            "item_group": lambda r: r.choice([None, None, "KIT-1", "KIT-2"]),
        }


def _coherent(document: dict, example: Example, rng: random.Random) -> dict:
    """Most generated documents made routable: the example's queues present, ids unique,
    one stock row per (facility, product), more stock where it helps."""
    queues = [f for f in example.snapshot["facilities"] if f.get("virtual")]
    facilities = _unique(document.get("facilities", []), lambda f: f.get("id"))
    known = {f.get("id") for f in facilities}
    document["facilities"] = facilities + [q for q in queues if q["id"] not in known]
    for name in ("product_stores", "products", "orders", "shipment_methods"):
        if name in document:
            key = (lambda m: (m.get("id"), m.get("carrier"))) if name == "shipment_methods" \
                else (lambda x: x.get("id"))
            document[name] = _unique(document[name], key)
    known_groups = {f["id"]: f.get("groups", {}) for f in example.snapshot["facilities"]}
    for facility in document["facilities"]:  # mostly in the groups the example's rules name
        if isinstance(facility, dict) and facility.get("id") in known_groups \
                and rng.random() < 0.8:
            facility["groups"] = dict(known_groups[facility["id"]])
    facility_ids = document_ids(document, "facilities")
    product_ids = document_ids(document, "products")
    queue_ids = [q["id"] for q in queues]
    if rng.random() < 0.8:  # stock at most places
        document["inventory"] = document.get("inventory", []) + [
            {"facility": f, "product": p, "atp": rng.choice([0, 1, 2, 5, 50])}
            for f in facility_ids for p in product_ids if rng.random() < 0.7]
    repair = rng.random() < 0.9  # else dangling references, which both loaders must refuse
    for row in document.get("inventory", []):
        if repair and row.get("facility") not in facility_ids:
            row["facility"] = rng.choice(facility_ids)
        if repair and product_ids and row.get("product") not in product_ids:
            row["product"] = rng.choice(product_ids)
    document["inventory"] = _unique(document.get("inventory", []),
                                    lambda r: (r.get("facility"), r.get("product")))
    for order in document.get("orders", []):
        for group in order.get("ship_groups", []):
            if repair and group.get("facility") not in facility_ids:
                group["facility"] = rng.choice(queue_ids or facility_ids)
            for item in group.get("items", []):  # a cancellation within the quantity
                if item.get("cancel_quantity", 0) > item.get("quantity", 1):
                    item["cancel_quantity"] = 0
                if repair and product_ids and item.get("product") not in product_ids:
                    item["product"] = rng.choice(product_ids)
    return document


def document_ids(document: dict, collection: str) -> list:
    return [x.get("id") for x in document.get(collection, []) if isinstance(x, dict)]


def _unique(rows: list, key) -> list:
    seen, kept = set(), []
    for row in rows:
        if key(row) not in seen:
            seen.add(key(row))
            kept.append(row)
    return kept


def snapshot_documents(rng: random.Random, examples: list[Example], count: int,
                       mutate_share: float = 0.6) -> list[tuple[str, Example, str]]:
    """(JSON text, the example whose plan routes it, what was broken)."""
    from ..snapshot import Snapshot
    schema = Snapshot.model_json_schema()
    documents = []
    for _ in range(count):
        example = rng.choice(examples)
        generated = FromSchema(schema, rng, example.pools(), sizes=SIZES).make(schema)
        document = _coherent(generated, example, rng)
        note = "valid"
        if rng.random() < mutate_share:
            document, note = mutate(rng, document, SNAPSHOT_HOSTILE)
        # NaN and infinity as JSON readers meet them; numbers beyond 64 bits as digits
        documents.append((json.dumps(document), example, note))
    return documents


def _crash(described: str, error: BaseException) -> Finding:
    where = traceback.extract_tb(error.__traceback__)[-1]
    return Finding("snapshots", described, f"{type(error).__name__}: {str(error)[:200]} "
                                           f"({Path(where.filename).name}:{where.lineno})")


@contextmanager
def _pieces(size: int | None):
    """The fast loader reading stock ``size`` bytes at a time, as it reads a large file."""
    from ..engine import columnar
    saved = columnar.CHUNK_BYTES
    columnar.CHUNK_BYTES = size or saved
    try:
        yield
    finally:
        columnar.CHUNK_BYTES = saved


def check_document(text: str, example: Example, path: Path,
                   pieces: int | None = None) -> tuple[str, str | None]:
    """("ok" or "refused", what went wrong or None) for one document: both loaders (the fast
    one reading stock ``pieces`` bytes at a time, if given), then both engines (see the
    module)."""
    from ..engine import load_columnar, route, snapshot_digest
    from ..engine.columnar import order_records
    from ..result import dump_result
    from ..snapshot import SnapshotError, load_snapshot
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    read = []
    for loader in (load_snapshot, load_columnar):
        try:
            with _pieces(pieces):
                read.append(("ok", loader(path)))
        except SnapshotError as error:
            read.append(("refused", error.problems))
    (kind, reference), (fast_kind, fast) = read
    if kind != fast_kind:
        return kind, f"the reference loader {kind}, the fast engine's {fast_kind}: " \
                     f"{_short(str(reference if kind == 'refused' else fast))}"
    if kind == "refused":
        if reference != fast:
            return kind, f"the loaders refuse differently: {reference[:2]} / {fast[:2]}"
        bad = [p for p in reference if "\n" in p or not p.startswith(str(path))]
        return kind, f"message: {_short(bad[0])}" if bad else None
    if snapshot_digest(reference) != snapshot_digest(fast):
        return kind, "the loaders read different content"
    if repr(order_records(reference)) != repr(order_records(fast)):  # types, zone objects
        return kind, "the loaders read the orders as different objects"
    results = [dump_result(route(example.plan, snapshot, engine=engine))
               for snapshot, engine in ((reference, "reference"), (fast, "fast"))]
    if results[0] != results[1]:
        return kind, "the engines' results differ"
    return kind, None


def examples(folder: Path) -> list[Example]:
    """The starter project (written in ``folder``) and, in a checkout, the EXAMPLES."""
    from .._resources import data_dir
    from . import starter_project
    found = [Example.load(starter_project(folder / "starter"))]
    try:
        root = data_dir("examples")
    except FileNotFoundError:  # an installed wheel ships no examples
        return found
    return found + [Example.load(root / name) for name in EXAMPLES if (root / name).is_dir()]


def snapshots_campaign(seed: int, count: int, folder: Path) -> Tally:
    """``count`` generated documents checked (:func:`check_document`) with ``seed``; the
    files are written in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    examples_found = examples(folder)
    path = folder / "snapshot.json"
    tally = Tally()
    rng = random.Random(seed)
    for text, example, note in snapshot_documents(rng, examples_found, count):
        tally.inputs += 1
        pieces = rng.choice([None, 150, 400])  # often in pieces of a few stock rows
        described = f"{note} ({example.name}, pieces of {pieces or 'any'} bytes): {_short(text)}"
        try:
            kind, problem = check_document(text, example, path, pieces)
        except Exception as error:  # noqa: BLE001 - the finding
            tally.findings.append(_crash(described, error))
            continue
        if kind == "ok":
            tally.accepted += 1
        else:
            tally.refused += 1
        if problem:
            tally.findings.append(Finding("snapshots", described, problem))
    path.unlink(missing_ok=True)
    return tally
