"""Inventory as columns: a snapshot file read without one Python object per stock row.

A JSON snapshot file is decoded with msgspec: the inventory rows straight into typed,
untracked structs that become numpy columns at once (and are then dropped), the other
collections as raw JSON handed to the pydantic models, which keep their validation and their
error messages. Anything the fast path is not sure of (a folder snapshot, a row msgspec
refuses, a non-finite number, an unknown or repeated id) is read again by the reference
loader, so a bad snapshot gets exactly the same messages either way.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
from operator import attrgetter
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from ..snapshot import Snapshot, SnapshotError, load_snapshot, parse_snapshot


@dataclass(frozen=True)
class InventoryColumns:
    """One entry per inventory row, in file order; ids as indexes into the id lists."""

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


class _Row(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    facility: str
    product: str
    atp: float
    minimum_stock: float = 0.0
    allow_brokering: bool = True
    sales_velocity: float | None = None


_EMPTY = msgspec.Raw(b"[]")


class _Document(msgspec.Struct, forbid_unknown_fields=True):
    format: msgspec.Raw
    now: msgspec.Raw
    timezone: msgspec.Raw
    product_stores: msgspec.Raw = _EMPTY
    facilities: msgspec.Raw = _EMPTY
    products: msgspec.Raw = _EMPTY
    inventory: list[_Row] = []
    shipment_methods: msgspec.Raw = _EMPTY
    orders: msgspec.Raw = _EMPTY


_DECODER = msgspec.json.Decoder(_Document)


def inventory_columns(snapshot: Snapshot) -> InventoryColumns:
    """The snapshot's inventory as columns: attached by `load_columnar`, else built from the
    validated rows."""
    if snapshot._columns is not None:
        return snapshot._columns
    return _columns(snapshot.inventory)


def _columns(rows) -> InventoryColumns:
    n = len(rows)
    facility_ids, facility = _intern(map(attrgetter("facility"), rows), n)
    product_ids, product = _intern(map(attrgetter("product"), rows), n)
    # None becomes NaN in a float64 array
    velocity = np.array(list(map(attrgetter("sales_velocity"), rows)), np.float64)
    return InventoryColumns(
        facility_ids, product_ids, facility, product,
        np.fromiter(map(attrgetter("atp"), rows), np.float64, n),
        np.fromiter(map(attrgetter("minimum_stock"), rows), np.float64, n),
        np.fromiter(map(attrgetter("allow_brokering"), rows), np.bool_, n), velocity)


def _intern(values, n: int) -> tuple[list[str], np.ndarray]:
    """Distinct values in order of first appearance, and each value's index among them (at C
    speed: each value maps to the position of its first appearance, then those close up)."""
    first: dict[str, int] = {}
    sparse = np.fromiter(map(first.setdefault, values, itertools.count()), np.int64, n)
    dense = np.zeros(n + 1, np.int32)
    dense[np.fromiter(first.values(), np.int64, len(first))] = np.arange(len(first))
    return list(first), dense[sparse]


def snapshot_digest(snapshot: Snapshot) -> str:
    """SHA-256 of the snapshot's content, the same whichever loader read it."""
    digest = hashlib.sha256(snapshot.model_dump_json(exclude={"inventory"}).encode("utf-8"))
    columns = inventory_columns(snapshot)
    for ids in (columns.facility_ids, columns.product_ids):
        digest.update("\x00".join(ids).encode("utf-8") + b"\x01")
    for column in (columns.facility, columns.product, columns.atp, columns.minimum_stock,
                   columns.allow_brokering, columns.sales_velocity):
        digest.update(np.ascontiguousarray(column).tobytes())
    return digest.hexdigest()


def load_columnar(path: Path) -> Snapshot:
    """Read a snapshot with its inventory as columns (see the module docstring). Raises
    SnapshotError with the reference loader's messages."""
    if path.is_dir():
        return load_snapshot(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SnapshotError([f"{path}: {error.strerror or error}"]) from None
    collecting = gc.isenabled()
    gc.disable()  # millions of new objects, none of them garbage: collection is pure cost
    try:
        snapshot = _fast(data, str(path))
    finally:
        if collecting:
            gc.enable()
    return snapshot if snapshot is not None else parse_snapshot(data, str(path))


def _fast(data: bytes, name: str) -> Snapshot | None:
    try:
        document = _DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return None
    rows = document.inventory
    document.inventory = []
    columns = _columns(rows)
    del rows
    if not (np.isfinite(columns.atp).all() and np.isfinite(columns.minimum_stock).all()
            and not np.isinf(columns.sales_velocity).any()):
        return None
    rest = b"".join((
        b'{"format":', document.format, b',"now":', document.now, b',"timezone":',
        document.timezone, b',"product_stores":', document.product_stores,
        b',"facilities":', document.facilities, b',"products":', document.products,
        b',"shipment_methods":', document.shipment_methods, b',"orders":', document.orders,
        b"}"))
    del document
    try:
        snapshot = parse_snapshot(rest, name)
    except SnapshotError:
        return None
    if not _inventory_sound(snapshot, columns):
        return None
    snapshot._columns = columns
    return snapshot


def _inventory_sound(snapshot: Snapshot, columns: InventoryColumns) -> bool:
    """The checks `snapshot._integrity` makes of inventory rows, in bulk: known facilities and
    products, at most one row per (facility, product)."""
    known = {f.id for f in snapshot.facilities}
    if not all(f in known for f in columns.facility_ids):
        return False
    if snapshot.products:
        declared = {p.id for p in snapshot.products}
        if not all(p in declared for p in columns.product_ids):
            return False
    pairs = np.sort(columns.facility.astype(np.int64) * max(1, len(columns.product_ids))
                    + columns.product)
    return not (pairs[1:] == pairs[:-1]).any()
