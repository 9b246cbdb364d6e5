"""The run: a plan on a snapshot, group by group and routing by routing, into the result
document (routing-result/1).

It owns the run's records and the walk over the plan: which groups and routings run (the
store's brokering switch, its queues, `active` windows), each routing's record, the choice
between the rules and batch optimisation (routing_dsl.optimize), new ship group ids, warnings
and the result document. What happens inside a routing is the allocator's
(runtime.protocol.Allocator): the reference one (runtime.allocation) unless another is given.
Nothing reads the clock or iterates an unordered collection into the output: the same plan
and snapshot give the same bytes.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ..plan import Plan, PlanGroup, PlanRouting
from ..shipping import RunTotals, attach_totals
from ..snapshot import Snapshot
from .allocation import ReferenceAllocator
from .protocol import Allocator
from .rows import ResultRows
from .state import Context, Prepared, RunError
from .stock import LiveStock
from .units import absent_queues, in_force

RESULT_FORMAT = "routing-result/1"


class Run:
    """One run of a plan on a snapshot: its context (runtime.state) and its records (the
    result's allocations, unfillable items, explanations, totals and warnings, new ship
    groups, the facilities each ship group ships from), with an allocator deciding each
    routing (runtime.protocol.Allocator; the reference one unless ``allocator`` names another
    factory; ``context`` likewise makes the context, an engine's own Context subclass). `run`
    walks the plan's groups and routings and returns the result document; `spans` and
    `warnings` (by key) are what scale-out merges partitions' runs by."""

    context_class = Context

    def __init__(self, plan: Plan, snapshot: Snapshot, explain: bool, explain_orders,
                 explain_facilities=None, prepared: Prepared | None = None,
                 live: LiveStock | None = None, after: bool = True, *,
                 context: Callable[..., Context] | None = None,
                 allocator: Callable[[Run], Allocator] | None = None):
        self.plan = plan
        self.prepared = prepared or Prepared()
        self.ctx = (context or self.context_class)(snapshot, prepared, live)
        self.after = after
        self.explain = explain
        self.explain_orders = explain_orders
        self.explain_facilities = frozenset(explain_facilities or ())
        # a sequence of row dictionaries to every reader, kept as columns by the fast engine
        self.allocations = ResultRows()
        self.unfillable = ResultRows()
        self.explanations: list[dict] = []
        self.warnings: dict[str, str] = {}
        self.allocated_atp: dict[tuple[str, str], float] = defaultdict(float)
        self.optimizations: list[dict] = []  # one section per optimised routing run
        self.totals: dict[tuple[str, str], RunTotals] = defaultdict(RunTotals)
        # New ship groups are named after the one they split from (`00001-1`, `00001-2`):
        # ids are opaque, so nothing parses them; an id already in the order is skipped.
        self.next_ship_group: dict[tuple[str, str], int] = {}
        self.taken_ship_groups = _TakenIds(snapshot.orders)
        # the facilities each ship group (order, ship group id) got stock from in this run,
        # in the order they were first chosen: what `max_facilities` counts
        self.used: dict[tuple[str, str], list[str]] = defaultdict(list)
        # (group, store, routing) of the routing runs after the current one
        self.later: list[tuple[str, str, PlanRouting]] = []
        self.allocator: Allocator = (allocator or ReferenceAllocator)(self)

    def run(self, group_name: str | frozenset[str] | None, routing_name: str | None,
            progress) -> dict:
        """Route the groups named (all when None; one name, or a set) and the routing named
        (all when None); ``progress`` is called with the number of units routed."""
        wanted = frozenset([group_name]) if isinstance(group_name, str) else group_name
        batches = []
        # where each group's allocations and unfillable items start (scale-out merges by it)
        self.spans: dict[str, tuple[int, int]] = {}
        # every routing run in order first: an optimised routing looks at what the routings
        # after it would fill (optimize.run, "never fewer units than the rules")
        schedule: list[tuple[dict, PlanGroup, str, list[PlanRouting]]] = []
        for group in self.plan.groups:
            if wanted is not None and group.name not in wanted:
                continue
            store = next((s for s in self.ctx.snapshot.product_stores
                          if s.id == group.product_store), None)
            batch = {"group": group.name, "product_store": group.product_store, "runs": []}
            if store is None:
                batch["skipped"] = f"product store {group.product_store!r} is not in the snapshot"
            elif not store.enable_brokering:
                batch["skipped"] = "brokering is disabled for this product store"
            routings = []
            if "skipped" not in batch:
                zone = ZoneInfo(group.timezone) if group.timezone else self.ctx.zone
                routings = [r for r in (in_force(routing, self.ctx.now, zone)
                                        for routing in group.routings
                                        if routing_name is None or routing.name == routing_name)
                            if r is not None]  # outside its window, or every rule is: as if draft
            schedule.append((batch, group, store.id if store else "", routings))
        self.later = [(group.name, store, routing) for _, group, store, routings in schedule
                      for routing in routings]
        for batch, group, store_id, routings in schedule:
            self.spans[group.name] = (len(self.allocations), len(self.unfillable))
            batches.append(batch)
            if "skipped" in batch:
                continue
            queues = self.prepared.static.get(("queues", store_id))
            if queues is None:  # whether the store has a queue: once per set of facilities
                queues = self.prepared.static[("queues", store_id)] = any(
                    f.virtual and store_id in f.stores for f in self.ctx.facilities.values())
            if not queues:
                self.warnings[f"queue:{group.name}"] = (
                    f"group {group.name!r}: store {store_id!r} has no queue in the snapshot (a "
                    f"facility with \"virtual\": true and {store_id!r} in its product_stores), "
                    "so none of its orders can be routed")
            for routing in routings:
                self.later.pop(0)
                batch["runs"].append(self.routing(group.name, store_id, routing, progress))
            if batch["runs"] and not any(run["attempted_items"] for run in batch["runs"]):
                absent = absent_queues(group, self.ctx.facilities)
                self.warnings[f"eligible:{group.name}"] = (
                    f"group {group.name!r}: nothing to route: " + absent if absent
                    else f"group {group.name!r}: no ship group was eligible (approved, waiting "
                         f"in a queue of store {store_id!r}, and passing a routing's filter)")
        return self.result(batches)

    def routing(self, group_name: str, store: str, routing: PlanRouting, progress) -> dict:
        """One routing run: its record (items attempted and brokered, or its error)."""
        record = {"routing": routing.name, "attempted_items": 0, "brokered_items": 0,
                  "error": None}
        try:
            self.validate_routing(routing, store)
        except RunError as error:
            record["error"] = str(error)
            return record
        units = self.allocator.select_units(store, routing)
        record["attempted_items"] = self.allocator.count_items(units)
        if routing.optimize is not None:
            from ..optimize.run import optimise_routing
            record["brokered_items"] = optimise_routing(self, group_name, store, routing, units,
                                                        progress)
        else:
            record["brokered_items"] = self.allocator.route_units(group_name, store, routing,
                                                                  units, progress)
        return record

    def validate_routing(self, routing: PlanRouting, store: str) -> None:
        """Raise RunError for what the routing cannot run with on this snapshot: a rule
        moving items to a queue the snapshot does not have."""
        for rule in routing.rules:
            queue = rule.actions.move_to_queue
            if queue is None:
                continue
            info = self.ctx.facilities.get(queue)
            where = f" ({rule.source.label()})" if rule.source else ""
            if info is None:
                raise RunError(f"rule {rule.name!r} moves items to queue {queue!r}, which is not "
                               f"a facility in the snapshot{where}")
            if not info.virtual:
                raise RunError(f"rule {rule.name!r} moves items to {queue!r}, which is not a "
                               f"queue (virtual facility){where}")

    def warn_facility(self, facility: str) -> None:
        """Warn (once) that ``facility`` has no coordinates."""
        self.warnings.setdefault(
            f"facility:{facility}",
            f"facility {facility} has no coordinates: it fails every distance condition "
            "and sorts last on distance")

    def warn_ship_to(self, order: str, ship_group: str) -> None:
        """Warn (once) that a ship group has no ship-to coordinates."""
        self.warnings.setdefault(
            f"ship_to:{order}:{ship_group}",
            f"order {order} ship group {ship_group} has no ship-to "
            "coordinates: no facility passes its distance conditions")

    def checkpoint(self, units) -> Checkpoint:
        """What routing ``units`` may change, to be put back with `restore` (an optimised
        routing routes its batch by the rules first: their decisions are its warm start):
        the run's records here, the engine's state (stock, counts, items) by its allocator's
        `save`, in the engine's own layout."""
        engine = self.allocator.save(units)
        return Checkpoint(
            engine.stock, engine.orders_today, len(self.allocations), len(self.unfillable),
            len(self.explanations),
            (dict(self.allocated_atp), {k: copy.deepcopy(v) for k, v in self.totals.items()},
             dict(self.next_ship_group),
             {o: set(self.taken_ship_groups[o]) for o in self.allocator.orders_of(units)},
             dict(self.warnings), {k: list(v) for k, v in self.used.items()}),
            engine)

    def restore(self, saved: Checkpoint) -> None:
        """Put back what `checkpoint` saved."""
        allocated, totals, next_group, taken, warnings, used = saved.records
        self.allocator.restore(saved.engine)
        self.allocated_atp = defaultdict(float, allocated)
        del self.allocations[saved.allocations:]
        del self.unfillable[saved.unfillable:]
        del self.explanations[saved.explanations:]
        self.totals = defaultdict(RunTotals, {k: copy.deepcopy(v) for k, v in totals.items()})
        self.next_ship_group = dict(next_group)
        self.taken_ship_groups.update({o: set(g) for o, g in taken.items()})
        self.warnings = dict(warnings)
        self.used = defaultdict(list, {k: list(v) for k, v in used.items()})

    def new_ship_group(self, order_id: str, ship_group_id: str) -> str:
        """The id of the next ship group split from ``ship_group_id``."""
        return f"{ship_group_id}-{self.new_ship_group_number(order_id, ship_group_id)}"

    def new_ship_group_number(self, order_id: str, ship_group_id: str) -> int:
        """The number of the next ship group split from ``ship_group_id`` (its id is the
        ship group's, a dash and the number), taken from now on."""
        taken = self.taken_ship_groups[order_id]
        number = self.next_ship_group.get((order_id, ship_group_id), 1)
        while f"{ship_group_id}-{number}" in taken:
            number += 1
        self.next_ship_group[(order_id, ship_group_id)] = number + 1
        taken.add(f"{ship_group_id}-{number}")
        return number

    def result(self, batches: list[dict]) -> dict:
        """The result document (routing-result/1) of the groups run, ``batches``."""
        attach_totals(batches, self.totals)
        result = {"format": RESULT_FORMAT, "allocations": self.allocations,
                  "unfillable": self.unfillable, "batches": batches}
        if self.after:
            result["inventory_after"] = self.allocator.inventory_after()
            result["facility_counts_after"] = [
                {"facility": f, "orders_today": self.ctx.orders_today[f]}
                for f in sorted(self.ctx.orders_today)]
        result["warnings"] = [self.warnings[k] for k in sorted(self.warnings)]
        if self.optimizations:
            from ..optimize.report import combine
            result["optimization"] = combine(self.optimizations)
        if self.explain:
            result["explanations"] = self.explanations
        return result

@dataclass
class Checkpoint:
    """A run's state saved by `Run.checkpoint`: what the optimiser reads of the state it was
    saved at (the net stock of the units' products, product -> facility -> quantity, and the
    facilities' daily counts), where the records stood, and what `restore` puts back (the
    run's records and the engine's state, ``engine``, its allocator's own)."""

    stock: dict[str, dict[str, float]]
    orders_today: dict[str, int]
    allocations: int
    unfillable: int
    explanations: int
    records: tuple
    engine: object


class _TakenIds(dict):
    """The ship group ids each order holds (order id -> set), made when an order is first
    asked about: a run names new ship groups for a few of its orders, or none (the fast
    engine asks only where a name could be taken)."""

    def __init__(self, orders) -> None:
        super().__init__()
        self._orders = orders
        self._by_id: dict | None = None

    def __missing__(self, order_id: str) -> set[str]:
        if self._by_id is None:  # the last order of an id, as a dictionary of them keeps
            self._by_id = {o.id: o for o in self._orders}
        taken = self[order_id] = {g.id for g in self._by_id[order_id].ship_groups}
        return taken


def run_plan(plan: Plan, snapshot: Snapshot, *, group: str | frozenset[str] | None = None,
             routing: str | None = None, explain: bool = False,
             explain_orders: set[str] | None = None,
             explain_facilities: set[str] | None = None, progress=None,
             prepared: Prepared | None = None, live: LiveStock | None = None,
             after: bool = True) -> dict:
    """Run ``plan`` against ``snapshot`` and return the result document (only ``group``, or
    the groups of a set, when given). With ``explain``,
    the units of ``explain_orders`` (all when None) are explained, with full detail for the
    facilities in ``explain_facilities``. ``prepared`` carries indexes from earlier runs of
    the same plan on the same facilities (see Prepared); with ``live``, stock and daily counts
    come from it, not from the snapshot (see LiveStock). Without ``after``, the result leaves
    out `inventory_after` and `facility_counts_after` (a decision shows neither)."""
    return Run(plan, snapshot, explain, explain_orders, explain_facilities, prepared, live,
               after).run(group, routing, progress)

