"""Live data in: snapshots read from a SQL database.

A **mapping** names one SQL query per part of the snapshot; each query returns flat rows with
the column names below, which this module assembles into the snapshot's nested shape and
validates like a file. All queries run in one consistent read-only transaction (REPEATABLE
READ on PostgreSQL), so orders and stock are read as of one instant.

The **reference OMS schema** (``oms_*`` tables, also in docs/oms-schema.sql) is what the
default mapping reads; ``routing oms load`` fills it from a snapshot file, so the SQL path can
be tried in one command. An OMS with other tables keeps its schema and writes a mapping whose
queries alias its columns to these names.
"""

from __future__ import annotations

import json
import tomllib
from collections import defaultdict
from pathlib import Path

import sqlalchemy as sa

from ..snapshot import Snapshot, SnapshotError, parse_snapshot

oms = sa.MetaData()


def _table(name: str, *columns: sa.Column) -> sa.Table:
    # `position` keeps the order rows had in the snapshot file, so results are identical
    return sa.Table(name, oms, sa.Column("position", sa.Integer, nullable=False), *columns)


Text, Float, Int, Bool = sa.Text, sa.Float, sa.Integer, sa.Boolean
_meta = _table("oms_meta", sa.Column("now", Text, nullable=False),
               sa.Column("timezone", Text, nullable=False))
_stores = _table("oms_product_store", sa.Column("id", Text, primary_key=True),
                 sa.Column("enable_brokering", Bool, nullable=False))
_facilities = _table("oms_facility", sa.Column("id", Text, primary_key=True),
                     sa.Column("type", Text), sa.Column("virtual", Bool, nullable=False),
                     sa.Column("lat", Float), sa.Column("lon", Float),
                     sa.Column("max_orders_per_day", Int),
                     sa.Column("orders_today", Int, nullable=False),
                     sa.Column("postal_code", Text), sa.Column("handling_cost", Float),
                     sa.Column("same_day_cutoff", Text))
_facility_stores = _table("oms_facility_store", sa.Column("facility", Text, nullable=False),
                          sa.Column("product_store", Text, nullable=False))
_facility_groups = _table("oms_facility_group_member",
                          sa.Column("facility", Text, nullable=False),
                          sa.Column("facility_group", Text, nullable=False),
                          sa.Column("sequence", Int))
_products = _table("oms_product", sa.Column("id", Text, primary_key=True),
                   sa.Column("parent", Text), sa.Column("weight", Float),
                   sa.Column("weight_unit", Text), sa.Column("length", Float),
                   sa.Column("width", Float), sa.Column("height", Float),
                   sa.Column("dimension_unit", Text))
_SIZE = ("length", "width", "height", "dimension_unit")
_categories = _table("oms_product_category", sa.Column("product", Text, nullable=False),
                     sa.Column("category", Text, nullable=False))
_inventory = _table("oms_inventory", sa.Column("facility", Text, nullable=False),
                    sa.Column("product", Text, nullable=False),
                    sa.Column("atp", Float, nullable=False),
                    sa.Column("minimum_stock", Float, nullable=False),
                    sa.Column("allow_brokering", Bool, nullable=False),
                    sa.Column("sales_velocity", Float))
_methods = _table("oms_shipment_method", sa.Column("id", Text, nullable=False),
                  sa.Column("carrier", Text), sa.Column("delivery_days", Int),
                  sa.Column("parent", Text),
                  sa.Column("rates", Text))  # the rate card as JSON (docs/snapshot.md)
# `version`: one more at every change to the order, its ship groups or its items (by the OMS
# and by the write-back), so a decision taken on an older read is refused (ops/writeback.py).
_orders = _table("oms_order", sa.Column("id", Text, primary_key=True),
                 sa.Column("product_store", Text, nullable=False),
                 sa.Column("status", Text, nullable=False), sa.Column("order_date", Text),
                 sa.Column("sales_channel", Text), sa.Column("priority", Text),
                 sa.Column("origin_facility", Text),
                 sa.Column("version", Int, nullable=False, server_default="1"))
