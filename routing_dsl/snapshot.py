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

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from .vocabulary import is_known_zone

SNAPSHOT_FORMAT = "routing-snapshot/1"
COLLECTIONS = ("product_stores", "facilities", "products", "inventory", "shipment_methods",
               "orders")


class _Model(BaseModel):
    # NaN, Infinity and 1e999 are refused at load: no number downstream may be non-finite.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
        if not MIN_YEAR <= value.year <= MAX_YEAR:
            raise ValueError(f"must be between the years {MIN_YEAR} and {MAX_YEAR}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if not is_known_zone(value):
            shown = value if len(value) <= 60 else value[:57] + "..."
            raise ValueError(f"unknown time zone {shown!r} (an IANA name such as "
                             "'America/New_York')")
        return value

    @model_validator(mode="after")
    def _local_times(self) -> Snapshot:
        """Timestamps written without a UTC offset are wall-clock times in the snapshot's
        ``timezone`` (never the machine's), so results do not depend on where they run."""
        zone = ZoneInfo(self.timezone)
        for order in self.orders:
            _localize(order, ("order_date",), zone)
            for group in order.ship_groups:
                for item in group.items:
                    _localize(item, _ITEM_TIMES, zone)
        return self


MIN_YEAR, MAX_YEAR = 1970, 9000  # dates a run computes (now + up to 3,650 days) stay valid
_ITEM_TIMES = ("promised_date", "ship_before", "ship_after", "auto_cancel_date")


def _localize(model: BaseModel, names: tuple[str, ...], zone: ZoneInfo) -> None:
    for name in names:
        value = getattr(model, name)
        if value is not None and value.tzinfo is None:
            # frozen models: set the validated value in place, once, during validation
            model.__dict__[name] = value.replace(tzinfo=zone)


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
    got = "" if isinstance(shown, (dict, list)) else f", got {_clip(json.dumps(shown, default=str))}"
    return f"{json_path(error['loc'])}: {message}{got}"


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


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
        document = _json(meta_path, meta_path.read_bytes())
    except OSError as error:
        raise SnapshotError([f"{meta_path}: {error.strerror or error}"]) from None
    if not isinstance(document, dict):
        raise SnapshotError([f"{meta_path}: must be a JSON object"])
    readers = {".json": _read_json, ".ndjson": _read_ndjson, ".csv": _read_csv}
    known = {"meta.json"} | {f"{c}{suffix}" for c in COLLECTIONS for suffix in readers}
    unknown = sorted(p.name for p in folder.iterdir()
                     if p.name not in known and not p.name.startswith("."))
    if unknown:
        raise SnapshotError([f"{folder}: unknown file {name!r} in a snapshot folder (expected "
                             "meta.json and <collection>.json, .ndjson or .csv for "
                             f"{', '.join(COLLECTIONS)})" for name in unknown[:10]])
    for collection in COLLECTIONS:
        found = [folder / f"{collection}{suffix}" for suffix in readers
                 if (folder / f"{collection}{suffix}").is_file()]
        if len(found) > 1:
            raise SnapshotError([f"{folder}: {collection} is given twice "
                                 f"({', '.join(p.name for p in found)}); keep one"])
        if found:
            document[collection] = readers[found[0].suffix](found[0])
    return document


def _json(where: str | Path, text: bytes | str):
    """Parse JSON, turning every failure (syntax, bad UTF-8, nesting too deep) into an error
    that names ``where``."""
    try:
        return json.loads(text)
    except RecursionError:
        raise SnapshotError([f"{where}: JSON nested too deeply"]) from None
    except UnicodeDecodeError as error:
        raise SnapshotError([f"{where}: not UTF-8 text (byte {error.start})"]) from None
    except ValueError as error:
        raise SnapshotError([f"{where}: not valid JSON: {error}"]) from None


def _read_json(path: Path) -> list:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SnapshotError([f"{path}: {error.strerror or error}"]) from None
    rows = _json(path, data)
    if not isinstance(rows, list):
        raise SnapshotError([f"{path}: must be a JSON array"])
    return rows


def _read_ndjson(path: Path) -> list:
    rows = []
    try:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    rows.append(_json(f"{path}:{number}", line))
    except OSError as error:
        raise SnapshotError([f"{path}: {error.strerror or error}"]) from None
    return rows


def _read_csv(path: Path) -> list:
    """CSV rows: empty cells are null; cells holding JSON arrays or objects are parsed. A cell
    over 128 KiB (the csv module's limit) is refused."""
    rows = []
    number = 1
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            for number, row in enumerate(reader, start=2):
                if None in row:
                    raise SnapshotError([f"{path}:{number}: {len(row[None])} more cells than "
                                         "the header has columns"])
                parsed = {}
                for key, cell in row.items():
                    if cell is None or cell == "":
                        continue
                    if cell[:1] in "[{" or cell in ("true", "false", "null"):
                        parsed[key] = _json(f"{path}:{number}: column {key}", cell)
                        continue
                    parsed[key] = cell
                rows.append(parsed)
    except UnicodeDecodeError as error:
        raise SnapshotError([f"{path}: not UTF-8 text (byte {error.start})"]) from None
    except csv.Error as error:
        raise SnapshotError([f"{path}:{number + 1}: {error}"]) from None
    except OSError as error:
        raise SnapshotError([f"{path}: {error.strerror or error}"]) from None
    return rows
