"""Snapshots read for the fast engine: stock as columns and orders as records, never a Python
object per stock row nor a model per order line.

A JSON snapshot file is split into its members by a compiled splitter, which hands the
inventory array to the compiled stock reader (engine/stockscan.py): its rows go straight into
numpy columns. Where either is not sure of something, msgspec splits the document, and the
rows the reader is not sure of are decoded by msgspec, a few megabytes at a time, into typed,
untracked structs that become columns at once and are then dropped: the peak is the columns
plus one piece, not a struct per row. The snapshot's
`Inventory` holds those columns; rows are made from them only if a reader asks. The orders
are decoded straight into records (`OrderRecord`: an untracked struct typed from the order
model, the same fields read the same way, a fifth the size of a model), so that a million
orders fit where their models would not. The other collections reach their models as raw
JSON. Anything the fast path is not sure of (a folder snapshot, a value msgspec refuses, a
number outside the supported range, an unknown or repeated id) is read again by the
reference loader, so a bad snapshot gets exactly the same messages either way, and a value
only pydantic's lax mode accepts is read as the models read it.
"""

from __future__ import annotations

import gc
import hashlib
import mmap
import os
import types
import typing
from datetime import datetime
from pathlib import Path

from zoneinfo import ZoneInfo

import annotated_types
import msgspec
import numpy as np

from ..snapshot import (Address, Inventory, InventoryColumns, Item, Order, Rejection,
                        IdCodes, ShipGroup, Snapshot, SnapshotError, columns_of,
                        load_snapshot, parse_snapshot)
from ..validation import MAX_INTEGER, parse_moment


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
    inventory: msgspec.Raw = _EMPTY
    shipment_methods: msgspec.Raw = _EMPTY
    orders: msgspec.Raw = _EMPTY


_DECODER = msgspec.json.Decoder(_Document)
_ROWS = msgspec.json.Decoder(list[_Row])
CHUNK_BYTES = 8 << 20  # inventory JSON decoded at a time: about 60,000 rows
_SPACE = b" \t\r\n"


def inventory_columns(snapshot: Snapshot) -> InventoryColumns:
    """``snapshot.inventory.columns`` (the name callers used before the inventory offered
    both forms)."""
    return snapshot.inventory.columns


def snapshot_digest(snapshot: Snapshot) -> str:
    """SHA-256 of the snapshot's content, the same whichever loader read it."""
    digest = hashlib.sha256(snapshot.model_dump_json(exclude={"inventory", "orders"})
                            .encode("utf-8"))
    # the orders as records (what this loader keeps), encoded by msgspec: fast, and the same
    # bytes whether they were read as records or as models
    digest.update(msgspec.json.encode(order_records(snapshot)))
    columns = snapshot.inventory.columns
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
    collecting = gc.isenabled()
    gc.disable()  # millions of new objects, none of them garbage: collection is pure cost
    try:
        snapshot = _fast(path)
    finally:
        if collecting:
            gc.enable()
    if snapshot is not None:
        return snapshot
    try:  # read again: the fast path let go of the bytes to keep the peak down
        data = path.read_bytes()
    except OSError as error:
        raise SnapshotError([f"{path}: {error.strerror or error}"]) from None
    return parse_snapshot(data, str(path))


def _fast(path: Path) -> Snapshot | None:
    data = _read(path)
    if data is None:
        return None
    read = _split(data)
    if read is None:  # msgspec splits it, and decides
        try:
            document = _DECODER.decode(data)
        except (msgspec.DecodeError, RecursionError):
            return None
        columns = _read_inventory(memoryview(document.inventory))
    else:
        document, columns = read
    _release(data, document.inventory)  # read: most of the file, whose columns are now made
    if columns is None or not _in_range(columns):
        return None
    rest = b"".join((
        b'{"format":', document.format, b',"now":', document.now, b',"timezone":',
        document.timezone, b',"product_stores":', document.product_stores,
        b',"facilities":', document.facilities, b',"products":', document.products,
        b',"shipment_methods":', document.shipment_methods, b',"orders":[]}'))
    orders = memoryview(document.orders)  # in place: no copy while the file is held
    del document
    try:
        snapshot = parse_snapshot(rest, str(path))
    except SnapshotError:
        return None
    if not _inventory_sound(snapshot, columns):
        return None
    records = _read_orders(orders, ZoneInfo(snapshot.timezone),
                           {f.id for f in snapshot.facilities})
    orders.release()
    del orders, data
    if records is None:
        return None
    return snapshot.model_copy(update={"orders": records,
                                       "inventory": Inventory(columns=columns)})