_groups = _table("oms_ship_group", sa.Column("order_id", Text, nullable=False),
                 sa.Column("id", Text, nullable=False),
                 sa.Column("facility", Text, nullable=False),
                 sa.Column("shipment_method", Text), sa.Column("carrier", Text),
                 sa.Column("has_ship_to", Bool, nullable=False),
                 sa.Column("lat", Float), sa.Column("lon", Float),
                 sa.Column("postal_code", Text), sa.Column("country", Text))
_items = _table("oms_order_item", sa.Column("order_id", Text, nullable=False),
                sa.Column("ship_group", Text, nullable=False),
                sa.Column("id", Text, nullable=False), sa.Column("product", Text, nullable=False),
                sa.Column("status", Text, nullable=False),
                sa.Column("quantity", Float, nullable=False),
                sa.Column("cancel_quantity", Float, nullable=False),
                sa.Column("unit_price", Float, nullable=False),
                sa.Column("adjustments", Float, nullable=False),
                sa.Column("promised_date", Text), sa.Column("ship_before", Text),
                sa.Column("ship_after", Text), sa.Column("auto_cancel_date", Text),
                sa.Column("item_group", Text))
_exclusions = _table("oms_item_excluded_facility", sa.Column("order_id", Text, nullable=False),
                     sa.Column("ship_group", Text, nullable=False),
                     sa.Column("item", Text, nullable=False),
                     sa.Column("facility", Text, nullable=False))
# A facility's refusal of an order line (HotWax: the rejection that parks the item in
# REJECTED_ITM_PARKING), kept with its time and reason for `not rejected within N days`.
_rejections = _table("oms_item_rejection", sa.Column("order_id", Text, nullable=False),
                     sa.Column("ship_group", Text, nullable=False),
                     sa.Column("item", Text, nullable=False),
                     sa.Column("facility", Text, nullable=False),
                     sa.Column("at", Text, nullable=False), sa.Column("reason", Text))
_tags = _table("oms_order_tag", sa.Column("order_id", Text, nullable=False),
               sa.Column("tag", Text, nullable=False))

# The batches the write-back applied here, written in the same transaction as their moves:
# a batch delivered twice is applied once.
applied_batches = sa.Table("oms_applied_batch", oms,
                           sa.Column("batch_id", Text, primary_key=True),
                           sa.Column("applied_at", Text, nullable=False),
                           sa.Column("summary", Text, nullable=False))

PARTS = {"meta": _meta, "product_stores": _stores, "facilities": _facilities,
         "facility_stores": _facility_stores, "facility_groups": _facility_groups,
         "products": _products, "product_categories": _categories, "inventory": _inventory,
         "shipment_methods": _methods, "orders": _orders, "ship_groups": _groups,
         "items": _items, "item_exclusions": _exclusions, "item_rejections": _rejections,
         "order_tags": _tags}
# Parts added after the first reference schema: a database without their table (filled by an
# older `routing oms load`, or an OMS whose mapping does not name them) reads none.
OPTIONAL_TABLES = {"item_rejections": _rejections.name, "order_tags": _tags.name}


# The columns each part's query must return; every other column of the part's table is
# optional and takes the snapshot's documented default when a mapping leaves it out
# (`allow_brokering` true, `minimum_stock` 0, ...: docs/snapshot.md).
REQUIRED = {"meta": ("now", "timezone"), "product_stores": ("id",), "facilities": ("id",),
            "facility_stores": ("facility", "product_store"),
            "facility_groups": ("facility", "facility_group"), "products": ("id",),
            "product_categories": ("product", "category"),
            "inventory": ("facility", "product", "atp"), "shipment_methods": ("id",),
            "orders": ("id", "product_store"), "ship_groups": ("order_id", "id", "facility"),
            "items": ("order_id", "ship_group", "id", "product", "quantity"),
            "item_exclusions": ("order_id", "ship_group", "item", "facility"),
            "item_rejections": ("order_id", "ship_group", "item", "facility", "at"),
            "order_tags": ("order_id", "tag")}


