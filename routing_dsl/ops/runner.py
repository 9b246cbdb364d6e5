"""A run recorded in the store: one batch per group, started before routing and finished, in
one transaction each, after it; one writer at a time per partition, on the source's data with
the reservation ledger applied."""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import UTC, datetime

from ..engine import route, snapshot_digest
from ..plan import Plan
from ..snapshot import Snapshot
from . import ledger, rejections
from .locks import BATCH_WAIT, LockLost, PartitionLock, lock_domains
from .store import RunStore, optimizations_of

BUSY = "another run holds product store {store!r}; this group waits for the next run"


def snapshot_hash(snapshot: Snapshot) -> str:
    return snapshot_digest(snapshot)


def run_recorded(store: RunStore, plan: Plan, snapshot: Snapshot, *, source_text: str | None,
                 trigger: str = "manual", group: str | frozenset[str] | None = None,
                 routing: str | None = None, started=None, webhook=None, router=route,
                 reflected_before: datetime | None = None, wait: float = BATCH_WAIT,
                 observe=None, **options) -> tuple[dict, list[str]]:
    """Run ``plan`` and record it; returns the result and the batch ids, in group order.

    Each group's partition (the stores sharing facilities with its store) is locked first,
    waiting up to ``wait`` seconds; the groups of a partition that stays busy are not run:
    their batch is recorded as ``skipped``. The others run on ``snapshot`` with the ledger's
    lines for their partitions applied, except those the snapshot reflects (acknowledged
    before ``reflected_before``, see ledger.reflection_cutoff; None: it reflects none), and
    each batch writes its decisions, outbox rows and ledger lines in one transaction under
    its lock. The recorded rejections of those stores are on their items (ops/rejections.py). With a ``webhook``, each committed batch is also POSTed to it. A process
    killed before the end leaves its batches ``running`` (closed as failed by the next
    ``locks.close_stale``) and nothing else of them. ``observe`` (a shadow run, see
    rollout/controller.py) is then given, the locks released, the snapshot the groups were
    routed on, the result and the names of the groups that ran."""
    wanted = frozenset([group]) if isinstance(group, str) else group
    groups = [g for g in plan.groups if wanted is None or g.name in wanted]
    plan_json = plan.to_json()
    deadline = time.monotonic() + wait

    with ExitStack() as held:
        locks: dict[str, PartitionLock] = {}
        for domain in lock_domains(snapshot, {g.product_store for g in groups}):
            lock = PartitionLock(store, domain, max(0.0, deadline - time.monotonic()))
            if held.enter_context(lock):
                locks.update(dict.fromkeys(domain, lock))
        running = [g for g in groups if g.product_store in locks]
        effects = ledger.Effects(ledger.local_day(snapshot))
        refused = []
        if running:
            effects.extend(store.ledger(reflected_before=reflected_before, stores=set(locks)))
        if running and rejections.read_by(plan):  # what facilities refused: rules avoid them
            with store.reading() as connection:
                refused = rejections.stored(connection, stores=set(locks))
        routed = rejections.apply(ledger.apply(snapshot, effects), refused)
        digest = snapshot_hash(routed)
        ids = {g.name: store.start_batch(group=g.name, product_store=g.product_store,
                                         plan_json=plan_json, source_name=plan.source,
                                         source_text=source_text, snapshot_hash=digest,
                                         trigger=trigger, started=started,
                                         version_label=plan.version_label)
               for g in groups}
        try:
            result = router(plan, routed, group=frozenset(g.name for g in running),
                            routing=routing, **options)
        except BaseException as error:
            for batch_id in ids.values():
                store.fail_batch(batch_id, f"{type(error).__name__}: {error}")
            raise
        stores = {o.id: o.product_store for o in routed.orders}
        decided = {a["order"] for a in result["allocations"]} | {
            u["order"] for u in result["unfillable"]}
        states = ledger.item_states(routed.orders, decided)
        day = ledger.local_day(routed)
        done = {b["group"]: b for b in result["batches"]}
        batches = []
        for plan_group in groups:
            batch_id = ids[plan_group.name]
            batch = done.get(plan_group.name) or {
                "group": plan_group.name, "product_store": plan_group.product_store,
                "runs": [], "skipped": BUSY.format(store=plan_group.product_store)}
            batches.append(batch)
            if plan_group.name not in done:
                store.finish_batch(batch_id, batch, [], [], ledger.Decisions())
                continue
            routings = {r.name for r in plan_group.routings}
            allocations = [a for a in result["allocations"] if a["group"] == plan_group.name]
            unfillable = [u for u in result["unfillable"] if u["routing"] in routings
                          and stores[u["order"]] == plan_group.product_store]
            decisions = ledger.decisions(plan_group.name, allocations, unfillable, states,
                                         product_store=plan_group.product_store, day=day,
                                         at=datetime.now(UTC))
            try:
                with locks[plan_group.product_store].transaction() as connection:
                    store.finish_batch(batch_id, batch, allocations, unfillable, decisions,
                                       connection, optimizations_of(result, plan_group.name))
            except LockLost as lost:
                store.fail_batch(batch_id, f"nothing recorded: {lost}")
                result["warnings"].append(f"group {plan_group.name!r}: {lost}; nothing of it "
                                          "was recorded")
                continue
            if webhook is not None:  # after the commit: the outbox already holds it all
                failure = webhook.deliver(batch_id, batch, allocations, unfillable)
                if failure:
                    result["warnings"].append(
                        f"group {plan_group.name!r}: webhook {webhook.url} failed ({failure}); "
                        "the decisions wait in the outbox")
        result["batches"] = batches
        result["warnings"].sort()
    if observe is not None:
        observe(routed, result, frozenset(g.name for g in running))
    return result, list(ids.values())
