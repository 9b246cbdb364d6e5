"""The fast engine's result rows as columns: one block per routing run for the run's
`allocations` and one for its `unfillable` items (runtime.rows.ResultRows holds them).

A block keeps the kernel's output columns (items, facilities and rules as integer indexes,
quantities and distances as floats) and the few strings made per row while routing (new ship
group ids, auto-cancel dates), with the run's tables of ids. It makes its rows' dictionaries
only when a reader asks (`rows`), and writes its rows as JSON straight from the columns
(`json_chunks`): the ids as they are when orjson would not escape them (checked for a
chunk's ids at once; escaped by orjson otherwise), each column of numbers by orjson as a
list, the pieces interleaved with the row's fixed text and joined once, so the bytes are
those orjson writes for the dictionaries (tests/test_result_columns.py holds both to the
same bytes).
"""

from __future__ import annotations

from itertools import repeat

import numpy as np
import orjson

from ..criteria.text import number
from ..runtime.rows import CHUNK

_dumps = orjson.dumps


class RunStrings:
    """The run's ids a row names, by index: per order line (its order, ship group, item and
    product) and per facility. Shared by every block of a run."""

    def __init__(self, order_ids: list[str], sg_ids: list[str], item_ids: list[str],
                 product_ids: list[str], fac_ids: list[str]) -> None:
        self.order_ids, self.sg_ids, self.item_ids = order_ids, sg_ids, item_ids
        self.product_ids, self.fac_ids = product_ids, fac_ids
        self._json: dict[str, tuple[np.ndarray, bool]] = {}

    def json(self, name: str, indexes: np.ndarray) -> list[str]:
        """The ids of table ``name`` at ``indexes`` as orjson writes them, without quotes."""
        known = self._json.get(name)
        if known is None:  # the table as an array (picked from at numpy speed), checked once
            table = getattr(self, name)
            known = self._json[name] = (np.array(table, dtype=object), _plain(table))
        array, plain = known
        picked = array[indexes].tolist()
        return picked if plain else _inner_json(picked)

    def __getstate__(self) -> dict:  # the arrays are made again where they are needed
        return {**self.__dict__, "_json": {}}


def numbers(values: np.ndarray) -> list:
    """`criteria.text.number` of each value; whole numbers (nearly all quantities) at numpy
    speed."""
    whole = _whole(values)
    ints = np.where(whole, values, 0).astype(np.int64).tolist()
    if whole.all():
        return ints
    return [i if w else number(v) for i, v, w in zip(ints, values.tolist(), whole.tolist(),
                                                       strict=True)]


def _whole(values: np.ndarray) -> np.ndarray:
    """Which of ``values`` are whole numbers an int64 holds exactly."""
    return (np.floor(values) == values) & (np.abs(values) < 2.0 ** 53)


def rounded(values: np.ndarray) -> np.ndarray:
    """Python's ``round(v, 2)`` of each value, at numpy speed. numpy rounds ``v * 100`` to
    an integer k and divides (k / 100 is then the double nearest the decimal, as Python's);
    the k it picks can differ from Python's only where ``v * 100`` lies within its rounding
    error of a half (or where that error is large): those few are rounded by Python."""
    with np.errstate(over="ignore", invalid="ignore"):  # the largest go to Python anyway
        result = np.round(values, 2)
        scaled = values * 100
        doubtful = np.nonzero((np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6)
                              | (np.abs(values) >= 1e7))[0]
    if len(doubtful):
        result[doubtful] = [round(v, 2) for v in values[doubtful].tolist()]
    return result


def _distances(values: np.ndarray) -> list:
    return [None if d != d else d for d in rounded(values).tolist()]


def _array_json(values: np.ndarray) -> list[str]:
    """Each of ``values`` (a numpy array) as orjson writes the Python number (NaN: null)."""
    return _dumps(values, option=orjson.OPT_SERIALIZE_NUMPY).decode()[1:-1].split(",") \
        if len(values) else []


def _numbers_json(values: np.ndarray) -> list[str]:
    """`numbers` of each value, as orjson writes it."""
    if _whole(values).all():
        return _array_json(values.astype(np.int64))
    return _scalars_json(numbers(values))


def _scalars_json(values: list) -> list[str]:
    """Each of ``values`` (numbers, None, or strings without commas or quotes) as orjson
    writes it."""
    return _dumps(values).decode()[1:-1].split(",") if values else []


def _plain(values: list[str]) -> bool:
    """Whether orjson writes each of ``values`` as it is, between quotes (checked at once:
    an escape only lengthens)."""
    return len(_dumps(values)) == len("".join(values).encode()) + 3 * len(values) + 1


def _inner_json(values: list[str]) -> list[str]:
    """Each of ``values`` as orjson writes it, without its quotes."""
    if _plain(values):
        return values
    return [_dumps(value).decode()[1:-1] for value in values]


