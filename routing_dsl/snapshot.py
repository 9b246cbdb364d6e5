"""Snapshots: the order and inventory data a plan runs against (routing-snapshot/1).

Validated once, at the boundary, with pydantic; the interpreter then indexes the valid
objects into plain structures. Input problems become :class:`SnapshotError` with the file, the
JSON path and the problem, e.g. ``orders[3].ship_groups[0].items[1].quantity: must be > 0``.
A snapshot is one JSON file, or a folder with ``meta.json`` (format, now, timezone) and one
``<collection>.json``, ``.ndjson`` or ``.csv`` file per collection.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SNAPSHOT_FORMAT = "routing-snapshot/1"
COLLECTIONS = ("product_stores", "facilities", "products", "inventory", "shipment_methods",
               "orders")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProductStore(_Model):
    id: str
    enable_brokering: bool = True


class Facility(_Model):
    id: str
    type: str | None = None
    virtual: bool = False
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    max_orders_per_day: int | None = Field(default=None, ge=0)
    orders_today: int = Field(default=0, ge=0)
    product_stores: list[str] = []
    groups: dict[str, int | None] = {}


class Product(_Model):
    id: str
    categories: list[str] = []
    parent: str | None = None


class InventoryRow(_Model):
    facility: str
    product: str
    atp: float
    minimum_stock: float = 0
    allow_brokering: bool = True
    sales_velocity: float | None = None


class ShipmentMethod(_Model):
    id: str
    carrier: str | None = None
    delivery_days: int | None = Field(default=None, ge=0)
    parent: str | None = None


class Address(_Model):
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    postal_code: str | None = None
    country: str | None = None


class Item(_Model):
    id: str
    product: str
    status: str = "APPROVED"
    quantity: float = Field(gt=0)
    cancel_quantity: float = Field(default=0, ge=0)
    unit_price: float = 0
    adjustments: float = 0
    promised_date: datetime | None = None
    ship_before: datetime | None = None
    ship_after: datetime | None = None
    auto_cancel_date: datetime | None = None
    item_group: str | None = None
    excluded_facilities: list[str] = []


class ShipGroup(_Model):
    id: str
    facility: str
    shipment_method: str | None = None
    carrier: str | None = None
    ship_to: Address | None = None
    items: list[Item]


class Order(_Model):
    id: str
    product_store: str
    status: str = "APPROVED"
    order_date: datetime | None = None
    sales_channel: str | None = None
    priority: str | None = None
    origin_facility: str | None = None
    ship_groups: list[ShipGroup]


class Snapshot(_Model):
    """The whole input of a run. Unknown keys are refused at every level."""

    format: Literal["routing-snapshot/1"]
    now: datetime
    timezone: str
    product_stores: list[ProductStore] = []
    facilities: list[Facility] = []
    products: list[Product] = []
    inventory: list[InventoryRow] = []
    shipment_methods: list[ShipmentMethod] = []
    orders: list[Order] = []

    @field_validator("now")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-11-23T09:30:00-05:00")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (KeyError, ValueError, OSError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class SnapshotError(Exception):
    """Bad snapshot input: one message per problem, each naming the file and the JSON path."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def json_path(location: tuple) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _plain(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _describe(error: dict) -> str:
    kind = error["type"]
    context = {k: _plain(v) for k, v in (error.get("ctx") or {}).items()}
    if kind == "greater_than":
        message = f"must be > {context.get('gt')}"
    elif kind == "greater_than_equal":
        message = f"must be >= {context.get('ge')}"
    elif kind == "less_than_equal":
        message = f"must be <= {context.get('le')}"
    elif kind == "extra_forbidden":
        return f"{json_path(error['loc'])}: unknown field"
    elif kind == "missing":
        return f"{json_path(error['loc'])}: required field missing"
    else:
        message = error["msg"][0].lower() + error["msg"][1:]
        message = message.removeprefix("value error, ")
    shown = error.get("input")
    got = "" if isinstance(shown, (dict, list)) else f", got {json.dumps(shown, default=str)}"
    return f"{json_path(error['loc'])}: {message}{got}"


