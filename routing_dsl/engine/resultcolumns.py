"""The fast engine's result rows as columns: one block per routing run for the run's
`allocations` and one for its `unfillable` items (runtime.rows.ResultRows holds them).

A block keeps the kernel's output columns (items, facilities and rules as integer indexes,
quantities and distances as floats) and the few strings made per row while routing (new ship
group ids, auto-cancel dates), with the run's tables of ids. It makes its rows' dictionaries
only when a reader asks (`rows`), and writes its rows as JSON straight from the columns
(`json_chunks`) through a compiled loop (engine.jsonrows): the run's ids encoded once as orjson
writes them (escaped by orjson where it would escape), whole quantities and rounded distances
formatted in the loop, the rare other values (fractions, shipping figures, dates) written by
orjson and copied, so the bytes are those orjson writes for the dictionaries
(tests/test_result_columns.py holds both to the same bytes).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from itertools import repeat

import numpy as np
import orjson

from ..criteria.text import number
from ..runtime.rows import CHUNK
from .jsonrows import CENTS, INT, LOCAL, EntryTable, rows_json

_dumps = orjson.dumps


class RunStrings:
    """The run's ids a row names, by index: per order line (its order, ship group, item and
    product) and per facility. Shared by every block of a run."""

    def __init__(self, order_ids: list[str], sg_ids: list[str], item_ids: list[str],
                 product_ids: list[str], fac_ids: list[str]) -> None:
        self.order_ids, self.sg_ids, self.item_ids = order_ids, sg_ids, item_ids
        self.product_ids, self.fac_ids = product_ids, fac_ids
        self._json: dict[str, tuple] = {}

    def entries(self) -> tuple[EntryTable, dict[str, int]]:
        """The five tables' ids as orjson writes them (without quotes), in one table, and
        where each table starts in it: what jsonrows.write_rows picks from."""
        known = self._json.get("entries")
        if known is None:
            names = ("order_ids", "sg_ids", "item_ids", "product_ids", "fac_ids")
            table, bases = EntryTable.joined([EntryTable(_inner_json(getattr(self, name)))
                                              for name in names])
            known = self._json["entries"] = (table, dict(zip(names, bases, strict=True)))
        return known

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


class _Rows:
    """``n`` rows as JSON through a template (jsonrows.rows_json): the text every row has
    (`text`) between fields, each a column: ids of the run's tables (`ids`), entries of a
    small table (`pick`), texts made per row (`each`), numbers (`numbers`, `distances`)."""

    def __init__(self, strings: RunStrings | None, n: int) -> None:
        self.n = n
        self.run, self.bases = strings.entries() if strings is not None else (None, {})
        self.literals, self.kinds, self.widths, self.columns, self.texts = [""], [], [], [], []

    def text(self, text: str) -> None:
        self.literals[-1] += text

    def _field(self, kind: int, column: np.ndarray, width: int = 0) -> None:
        self.kinds.append(kind)
        self.widths.append(width)
        self.columns.append(column)
        self.literals.append("")

    def ids(self, table: str, indexes: np.ndarray) -> None:
        self._field(*self.run.field(self.bases[table], indexes))

    def pick(self, texts: list[str], indexes: np.ndarray) -> None:
        """Entry ``indexes[r]`` of ``texts`` in row r."""
        self._field(LOCAL, indexes + len(self.texts))
        self.texts.extend(texts)

    def each(self, texts: list[str]) -> None:
        self.pick(texts, np.arange(self.n))

    def numbers(self, values: np.ndarray) -> None:
        """`numbers` of each value as orjson writes it."""
        if _whole(values).all():
            self._field(INT, values.astype(np.int64))
        else:
            self.each(_scalars_json(numbers(values)))

    def distances(self, values: np.ndarray) -> None:
        """`rounded` of each value as orjson writes it (NaN: null)."""
        result = rounded(values)
        if (np.abs(result) < 1e7).all() and not (np.signbit(result) & (result == 0)).any():
            self._field(CENTS, np.rint(result * 100).astype(np.int64))
        else:
            self.each(_array_json(result))

    def json(self) -> bytes:
        columns = np.array(self.columns, np.int64).reshape(len(self.columns), self.n)
        return rows_json([piece.encode() for piece in self.literals], self.kinds, self.widths,
                         columns,
                         self.run if self.run is not None else EntryTable([]),
                         EntryTable(self.texts))


def _text(value) -> str:
    return _dumps(value).decode()


class _Block(ABC):
    """What every block does from its ``_columns`` (how to read each field of ``KEYS``, in
    that order, for rows ``start`` to ``stop``: iterables as long as the rows, or endless
    repeats)."""

    KEYS: tuple[str, ...] = ()

    @abstractmethod
    def _columns(self) -> dict:
        """How to read each field of ``KEYS``, by field (every block has its own)."""

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

    def _line_chunks(self):
        """Each chunk of ``CHUNK`` rows as (``start``, ``stop``, its writer), the writer
        holding each row's opening and the line's four ids: how every line block's JSON
        begins."""
        for start in range(0, len(self), CHUNK):
            stop = min(start + CHUNK, len(self))
            rows = self.item[start:stop]
            out = _Rows(self.strings, stop - start)
            for key, table in (("order", "order_ids"), ("ship_group", "sg_ids"),
                               ("item", "item_ids"), ("product", "product_ids")):
                out.text(('{"' if key == "order" else '","') + key + '":"')
                out.ids(table, rows)
            yield start, stop, out


class AllocationColumns(_LineBlock):
    """A routing run's allocations (result.Allocation), by column."""

    KEYS = ("order", "ship_group", "item", "product", "facility", "quantity", "new_ship_group",
            "group", "routing", "rule", "distance", "distance_unit", "shipping_cost",
            "transit_days", "delivery_date")

    def __init__(self, strings: RunStrings, item: np.ndarray, facility: np.ndarray,
                 quantity: np.ndarray, new_ship_group: list[str] | np.ndarray, group: str,
                 routing: str,
                 rule: np.ndarray, rule_names: list[str], distance_units: list[str],
                 distance: np.ndarray, shipping: tuple[list, list, list] | None) -> None:
        self.strings = strings
        self.item, self.facility, self.quantity, self.rule, self.distance = (
            item, facility, quantity, rule, distance)
        # the new ship groups' ids, or their numbers (an id is the row's ship group's id, a
        # dash and the number: made when a row is asked for, written by the loop)
        self.new_ship_group = new_ship_group
        self.group, self.routing = group, routing
        self.rule_names, self.distance_units = rule_names, distance_units
        self.shipping = shipping  # (costs, transit days, delivery dates) per row, or None

    def _new_ship_groups(self, start: int, stop: int) -> list[str]:
        if not isinstance(self.new_ship_group, np.ndarray):
            return self.new_ship_group[start:stop]
        ids = map(self.strings.sg_ids.__getitem__, self.item[start:stop].tolist())
        return [f"{sg}-{number}" for sg, number in zip(
            ids, self.new_ship_group[start:stop].tolist(), strict=True)]

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
            "new_ship_group": self._new_ship_groups,
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
        rule_json = [_text(name) for name in self.rule_names]
        unit_json = [_text(unit) for unit in self.distance_units]
        fixed = '","group":' + _text(self.group) + ',"routing":' + _text(self.routing)
        for start, stop, out in self._line_chunks():
            rules = self.rule[start:stop]
            out.text('","facility":"')
            out.ids("fac_ids", self.facility[start:stop])
            out.text('","quantity":')
            out.numbers(self.quantity[start:stop])
            out.text(',"new_ship_group":"')
            if isinstance(self.new_ship_group, np.ndarray):
                out.ids("sg_ids", self.item[start:stop])
                out.text("-")
                out.numbers(self.new_ship_group[start:stop])
            else:
                out.each(_inner_json(self.new_ship_group[start:stop]))
            out.text(fixed + ',"rule":')
            out.pick(rule_json, rules)
            out.text(',"distance":')
            out.distances(self.distance[start:stop])
            out.text(',"distance_unit":')
            out.pick(unit_json, rules)
            for key, k in (("shipping_cost", 0), ("transit_days", 1), ("delivery_date", 2)):
                out.text(f',"{key}":')
                if self.shipping:
                    out.each(_scalars_json(self.shipping[k][start:stop]))
                else:
                    out.text("null")
            out.text("}")
            yield out.json()


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
        rule_json = [_text(name) for name in self.rule_names] + ["null"]
        action_json = [_text(name) for name in self.action_names]
        fixed = ',"routing":' + _text(self.routing) + ',"rule":'
        for start, stop, out in self._line_chunks():
            rules = self.rule[start:stop]
            out.text('","quantity":')
            out.numbers(self.quantity[start:stop])
            out.text(fixed)
            out.pick(rule_json, np.where(rules >= 0, rules, len(rule_json) - 1))
            out.text(',"action":')
            out.pick(action_json, self.action[start:stop])
            out.text(',"queue":"')
            out.ids("fac_ids", self.queue[start:stop])
            out.text('","auto_cancel_date":')
            out.each(_scalars_json(self.auto_cancel_date[start:stop]))
            out.text("}")
            yield out.json()


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
        facilities = EntryTable(_inner_json(self.fac_ids))
        products = EntryTable(_inner_json(self.prod_ids))
        table, (fac_base, prod_base) = EntryTable.joined([facilities, products])
        for start in range(0, len(self), CHUNK):
            stop = min(start + CHUNK, len(self))
            out = _Rows(None, stop - start)
            out.run, out.bases = table, {"fac_ids": fac_base, "prod_ids": prod_base}
            out.text('{"facility":"')
            out.ids("fac_ids", self.facility[start:stop])
            out.text('","product":"')
            out.ids("prod_ids", self.product[start:stop])
            out.text('","atp":')
            out.numbers(self.atp[start:stop])
            out.text("}")
            yield out.json()
