"""A run recorded in the store: one batch per group, started before routing and finished, in
one transaction each, after it; one run at a time per product store."""

from __future__ import annotations

from contextlib import ExitStack

from ..engine import route, snapshot_digest
from ..plan import Plan
from ..snapshot import Snapshot
from .locks import StoreLock
from .store import RunStore

BUSY = "another run holds product store {store!r}; this group waits for the next run"


def snapshot_hash(snapshot: Snapshot) -> str:
    return snapshot_digest(snapshot)


def run_recorded(store: RunStore, plan: Plan, snapshot: Snapshot, *, source_text: str | None,
                 trigger: str = "manual", group: str | frozenset[str] | None = None,
                 routing: str | None = None, started=None, webhook=None, router=route,
                 **options) -> tuple[dict, list[str]]:
    """Run ``plan`` and record it; returns the result and the batch ids, in group order.

    Groups of a product store that another process is running are not run: their batch is
    recorded as ``skipped``. With a ``webhook``, each committed batch is also POSTed to it. A process killed before the end leaves its batches ``running``
    (closed as failed by the next ``locks.close_stale``) and nothing else of them."""
    wanted = frozenset([group]) if isinstance(group, str) else group
    groups = [g for g in plan.groups if wanted is None or g.name in wanted]
    plan_json = plan.to_json()
    digest = snapshot_hash(snapshot)

    def start(g) -> str:
        return store.start_batch(group=g.name, product_store=g.product_store,
                                 plan_json=plan_json, source_name=plan.source,
                                 source_text=source_text, snapshot_hash=digest, trigger=trigger,
                                 started=started)

    with ExitStack() as held:
        free = {}
        for product_store in dict.fromkeys(g.product_store for g in groups):
            free[product_store] = held.enter_context(StoreLock(store, product_store))
        running = [g for g in groups if free[g.product_store]]
        ids = {g.name: start(g) for g in groups}
        try:
            result = router(plan, snapshot, group=frozenset(g.name for g in running),
                            routing=routing, **options) if running else \
                router(plan, snapshot, group=frozenset(), routing=routing, **options)
        except BaseException as error:
            for batch_id in ids.values():
                store.fail_batch(batch_id, f"{type(error).__name__}: {error}")
            raise
        origins = {(o.id, g.id): g.facility for o in snapshot.orders for g in o.ship_groups}
        stores = {o.id: o.product_store for o in snapshot.orders}
        done = {b["group"]: b for b in result["batches"]}
        batches = []
        for plan_group in groups:
            batch = done.get(plan_group.name) or {
                "group": plan_group.name, "product_store": plan_group.product_store,
                "runs": [], "skipped": BUSY.format(store=plan_group.product_store)}
            batches.append(batch)
            routings = {r.name for r in plan_group.routings}
            allocations = [a for a in result["allocations"] if a["group"] == plan_group.name]
            unfillable = [u for u in result["unfillable"] if u["routing"] in routings
                          and stores[u["order"]] == plan_group.product_store] \
                if plan_group.name in done else []
            store.finish_batch(ids[plan_group.name], batch, allocations, unfillable, origins)
            if webhook is not None:  # after the commit: the outbox already holds it all
                failure = webhook.deliver(ids[plan_group.name], batch, allocations, unfillable)
                if failure:
                    result["warnings"].append(
                        f"group {plan_group.name!r}: webhook {webhook.url} failed ({failure}); "
                        "the decisions wait in the outbox")
        result["batches"] = batches
        result["warnings"].sort()
    return result, list(ids.values())