def _split(data: bytes) -> tuple[_Document, InventoryColumns] | None:
    """The document's members as raw JSON and its inventory's columns, read in one pass, or
    None when not sure of something (msgspec then splits the document and says what is
    wrong). msgspec, splitting, checks every byte of a large inventory only to skip it, and
    the scanner then reads it again: here the compiled splitter (stockscan.split) finds the
    members by their shape alone, and at the inventory hands over to the scanner, which
    reads the rows up to the array's end. Each value is checked by its own reader: the
    inventory by the scanner (a row it is not sure of, and msgspec splits after all), the
    orders by msgspec, the rest by the models."""
    scan = _stockscan()
    fields = msgspec.structs.fields(_Document)
    names = [f.name for f in fields]
    keys, lengths = _table([name.encode("ascii") for name in names])
    spans = np.full((len(fields), 2), -1, np.int64)
    raw = memoryview(data)
    buf = np.frombuffer(data, np.uint8)
    at = names.index("inventory")
    columns = None
    position = 0
    while True:
        status, position = scan.split(buf, position, keys, lengths, spans, at)
        if status == scan.DONE:
            break
        if status != scan.AT_VALUE or raw[position] != ord("["):
            return None
        read = _rows(raw, position + 1, len(raw), closing=True)
        if read is None:
            return None
        columns, position = read
        spans[at, 1] = position
    if any(spans[k, 0] < 0 for k, f in enumerate(fields) if f.required):
        return None
    document = _Document(**{name: msgspec.Raw(raw[start:stop]) for name, (start, stop)
                            in zip(names, spans.tolist(), strict=True) if start >= 0})
    return document, columns if columns is not None else _read_inventory(memoryview(b"[]"))


def _read(path: Path) -> mmap.mmap | None:
    """The file's bytes in memory of their own (an anonymous mapping), so that the pages
    of a part read already can be given back (`_release`) while the rest is read; None when
    it cannot be read (the reference loader then says why)."""
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if not size:
                return None
            data = mmap.mmap(-1, size)
            if file.readinto(data) != size:
                return None
    except OSError:
        return None
    return data


def _release(data: mmap.mmap, part) -> None:
    """Give back the whole pages of ``part`` (a slice of ``data`` nothing reads again): at
    a million orders the inventory is 1.9 GB of a 2.2 GB file, held until the orders were
    read (docs/performance.md, "1M orders"). Where the system has no such call the pages
    stay until the read ends."""
    if not hasattr(mmap, "MADV_DONTNEED") or not len(part):
        return
    start = (np.frombuffer(part, np.uint8).ctypes.data
             - np.frombuffer(data, np.uint8).ctypes.data)
    if start < 0 or start + len(part) > len(data):  # not the file's (a default): nothing
        return
    first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
    last = (start + len(part)) // mmap.PAGESIZE * mmap.PAGESIZE
    if last > first:
        data.madvise(mmap.MADV_DONTNEED, first, last - first)


def _piece(raw: memoryview, position: int, end: int) -> tuple[list, int] | None:
    """The rows of the JSON array ``raw`` (its inside ends at ``end``) from ``position``, about
    CHUNK_BYTES of them decoded by msgspec, cut between elements, and where the next row
    starts (``end`` after the last); None when msgspec refuses them (the reference loader
    then says why). A cut is made after a `}` followed by a comma. One that falls inside a
    string leaves the piece invalid JSON (the string never closes): the piece is joined to
    the next and decoded again, so a cut never changes what is read. Meant for flat
    elements, such as stock rows: in nested ones most cuts would fall inside one."""
    pending = b""
    while True:
        cut = _cut(raw, position + CHUNK_BYTES, end)
        piece = pending + bytes(raw[position:cut])
        try:
            elements = _ROWS.decode(b"[" + piece + b"]")
        except msgspec.DecodeError:
            if cut >= end or len(piece) > 8 * CHUNK_BYTES:
                return None
            pending, position = piece + b",", cut + 1  # a cut inside an element: join on
            continue
        if not elements:  # an empty piece: a stray comma, which the array's grammar forbids
            return None
        return elements, min(cut + 1, end)  # past the comma


