"""Rejections of committed lines: a facility refuses an order line it was given (no stock on
the shelf, damaged, no staff), and routing must keep away from it.

Recording one (`reject`, under the partition lock of the order's product store, in one
transaction with its idempotency key):

- the ledger's allocation lines of that order line at that facility that still apply are
  released (`reservations.released`, as a write-back the OMS refused releases its lines): their
  stock and daily count stop being taken, and the units are open again in the ledger's view;
- the rejection is written (`rejections`): which facility, when, why, how many units;
- the answer is kept with the key (`decision_keys`): the same key again answers the same and
  changes nothing; with another request it is a conflict.

From then on every snapshot routed with the run store carries the rejection on the item
(`apply`, beside the source's own rejections, which it does not repeat), so rules can avoid the
rejecter (`not rejected within N days`) and count rejections (`rejections >= 3`). Routing the
item again at once with the live plan is the live state's (`service.state.LiveState.reject`).

A rejection names the order line as a decision answered it: order, item, facility, and
optionally the ship group (as the allocation names it). The other processes of a service see
the released stock at their next refresh of the source (until then they hold it as taken:
never more than there is).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import orjson
import sqlalchemy as sa
from pydantic import BaseModel

from . import schema as t
from .ledger import replace_fields
from .locks import COMMIT_WAIT, locked
from .store import RunStore, utc, database_now


class RejectionError(Exception):
    """A rejection that cannot be recorded as asked (the message says why)."""


class NothingCommitted(RejectionError):
    """No committed line of that order line at that facility still holds stock."""


class KeyConflict(RejectionError):
    """An idempotency key used before for another request."""


@dataclass(frozen=True)
class RejectionRequest:
    """What a facility refused: an order line (``ship_group`` as the allocation names it,
    optional) at ``facility``; ``at`` defaults to the run store's clock. With ``reroute`` the
    live state routes the item again at once, from ``queue`` (default: the queue the
    allocation took it from) when the OMS already shows it at the facility."""

    order: str
    item: str
    facility: str
    key: str
    reason: str | None = None
    ship_group: str | None = None
    at: datetime | None = None
    reroute: bool = False
    queue: str | None = None

    def digest(self) -> str:
        """What the idempotency key is held to."""
        fields = asdict(self)
        fields["at"] = None if self.at is None else self.at.astimezone(UTC).isoformat()
        return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class HeldLine:
    """A ledger allocation line of the rejected order line, still applying."""

    id: int
    batch_id: str
    product_store: str
    ship_group: str
    product: str
    quantity: float
    opens: bool
    day: str
    acked: datetime | None


@dataclass(frozen=True)
class Rejection:
    """A rejection as the run store keeps it."""

    id: int
    product_store: str
    order: str
    ship_group: str
    item: str
    product: str
    facility: str
    quantity: float
    reason: str | None
    at: datetime

    def entry(self) -> dict:
        return {"id": self.id, "order": self.order, "ship_group": self.ship_group,
                "item": self.item, "product": self.product, "facility": self.facility,
                "quantity": self.quantity, "reason": self.reason, "at": self.at.isoformat()}


# ---- reading ----------------------------------------------------------------------------------

def held_lines(connection: sa.Connection, request: RejectionRequest) -> list[HeldLine]:
    """The allocation lines of the order line at the facility that still apply, oldest
    first."""
    r, o = t.reservations.c, t.outbox.c
    query = sa.select(r.id, r.batch_id, r.product_store, r.ship_group, r.product, r.quantity,
                      r.opens, r.day, o.acked).join(t.outbox, t.outbox.c.id == r.outbox_id) \
        .where(r.kind == "allocation", r.released.is_(None), r.order_id == request.order,
               r.item == request.item, r.facility == request.facility).order_by(r.id)
    if request.ship_group is not None:
        query = query.where(r.ship_group == request.ship_group)
    return [HeldLine(row.id, row.batch_id, row.product_store, row.ship_group, row.product,
                     row.quantity, bool(row.opens), row.day,
                     None if row.acked is None else utc(_time(row.acked)))
            for row in connection.execute(query)]


def stored(connection: sa.Connection, *, orders=None, stores=None) -> list[Rejection]:
    """The recorded rejections (of ``orders``, of ``stores``, when given), oldest first."""
    c = t.rejections.c
    query = sa.select(t.rejections).order_by(c.id)
    if orders is not None:
        query = query.where(c.order_id.in_(sorted(orders)))
    if stores is not None:
        query = query.where(c.product_store.in_(sorted(stores)))
    return [Rejection(row.id, row.product_store, row.order_id, row.ship_group, row.item,
                      row.product, row.facility, row.quantity, row.reason, stored_time(row.at))
            for row in connection.execute(query)]


def history(store: RunStore, order: str) -> list[Rejection]:
    """One order's rejections, oldest first (the console's order page, `routing reject`)."""
    with store.reading() as connection:
        return stored(connection, orders=[order])


def source_queue(connection: sa.Connection, line: HeldLine, request: RejectionRequest
                 ) -> str | None:
    """The queue the allocation took the item from (its history row), if recorded."""
    h = t.history.c
    return connection.execute(
        sa.select(h.from_facility).where(
            h.batch_id == line.batch_id, h.order_id == request.order, h.item == request.item,
            h.to_facility == request.facility, h.reason == "allocated").limit(1)).scalar()


# ---- writing ----------------------------------------------------------------------------------

def record(connection: sa.Connection, request: RejectionRequest, lines: list[HeldLine]
           ) -> Rejection:
    """Write the rejection and release ``lines`` (the caller holds the partition's lock)."""
    first = lines[0]
    at = request.at.astimezone(UTC) if request.at is not None else utc(_time(
        connection.execute(sa.select(database_now(connection))).scalar()))
    quantity = sum(line.quantity for line in lines)
    identifier = connection.execute(t.rejections.insert().values(
        key=request.key, product_store=first.product_store, order_id=request.order,
        ship_group=first.ship_group, item=request.item, product=first.product,
        facility=request.facility, quantity=quantity, reason=request.reason, at=at,
        created=datetime.now(UTC)).returning(t.rejections.c.id)).scalar_one()
    connection.execute(t.reservations.update().where(
        t.reservations.c.id.in_([line.id for line in lines]),
        t.reservations.c.released.is_(None)).values(released=database_now(connection)))
    return Rejection(identifier, first.product_store, request.order, first.ship_group,
                     request.item, first.product, request.facility, quantity, request.reason,
                     at)


def known_answer(store: RunStore, request: RejectionRequest, connection=None) -> bytes | None:
    """The answer given to ``request``'s key before, or None; KeyConflict when the key was
    used for another request."""
    found = store.decision_keys([request.key], connection).get(request.key)
    if found is None:
        return None
    digest, answer = found
    if digest != request.digest():
        raise KeyConflict(f"idempotency key {request.key!r} was used for another request")
    return answer.encode("utf-8")


def keep_answer(store: RunStore, connection: sa.Connection, request: RejectionRequest,
                answer: bytes) -> None:
    """Write the key with its answer in the rejection's transaction; a key another
    transaction took meanwhile rolls it back (KeyConflict unless it is the same request)."""
    written = store.insert_keys(connection, [{"key": request.key, "order_id": request.order,
                                              "request": request.digest(),
                                              "answer": answer.decode("utf-8")}])
    if request.key not in written:
        raise KeyConflict(f"idempotency key {request.key!r} was taken by another request "
                          "meanwhile; send it again to get its answer")


def reject(store: RunStore, request: RejectionRequest, wait: float = COMMIT_WAIT) -> bytes:
    """Record a rejection without routing the item again (the CLI without a plan): returns
    the answer (JSON). Raises NothingCommitted, KeyConflict, locks.Busy."""
    answer = known_answer(store, request)
    if answer is not None:
        return answer
    with store.reading() as connection:
        lines = held_lines(connection, request)
    if not lines:
        raise _nothing(request)
    with locked(store, [lines[0].product_store], wait) as connection:
        answer = known_answer(store, request, connection)
        if answer is not None:
            return answer
        lines = held_lines(connection, request)
        if not lines:
            raise _nothing(request)
        rejection = record(connection, request, lines)
        answer = orjson.dumps({"rejection": rejection.entry(), "decision": None})
        keep_answer(store, connection, request, answer)
    return answer


def _nothing(request: RejectionRequest) -> NothingCommitted:
    where = f" ship group {request.ship_group!r}" if request.ship_group else ""
    return NothingCommitted(
        f"no committed line of order {request.order!r}{where} item {request.item!r} at "
        f"{request.facility!r} holds stock (never allocated there, or already rejected or "
        "released)")


# ---- applying them to snapshots -----------------------------------------------------------------

def read_by(plan) -> bool:
    """Whether ``plan`` looks at rejections (a criterion that reads them: the `rejections`
    filter, `not rejected within`): a run of a plan that does not is the same without them,
    so nothing is read for it."""
    from ..criteria import REGISTRY
    reading = {c.name for c in REGISTRY.all() if c.extra.get("reads_rejections")}
    return any(condition.field in reading for group in plan.groups for routing in group.routings
               for condition in [*routing.filters,
                                 *(c for rule in routing.rules for c in rule.conditions)])


def by_line(rejections) -> dict[str, dict[str, list[Rejection]]]:
    """Rejections by order, then item: an order line keeps its item id in every ship group it
    is split into, and a rejection follows it there."""
    found: dict[str, dict[str, list[Rejection]]] = defaultdict(lambda: defaultdict(list))
    for rejection in rejections:
        found[rejection.order][rejection.item].append(rejection)
    return {order: dict(items) for order, items in found.items()}


def apply(snapshot, rejections):
    """The snapshot with each recorded rejection on its item (one the item already lists,
    same facility and time, is not repeated)."""
    found = by_line(rejections)
    if not found:
        return snapshot
    return snapshot.model_copy(update={"orders": [
        apply_order(o, found) if o.id in found else o for o in snapshot.orders]})


def apply_order(order, found: dict[str, dict[str, list[Rejection]]]):
    """``order`` with the rejections of its lines in ``found`` (see by_line)."""
    lines = found.get(order.id)
    if not lines:
        return order
    groups = []
    for group in order.ship_groups:
        items = []
        for item in group.items:
            extra = lines.get(item.id)
            if extra:
                item = _with_rejections(item, extra)
            items.append(item)
        groups.append(replace_fields(group, items=type(group.items)(items)))
    return replace_fields(order, ship_groups=type(order.ship_groups)(groups))


def _with_rejections(item, extra: list[Rejection]):
    have = {(r.facility, r.at) for r in item.rejections}
    if isinstance(item, BaseModel):
        from ..snapshot import Rejection as Model
        made = [Model(facility=r.facility, at=r.at, reason=r.reason) for r in extra
                if (r.facility, r.at) not in have]
    else:
        from ..engine.columnar import RejectionRecord as Model
        made = [Model(r.facility, r.at, r.reason) for r in extra
                if (r.facility, r.at) not in have]
    if not made:
        return item
    return replace_fields(item, rejections=type(item.rejections)([*item.rejections, *made]))


def stored_time(value) -> datetime:
    """A time as the run store hands it back (text or naive on SQLite), in UTC."""
    return utc(_time(value))


def _time(value):
    # SQLite hands back text from a raw clock query, datetimes from a typed column
    return datetime.fromisoformat(value) if isinstance(value, str) else value