def _rows_json(pieces: list, n: int) -> str:
    """``n`` rows as JSON, comma-separated: ``pieces`` are, in order, the text every row
    has (str) and the text each row has (a list of ``n`` str). Interleaved into one list
    and joined once: about ten times faster than a format per row."""
    if not n:
        return ""
    parts, columns = [""], []
    for piece in pieces:
        if isinstance(piece, str):
            parts[-1] += piece
        else:
            columns.append(piece)
            parts.append("")
    parts[-1] += ","
    width = len(parts) + len(columns)
    text: list = [None] * (n * width)
    for j, part in enumerate(parts):
        text[2 * j::width] = [part] * n
    for j, column in enumerate(columns):
        text[2 * j + 1::width] = column  # a column of another length raises
    return "".join(text)[:-1]


def _text(value) -> str:
    return _dumps(value).decode()


class _Block:
    """What every block does from its ``_columns`` (how to read each field of ``KEYS``, in
    that order, for rows ``start`` to ``stop``: iterables as long as the rows, or endless
    repeats)."""

    KEYS: tuple[str, ...] = ()

    def _columns(self) -> dict:
        raise NotImplementedError

    def rows(self, start: int, stop: int) -> list[dict]:
        columns = [read(start, stop) for read in self._columns().values()]
        return [dict(zip(self.KEYS, values, strict=True))
                for values in zip(*columns, strict=False)]

    def field(self, name: str) -> list:
        return list(self._columns()[name](0, len(self)))


class _LineBlock(_Block):
    """A block with a row per order line (``item``: indexes into the run's lines), whose
    ids come from the run's tables (``strings``)."""

    strings: RunStrings
    item: np.ndarray

    def __len__(self) -> int:
        return len(self.item)

    def _ids(self, table: str):
        return lambda start, stop: map(getattr(self.strings, table).__getitem__,
                                       self.item[start:stop].tolist())


class AllocationColumns(_LineBlock):
    """A routing run's allocations (result.Allocation), by column."""

    KEYS = ("order", "ship_group", "item", "product", "facility", "quantity", "new_ship_group",
            "group", "routing", "rule", "distance", "distance_unit", "shipping_cost",
            "transit_days", "delivery_date")

    def __init__(self, strings: RunStrings, item: np.ndarray, facility: np.ndarray,
                 quantity: np.ndarray, new_ship_group: list[str], group: str, routing: str,
                 rule: np.ndarray, rule_names: list[str], distance_units: list[str],
                 distance: np.ndarray, shipping: tuple[list, list, list] | None) -> None:
        self.strings = strings
        self.item, self.facility, self.quantity, self.rule, self.distance = (
            item, facility, quantity, rule, distance)
        self.new_ship_group = new_ship_group
        self.group, self.routing = group, routing
        self.rule_names, self.distance_units = rule_names, distance_units
        self.shipping = shipping  # (costs, transit days, delivery dates) per row, or None

    def _shipping(self, k: int):
        def column(start: int, stop: int):
            return self.shipping[k][start:stop] if self.shipping else repeat(None, stop - start)
        return column

    def _columns(self) -> dict:
        """How to read each field, for rows ``start`` to ``stop``."""
        return {
            "order": self._ids("order_ids"), "ship_group": self._ids("sg_ids"),
            "item": self._ids("item_ids"), "product": self._ids("product_ids"),
            "facility": lambda start, stop: map(self.strings.fac_ids.__getitem__,
                                                self.facility[start:stop].tolist()),
            "quantity": lambda start, stop: numbers(self.quantity[start:stop]),
            "new_ship_group": lambda start, stop: self.new_ship_group[start:stop],
            "group": lambda start, stop: repeat(self.group, stop - start),
            "routing": lambda start, stop: repeat(self.routing, stop - start),
            "rule": lambda start, stop: map(self.rule_names.__getitem__,
                                            self.rule[start:stop].tolist()),
            "distance": lambda start, stop: _distances(self.distance[start:stop]),
            "distance_unit": lambda start, stop: map(self.distance_units.__getitem__,
                                                     self.rule[start:stop].tolist()),
            "shipping_cost": self._shipping(0), "transit_days": self._shipping(1),
            "delivery_date": self._shipping(2),
        }

    def json_chunks(self):
        s = self.strings
        rule_json = [_text(name) for name in self.rule_names]
        unit_json = [_text(unit) for unit in self.distance_units]
        for start in range(0, len(self), CHUNK):
            stop = min(start + CHUNK, len(self))
            rows = self.item[start:stop]
            rules = self.rule[start:stop].tolist()
            if self.shipping:
                costs, transits, deliveries = (
                    _scalars_json(column[start:stop]) for column in self.shipping)
            else:
                costs = transits = deliveries = "null"
            yield _rows_json([
                '{"order":"', s.json("order_ids", rows),
                '","ship_group":"', s.json("sg_ids", rows),
                '","item":"', s.json("item_ids", rows),
                '","product":"', s.json("product_ids", rows),
                '","facility":"', s.json("fac_ids", self.facility[start:stop]),
                '","quantity":', _numbers_json(self.quantity[start:stop]),
                ',"new_ship_group":"', _inner_json(self.new_ship_group[start:stop]),
                '","group":' + _text(self.group) + ',"routing":' + _text(self.routing)
                + ',"rule":', list(map(rule_json.__getitem__, rules)),
                ',"distance":', _array_json(rounded(self.distance[start:stop])),
                ',"distance_unit":', list(map(unit_json.__getitem__, rules)),
                ',"shipping_cost":', costs, ',"transit_days":', transits,
                ',"delivery_date":', deliveries, "}"], stop - start).encode()