class _Growing:
    """The inventory's columns while they are read: room for ``capacity`` rows, grown as
    needed, the first ``n`` filled."""

    def __init__(self, capacity: int) -> None:
        self.n = 0
        self.arrays = [np.empty(capacity, kind) for kind in _KINDS]

    def room(self, rows: int) -> None:
        capacity = len(self.arrays[0])
        if self.n + rows > capacity:
            bigger = max(self.n + rows, capacity + capacity // 2)
            self.arrays = [np.concatenate((a[:self.n], np.empty(bigger - self.n, a.dtype)))
                           for a in self.arrays]

    def add(self, part: InventoryColumns) -> None:
        self.room(len(part))
        for array, name in zip(self.arrays, _NAMES, strict=True):
            array[self.n:self.n + len(part)] = getattr(part, name)
        self.n += len(part)

    def done(self) -> list[np.ndarray]:
        for array in self.arrays:  # in place: the memory past the rows goes back
            array.resize(self.n, refcheck=False)
        return self.arrays


_NAMES = ("facility", "product", "atp", "minimum_stock", "allow_brokering", "sales_velocity")
_KINDS = (np.int32, np.int32, np.float64, np.float64, np.bool_, np.float64)


class _Ids:
    """One of the compiled reader's id tables (stockscan) and how its codes map to the
    snapshot's (``codes``, shared with the rows msgspec reads, numbered in order of first
    appearance)."""

    def __init__(self, codes: IdCodes, buf: np.ndarray) -> None:
        self.codes, self.buf = codes, buf
        self.slots, self.entries = _stockscan().id_table()
        self.count = 0
        self.map = np.zeros(0, np.int32)
        self.same = True  # the reader's codes are the snapshot's (no msgspec piece between)

    def sync(self, raw: memoryview, count: int) -> None:
        """The ids the reader numbered since the last call, in its order, given the
        snapshot's codes."""
        if count == self.count:
            return
        # one decoding for all of them (the reader's ids are printable ASCII: no NUL)
        names = b"\0".join([raw[start:start + length] for start, length, _ in
                            self.entries[self.count:count].tolist()]).decode("ascii")
        names = names.split("\0")
        first = len(self.codes)
        if first == self.count:  # the codes hold the reader's ids only: these are new
            self.codes.update(zip(names, range(first, first + len(names)), strict=True))
            new = np.arange(first, first + len(names), dtype=np.int32)
        else:
            new = np.array([self.codes[name] for name in names], np.int32)
            self.same = False
        self.map = np.concatenate((self.map, new))
        self.count = count

    def full(self) -> bool:
        return self.count + 1 >= len(self.slots) // 2

    def grow(self) -> None:
        scan = _stockscan()
        slots, _ = scan.id_table(2 * len(self.slots))
        scan.rehash(self.buf, slots, self.entries, self.count)
        entries = np.zeros((len(slots) // 2, 3), np.int64)
        entries[:self.count] = self.entries[:self.count]
        self.slots, self.entries = slots, entries


def _stockscan():
    """The compiled reader (numba: imported only when the fast engine reads a snapshot)."""
    from . import stockscan
    return stockscan


def _read_inventory(raw: memoryview) -> InventoryColumns | None:
    """The inventory array's rows as columns, ids numbered in order of first appearance;
    None when msgspec refuses it. The compiled reader (stockscan) reads the rows it is sure
    of; msgspec decodes a piece (see _piece) from each row it is not, then the reader goes
    on after it."""
    start, end = _array_bounds(raw)
    if start is None:
        return None
    read = _rows(raw, start, end, closing=False)
    return None if read is None else read[0]


def _rows(raw: memoryview, start: int, end: int,
          closing: bool) -> tuple[InventoryColumns, int] | None:
    """The rows of an array whose inside starts at ``start`` and ends at ``end``, as columns,
    and where they end; None when msgspec refuses them. With ``closing``, ``end`` is the
    end of ``raw``: the rows end at the array's ``]`` (the position after it is returned),
    and a row the reader is not sure of gives None (its piece cannot be cut without the
    array's end: msgspec then splits the document)."""
    scan = _stockscan()
    keys = scan.Keys(*_keys(scan), scan.POWERS)
    codes = (IdCodes(), IdCodes())
    buf = np.frombuffer(raw, np.uint8)
    facilities, products = _Ids(codes[0], buf), _Ids(codes[1], buf)
    columns = _Growing(len(raw) // 48 + 16)
    pending = np.empty((scan.BLOCK, scan.PENDING), np.int64)
    position = start
    while position < end and raw[position] in _SPACE:
        position += 1
    if closing and (position == end or raw[position] == ord("]")):  # cut short, or empty
        return None if position == end else \
            (InventoryColumns([], [], *columns.done()), position + 1)
    if position == end:  # an empty array
        end = start
    while position < end:
        status, position, n, f_count, p_count = scan.scan(
            buf, position, end, keys, scan.Columns(*columns.arrays), columns.n,
            scan.Table(facilities.slots, facilities.entries), facilities.count,
            scan.Table(products.slots, products.entries), products.count, pending, closing)
        for ids, count, column in ((facilities, f_count, 0), (products, p_count, 1)):
            ids.sync(raw, count)
            if not ids.same:
                read = columns.arrays[column][columns.n:n]
                read[:] = ids.map[read]  # the reader's codes as the snapshot's
        columns.n = n
        if status == scan.DONE:
            break
        if status == scan.ROWS_FULL:
            columns.room(len(columns.arrays[0]) // 2 + 1)
        elif status == scan.IDS_FULL:
            for ids in (facilities, products):
                if ids.full():
                    ids.grow()
        elif closing:  # UNSURE, and the array's end unknown
            return None
        else:  # UNSURE: msgspec decides
            decoded = _piece(raw, position, end)
            if decoded is None:
                return None
            rows, position = decoded
            columns.add(columns_of(rows, codes))
    return (InventoryColumns(list(codes[0]), list(codes[1]), *columns.done()),
            position + 1 if closing else position)


def _keys(scan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """_Row's keys, as the compiled reader matches them (its columns are in their order):
    the field each key's first two bytes name (-1 for none), the keys' bytes and lengths."""
    names = [f.name.encode("ascii") for f in msgspec.structs.fields(_Row)]
    if tuple(name.decode() for name in names) != scan.FIELDS:
        raise TypeError("the compiled stock reader reads other fields than _Row's")
    if len({name[:2] for name in names}) != len(names) or min(map(len, names)) < 2:
        raise TypeError("the compiled stock reader tells keys by their first two bytes")
    pairs = np.full((256, 256), -1, np.int8)
    for index, name in enumerate(names):
        pairs[name[0], name[1]] = index
    return (pairs, *_table(names))


def _table(names: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Keys as the compiled readers compare them: their bytes, a row each, and lengths."""
    keys = np.zeros((len(names), max(map(len, names))), np.uint8)
    for index, name in enumerate(names):
        keys[index, :len(name)] = np.frombuffer(name, np.uint8)
    return keys, np.array([len(name) for name in names], np.int64)


# ---- orders as records ------------------------------------------------------------------
#
# Each order model's record is an untracked, frozen msgspec struct with the model's fields in
# its order, typed from the model (one source: the constraints are the model's, lists become
# tuples), so that msgspec decodes the orders array straight into records. msgspec is stricter
# than pydantic's lax mode, never looser: it refuses a number written as a string, a whole
# number written 3.0 where an integer belongs, a repeated key whose earlier value is wrong;
# such a snapshot is read again by the reference loader, which accepts it or says why.
# Timestamps are read by the models' parser, validation.parse_moment (msgspec's rounds fractions of a microsecond
# and gives other time-zone objects), once per distinct text.

class _StampType(type):
    # an isinstance test a plain function answers (an abc's registry took 3 microseconds a
    # timestamp, a tenth of the orders' decoding)
    def __instancecheck__(cls, instance) -> bool:
        return isinstance(instance, datetime)


class _Stamp(metaclass=_StampType):
    """A timestamp field: msgspec hands its JSON value to the decoder's hook, and checks that
    the hook gave an instance (a datetime)."""


def _struct_type(annotation, metadata=()):
    """The msgspec type of a model field's type (with its pydantic constraints)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        inner = [m for extra in args[1:] for m in getattr(extra, "metadata", [extra])]
        return _struct_type(args[0], (*metadata, *inner))
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in args if a is not type(None)]
        if len(arms) != 1 or len(args) != 2:
            raise TypeError(f"no record type for {annotation!r}")
        return _struct_type(arms[0], metadata) | None
    if origin is list:
        return _constrained(tuple[_struct_type(args[0]), ...], metadata)
    if annotation in (str, float, int):
        return _constrained(annotation, metadata)
    if annotation is datetime:
        return _Stamp
    if isinstance(annotation, type) and annotation in _RECORDS:
        return _RECORDS[annotation]
    raise TypeError(f"no record type for {annotation!r}")


_BOUNDS = {annotated_types.Ge: "ge", annotated_types.Gt: "gt", annotated_types.Le: "le",
           annotated_types.Lt: "lt", annotated_types.MaxLen: "max_length",
           annotated_types.MinLen: "min_length"}


def _constrained(kind, metadata):
    if not metadata:
        return kind
    bounds = {}
    for constraint in metadata:
        name = _BOUNDS.get(type(constraint))
        if name is None:
            raise TypeError(f"no record constraint for {constraint!r}")
        bounds[name] = getattr(constraint, name)
    return typing.Annotated[kind, msgspec.Meta(**bounds)]


def _record_class(model) -> type:
    """``model``'s record: an untracked, frozen struct with its fields, in its order, typed
    and with the same defaults (the model's own objects: `0`, not `0.0`; an empty tuple for
    an empty list); unknown fields refused."""
    fields = []
    for name, info in model.model_fields.items():
        kind = _struct_type(info.annotation, info.metadata)
        if info.default_factory is not None:
            fields.append((name, kind, ()))
        elif info.is_required():
            fields.append((name, kind))
        else:
            fields.append((name, kind, info.default))
    # keyword-only when a required field follows one with a default (as in Item), so that
    # the fields keep the model's order; the others can also be made positionally
    after_default = any(len(a) == 3 and len(b) == 2
                        for a, b in zip(fields, fields[1:], strict=False))
    return msgspec.defstruct(f"{model.__name__}Record", fields, kw_only=after_default,
                             frozen=True, gc=False, forbid_unknown_fields=True)


_RECORDS: dict = {}
for _model in (Address, Rejection, Item, ShipGroup, Order):  # the parts before the wholes
    _RECORDS[_model] = _record_class(_model)
AddressRecord, RejectionRecord, ItemRecord, ShipGroupRecord, OrderRecord = _RECORDS.values()


def _converter(model, nested: dict):
    """A function making ``model``'s record out of one: its fields, with the fields named in
    ``nested`` converted by the function given for each."""
    record = _RECORDS[model]
    slots = list(nested.items())

    def convert(instance):
        values = dict(instance.__dict__)
        for name, part in slots:
            values[name] = part(values[name])
        return record(**values)
    return convert


def _each(convert):
    # tuples of untracked records: the cyclic collector stops walking them after one pass
    return lambda values: tuple(map(convert, values))


_NO_IDS: tuple = ()
_address_record = _converter(Address, {})
_rejection_record = _converter(Rejection, {})
_item_record = _converter(Item, {
    "excluded_facilities": lambda ids: tuple(ids) if ids else _NO_IDS,
    "rejections": lambda rows: tuple(map(_rejection_record, rows)) if rows else _NO_IDS})
_group_record = _converter(ShipGroup, {
    "ship_to": lambda address: None if address is None else _address_record(address),
    "items": _each(_item_record)})
_record = _converter(Order, {"ship_groups": _each(_group_record),
                              "tags": lambda tags: tuple(tags) if tags else _NO_IDS})


def order_records(snapshot: Snapshot) -> list:
    """The snapshot's orders as records, whichever loader read them."""
    return as_records(snapshot.orders)


def as_records(orders) -> list:
    """Orders (models or records) as records."""
    return [o if isinstance(o, OrderRecord) else _record(o) for o in orders]


def _orders_decoder(zone: ZoneInfo) -> msgspec.json.Decoder:
    """A decoder of an orders array into records, reading timestamps as the models do: with
    `validation.parse_moment`, and in ``zone`` when written without a UTC offset."""
    seen: dict[str, datetime] = {}

    def timestamp(kind, value):
        if kind is not _Stamp or type(value) is not str:
            raise ValueError("not a timestamp text")  # the reference loader says what
        moment = seen.get(value)
        if moment is None:
            try:  # the models' own reading (validation.Moment), one rule for both loaders
                moment = parse_moment(value)
            except ValueError:
                raise ValueError("not a timestamp") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
            seen[value] = moment
        return moment
    return msgspec.json.Decoder(list[OrderRecord], dec_hook=timestamp)


def _read_orders(raw: memoryview, zone: ZoneInfo, facilities: set[str]) -> list | None:
    """The orders array as records, checked as `snapshot._integrity` checks them; None when
    anything is wrong (the reference loader then says what)."""
    try:
        records = _orders_decoder(zone).decode(raw)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    return records if _orders_sound(records, facilities) else None


def _orders_sound(records: list, facilities: set[str]) -> bool:
    """Whether the orders pass the checks `snapshot._integrity` makes of them: unique order
    ids, then `order_problems` (ship groups and items unique within their order and ship
    group, known facilities, no more cancelled than ordered), asked as a yes or no in one
    loop. `order_problems` words each problem and named every ship group's place as it
    went, a call and a string per order for orders that are almost always sound; and
    passes over all the orders field by field (arrays of their ids) were slower still: the
    records lie scattered in memory, and each pass waited for every one of them again."""
    ids: set[str] = set()
    add = ids.add
    for order in records:
        add(order.id)
        groups = order.ship_groups
        if len(groups) > 1 and len({group.id for group in groups}) != len(groups):
            return False
        for group in groups:
            if group.facility not in facilities:
                return False
            items = group.items
            if len(items) > 1 and len({item.id for item in items}) != len(items):
                return False
            for item in items:
                if item.cancel_quantity > item.quantity:
                    return False
    return len(ids) == len(records)


def _array_bounds(raw: memoryview) -> tuple[int | None, int]:
    """Where the rows of a JSON array start and end (inside its brackets)."""
    start, end = 0, len(raw)
    while start < end and raw[start] in _SPACE:
        start += 1
    while end > start and raw[end - 1] in _SPACE:
        end -= 1
    if end - start < 2 or raw[start] != ord("[") or raw[end - 1] != ord("]"):
        return None, 0
    return start + 1, end - 1


def _cut(raw: memoryview, at: int, end: int) -> int:
    """The position of the first comma at or after ``at`` that follows a `}` (spaces
    between allowed), or ``end``."""
    window = np.frombuffer(raw, np.uint8)  # the bytes in place, searched at C speed
    while at < end:
        braces = np.flatnonzero(window[at:min(end, at + 65536)] == ord("}"))
        if not len(braces):
            at += 65536
            continue
        for brace in (braces + at).tolist():
            k = brace + 1
            while k < end and raw[k] in _SPACE:
                k += 1
            if k < end and raw[k] == ord(","):
                return k
        at = int(braces[-1]) + at + 1
    return end


def _in_range(columns: InventoryColumns) -> bool:
    """Whether every number is within the supported range (validation.py), as the models
    require; NaN stands for a missing sales velocity (msgspec refuses a NaN in the text)."""
    velocity = columns.sales_velocity
    return bool((np.abs(columns.atp) <= MAX_INTEGER).all()
                and (np.abs(columns.minimum_stock) <= MAX_INTEGER).all()
                and not (np.abs(velocity) > MAX_INTEGER).any())


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
    pairs = columns.facility.astype(np.int64) * max(1, len(columns.product_ids)) \
        + columns.product
    if (pairs[1:] > pairs[:-1]).all():  # in order already, as exports write them: no sort
        return True
    size = len(columns.facility_ids) * max(1, len(columns.product_ids))
    if size <= _PAIRS_MARKED:  # a byte per possible pair, marked: about 15 times a sort's speed
        marked = np.zeros(size, np.bool_)
        marked[pairs] = True
        return int(np.count_nonzero(marked)) == len(pairs)
    pairs.sort()
    return not (pairs[1:] == pairs[:-1]).any()


_PAIRS_MARKED = 64 << 20  # (facility, product) pairs checked by marking, at most: 64 MB