def check_columns(columns: dict[str, list[str]]) -> None:
    """Raise SnapshotError naming each query's missing and unknown columns, once per column
    (the rows would otherwise each fail, twice: a missing field and an unknown one)."""
    problems = []
    for part, names in columns.items():
        known = [c.name for c in PARTS[part].columns]
        for name in REQUIRED[part]:
            if name not in names:
                problems.append(f"{part} query: no column `{name}` (it needs "
                                f"{', '.join(REQUIRED[part])})")
        for name in names:
            if name not in known:
                problems.append(f"{part} query: unknown column `{name}` (columns: "
                                f"{', '.join(k for k in known if k != 'position')})")
    if problems:
        raise SnapshotError(problems)


def default_mapping() -> dict[str, str]:
    """The queries that read the reference schema, one per part."""
    return {part: f"select * from {table.name} order by position"
            for part, table in PARTS.items()}


def read_mapping(path: Path) -> dict[str, str]:
    """A mapping file: TOML with one query per part (missing parts read the reference
    schema)."""
    try:
        given = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise SnapshotError([f"{path}: {error}"]) from None
    given.pop("sink", None)  # the write-back's statements (ops/writeback.py)
    unknown = sorted(set(given) - set(PARTS))
    if unknown or not all(isinstance(v, str) for v in given.values()):
        raise SnapshotError([f"{path}: parts are {', '.join(PARTS)}, each a SQL query string"
                             + (f"; unknown: {', '.join(unknown)}" if unknown else "")])
    return {**default_mapping(), **given}


def read_snapshot(url: str, mapping: dict[str, str] | None = None) -> Snapshot:
    """Read, assemble and validate a snapshot from the database at ``url``."""
    mapping = mapping or default_mapping()
    defaults = default_mapping()
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    rows: dict[str, list[dict]] = {}
    columns: dict[str, list[str]] = {}
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                connection = connection.execution_options(isolation_level="REPEATABLE READ",
                                                          postgresql_readonly=True)
            with connection.begin():
                for part, query in mapping.items():
                    if part in OPTIONAL_TABLES and query == defaults[part] and not \
                            sa.inspect(connection).has_table(OPTIONAL_TABLES[part]):
                        columns[part], rows[part] = list(REQUIRED[part]), []
                        continue
                    result = connection.execution_options(stream_results=True).execute(
                        sa.text(query))
                    columns[part] = list(result.keys())
                    rows[part] = [dict(row) for row in result.mappings()]
    except sa.exc.SQLAlchemyError as error:
        raise SnapshotError([f"{safe_url(url)}: {type(error).__name__}: "
                             f"{str(getattr(error, 'orig', error)).splitlines()[0]}"]) from None
    finally:
        engine.dispose()
    check_columns(columns)
    return parse_snapshot(assemble(rows), safe_url(url))


def safe_url(url: str) -> str:
    from .store import safe_url as safe
    return safe(url)


def _clean(row: dict, drop=("position",)) -> dict:
    return {k: v for k, v in row.items() if k not in drop and v is not None}


