"""Partitions, the work of one partition, the executors, and the merge."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..engine import choose
from ..interpreter import open_run
from ..runtime import RESULT_FORMAT
from ..plan import Plan, load_plan
from ..snapshot import Inventory, InventoryColumns, Snapshot

EXECUTORS = ("local", "process", "ray")


class ExecutorUnavailable(Exception):
    """The executor asked for cannot run here (the message says how to get it)."""


@dataclass(frozen=True)
class Partition:
    """Product stores that route together, the plan groups routing them, and the real
    facilities serving them."""

    stores: tuple[str, ...]
    groups: tuple[str, ...]
    facilities: tuple[str, ...]
    orders: int

    def to_json(self) -> dict:
        return {"stores": list(self.stores), "groups": list(self.groups),
                "facilities": len(self.facilities), "orders": self.orders}


def connected_stores(snapshot: Snapshot, stores=None) -> list[list[str]]:
    """The connected components of the store–facility graph (stores linked by the real
    facilities they share) over ``stores``, in the order of their first appearance there;
    by default over every store the snapshot names (its product stores, then its facilities'
    stores)."""
    if stores is None:
        stores = [s.id for s in snapshot.product_stores] + [
            s for f in snapshot.facilities if not f.virtual for s in f.product_stores]
    parent: dict[str, str] = {}

    def find(store: str) -> str:
        while parent.setdefault(store, store) != store:
            parent[store] = parent[parent[store]]
            store = parent[store]
        return store

    ordered = list(dict.fromkeys(stores))
    for store in ordered:
        find(store)
    for facility in snapshot.facilities:
        if facility.virtual:
            continue
        linked = [s for s in facility.product_stores if s in parent]
        for store in linked[1:]:
            parent[find(store)] = find(linked[0])
    components: dict[str, list[str]] = {}
    for store in ordered:
        components.setdefault(find(store), []).append(store)
    return list(components.values())


def partitions(plan: Plan, snapshot: Snapshot) -> list[Partition]:
    """The connected components of the store–facility graph over the stores the plan routes,
    in the order of their first group in the plan."""
    components = connected_stores(snapshot, [g.product_store for g in plan.groups])
    orders: dict[str, int] = {}
    for order in snapshot.orders:
        orders[order.product_store] = orders.get(order.product_store, 0) + 1
    found = []
    for stores in components:
        chosen = set(stores)
        found.append(Partition(
            tuple(stores), tuple(g.name for g in plan.groups if g.product_store in chosen),
            tuple(sorted(f.id for f in snapshot.facilities if not f.virtual
                         and chosen & set(f.product_stores))),
            sum(orders.get(s, 0) for s in stores)))
    return found


def part_snapshot(snapshot: Snapshot, partition: Partition) -> Snapshot:
    """The partition's part of the snapshot: its stores, their real facilities and every
    queue, those facilities' stock (as columns, ids numbered as a loader would number them),
    all products and shipment methods, their orders (as they were read: records or
    models). Nothing is validated again: it was when the snapshot was read."""
    import numpy as np

    stores, facilities = set(partition.stores), set(partition.facilities)
    columns = snapshot.inventory.columns
    kept = np.isin(columns.facility, [k for k, f in enumerate(columns.facility_ids)
                                      if f in facilities])
    facility_ids, facility = _renumbered(columns.facility[kept], columns.facility_ids)
    product_ids, product = _renumbered(columns.product[kept], columns.product_ids)
    stock = InventoryColumns(facility_ids, product_ids, facility, product, columns.atp[kept],
                             columns.minimum_stock[kept], columns.allow_brokering[kept],
                             columns.sales_velocity[kept])
    return snapshot.model_copy(update={
        "product_stores": [s for s in snapshot.product_stores if s.id in stores],
        "facilities": [f for f in snapshot.facilities if f.virtual or f.id in facilities],
        "inventory": Inventory(columns=stock),
        "orders": [o for o in snapshot.orders if o.product_store in stores]})


def _renumbered(codes, ids: list[str]):
    """The ids ``codes`` use, numbered in order of first appearance (as a loader numbers the
    ids of the rows it reads), and the codes in that numbering."""
    import numpy as np

    used, first = np.unique(codes, return_index=True)
    used = used[np.argsort(first)]
    number = np.zeros(len(ids), np.int32)
    number[used] = np.arange(len(used), dtype=np.int32)
    return [ids[k] for k in used.tolist()], number[codes]


def part_bytes(snapshot: Snapshot, partition: Partition) -> bytes:
    """The partition's part as it travels to a worker: pickled, its stock columns as numpy
    buffers, its orders as records (pickled and unpickled in about a third of the CPU time
    of models, which routing reads alike)."""
    from ..engine.columnar import as_records

    part = part_snapshot(snapshot, partition)
    part = part.model_copy(update={"orders": as_records(part.orders)})
    return pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)


class _Work(Sequence):
    """Each partition's task, ``(plan, part, groups, engine)``, its part made when indexed: a
    pool starts the first part while the next is being made."""

    def __init__(self, plan_json: bytes, snapshot: Snapshot, parts: list[Partition],
                 engine: str) -> None:
        self.plan_json, self.snapshot, self.parts, self.engine = plan_json, snapshot, parts, engine

    def __len__(self) -> int:
        return len(self.parts)

    def __getitem__(self, k):
        part = self.parts[k]
        return (self.plan_json, part_bytes(self.snapshot, part), list(part.groups), self.engine)


def route_part(plan_json: bytes, part: bytes, groups: list[str], engine: str) -> dict:
    """One partition's routing, a pure function of its inputs: the result's pieces, each
    group's place in them, and the warnings by key."""
    return _route_snapshot(plan_json, pickle.loads(part), groups, engine)