def _integrity(snapshot: Snapshot) -> list[str]:
    """Problems pydantic cannot see: duplicate ids and references to nothing."""
    problems = []

    def unique(collection: str, ids: list[str]) -> None:
        seen = set()
        for index, identifier in enumerate(ids):
            if identifier in seen:
                problems.append(f"{collection}[{index}].id: duplicate id {identifier!r}")
            seen.add(identifier)

    unique("product_stores", [s.id for s in snapshot.product_stores])
    unique("facilities", [f.id for f in snapshot.facilities])
    unique("products", [p.id for p in snapshot.products])
    unique("orders", [o.id for o in snapshot.orders])
    facilities = {f.id for f in snapshot.facilities}
    products = {p.id for p in snapshot.products}
    seen_rows = set()
    for index, row in enumerate(snapshot.inventory):
        if row.facility not in facilities:
            problems.append(f"inventory[{index}].facility: unknown facility {row.facility!r}")
        if products and row.product not in products:
            problems.append(f"inventory[{index}].product: unknown product {row.product!r}")
        if (row.facility, row.product) in seen_rows:
            problems.append(f"inventory[{index}]: second row for ({row.facility}, {row.product})")
        seen_rows.add((row.facility, row.product))
    for o, order in enumerate(snapshot.orders):
        groups = set()
        for g, group in enumerate(order.ship_groups):
            where = f"orders[{o}].ship_groups[{g}]"
            if group.id in groups:
                problems.append(f"{where}.id: duplicate ship group {group.id!r} in order")
            groups.add(group.id)
            if group.facility not in facilities:
                problems.append(f"{where}.facility: unknown facility {group.facility!r}")
            items = set()
            for i, item in enumerate(group.items):
                if item.id in items:
                    problems.append(f"{where}.items[{i}].id: duplicate item {item.id!r}")
                items.add(item.id)
                if item.cancel_quantity > item.quantity:
                    problems.append(f"{where}.items[{i}].cancel_quantity: more than quantity")
    return problems


def parse_snapshot(data: bytes | str | dict, name: str = "snapshot") -> Snapshot:
    try:
        if isinstance(data, dict):
            snapshot = Snapshot.model_validate(data)
        else:
            snapshot = Snapshot.model_validate_json(data)
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            if detail["type"] == "json_invalid":
                problems.append(f"{name}: not valid JSON: {detail['ctx'].get('error')}")
            else:
                problems.append(f"{name}: {_describe(detail)}")
        raise SnapshotError(problems[:50]) from None
    problems = [f"{name}: {p}" for p in _integrity(snapshot)]
    if problems:
        raise SnapshotError(problems[:50])
    return snapshot


def load_snapshot(path: Path) -> Snapshot:
    """Read and validate a snapshot file or folder. Raises SnapshotError."""
    if path.is_dir():
        return parse_snapshot(_read_folder(path), str(path))
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SnapshotError([f"{path}: {error.strerror or error}"]) from None
    return parse_snapshot(data, str(path))


def _read_folder(folder: Path) -> dict:
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise SnapshotError([f"{folder}: a snapshot folder needs meta.json "
                             "(format, now, timezone)"])
    try:
        document = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SnapshotError([f"{meta_path}: {error}"]) from None
    if not isinstance(document, dict):
        raise SnapshotError([f"{meta_path}: must be a JSON object"])
    for collection in COLLECTIONS:
        for suffix, reader in ((".json", _read_json), (".ndjson", _read_ndjson),
                               (".csv", _read_csv)):
            candidate = folder / f"{collection}{suffix}"
            if candidate.is_file():
                document[collection] = reader(candidate)
                break
    return document


def _read_json(path: Path) -> list:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SnapshotError([f"{path}: {error}"]) from None
    if not isinstance(rows, list):
        raise SnapshotError([f"{path}: must be a JSON array"])
    return rows


def _read_ndjson(path: Path) -> list:
    rows = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except ValueError as error:
                        raise SnapshotError([f"{path}:{number}: not valid JSON: {error}"]) from None
    except OSError as error:
        raise SnapshotError([f"{path}: {error.strerror or error}"]) from None
    return rows


def _read_csv(path: Path) -> list:
    """CSV rows: empty cells are null; cells holding JSON arrays or objects are parsed."""
    rows = []
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                parsed = {}
                for key, cell in row.items():
                    if cell is None or cell == "":
                        continue
                    if cell[:1] in "[{" or cell in ("true", "false", "null"):
                        try:
                            parsed[key] = json.loads(cell)
                            continue
                        except ValueError:
                            raise SnapshotError([f"{path}:{number}: column {key}: bad JSON"]) from None
                    parsed[key] = cell
                rows.append(parsed)
    except OSError as error:
        raise SnapshotError([f"{path}: {error.strerror or error}"]) from None
    return rows