def assemble(rows: dict[str, list[dict]]) -> dict:
    """Flat rows -> the snapshot document."""
    if len(rows["meta"]) != 1:
        raise SnapshotError([f"meta: expected one row (now, timezone), got {len(rows['meta'])}"])
    meta = rows["meta"][0]
    stores_of, groups_of = defaultdict(list), defaultdict(dict)
    for row in rows["facility_stores"]:
        stores_of[row["facility"]].append(row["product_store"])
    for row in rows["facility_groups"]:
        groups_of[row["facility"]][row["facility_group"]] = row.get("sequence")
    categories = defaultdict(list)
    for row in rows["product_categories"]:
        categories[row["product"]].append(row["category"])
    excluded = defaultdict(list)
    for row in rows["item_exclusions"]:
        excluded[(row["order_id"], row["ship_group"], row["item"])].append(row["facility"])
    rejected = defaultdict(list)
    for row in rows.get("item_rejections", ()):
        rejected[(row["order_id"], row["ship_group"], row["item"])].append(
            _clean(row, ("position", "order_id", "ship_group", "item")))
    tags = defaultdict(list)
    for row in rows.get("order_tags", ()):
        tags[row["order_id"]].append(row["tag"])
    items = defaultdict(list)
    for row in rows["items"]:
        key = (row["order_id"], row["ship_group"])
        item = _clean(row, ("position", "order_id", "ship_group"))
        item["excluded_facilities"] = excluded.get((*key, row["id"]), [])
        if (*key, row["id"]) in rejected:
            item["rejections"] = rejected[(*key, row["id"])]
        items[key].append(item)
    groups = defaultdict(list)
    for row in rows["ship_groups"]:
        group = {k: row[k] for k in ("id", "facility") if row.get(k) is not None}
        for key in ("shipment_method", "carrier"):
            if row.get(key) is not None:
                group[key] = row[key]
        if row.get("has_ship_to") or ("has_ship_to" not in row and any(
                row.get(k) is not None for k in ("lat", "lon", "postal_code", "country"))):
            group["ship_to"] = {k: row.get(k) for k in ("lat", "lon", "postal_code", "country")}
        group["items"] = items.get((row["order_id"], row["id"]), [])
        groups[row["order_id"]].append(group)
    facilities = []
    for row in rows["facilities"]:
        facility = _clean(row)
        facility["virtual"] = bool(facility.get("virtual"))
        facility["product_stores"] = stores_of.get(row["id"], [])
        facility["groups"] = groups_of.get(row["id"], {})
        facilities.append(facility)
    return {
        "format": "routing-snapshot/1", "now": meta["now"], "timezone": meta["timezone"],
        "product_stores": [_flags(r, "enable_brokering") for r in rows["product_stores"]],
        "facilities": facilities,
        "products": [_product(r, categories.get(r["id"], [])) for r in rows["products"]],
        "inventory": [_flags(r, "allow_brokering") for r in rows["inventory"]],
        "shipment_methods": [_method(index, r)
                             for index, r in enumerate(rows["shipment_methods"])],
        "orders": [{**_clean(r), "ship_groups": groups.get(r["id"], []),
                    **({"tags": tags[r["id"]]} if r["id"] in tags else {})}
                   for r in rows["orders"]],
    }


def _flags(row: dict, *names: str) -> dict:
    """The row, its boolean columns as booleans (SQL may give 0 and 1); a column the query
    leaves out keeps the snapshot's default."""
    found = _clean(row)
    for name in names:
        if name in found:
            found[name] = bool(found[name])
    return found


def _product(row: dict, categories: list[str]) -> dict:
    product = _clean(row, ("position", *_SIZE))
    if any(row.get(k) is not None for k in _SIZE):
        product["dimensions"] = {k: row.get(k) for k in ("length", "width", "height")}
        if row.get("dimension_unit") is not None:
            product["dimensions"]["unit"] = row["dimension_unit"]
    return {**product, "categories": categories}


def _method(index: int, row: dict) -> dict:
    method = _clean(row)
    if "rates" in method:
        try:
            method["rates"] = json.loads(method["rates"])
        except (TypeError, ValueError, RecursionError):
            raise SnapshotError([f"shipment_methods[{index}].rates: not a JSON rate card"]) \
                from None
    return method


