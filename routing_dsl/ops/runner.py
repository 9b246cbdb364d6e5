"""A run recorded in the store: one batch per group, started before routing and finished, in
one transaction each, after it."""

from __future__ import annotations

import hashlib

from ..interpreter import run_plan
from ..plan import Plan
from ..snapshot import Snapshot
from .store import RunStore


def snapshot_hash(snapshot: Snapshot) -> str:
    return hashlib.sha256(snapshot.model_dump_json().encode("utf-8")).hexdigest()


def run_recorded(store: RunStore, plan: Plan, snapshot: Snapshot, *, source_text: str | None,
                 trigger: str = "manual", group: str | None = None,
                 routing: str | None = None, **options) -> tuple[dict, list[str]]:
    """Run ``plan`` and record it; returns the result and the batch ids, in group order.
    A process killed before the end leaves its batches ``running`` (closed as failed by the
    next ``close_stale``) and nothing else of them."""
    groups = [g for g in plan.groups if group is None or g.name == group]
    plan_json = plan.to_json()
    digest = snapshot_hash(snapshot)
    ids = {g.name: store.start_batch(group=g.name, product_store=g.product_store,
                                     plan_json=plan_json, source_name=plan.source,
                                     source_text=source_text, snapshot_hash=digest,
                                     trigger=trigger)
           for g in groups}
    try:
        result = run_plan(plan, snapshot, group=group, routing=routing, **options)
    except BaseException as error:
        for batch_id in ids.values():
            store.fail_batch(batch_id, f"{type(error).__name__}: {error}")
        raise
    origins = {(o.id, g.id): g.facility for o in snapshot.orders for g in o.ship_groups}
    stores = {o.id: o.product_store for o in snapshot.orders}
    for batch, plan_group in zip(result["batches"], groups, strict=True):
        routings = {r.name for r in plan_group.routings}
        allocations = [a for a in result["allocations"] if a["group"] == batch["group"]]
        unfillable = [u for u in result["unfillable"] if u["routing"] in routings
                      and stores[u["order"]] == plan_group.product_store]
        store.finish_batch(ids[batch["group"]], batch, allocations, unfillable, origins)
    return result, list(ids.values())
