"""Snapshots: the order and inventory data a plan runs against (routing-snapshot/1).

Validated once, at the boundary, with pydantic; the interpreter then indexes the valid
objects into plain structures. Input problems become :class:`SnapshotError` with the file, the
JSON path and the problem, e.g. ``orders[3].ship_groups[0].items[1].quantity: must be > 0``.
A snapshot is one JSON file, or a folder with ``meta.json`` (format, now, timezone) and one
``<collection>.json``, ``.ndjson`` or ``.csv`` file per collection.

A snapshot's stock is one :class:`Inventory`, whichever loader read it: rows for readers that
walk them, numpy columns for the fast engine, each made from the other on first use and kept.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import operator
import re
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .validation import (MAX_INTEGER, Count, Integer, Moment, NonNegative, Number, Positive, at,
                         first_out_of_range, number_text, out_of_range, written)
from .vocabulary import is_known_zone

if TYPE_CHECKING:
    import numpy as np

SNAPSHOT_FORMAT = "routing-snapshot/1"
COLLECTIONS = ("product_stores", "facilities", "products", "inventory", "shipment_methods",
               "orders")


def field_docs(model: type) -> dict[str, str]:
    """Each field's docstring (the string under it in the class body), by field name: its
    description in the JSON Schema and in docs/snapshot.md. Read from the source when a
    schema or the docs are asked for, not at import (pydantic's use_attribute_docstrings
    reads every class's source as it is defined: a quarter of `routing run`'s start)."""
    found = _FIELD_DOCS.get(model)
    if found is None:
        import ast
        import inspect
        import textwrap
        found = {}
        for klass in reversed([k for k in model.__mro__ if issubclass(k, _Model)]):
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
            for field_, after in zip(body, body[1:], strict=False):
                if isinstance(field_, ast.AnnAssign) and isinstance(field_.target, ast.Name) \
                        and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) \
                        and isinstance(after.value.value, str):
                    found[field_.target.id] = inspect.cleandoc(after.value.value)
        _FIELD_DOCS[model] = found
    return found


_FIELD_DOCS: dict[type, dict[str, str]] = {}


def _describe_fields(schema: dict, model: type) -> None:
    for name, spec in schema.get("properties", {}).items():
        if "description" not in spec and name in field_docs(model):
            spec["description"] = field_docs(model)[name]


class _Model(BaseModel):
    # NaN, Infinity and 1e999 are refused at load: no number downstream may be non-finite.
    # Each field's docstring is its description in the JSON Schema (_describe_fields) and in
    # docs/snapshot.md.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False,
                              json_schema_extra=_describe_fields)


class ProductStore(_Model):
    """A product store (a brand or storefront); each group routes the orders of one store."""

    id: str
    """The store's id, as a group's `for store` names it."""
    enable_brokering: bool = True
    """When false, the store's groups are skipped (HotWax's brokering switch)."""


class Facility(_Model):
    """A warehouse, a store, or (with `virtual: true`) a queue where orders wait."""

    id: str
    """The facility id."""
    type: str | None = None
    """Free-form type, e.g. WAREHOUSE, RETAIL_STORE, QUEUE; informative only."""
    virtual: bool = False
    """True for a queue (HotWax's virtual facility): only ship groups sitting in a queue of
    the group's product store are routed, and `move to queue` needs a virtual facility."""
    lat: float | None = Field(default=None, ge=-90, le=90)
    """Latitude in degrees; without coordinates the facility never passes a distance
    condition and sorts last by distance."""
    lon: float | None = Field(default=None, ge=-180, le=180)
    """Longitude in degrees."""
    max_orders_per_day: Count | None = None
    """Orders the facility takes per day; null is unlimited, 0 takes none."""
    orders_today: Count = 0
    """Orders already taken today; each ship group routed here during the run adds one."""
    product_stores: list[str] = Field(default_factory=list)
    """The product stores the facility serves (for a queue: whose orders wait in it)."""
    groups: dict[str, Integer | None] = Field(default_factory=dict)
    """Facility group id -> the facility's sequence number in that group (for the
    `facility_sequence` sort; null when the group has no order)."""
    postal_code: str | None = None
    """Postal code, for rate cards whose zones come from postal prefixes."""
    handling_cost: float = Field(default=0, ge=0, le=1_000_000)
    """Cost of packing one package here, added to every package's shipping cost."""
    same_day_cutoff: str | None = Field(default=None, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    """Local time (`HH:MM`, in the snapshot's time zone) until which a package leaves the
    same day; after it, the next day. Without one, packages leave the same day."""


class Dimensions(_Model):
    """Packed size of one unit of a product."""

    length: float = Field(gt=0, le=100_000)
    """Length, in `unit`."""
    width: float = Field(gt=0, le=100_000)
    """Width, in `unit`."""
    height: float = Field(gt=0, le=100_000)
    """Height, in `unit`."""
    unit: Literal["in", "cm"] = "in"
    """Inches or centimetres."""


class Product(_Model):
    """A sellable product (a variant)."""

    id: str
    """The product id (SKU)."""
    categories: list[str] = Field(default_factory=list)
    """Category ids, for the `product_category` filter."""
    parent: str | None = None
    """The style (virtual product) this variant belongs to, for the `broken_style` sort."""
    weight: float | None = Field(default=None, gt=0, le=1_000_000)
    """Shipping weight of one unit, in `weight_unit`; without it, the shipping cost of a
    package holding the product is unknown."""
    weight_unit: Literal["lb", "kg"] = "lb"
    """Unit of `weight`."""
    dimensions: Dimensions | None = None
    """Packed size of one unit, for dimensional weight; without it only the actual weight
    counts."""


class InventoryRow(_Model):
    """Stock of one product at one facility."""

    facility: str
    """The facility id."""
    product: str
    """The product id."""
    atp: Number
    """Available to promise."""
    minimum_stock: Number = 0
    """Units held back from routing: net stock is `atp - minimum_stock`."""
    allow_brokering: bool = True
    """When false, the row is invisible to routing."""
    sales_velocity: Number | None = None
    """How fast the facility sells the product, for the `sales_velocity` sort."""


@dataclass(frozen=True)
class InventoryColumns:
    """One entry per inventory row, in the inventory's order; ids as indexes into the id
    lists. The arrays are read-only: they belong to the snapshot."""

    facility_ids: list[str]
    product_ids: list[str]
    facility: np.ndarray        # int32 index into facility_ids
    product: np.ndarray         # int32 index into product_ids
    atp: np.ndarray             # float64
    minimum_stock: np.ndarray   # float64
    allow_brokering: np.ndarray  # bool
    sales_velocity: np.ndarray  # float64, NaN where the row has none

    def __len__(self) -> int:
        return len(self.atp)


def columns_of(rows, codes: tuple[IdCodes, IdCodes] | None = None) -> InventoryColumns:
    """Columns from row objects with InventoryRow's attributes (validated rows, or the fast
    loader's decoded structs), ids numbered in order of first appearance: in ``codes``
    (facilities, products) when given, so that pieces read one after another share them."""
    import numpy as np  # not at import: `routing check` never loads numpy

    n = len(rows)
    facilities, products = codes or (IdCodes(), IdCodes())
    facility = np.fromiter(map(facilities.__getitem__, map(attrgetter("facility"), rows)),
                           np.int32, n)
    product = np.fromiter(map(products.__getitem__, map(attrgetter("product"), rows)),
                          np.int32, n)
    return InventoryColumns(  # the ids once the rows have numbered them
        list(facilities), list(products), facility, product,
        np.fromiter(map(attrgetter("atp"), rows), np.float64, n),
        np.fromiter(map(attrgetter("minimum_stock"), rows), np.float64, n),
        np.fromiter(map(attrgetter("allow_brokering"), rows), np.bool_, n),
        # numpy reads None as NaN
        np.fromiter(map(attrgetter("sales_velocity"), rows), np.float64, n))


class IdCodes(dict):
    """Ids numbered in order of first appearance: looking one up numbers it if it is new (a
    known id is found at C speed, by the dictionary's own lookup)."""

    def __missing__(self, key: str) -> int:
        code = self[key] = len(self)
        return code


def _rows_of(columns: InventoryColumns) -> tuple[InventoryRow, ...]:
    # the columns were validated when read: construct the rows without validating again
    return tuple(InventoryRow.model_construct(
        facility=columns.facility_ids[f], product=columns.product_ids[p], atp=atp,
        minimum_stock=minimum, allow_brokering=allow,
        sales_velocity=None if velocity != velocity else velocity)
        for f, p, atp, minimum, allow, velocity in zip(
            columns.facility.tolist(), columns.product.tolist(), columns.atp.tolist(),
            columns.minimum_stock.tolist(), columns.allow_brokering.tolist(),
            columns.sales_velocity.tolist(), strict=True))


def _read_only(columns: InventoryColumns) -> InventoryColumns:
    for array in (columns.facility, columns.product, columns.atp, columns.minimum_stock,
                  columns.allow_brokering, columns.sales_velocity):
        array.flags.writeable = False
    return columns


class Inventory(Sequence):
    """A snapshot's stock: one object offering the rows (iterating or indexing gives
    `InventoryRow`s) and the columns (`.columns`, numpy arrays with integer ids, what the fast
    engine and the SQL baseline read). A loader fills in one form: the reference loader rows,
    the columnar loader columns (never a Python object per stock row). The other is made on
    first use and kept, so no reader needs to know which loader ran. Immutable: `less` and
    `Inventory(rows)` make new ones. Two threads asking for the missing form at once both
    build it, and one copy is kept: the same content either way."""

    __slots__ = ("_rows", "_columns")

    def __init__(self, rows: Iterable[InventoryRow] = (), *,
                 columns: InventoryColumns | None = None) -> None:
        if columns is not None:
            self._rows, self._columns = None, _read_only(columns)
        else:
            self._rows, self._columns = tuple(rows), None

    @property
    def rows(self) -> tuple[InventoryRow, ...]:
        rows = self._rows
        if rows is None:
            rows = self._rows = _rows_of(self._columns)
        return rows

    @property
    def columns(self) -> InventoryColumns:
        columns = self._columns
        if columns is None:
            columns = self._columns = _read_only(columns_of(self._rows))
        return columns

    @property
    def forms(self) -> frozenset[str]:
        """The forms made so far, "rows" and/or "columns" (for tests and measurements)."""
        return frozenset(name for name, held in (("rows", self._rows),
                                                  ("columns", self._columns))
                         if held is not None)

    def __len__(self) -> int:
        return len(self._rows) if self._rows is not None else len(self._columns)

    def __getitem__(self, index):
        return self.rows[index]

    def __iter__(self) -> Iterator[InventoryRow]:
        return iter(self.rows)

    def __eq__(self, other) -> bool:
        if isinstance(other, Inventory):
            return self is other or self.rows == other.rows
        if isinstance(other, (list, tuple)):
            return list(self.rows) == list(other)
        return NotImplemented

    __hash__ = None  # equal by content, which is not hashed

    def __repr__(self) -> str:
        return f"Inventory({len(self)} rows, as {' and '.join(sorted(self.forms))})"

    def less(self, taken: dict[tuple[str, str], float]) -> Inventory:
        """This stock less ``taken`` ((facility, product) -> units) from each row's atp, in
        the form this one holds (columns when it has them: no row objects for a large
        snapshot). Pairs without a row are ignored."""
        if not taken:
            return self
        if self._columns is None:
            return Inventory(row.model_copy(update={"atp": row.atp - taken[(row.facility,
                                                                              row.product)]})
                             if (row.facility, row.product) in taken else row
                             for row in self._rows)
        import numpy as np

        columns = self._columns
        facility_code = {f: i for i, f in enumerate(columns.facility_ids)}
        product_code = {p: i for i, p in enumerate(columns.product_ids)}
        width = max(1, len(columns.product_ids))
        wanted = {facility_code[f] * width + product_code[p]: quantity
                  for (f, p), quantity in taken.items()
                  if f in facility_code and p in product_code}
        atp = columns.atp.copy()
        if wanted:
            keys = columns.facility.astype(np.int64) * width + columns.product
            rows = np.nonzero(np.isin(keys, np.fromiter(wanted, np.int64, len(wanted))))[0]
            atp[rows] -= np.array([wanted[k] for k in keys[rows].tolist()], np.float64)
        return Inventory(columns=dataclasses.replace(columns, atp=atp))

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        # validated (and described in the JSON Schema) as a list of rows; serialized as one
        from pydantic_core import core_schema

        rows = handler.generate_schema(list[InventoryRow])

        def validate(value, validate_rows):
            return value if isinstance(value, Inventory) else cls(validate_rows(value))
        # JSON straight into rows (a wrap validator would first make Python objects of it)
        return core_schema.json_or_python_schema(
            json_schema=core_schema.no_info_after_validator_function(cls, rows),
            python_schema=core_schema.no_info_wrap_validator_function(validate, rows),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda inventory: list(inventory.rows), return_schema=rows))


MAX_CHART_CELLS = 10_000_000
MAX_RATE_CARDS = 32  # carrier services with a rate card, per snapshot


class RateZone(_Model):
    """One zone of a rate card: where it applies, how long it takes, what it costs."""

    zone: int = Field(ge=0, le=1000)
    """The zone's number, as carriers name them (2 to 8 for US ground)."""
    max_distance: float | None = Field(default=None, ge=0, le=20_000)
    """The zone covers destinations up to this distance from the facility (in the card's
    `distance_unit`) that no earlier zone covers; null covers any distance."""
    transit_days: int = Field(ge=0, le=365)
    """Days in transit, counted from the day the package leaves."""
    prices: list[Number]
    """Price of one package per weight bucket, in the order of the card's `weights`; a
    heavier bucket never costs less."""


class PostalZone(_Model):
    """A zone chart entry: packages from facilities whose postal code starts with `origin`
    to addresses whose postal code starts with `destination` travel in `zone`."""

    origin: str = Field(min_length=1, max_length=10)
    """Prefix of the facility's postal code."""
    destination: str = Field(min_length=1, max_length=10)
    """Prefix of the ship-to postal code."""
    zone: int = Field(ge=0, le=1000)
    """A zone of the card."""


class Surcharge(_Model):
    """A surcharge on every package: an amount, a percentage of the base price, or both."""

    name: str
    """What it is, e.g. `fuel` or `residential`."""
    amount: float = Field(default=0, ge=0, le=1_000_000)
    """Added to each package."""
    percent: float = Field(default=0, ge=0, le=100)
    """Percentage of the base price and the amounts, added to each package."""


class RateCard(_Model):
    """What a carrier service charges and how long it takes: zones from distance bands (or a
    postal zone chart), a price per weight bucket per zone, dimensional weight, surcharges.
    A package's cost is `(price + amounts) * (1 + percents / 100)` plus the facility's
    `handling_cost`."""

    weight_unit: Literal["lb", "kg"] = "lb"
    """Unit of the weight buckets; dimensions are then read in inches (lb) or centimetres
    (kg)."""
    weights: list[Number] = Field(min_length=1, max_length=500)
    """Upper bounds of the weight buckets, increasing: a package's billable weight, rounded up
    to a whole unit, takes the first bucket that holds it. Heavier packages cannot ship."""
    distance_unit: Literal["mi", "km"] = "mi"
    """Unit of the zones' `max_distance`."""
    zones: list[RateZone] = Field(min_length=1, max_length=100)
    """The zones; by distance, the first whose `max_distance` covers the destination."""
    postal_zones: list[PostalZone] = Field(default_factory=list, max_length=1_000_000)
    """A zone chart, looked up before the distance bands: every origin prefix has the same
    length, and every destination prefix."""
    dim_divisor: float | None = Field(default=None, gt=0, le=1_000_000)
    """Dimensional weight is volume / dim_divisor (139 for inches and pounds, 5000 for
    centimetres and kilograms); billable weight is the larger of actual and dimensional."""
    surcharges: list[Surcharge] = Field(default_factory=list, max_length=100)
    """Surcharges on every package."""

    @model_validator(mode="after")
    def _consistent(self) -> RateCard:
        if any(b <= a for a, b in zip(self.weights, self.weights[1:], strict=False)):
            raise ValueError("weights must increase")
        if self.weights[0] <= 0:
            raise ValueError("weights must be > 0")
        numbers = [z.zone for z in self.zones]
        if len(set(numbers)) != len(numbers):
            raise ValueError("two zones have the same number")
        for zone in self.zones:
            if len(zone.prices) != len(self.weights):
                raise ValueError(f"zone {zone.zone} has {len(zone.prices)} prices for "
                                 f"{len(self.weights)} weights")
            if any(not 0 <= p <= 1_000_000 for p in zone.prices):
                raise ValueError(f"zone {zone.zone}: prices must be between 0 and 1,000,000")
            if any(b < a for a, b in zip(zone.prices, zone.prices[1:], strict=False)):
                raise ValueError(f"zone {zone.zone}: a heavier bucket costs less")
        origins = {len(z.origin) for z in self.postal_zones}
        destinations = {len(z.destination) for z in self.postal_zones}
        if len(origins) > 1 or len(destinations) > 1:
            raise ValueError("postal_zones: prefixes of different lengths")
        pairs = {(z.origin, z.destination) for z in self.postal_zones}
        if len(pairs) != len(self.postal_zones):
            raise ValueError("postal_zones: an (origin, destination) pair is given twice")
        cells = len({z.origin for z in self.postal_zones}) * \
            len({z.destination for z in self.postal_zones})
        if cells > MAX_CHART_CELLS:  # the chart is held as an origin x destination table
            raise ValueError(f"postal_zones: {cells:,} origin and destination pairs is too "
                             f"large a chart (at most {MAX_CHART_CELLS:,})")
        unknown = sorted({z.zone for z in self.postal_zones} - set(numbers))
        if unknown:
            raise ValueError(f"postal_zones: zone {unknown[0]} is not one of the card's zones")
        return self


class ShipmentMethod(_Model):
    """A shipment method (optionally per carrier), for the `delivery_days` order sort."""

    id: str
    """The shipment method id, as ship groups and the `shipment_method` filter name it."""
    carrier: str | None = None
    """The carrier this row applies to; null applies to any carrier."""
    delivery_days: Count | None = None
    """Days to deliver."""
    parent: str | None = None
    """A parent shipment method, if the OMS groups them."""
    rates: RateCard | None = None
    """The carrier service's rate card: ship groups with this method (and carrier) get
    shipping costs, transit days and delivery dates."""


class Address(_Model):
    """Where a ship group goes."""

    lat: float | None = Field(default=None, ge=-90, le=90)
    """Latitude in degrees; without coordinates, distance conditions never pass."""
    lon: float | None = Field(default=None, ge=-180, le=180)
    """Longitude in degrees."""
    postal_code: str | None = None
    """Postal code; informative."""
    country: str | None = None
    """Country; informative."""


class Rejection(_Model):
    """A facility's refusal of an order line it was asked to ship (no stock on the shelf,
    damaged, no staff): the `not rejected within N days` condition keeps routing away from
    it, and the `rejections` filter counts them."""

    facility: str
    """The facility that rejected the line; it need not be in the snapshot (a closed store
    still counts as a rejection)."""
    at: Moment
    """When it rejected the line; without a UTC offset, read in the snapshot's time zone."""
    reason: str | None = None
    """Why, as the OMS names it (for example `NOT_IN_STOCK`, `DAMAGED`); informative, shown
    in explanations."""


class Item(_Model):
    """One order line."""

    id: str
    """The item id, unique within its ship group."""
    product: str
    """The product id."""
    status: str = "APPROVED"
    """Only APPROVED items are routed."""
    quantity: Positive
    """Ordered quantity."""
    cancel_quantity: NonNegative = 0
    """Cancelled units; the quantity to route is `quantity - cancel_quantity`."""
    unit_price: Number = 0
    """Price of one unit, for `shipment_threshold`."""
    adjustments: Number = 0
    """Sum of the line's adjustments (discounts negative), shared per ordered unit."""
    promised_date: Moment | None = None
    """When the customer was promised delivery, for `promise_date` filters."""
    ship_before: Moment | None = None
    """Ship-by date, for the `ship_before` sort."""
    ship_after: Moment | None = None
    """Do-not-ship-before date, for the `ship_after` sort."""
    auto_cancel_date: Moment | None = None
    """When the line cancels itself; routing clears it or sets it (`when unfilled`)."""
    item_group: str | None = None
    """Lines with the same item group ship together under `keep_item_groups_together`."""
    excluded_facilities: list[str] = Field(default_factory=list)
    """Facilities that must not ship this line, ever (an OMS's exclusion list). A facility
    that rejected the line belongs in `rejections`, which rules read by age."""
    rejections: list[Rejection] = Field(default_factory=list, max_length=10_000)
    """The line's rejections, in any order: by which facility, when and why."""


class ShipGroup(_Model):
    """Items of an order that ship together, and the facility (or queue) holding them."""

    id: str
    """The ship group id, unique within its order; an opaque string."""
    facility: str
    """Where the ship group is now: a queue (virtual facility) while it waits to be routed."""
    shipment_method: str | None = None
    """Shipment method id, for the `shipment_method` filter and `delivery_days` sort."""
    carrier: str | None = None
    """Carrier, with `shipment_method` picking the `shipment_methods` row."""
    ship_to: Address | None = None
    """The destination."""
    items: list[Item]
    """The lines."""


class Order(_Model):
    """A sales order."""

    id: str
    """The order id."""
    product_store: str
    """The product store the order belongs to."""
    status: str = "APPROVED"
    """Only APPROVED orders are routed."""
    order_date: Moment | None = None
    """When the order was placed, for the `order_date` sort."""
    sales_channel: str | None = None
    """Sales channel id, for the `sales_channel` filter."""
    priority: str | None = None
    """Priority id, for the `priority` filter and sort."""
    origin_facility: str | None = None
    """The facility the order came from (a store for POS orders), for
    `origin_facility_group`."""
    tags: list[str] = Field(default_factory=list, max_length=1_000)
    """The order's tags (for example `VIP`, `GIFT`), for the `tags` filter; none is the same
    as an empty list."""
    version: Integer | None = None
    """The OMS row's version when the snapshot was read (the OMS adds one at every change to
    the order, its ship groups or items): the OMS write-back refuses a decision for an order
    whose version has changed since. Routing ignores it."""
    ship_groups: list[ShipGroup]
    """The ship groups."""


class Snapshot(_Model):
    """The whole input of a run. Unknown keys are refused at every level."""

    format: Literal["routing-snapshot/1"]
    """Always `routing-snapshot/1`."""
    now: Moment
    """The routing clock, with a UTC offset: promise-date cutoffs, auto-cancel dates and
    "today" come from it, never from the machine's clock."""
    timezone: str
    """IANA time zone of the merchant: day boundaries, and timestamps written without an
    offset, are read in it."""
    product_stores: list[ProductStore] = Field(default_factory=list)
    """Product stores."""
    facilities: list[Facility] = Field(default_factory=list)
    """Facilities and queues."""
    products: list[Product] = Field(default_factory=list)
    """Products."""
    inventory: Inventory = Field(default_factory=Inventory)
    """Stock rows, at most one per (facility, product)."""
    shipment_methods: list[ShipmentMethod] = Field(default_factory=list)
    """Shipment methods."""
    orders: list[Order] = Field(default_factory=list)
    """Orders."""

    def model_copy(self, *, update: dict | None = None, deep: bool = False) -> Snapshot:
        """A copy with ``update``; stock rows given as a list become an Inventory."""
        if update and not isinstance(update.get("inventory", Inventory()), Inventory):
            update = {**update, "inventory": Inventory(update["inventory"])}
        return super().model_copy(update=update, deep=deep)

    @field_validator("shipment_methods")
    @classmethod
    def _few_cards(cls, methods: list[ShipmentMethod]) -> list[ShipmentMethod]:
        cards = sum(1 for m in methods if m.rates is not None)
        if cards > MAX_RATE_CARDS:
            raise ValueError(f"{cards} rate cards; at most {MAX_RATE_CARDS} carrier services "
                             "may have one")
        return methods

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
            localize_order(order, zone)
        return self


MIN_YEAR, MAX_YEAR = 1970, 9000  # dates a run computes (now + up to 3,650 days) stay valid
_ITEM_TIMES = ("promised_date", "ship_before", "ship_after", "auto_cancel_date")


def localize_order(order: Order, zone: ZoneInfo) -> None:
    """Read the order's timestamps written without a UTC offset in ``zone`` (in place: part of
    validating a snapshot, which the columnar loader does an order at a time)."""
    _localize(order, ("order_date",), zone)
    for group in order.ship_groups:
        for item in group.items:
            _localize(item, _ITEM_TIMES, zone)
            for rejection in item.rejections:
                _localize(rejection, ("at",), zone)


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


def _outside_range(error: dict) -> bool:
    """Whether a pydantic error is a number outside the supported range (validation.py): not
    finite, too large for an integer, or beyond ±MAX_INTEGER (the range types' bounds; a
    field's own, tighter bounds have their own messages)."""
    kind, context = error["type"], error.get("ctx") or {}
    return kind in ("finite_number", "int_parsing_size") or \
        (kind == "less_than_equal" and context.get("le") == MAX_INTEGER) or \
        (kind == "greater_than_equal" and context.get("ge") == -MAX_INTEGER)


def range_problem(error: dict, data) -> str | None:
    """For a pydantic error that is a number outside the supported range, what to say (the
    number as ``data``, the validated JSON text or value, wrote it); else None."""
    if not _outside_range(error):
        return None
    written_as = data if isinstance(data, _AsWritten) else _AsWritten(data)
    return out_of_range(written_as.number(error["loc"], error.get("input")))


class _AsWritten:
    """The snapshot's numbers as its text wrote them (`1e400`, not infinity), parsed again
    only when a message needs one."""

    def __init__(self, data) -> None:
        self.data, self._document = data, None

    def document(self):
        if self._document is None and not isinstance(self.data, dict):
            self._document = written(self.data)
        return self._document

    def number(self, location: tuple, value) -> str:
        found = at(self.document(), location)
        return found if isinstance(found, str) else number_text(value)

    def invalid(self, error: dict) -> str:
        """A JSON syntax error; a number too long for the JSON reader is named by its path."""
        reason = str(error["ctx"].get("error"))
        if "number out of range" in reason:
            found = first_out_of_range(self.document())
            if found:
                return f"{json_path(found[0])}: {out_of_range(found[1])}"
        return f"not valid JSON: {reason}"


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
        problems += order_problems(order, f"orders[{o}]", facilities)
    return problems


def order_problems(order: Order, where: str, facilities) -> list[str]:
    """What is wrong with one order's references: ship groups and items given twice,
    facilities ``facilities`` does not hold, more cancelled than ordered."""
    problems = []
    groups = set()
    for g, group in enumerate(order.ship_groups):
        at = f"{where}.ship_groups[{g}]"
        if group.id in groups:
            problems.append(f"{at}.id: duplicate ship group {group.id!r} in order")
        groups.add(group.id)
        if group.facility not in facilities:
            problems.append(f"{at}.facility: unknown facility {group.facility!r}")
        items = set()
        for i, item in enumerate(group.items):
            if item.id in items:
                problems.append(f"{at}.items[{i}].id: duplicate item {item.id!r}")
            items.add(item.id)
            if item.cancel_quantity > item.quantity:
                problems.append(f"{at}.items[{i}].cancel_quantity: more than quantity")
    return problems


def parse_snapshot(data: bytes | str | dict, name: str = "snapshot") -> Snapshot:
    try:
        if isinstance(data, dict):
            snapshot = Snapshot.model_validate(data)
        else:
            snapshot = Snapshot.model_validate_json(data)
    except ValidationError as error:
        as_written = _AsWritten(data)
        problems = []
        for detail in error.errors():
            if detail["type"] == "json_invalid":
                problems.append(f"{name}: {as_written.invalid(detail)}")
            elif _outside_range(detail):
                problems.append(f"{name}: {json_path(detail['loc'])}: "
                                f"{range_problem(detail, as_written)}")
            else:
                problems.append(f"{name}: {_describe(detail)}")
        raise SnapshotError(problems[:50]) from None
    problems = [f"{name}: {p}" for p in _integrity(snapshot)]
    if problems:
        raise SnapshotError(problems[:50])
    return snapshot


def load_snapshot(path: Path) -> Snapshot:
    """Read and validate a snapshot file or folder. Raises SnapshotError."""
    try:
        if path.is_dir():  # raises for a name too long, unlike a missing file
            return parse_snapshot(_read_folder(path), str(path))
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


def render_field_tables() -> str:
    """The field tables of docs/snapshot.md, from the models' docstrings (one source)."""
    parts = []
    for model in (Snapshot, ProductStore, Facility, InventoryRow, Product, Dimensions,
                  ShipmentMethod, RateCard, RateZone, PostalZone, Surcharge, Order, ShipGroup,
                  Address, Item, Rejection):
        parts.append(f"#### {model.__name__}\n\n{model.__doc__.strip()}\n\n"
                     "| field | type | default | meaning |\n|---|---|---|---|")
        for name, info in model.model_fields.items():
            value = info.default_factory() if info.default_factory else info.default
            value = list(value) if isinstance(value, Inventory) else value
            default = "required" if info.is_required() else f"`{json.dumps(value)}`"
            kind = _type_name(info.annotation)
            meaning = " ".join((info.description or field_docs(model).get(name, "")).split())
            parts.append(f"| `{name}` | {kind} | {default} | {meaning} |")
        parts.append("")
    return "\n".join(parts)


_TYPE_WORDS = {"str": "string", "float": "number", "int": "integer", "bool": "boolean",
               "datetime.datetime": "timestamp", "datetime": "timestamp", "NoneType": "null",
               "None": "null", "Inventory": "list[InventoryRow]",
               "Literal['routing-snapshot/1']": "`\"routing-snapshot/1\"`"}


def _plain_type(annotation):
    """``annotation`` without its Annotated constraints (the range types of validation.py)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _plain_type(args[0])
    if origin in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, map(_plain_type, args))
    if origin in (list, dict):
        return origin[tuple(map(_plain_type, args))]
    return annotation


def _type_name(annotation) -> str:
    annotation = _plain_type(annotation)
    text = getattr(annotation, "__name__", None) if not getattr(annotation, "__args__", None) \
        else str(annotation)
    text = re.sub(r"\b(?:typing|routing_dsl\.snapshot|__main__)\.", "", text or str(annotation))
    for word in sorted(_TYPE_WORDS, key=len, reverse=True):
        text = re.sub(rf"(?<![\w.]){re.escape(word)}(?![\w])", _TYPE_WORDS[word], text)
    return text.replace(" | ", " \\| ")


def render_generated(document: str) -> str:
    start, end = "<!-- generated: snapshot-fields -->\n", "<!-- end -->"
    head, rest = document.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}{render_field_tables()}{end}{tail}"


if __name__ == "__main__":  # python -m routing_dsl.snapshot docs/snapshot.md
    import sys

    target = Path(sys.argv[1])
    target.write_text(render_generated(target.read_text(encoding="utf-8")), encoding="utf-8")