def load(url: str, snapshot_document: dict) -> dict[str, int]:
    """Create the reference schema at ``url`` if needed and replace its rows with the
    snapshot's (for trying the SQL path and for tests). Returns rows written per table."""
    flat: dict[str, list[dict]] = defaultdict(list)
    flat["meta"].append({"now": snapshot_document["now"],
                         "timezone": snapshot_document["timezone"]})
    for store in snapshot_document.get("product_stores", []):
        flat["product_stores"].append({"id": store["id"], "enable_brokering": store.get(
            "enable_brokering", True)})
    for facility in snapshot_document.get("facilities", []):
        flat["facilities"].append({k: facility.get(k) for k in (
            "id", "type", "lat", "lon", "max_orders_per_day", "postal_code", "handling_cost",
            "same_day_cutoff")} | {
            "virtual": facility.get("virtual", False),
            "orders_today": facility.get("orders_today", 0)})
        for store in facility.get("product_stores", []):
            flat["facility_stores"].append({"facility": facility["id"], "product_store": store})
        for group, sequence in facility.get("groups", {}).items():
            flat["facility_groups"].append({"facility": facility["id"],
                                            "facility_group": group, "sequence": sequence})
    for product in snapshot_document.get("products", []):
        size = product.get("dimensions") or {}
        flat["products"].append({"id": product["id"], "parent": product.get("parent"),
                                 "weight": product.get("weight"),
                                 "weight_unit": product.get("weight_unit"),
                                 **{k: size.get(k) for k in ("length", "width", "height")},
                                 "dimension_unit": size.get("unit")})
        for category in product.get("categories", []):
            flat["product_categories"].append({"product": product["id"], "category": category})
    for row in snapshot_document.get("inventory", []):
        flat["inventory"].append({"facility": row["facility"], "product": row["product"],
                                  "atp": row["atp"], "minimum_stock": row.get("minimum_stock", 0),
                                  "allow_brokering": row.get("allow_brokering", True),
                                  "sales_velocity": row.get("sales_velocity")})
    for method in snapshot_document.get("shipment_methods", []):
        flat["shipment_methods"].append({k: method.get(k) for k in (
            "id", "carrier", "delivery_days", "parent")} | {
            "rates": None if method.get("rates") is None else json.dumps(method["rates"])})
    for order in snapshot_document.get("orders", []):
        flat["orders"].append({k: order.get(k) for k in (
            "id", "product_store", "order_date", "sales_channel", "priority",
            "origin_facility")} | {"status": order.get("status", "APPROVED"),
                                   "version": order.get("version") or 1})
        for tag in order.get("tags", []):
            flat["order_tags"].append({"order_id": order["id"], "tag": tag})
        for group in order["ship_groups"]:
            ship_to = group.get("ship_to")
            flat["ship_groups"].append({
                "order_id": order["id"], "id": group["id"], "facility": group["facility"],
                "shipment_method": group.get("shipment_method"), "carrier": group.get("carrier"),
                "has_ship_to": ship_to is not None,
                **{k: (ship_to or {}).get(k) for k in ("lat", "lon", "postal_code", "country")}})
            for item in group["items"]:
                flat["items"].append({
                    "order_id": order["id"], "ship_group": group["id"], "id": item["id"],
                    "product": item["product"], "status": item.get("status", "APPROVED"),
                    "quantity": item["quantity"],
                    "cancel_quantity": item.get("cancel_quantity", 0),
                    "unit_price": item.get("unit_price", 0),
                    "adjustments": item.get("adjustments", 0),
                    **{k: item.get(k) for k in ("promised_date", "ship_before", "ship_after",
                                                "auto_cancel_date", "item_group")}})
                for facility in item.get("excluded_facilities", []):
                    flat["item_exclusions"].append({"order_id": order["id"],
                                                    "ship_group": group["id"],
                                                    "item": item["id"], "facility": facility})
                for rejection in item.get("rejections", []):
                    flat["item_rejections"].append({
                        "order_id": order["id"], "ship_group": group["id"], "item": item["id"],
                        "facility": rejection["facility"], "at": rejection["at"],
                        "reason": rejection.get("reason")})
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        oms.create_all(engine)
        with engine.begin() as connection:
            connection.execute(applied_batches.delete())
            for part, table in PARTS.items():
                connection.execute(table.delete())
                if flat[part]:
                    connection.execute(table.insert(), [
                        {"position": index, **row} for index, row in enumerate(flat[part])])
    finally:
        engine.dispose()
    return {PARTS[part].name: len(rows) for part, rows in flat.items()}


def schema_sql(dialect: str = "postgresql") -> str:
    """The reference schema as CREATE TABLE statements (docs/oms-schema.sql)."""
    from sqlalchemy.dialects import postgresql, sqlite
    target = {"postgresql": postgresql.dialect(), "sqlite": sqlite.dialect()}[dialect]
    statements = [str(sa.schema.CreateTable(table).compile(dialect=target)).strip() + ";"
                  for table in oms.sorted_tables]
    header = "-- The reference OMS schema that `routing oms load` fills and the default mapping\n" \
             "-- reads (generated by `python -m routing_dsl.ops.oms`).\n"
    return header + "\n\n".join(statements) + "\n"


if __name__ == "__main__":  # python -m routing_dsl.ops.oms > docs/oms-schema.sql
    print(schema_sql(), end="")

