"""The reservation ledger: what committed decisions took and changed, applied to the source
until the source reflects it.

Every committed decision and batch writes one ledger line per outbox row, in its own
transaction: an **allocation** takes stock at a facility, opens a shipment there (a daily
order count) and allocates part of an order line; a **move_to_queue** parks an item in a
queue; a **set_auto_cancel** or **clear_auto_cancel** changes its auto-cancel date. What a
decision sees is the source's data with every line the source does not reflect yet applied
(`apply`), so neither a restart, another process nor a stale export can promise a unit twice.

**The reflection rule.** A line is reflected (no longer applied) by a source read once its
outbox row was acknowledged before both the moment the read began (the run store's clock,
taken just before reading) and the snapshot's own ``now``, to the whole second
(`reflection_cutoff`). A static file or an old export (``now`` in the past) reflects nothing
acknowledged after it was made; a live export reflects what the OMS applied and acknowledged
before it was read. A line acknowledged later stays applied until the next read.

This module is pure: the lines come from the run store, the snapshot from a source.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import msgspec
import orjson
from pydantic import BaseModel

from ..validation import parse_moment

# What an OMS must do for each unfilled item, by the action routing took.
OUTBOX_KIND = {"moved": "move_to_queue", "auto_cancel_set": "set_auto_cancel",
               "auto_cancel_cleared": "clear_auto_cancel"}
_KEEP = object()  # an item whose auto-cancel date no line changed


def reflection_cutoff(read_at: datetime, now: datetime) -> datetime:
    """Acknowledgements before this instant are reflected by a source read at ``read_at``
    whose data is as of ``now``: the earlier of the two, down to the whole second (an
    acknowledgement stamped to the second within it counts as after it)."""
    return min(read_at.astimezone(UTC), now.astimezone(UTC)).replace(microsecond=0)


def local_day(snapshot) -> str:
    """The snapshot's date in its time zone: the day its facilities' order counts are of."""
    return snapshot.now.astimezone(ZoneInfo(snapshot.timezone)).date().isoformat()


@dataclass(frozen=True)
class Line:
    """One ledger row."""

    id: int
    product_store: str
    kind: str
    order: str
    ship_group: str
    item: str
    product: str
    facility: str | None
    quantity: float
    opens: bool
    day: str
    auto_cancel_date: str | None


@dataclass
class ItemEffect:
    allocated: float = 0.0
    queue: str | None = None
    auto_cancel: object = _KEEP  # an ISO date, None (cleared), or _KEEP


@dataclass
class Effects:
    """What a set of unreflected lines does to the source: stock taken per (facility,
    product), orders counted per facility today, and per order line the quantity allocated,
    the queue it waits in and its auto-cancel date."""

    today: str
    taken: dict = field(default_factory=lambda: defaultdict(float))
    counted: dict = field(default_factory=lambda: defaultdict(int))
    items: dict = field(default_factory=dict)  # (order, ship group, item) -> ItemEffect
    orders: set = field(default_factory=set)

    def add(self, line: Line) -> None:
        """Apply one more line (lines of an order come in the order they were written)."""
        key = (line.order, line.ship_group, line.item)
        effect = self.items.get(key)
        if effect is None:
            effect = self.items[key] = ItemEffect()
            self.orders.add(line.order)
        if line.kind == "allocation":
            self.taken[(line.facility, line.product)] += line.quantity
            if line.opens and line.day == self.today:
                self.counted[line.facility] += 1
            effect.allocated += line.quantity
        elif line.kind == "move_to_queue":
            effect.queue = line.facility
        elif line.kind == "set_auto_cancel":
            effect.auto_cancel = line.auto_cancel_date
        elif line.kind == "clear_auto_cancel":
            effect.auto_cancel = None
        else:
            raise ValueError(f"unknown ledger line kind {line.kind!r}")

    def extend(self, lines: Iterable[Line]) -> Effects:
        for line in lines:
            self.add(line)
        return self

    def __bool__(self) -> bool:
        return bool(self.items)


# ---- applying effects to a snapshot ---------------------------------------------------------

def apply(snapshot, effects: Effects):
    """The snapshot as the ledger says it is: stock less what was taken, daily counts with
    today's shipments, order lines less what was allocated, items in the queues they were
    moved to and with the auto-cancel dates they were given."""
    if not effects:
        return snapshot
    update = {}
    if effects.taken:
        update["inventory"] = snapshot.inventory.less(effects.taken)
    if effects.counted:
        counted = effects.counted
        update["facilities"] = [
            f.model_copy(update={"orders_today": f.orders_today + counted[f.id]})
            if f.id in counted and not f.virtual else f for f in snapshot.facilities]
    touched = effects.orders
    update["orders"] = [apply_order(o, effects) if o.id in touched else o
                        for o in snapshot.orders]
    return snapshot.model_copy(update=update)


def replace_fields(value, **changes):
    """A copy of a model (pydantic) or a record (msgspec struct) with ``changes``."""
    if isinstance(value, BaseModel):
        return value.model_copy(update=changes)
    return msgspec.structs.replace(value, **changes)


def apply_order(order, effects: Effects):
    """``order`` with its lines' allocated quantities cancelled out (the ordered quantity,
    which shares adjustments, stays), its items in the queues they were moved to (a ship
    group whose items wait in two queues becomes one ship group per queue, with the same
    id), and their auto-cancel dates."""
    groups = []
    for group in order.ship_groups:
        by_queue: dict[str, list] = {}
        for item in group.items:
            effect = effects.items.get((order.id, group.id, item.id))
            queue = group.facility
            if effect is not None:
                changes = {}
                if effect.allocated:
                    changes["cancel_quantity"] = min(item.quantity,
                                                     item.cancel_quantity + effect.allocated)
                if effect.auto_cancel is not _KEEP:
                    changes["auto_cancel_date"] = None if effect.auto_cancel is None else \
                        parse_moment(effect.auto_cancel)
                if changes:
                    item = replace_fields(item, **changes)
                queue = effect.queue or queue
            by_queue.setdefault(queue, []).append(item)
        for queue, items in by_queue.items():
            groups.append(replace_fields(group, facility=queue, items=type(group.items)(items)))
    return replace_fields(order, ship_groups=type(order.ship_groups)(groups))


# ---- what a result writes -------------------------------------------------------------------

@dataclass
class ItemState:
    """An order line as the routing saw it: where it waits, what is open, its auto-cancel."""

    queue: str
    open: float
    auto_cancel: datetime | None


def item_states(orders, wanted: set[str] | None = None) -> dict[tuple, ItemState]:
    """The state of every line of ``orders`` (of those in ``wanted`` when given)."""
    states = {}
    for order in orders:
        if wanted is not None and order.id not in wanted:
            continue
        for group in order.ship_groups:
            for item in group.items:
                states[(order.id, group.id, item.id)] = ItemState(
                    group.facility, item.quantity - item.cancel_quantity, item.auto_cancel_date)
    return states


@dataclass
class Decisions:
    """What one batch writes beside its own rows: the history of moves, and one outbox row
    with its ledger line per decision the OMS must apply."""

    history: list[dict] = field(default_factory=list)
    outbox: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)  # one per outbox row, in its order


def _json(decision: dict) -> str:
    return orjson.dumps(decision, option=orjson.OPT_SORT_KEYS).decode("utf-8")


def _dedupe(*parts) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def _same_instant(iso: str | None, value: datetime | None) -> bool:
    if iso is None or value is None:
        return iso is None and value is None
    return parse_moment(iso) == value


def decisions(group: str, allocations: list[dict], unfillable: list[dict],
              states: dict[tuple, ItemState], *, product_store: str, day: str,
              at: datetime) -> Decisions:
    """The decisions of one group's result, taken on the lines in ``states`` (updated as it
    goes, so groups run one after another chain). A decision that changes nothing is left
    out: a move to the queue an item already waits in, an auto-cancel date it already has,
    or clearing one it does not have; no row of any kind is written for it."""
    out = Decisions()
    opened: set[tuple[str, str]] = set()
    for a in allocations:
        key = (a["order"], a["ship_group"], a["item"])
        state = states[key]
        shipment = (a["order"], a["new_ship_group"])
        opens = shipment not in opened
        opened.add(shipment)
        out.history.append({"order_id": a["order"], "ship_group": a["ship_group"],
                            "item": a["item"], "from_facility": state.queue,
                            "to_facility": a["facility"], "quantity": a["quantity"],
                            "group_name": group, "routing": a["routing"], "rule": a["rule"],
                            "reason": "allocated", "at": at})
        out.outbox.append({"kind": "allocation", "order_id": a["order"],
                           "payload": _json(a), "created": at,
                           "dedupe": _dedupe("allocation", *key, a["facility"], state.queue,
                                             state.open)})
        out.lines.append({"product_store": product_store, "kind": "allocation",
                          "order_id": a["order"], "ship_group": a["ship_group"],
                          "item": a["item"], "product": a["product"],
                          "facility": a["facility"], "quantity": a["quantity"],
                          "opens": opens, "day": day, "auto_cancel_date": None,
                          "created": at})
        state.open -= a["quantity"]
        state.auto_cancel = None
    for u in unfillable:
        kind = OUTBOX_KIND.get(u["action"])
        if kind is None:
            continue
        key = (u["order"], u["ship_group"], u["item"])
        state = states[key]
        if kind == "move_to_queue":
            if u["queue"] == state.queue:
                continue  # parked there already: not moved again
            target, before = u["queue"], state.queue
        else:
            if _same_instant(u["auto_cancel_date"], state.auto_cancel):
                continue
            target, before = u["auto_cancel_date"], state.auto_cancel
        if kind == "move_to_queue":
            out.history.append({"order_id": u["order"], "ship_group": u["ship_group"],
                                "item": u["item"], "from_facility": state.queue,
                                "to_facility": u["queue"], "quantity": u["quantity"],
                                "group_name": group, "routing": u["routing"],
                                "rule": u["rule"], "reason": "moved_to_queue", "at": at})
        out.outbox.append({"kind": kind, "order_id": u["order"],
                           "payload": _json(u), "created": at,
                           "dedupe": _dedupe(kind, *key, target, before, u["quantity"])})
        out.lines.append({"product_store": product_store, "kind": kind,
                          "order_id": u["order"], "ship_group": u["ship_group"],
                          "item": u["item"], "product": u["product"],
                          "facility": u["queue"] if kind == "move_to_queue" else None,
                          "quantity": u["quantity"], "opens": False, "day": day,
                          "auto_cancel_date": u["auto_cancel_date"], "created": at})
        if kind == "move_to_queue":
            state.queue = u["queue"]
        else:
            state.auto_cancel = None if u["auto_cancel_date"] is None else \
                parse_moment(u["auto_cancel_date"])
    return out