def _route_snapshot(plan_json: bytes, snapshot: Snapshot, groups: list[str],
                    engine: str) -> dict:
    plan = load_plan(plan_json, "plan")
    run = open_run(plan, snapshot, choose(engine))
    result = run.run(frozenset(groups), None, None)
    result["spans"] = run.spans
    result["warnings_by_key"] = run.warnings
    return result


def route_partitioned(plan: Plan, snapshot: Snapshot, *, executor: str = "local",
                      jobs: int = 2, engine: str = "auto", address: str | None = None,
                      group: str | frozenset[str] | None = None,
                      warn: Callable[[str], None] | None = None, **_unused) -> dict:
    """Route every partition with ``executor`` and merge: the same bytes as one run (of
    ``group`` only, or the groups of a set, when given). Takes `engine.route`'s arguments.
    A run that is one partition routes in this process, whatever the executor (a pool
    would only add the part's trip), and ``warn`` is told so."""
    if group is not None:
        wanted = frozenset([group]) if isinstance(group, str) else group
        plan = plan.model_copy(update={"groups": [g for g in plan.groups if g.name in wanted]})
    parts = partitions(plan, snapshot)
    if executor in EXECUTORS and executor != "local" and len(parts) <= 1:
        if warn is not None:
            warn(f"--executor {executor}: the run is one partition (its stores share "
                 "facilities), so it routes in this process")
        executor = "local"
    plan_json = plan.to_json().encode("utf-8")
    if executor == "local":  # no trip: each part routed as it is
        pieces = [_route_snapshot(plan_json, part_snapshot(snapshot, p), list(p.groups),
                                  engine) for p in parts]
        return merge(plan, snapshot, parts, pieces)
    work = _Work(plan_json, snapshot, parts, engine)
    if executor == "process":
        from .tasks import map_tasks
        pieces = map_tasks(route_part, work, executor="process", jobs=jobs,
                           weights=[p.orders for p in parts])
    elif executor == "ray":
        pieces = _on_ray(work, address)
    else:
        raise ValueError(f"unknown executor {executor!r} (known: {', '.join(EXECUTORS)})")
    return merge(plan, snapshot, parts, pieces)


def _on_ray(work: list[tuple], address: str | None) -> list[dict]:
    """The partitions as Ray tasks: the plan put in the object store once, each part one
    bytes object; the pieces gathered in partition order. A local Ray is started (and
    stopped) when none is running and no address is given."""
    try:
        import ray
    except ImportError:
        raise ExecutorUnavailable("--executor ray needs Ray: pip install 'routing-dsl[ray]' "
                                  "(or pip install ray)") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False)
    try:
        task = ray.remote(route_part)
        plan = ray.put(work[0][0]) if work else None
        futures = [task.remote(plan, part, groups, engine) for _, part, groups, engine in work]
        return ray.get(futures)
    finally:
        if started_here:
            ray.shutdown()


def merge(plan: Plan, snapshot: Snapshot, parts: list[Partition], pieces: list[dict]) -> dict:
    """The pieces of every partition as one result document, in a single run's order."""
    home = {group: piece for part, piece in zip(parts, pieces, strict=True)
            for group in part.groups}
    allocations, unfillable, batches = [], [], []
    for group in plan.groups:
        piece = home[group.name]
        names = [g for g in piece["spans"]]
        position = names.index(group.name)
        start_a, start_u = piece["spans"][group.name]
        end_a, end_u = (piece["spans"][names[position + 1]] if position + 1 < len(names)
                        else (len(piece["allocations"]), len(piece["unfillable"])))
        allocations += piece["allocations"][start_a:end_a]
        unfillable += piece["unfillable"][start_u:end_u]
        batches += [b for b in piece["batches"] if b["group"] == group.name]
    counts = {f.id: f.orders_today for f in snapshot.facilities if not f.virtual}
    inventory, warnings = [], {}
    for piece in pieces:
        inventory += piece["inventory_after"]
        for entry in piece["facility_counts_after"]:
            counts[entry["facility"]] = entry["orders_today"]
        warnings.update(piece["warnings_by_key"])
    return {
        "format": RESULT_FORMAT,
        "allocations": allocations,
        "unfillable": unfillable,
        "batches": batches,
        "inventory_after": sorted(inventory, key=lambda r: (r["facility"], r["product"])),
        "facility_counts_after": [{"facility": f, "orders_today": counts[f]}
                                  for f in sorted(counts)],
        "warnings": [warnings[k] for k in sorted(warnings)],
    }