class UnfillableColumns(_LineBlock):
    """A routing run's unfillable items (result.Unfillable), by column."""

    KEYS = ("order", "ship_group", "item", "product", "quantity", "routing", "rule", "action",
            "queue", "auto_cancel_date")

    def __init__(self, strings: RunStrings, item: np.ndarray, quantity: np.ndarray,
                 routing: str, rule: np.ndarray, rule_names: list[str], action: np.ndarray,
                 action_names: tuple[str, ...], queue: np.ndarray,
                 auto_cancel_date: list[str | None]) -> None:
        self.strings = strings
        self.item, self.quantity, self.rule, self.action, self.queue = (
            item, quantity, rule, action, queue)
        self.routing, self.rule_names, self.action_names = routing, rule_names, action_names
        self.auto_cancel_date = auto_cancel_date

    def _columns(self) -> dict:
        """How to read each field, for rows ``start`` to ``stop``."""
        names = self.rule_names
        return {
            "order": self._ids("order_ids"), "ship_group": self._ids("sg_ids"),
            "item": self._ids("item_ids"), "product": self._ids("product_ids"),
            "quantity": lambda start, stop: numbers(self.quantity[start:stop]),
            "routing": lambda start, stop: repeat(self.routing, stop - start),
            "rule": lambda start, stop: [names[r] if r >= 0 else None
                                         for r in self.rule[start:stop].tolist()],
            "action": lambda start, stop: map(self.action_names.__getitem__,
                                              self.action[start:stop].tolist()),
            "queue": lambda start, stop: map(self.strings.fac_ids.__getitem__,
                                             self.queue[start:stop].tolist()),
            "auto_cancel_date": lambda start, stop: self.auto_cancel_date[start:stop],
        }

    def json_chunks(self):
        s = self.strings
        rule_json = [_text(name) for name in self.rule_names]
        action_json = [_text(name) for name in self.action_names]
        for start in range(0, len(self), CHUNK):
            stop = min(start + CHUNK, len(self))
            rows = self.item[start:stop]
            yield _rows_json([
                '{"order":"', s.json("order_ids", rows),
                '","ship_group":"', s.json("sg_ids", rows),
                '","item":"', s.json("item_ids", rows),
                '","product":"', s.json("product_ids", rows),
                '","quantity":', _numbers_json(self.quantity[start:stop]),
                ',"routing":' + _text(self.routing) + ',"rule":',
                [rule_json[r] if r >= 0 else "null" for r in self.rule[start:stop].tolist()],
                ',"action":', list(map(action_json.__getitem__,
                                       self.action[start:stop].tolist())),
                ',"queue":"', s.json("fac_ids", self.queue[start:stop]),
                '","auto_cancel_date":', _scalars_json(self.auto_cancel_date[start:stop]),
                "}"], stop - start).encode()


class InventoryColumns(_Block):
    """The run's `inventory_after` (result.InventoryAfter), by column: facilities and
    products as indexes into their id lists, the ATP left."""

    KEYS = ("facility", "product", "atp")

    def __init__(self, fac_ids: list[str], prod_ids: list[str], facility: np.ndarray,
                 product: np.ndarray, atp: np.ndarray) -> None:
        self.fac_ids, self.prod_ids = fac_ids, prod_ids
        self.facility, self.product, self.atp = facility, product, atp

    def __len__(self) -> int:
        return len(self.facility)

    def _columns(self) -> dict:
        """How to read each field, for rows ``start`` to ``stop``."""
        return {"facility": lambda start, stop: map(self.fac_ids.__getitem__,
                                                    self.facility[start:stop].tolist()),
                "product": lambda start, stop: map(self.prod_ids.__getitem__,
                                                   self.product[start:stop].tolist()),
                "atp": lambda start, stop: numbers(self.atp[start:stop])}

    def json_chunks(self):
        columns = self._columns()
        for start in range(0, len(self), CHUNK):
            stop = min(start + CHUNK, len(self))
            yield _rows_json([
                '{"facility":"', _inner_json(list(columns["facility"](start, stop))),
                '","product":"', _inner_json(list(columns["product"](start, stop))),
                '","atp":', _numbers_json(self.atp[start:stop]), "}"], stop - start).encode()
