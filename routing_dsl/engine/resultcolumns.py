"""The fast engine's result rows as columns: one block per routing run for the run's
`allocations` and one for its `unfillable` items (runtime.rows.ResultRows holds them).

A block keeps the kernel's output columns (items, facilities and rules as integer indexes,
quantities and distances as floats) and the few strings made per row while routing (new ship
group ids, auto-cancel dates), with the run's tables of ids. It makes its rows' dictionaries
only when a reader asks (`rows`), and writes its rows as JSON straight from the columns
(`json_chunks`): each id encoded by orjson, each column of numbers by orjson as a list, the
pieces put into the row's fixed shape by one bytes format per row, so the bytes are those
orjson writes for the dictionaries (the writer's tests hold both to the same bytes).
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
        self._fac_json: list[bytes] | None = None

    def fac_json(self) -> list[bytes]:
        if self._fac_json is None:
            self._fac_json = [_dumps(f) for f in self.fac_ids]
        return self._fac_json

    def __getstate__(self) -> dict:  # the encoded ids are made again where needed
        return {**self.__dict__, "_fac_json": None}


def numbers(values: np.ndarray) -> list:
    """`criteria.text.number` of each value; whole numbers (nearly all quantities) at numpy
    speed."""
    whole = (np.floor(values) == values) & (np.abs(values) < 2.0 ** 53)
    ints = np.where(whole, values, 0).astype(np.int64).tolist()
    return [i if w else number(v) for i, v, w in zip(ints, values.tolist(), whole.tolist(),
                                                       strict=True)]


def _distances(values: np.ndarray) -> list:
    return [None if d != d else round(d, 2) for d in values.tolist()]


def _scalars_json(values: list) -> list[bytes]:
    """Each of ``values`` (numbers, None, or strings without commas or quotes) as orjson
    writes it."""
    return _dumps(values)[1:-1].split(b",") if values else []


def _ids_json(table: list[str], indexes: list[int]) -> list[bytes]:
    return list(map(_dumps, map(table.__getitem__, indexes)))


def _constant(value) -> bytes:
    """A value fixed for the block, for a bytes format (`%` doubled)."""
    return _dumps(value).replace(b"%", b"%%")


class AllocationColumns:
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

    def __len__(self) -> int:
        return len(self.item)

    def _columns(self, start: int, stop: int) -> dict[str, object]:
        s = self.strings
        items = self.item[start:stop].tolist()
        rules = self.rule[start:stop].tolist()
        n = len(items)
        costs, transits, deliveries = (
            (column[start:stop] for column in self.shipping) if self.shipping
            else (repeat(None, n), repeat(None, n), repeat(None, n)))
        return {
            "order": map(s.order_ids.__getitem__, items),
            "ship_group": map(s.sg_ids.__getitem__, items),
            "item": map(s.item_ids.__getitem__, items),
            "product": map(s.product_ids.__getitem__, items),
            "facility": map(s.fac_ids.__getitem__, self.facility[start:stop].tolist()),
            "quantity": numbers(self.quantity[start:stop]),
            "new_ship_group": self.new_ship_group[start:stop],
            "group": repeat(self.group, n), "routing": repeat(self.routing, n),
            "rule": map(self.rule_names.__getitem__, rules),
            "distance": _distances(self.distance[start:stop]),
            "distance_unit": map(self.distance_units.__getitem__, rules),
            "shipping_cost": costs, "transit_days": transits, "delivery_date": deliveries,
        }

    def rows(self, start: int, stop: int) -> list[dict]:
        keys = self.KEYS
        return [dict(zip(keys, values, strict=True))
                for values in zip(*self._columns(start, stop).values(), strict=False)]

    def field(self, name: str) -> list:
        return list(self._columns(0, len(self))[name])

    def json_chunks(self):
        s = self.strings
        fac_json = s.fac_json()
        rule_json = [_dumps(name) for name in self.rule_names]
        unit_json = [_dumps(unit) for unit in self.distance_units]
        shape = (b'{"order":%b,"ship_group":%b,"item":%b,"product":%b,"facility":%b,'
                 b'"quantity":%b,"new_ship_group":%b,"group":' + _constant(self.group)
                 + b',"routing":' + _constant(self.routing)
                 + b',"rule":%b,"distance":%b,"distance_unit":%b,"shipping_cost":%b,'
                 b'"transit_days":%b,"delivery_date":%b}')
        for start in range(0, len(self), CHUNK):
            stop = min(start + CHUNK, len(self))
            items = self.item[start:stop].tolist()
            rules = self.rule[start:stop].tolist()
            n = len(items)
            if self.shipping:
                costs, transits, deliveries = (
                    _scalars_json(column[start:stop]) for column in self.shipping)
            else:
                costs, transits, deliveries = (repeat(b"null", n), repeat(b"null", n),
                                               repeat(b"null", n))
            yield b",".join(map(shape.__mod__, zip(
                _ids_json(s.order_ids, items), _ids_json(s.sg_ids, items),
                _ids_json(s.item_ids, items), _ids_json(s.product_ids, items),
                map(fac_json.__getitem__, self.facility[start:stop].tolist()),
                _scalars_json(numbers(self.quantity[start:stop])),
                map(_dumps, self.new_ship_group[start:stop]),
                map(rule_json.__getitem__, rules),
                _scalars_json(_distances(self.distance[start:stop])),
                map(unit_json.__getitem__, rules), costs, transits, deliveries, strict=False)))


class UnfillableColumns:
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

    def __len__(self) -> int:
        return len(self.item)

    def _rule_names(self, rules: list[int]) -> list:
        names = self.rule_names
        return [names[r] if r >= 0 else None for r in rules]

    def _columns(self, start: int, stop: int) -> dict[str, object]:
        s = self.strings
        items = self.item[start:stop].tolist()
        return {
            "order": map(s.order_ids.__getitem__, items),
            "ship_group": map(s.sg_ids.__getitem__, items),
            "item": map(s.item_ids.__getitem__, items),
            "product": map(s.product_ids.__getitem__, items),
            "quantity": numbers(self.quantity[start:stop]),
            "routing": repeat(self.routing, len(items)),
            "rule": self._rule_names(self.rule[start:stop].tolist()),
            "action": map(self.action_names.__getitem__, self.action[start:stop].tolist()),
            "queue": map(s.fac_ids.__getitem__, self.queue[start:stop].tolist()),
            "auto_cancel_date": self.auto_cancel_date[start:stop],
        }

    def rows(self, start: int, stop: int) -> list[dict]:
        keys = self.KEYS
        return [dict(zip(keys, values, strict=True))
                for values in zip(*self._columns(start, stop).values(), strict=False)]

    def field(self, name: str) -> list:
        return list(self._columns(0, len(self))[name])

    def json_chunks(self):
        s = self.strings
        fac_json = s.fac_json()
        rule_json = [_dumps(name) for name in self.rule_names]
        action_json = [_dumps(name) for name in self.action_names]
        shape = (b'{"order":%b,"ship_group":%b,"item":%b,"product":%b,"quantity":%b,'
                 b'"routing":' + _constant(self.routing)
                 + b',"rule":%b,"action":%b,"queue":%b,"auto_cancel_date":%b}')
        for start in range(0, len(self), CHUNK):
            stop = min(start + CHUNK, len(self))
            items = self.item[start:stop].tolist()
            yield b",".join(map(shape.__mod__, zip(
                _ids_json(s.order_ids, items), _ids_json(s.sg_ids, items),
                _ids_json(s.item_ids, items), _ids_json(s.product_ids, items),
                _scalars_json(numbers(self.quantity[start:stop])),
                [rule_json[r] if r >= 0 else b"null" for r in self.rule[start:stop].tolist()],
                map(action_json.__getitem__, self.action[start:stop].tolist()),
                map(fac_json.__getitem__, self.queue[start:stop].tolist()),
                map(_dumps, self.auto_cancel_date[start:stop]), strict=True)))
