"""The service side of a rollout: a candidate version beside production in one process.

`Rollout.run_recorded` stands where the scheduler and the live state call
`ops.runner.run_recorded` (same arguments, same answer), and `plans_for` where a decision
picks its plans:

- **shadow**: every batch runs as before; then, its locks released, the candidate routes the
  same groups on exactly the state production routed (the source with the ledger applied),
  and both versions' figures and the units they decide differently are recorded in
  ``rollout_kpis``: nothing else of the candidate is written (no batch, no ledger line, no
  outbox or history row). A committed API decision is shadowed too, after its answer is sent:
  the state it was decided on (its stock rows and daily counts) is copied just before, and the
  candidate routes it on a worker thread.
- **canary**: the orders of the share (`canary.in_share`) are routed by the candidate for
  real, the rest by production: for a batch, production's run first, then the candidate's,
  each recorded by `run_recorded` under the partitions' locks on the source with every ledger
  line applied, so the second sees what the first took (one ledger, no oversell); a decision
  is taken by the version its order belongs to. The candidate's batch is measured against
  production on the same orders and the same state (production shadows the share's orders on
  the snapshot the candidate routed: production's own batch took its stock first, and a
  candidate must not be judged on the leftovers); a decision against production's
  decisions. After each batch (and each group of decisions) the guards compare both
  versions' recent figures; when one trips, this process goes back to production at once
  (the next batch is production's alone), records why in the run store (every other process
  follows within a second), logs a JSON event and calls the webhook.
- a **promoted** canary routes everything with the candidate; a tripped or aborted one
  leaves production alone.

Nothing here raises into a batch: a candidate that fails is logged (and, in a canary, trips
the routing-errors guard); production's batch stands.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace

from ..engine import route
from ..runtime import run_plan
from ..ops.runner import run_recorded as recorded_run
from ..ops.store import RunStore, plan_hash
from ..plan import Plan
from . import records
from .canary import in_share
from .guards import Guards, tripped
from .kpis import Kpis, Promises, batch_kpis, batch_rows, differences

POLL = 1.0  # seconds between reads of the rollout's state by a serving process
GATHER = 0.5       # seconds the worker gathers decisions before handling them together
GATHER_MOST = 500  # decisions it handles together at most


def check_groups(mode: str, production: list[Plan], candidate: list[Plan]) -> list[str]:
    """What keeps ``candidate`` from standing beside ``production``: a canary's candidate has
    production's groups (names and product stores), no more and no fewer; a shadow's has
    some of them and none other."""
    ours = {g.name: g.product_store for p in candidate for g in p.groups}
    theirs = {g.name: g.product_store for p in production for g in p.groups}
    problems = [f"the candidate's group {name!r} is not production's" for name in ours
                if name not in theirs]
    problems += [f"group {name!r} is for product store {store!r} in the candidate and "
                 f"{theirs[name]!r} in production" for name, store in ours.items()
                 if name in theirs and theirs[name] != store]
    if mode == "canary":
        problems += [f"production's group {name!r} is not in the candidate (a canary routes "
                     "the same groups)" for name in theirs if name not in ours]
    elif not ours:
        problems.append("the candidate has no group to shadow")
    return problems


@dataclass
class _Note:
    """A committed decision, for the worker: the batches it wrote (per version) and, when
    shadowing, the state it was decided on."""

    order: object
    timezone: str
    started: datetime
    batches: list = field(default_factory=list)  # (plan, group, batch id, allocations, left, runs)
    state: object = None                          # the order's snapshot (shadow)
    prepared: dict = field(default_factory=dict)  # plan id -> its indexes (runtime.Prepared)


class Rollout:
    def __init__(self, store: RunStore, mode: str, production: list[Plan],
                 candidate: list[Plan], *, texts: list[str | None] | None = None,
                 share: float | None = None, guards: Guards | None = None,
                 webhook=None, log: Callable[[dict], None] | None = None):
        assert mode in ("shadow", "canary")
        self.store = store
        self.mode = mode
        self.production = list(production)
        self.candidate = list(candidate)
        self.texts = list(texts or [None] * len(candidate))
        self.share = share
        self.guards = guards or Guards()
        self.webhook = webhook
        self.log = log or (lambda event: print(json.dumps(event, default=str),
                                               file=sys.stderr, flush=True))
        self.record: records.RolloutRecord | None = None
        self.status = "active"
        self._lock = threading.Lock()
        self._candidate_group = {g.name: (p, g) for p in self.candidate for g in p.groups}
        self._hashes = {id(p): plan_hash(p.to_json()) for p in self.production + self.candidate}
        self._ids = {id(p) for p in self.candidate}
        self._work: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # ---- state ----
    def start(self) -> records.RolloutRecord:
        """Resume this candidate's rollout from the run store, or start it."""
        guards = self.guards.model_dump(exclude_none=True) if self.mode == "canary" else None
        record, resumed, replaced = records.begin(self.store, self.mode, self.production,
                                                  self.candidate, share=self.share,
                                                  guards=guards)
        self.record, self.status = record, record.status
        if replaced:
            self._event("rollout_replaced", previous=replaced)
        self._event("rollout", status=record.status, resumed=resumed,
                    **({"reason": record.reason} if record.reason else {}))
        return record

    def refresh(self) -> None:
        """Follow the run store's row (another process, or `routing rollout`, may have
        changed it)."""
        if self.record is None:
            return
        found = records.get(self.store, self.record.id)
        if found is None:
            return
        with self._lock:
            if self.status != "active" and found.status == "active":
                return  # read before this process's own trip was written: ends are final
            changed = found.status != self.status
            self.record, self.status = found, found.status
        if changed:
            self._event("rollout", status=found.status, reason=found.reason)

    def start_polling(self, every: float = POLL) -> None:
        """Read the row every ``every`` seconds until `stop` (for the API's decisions; a
        scheduled round reads it itself)."""
        def poll() -> None:
            while not self._stop.wait(every):
                try:
                    self.refresh()
                except Exception as error:  # noqa: BLE001 - the store is away: keep state
                    self._event("rollout_poll_failed", error=_describe(error))
        self._poller = threading.Thread(target=poll, daemon=True, name="rollout poll")
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        self.drain()

    @property
    def shadowing(self) -> bool:
        return self.mode == "shadow" and self.status == "active"

    @property
    def canary_active(self) -> bool:
        return self.mode == "canary" and self.status == "active"

    @property
    def promoted(self) -> bool:
        return self.mode == "canary" and self.status == "promoted"

    def is_candidate(self, plan: Plan) -> bool:
        return id(plan) in self._ids

    def text(self, plan: Plan) -> str | None:
        for known, text in zip(self.candidate, self.texts, strict=False):
            if known is plan:
                return text
        return None

    # ---- decisions ----
    def plans_for(self, order, production: list[Plan]) -> list[Plan]:
        """The plans that decide ``order``: the candidate's for an order of an active
        canary's share, and for every order once it is promoted; else production's."""
        if self.mode == "canary":
            if self.status == "promoted":
                return self.candidate
            share = self.share
            if self.status == "active" and share is not None and in_share(order.id, share):
                return self.candidate
        return production

    def note(self, order, timezone: str, state=None) -> _Note | None:
        """What a committed decision passes to `after_decision` (None when there is nothing
        to do with it)."""
        if not (self.shadowing or self.canary_active):
            return None
        return _Note(order, timezone, datetime.now(UTC), state=state)

    def after_decision(self, note: _Note | None) -> None:
        """Hand a committed decision to the worker (called once its answer is sent)."""
        if note is None or not note.batches:
            return
        self._ensure_worker()
        self._work.put(note)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until the worker has handled every decision handed to it."""
        deadline = time.monotonic() + timeout
        while self._work.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work_loop, daemon=True,
                                                name="rollout worker")
                self._worker.start()

    def _work_loop(self) -> None:
        while True:
            notes = [self._work.get()]
            # what comes within GATHER seconds goes in one transaction: fewer writes taking
            # the store's write lock from the commits
            deadline = time.monotonic() + GATHER
            while len(notes) < GATHER_MOST:
                try:
                    notes.append(self._work.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            try:
                rows = []
                for note in notes:
                    rows += self._decision_rows(note)
                    time.sleep(0)  # let the threads deciding commits have the interpreter
                records.record(self.store, rows)
                if self.canary_active and rows:
                    self.check_guards()
            except Exception as error:  # noqa: BLE001 - the worker lives on
                self._event("rollout_failed", error=_describe(error))
            finally:
                for _ in notes:
                    self._work.task_done()

    def _decision_rows(self, note: _Note) -> list[dict]:
        record = self.record
        if record is None:
            return []
        promises = Promises(SimpleNamespace(timezone=note.timezone, orders=[note.order]))
        rows = []
        if record.mode == "canary":
            for plan, group, batch_id, allocations, left, runs in note.batches:
                role = "candidate" if self.is_candidate(plan) else "production"
                rows.append(records.kpi_row(
                    record, batch_id, role, group=group, trigger="api", started=note.started,
                    plan=(self._hashes[id(plan)], plan.version_label),
                    kpis=batch_kpis(allocations, left, runs, promises)))
            return rows
        # shadow: the candidate on the state the decision was taken on
        state = note.state
        if state is None:
            return []  # the shadow ended before the decision was taken
        stores = {note.order.id: note.order.product_store}
        results: dict[int, dict] = {}
        failures: dict[int, str] = {}
        for _, group, _, _, _, _ in note.batches:
            found = self._candidate_group.get(group)
            if found is None or id(found[0]) in results or id(found[0]) in failures:
                continue
            plan = found[0]
            names = frozenset(g.name for g in plan.groups
                              if g.product_store == note.order.product_store)
            try:  # on the indexes the live state keeps for it (only this thread uses them)
                results[id(plan)] = run_plan(plan, state, group=names,
                                             prepared=note.prepared.get(id(plan)), after=False)
            except Exception as error:  # noqa: BLE001 - recorded as the candidate's error
                failures[id(plan)] = _describe(error)
        for plan, group, batch_id, allocations, left, runs in note.batches:
            found = self._candidate_group.get(group)
            if found is None:
                continue
            rows += self._shadow_pair(record, batch_id, group, "api", note.started, plan,
                                      (allocations, left, runs), found, results, failures,
                                      stores, promises)
        return rows

    # ---- batches ----
    def run_recorded(self, store: RunStore, plan: Plan, snapshot, *, group=None,
                     trigger: str = "manual", started=None, router=route,
                     source_text: str | None = None, **options) -> tuple[dict, list[str]]:
        """`ops.runner.run_recorded`, with the candidate beside production as the rollout
        stands now."""
        try:
            self.refresh()
        except Exception as error:  # noqa: BLE001 - the store is away: the round says so
            self._event("rollout_poll_failed", error=_describe(error))
        names = _names(plan, group)
        kwargs = dict(options, trigger=trigger, started=started, router=router)
        if self.promoted:
            return self._promoted(store, plan, snapshot, names, kwargs)
        if self.shadowing and any(n in self._candidate_group for n in names):
            return self._shadowed(store, plan, snapshot, names, source_text, kwargs)
        if self.canary_active:
            return self._canary(store, plan, snapshot, names, source_text, kwargs)
        return recorded_run(store, plan, snapshot, group=names, source_text=source_text,
                            **kwargs)

    def _by_candidate(self, names) -> list[tuple[Plan, frozenset[str]]]:
        """The candidate's plans holding ``names``, each with its names, in plan order."""
        return [(p, frozenset(g.name for g in p.groups if g.name in names))
                for p in self.candidate if any(g.name in names for g in p.groups)]

    def _promoted(self, store, plan, snapshot, names, kwargs):
        results = [recorded_run(store, candidate, snapshot, group=chosen,
                                source_text=self.text(candidate), **kwargs)
                   for candidate, chosen in self._by_candidate(names)]
        return _merged(results)

    def _shadowed(self, store, plan, snapshot, names, source_text, kwargs):
        seen: dict = {}

        def observe(routed, result, running) -> None:
            seen.update(routed=routed, running=running)
        result, ids = recorded_run(store, plan, snapshot, group=names, source_text=source_text,
                                   observe=observe, **kwargs)
        if not seen or not seen["running"]:
            return result, ids
        try:  # after production's commit, its locks released
            self._shadow_batches(plan, seen["routed"], seen["running"], result, ids, kwargs)
        except Exception as error:  # noqa: BLE001 - production's batch stands
            self._event("shadow_failed", error=_describe(error))
        return result, ids

    def _shadow_batches(self, plan: Plan, routed, running, result: dict, ids: list[str],
                        kwargs: dict) -> None:
        record = self.record
        router = kwargs.get("router") or route
        options = {k: v for k, v in kwargs.items()
                   if k not in ("trigger", "started", "router", "webhook", "reflected_before",
                                "wait")}
        results: dict[int, dict] = {}
        failures: dict[int, str] = {}
        for candidate, chosen in self._by_candidate(running):
            try:
                results[id(candidate)] = router(candidate, routed, group=chosen, **options)
            except Exception as error:  # noqa: BLE001 - recorded as the candidate's error
                failures[id(candidate)] = _describe(error)
        stores = {o.id: o.product_store for o in routed.orders}
        promises = Promises(routed)
        started = kwargs.get("started") or datetime.now(UTC)
        groups = {g.name: g for g in plan.groups}
        rows = []
        for batch, batch_id in zip(result["batches"], ids, strict=True):
            name = batch["group"]
            if name not in running or name not in self._candidate_group:
                continue
            allocations, left, runs = batch_rows(result, groups[name], stores)
            rows += self._shadow_pair(record, batch_id, name, kwargs["trigger"], started, plan,
                                      (allocations, left, runs), self._candidate_group[name],
                                      results, failures, stores, promises)
        records.record(self.store, rows)

    def _shadow_pair(self, record, batch_id, name, trigger, started, plan, production,
                     found, results, failures, stores, promises) -> list[dict]:
        candidate, group = found
        allocations, left, runs = production
        common = {"group": name, "trigger": trigger, "started": started}
        rows = [records.kpi_row(record, batch_id, "production", **common,
                                plan=(self._hashes[id(plan)], plan.version_label),
                                kpis=batch_kpis(allocations, left, runs, promises))]
        cand_plan = (self._hashes[id(candidate)], candidate.version_label)
        if id(candidate) in failures:
            rows.append(records.kpi_row(record, batch_id, "candidate", **common,
                                        plan=cand_plan, kpis=Kpis(errors=1),
                                        error=failures[id(candidate)]))
            return rows
        theirs = batch_rows(results[id(candidate)], group, stores)
        count, shown = differences((allocations, left), theirs[:2])
        rows.append(records.kpi_row(record, batch_id, "candidate", **common, plan=cand_plan,
                                    kpis=batch_kpis(*theirs, promises), differing=count,
                                    differences=shown))
        return rows

    def _canary(self, store, plan, snapshot, names, source_text, kwargs):
        share = self.share
        chosen = {o.id for o in snapshot.orders if in_share(o.id, share)}
        ours = snapshot.model_copy(update={"orders": [o for o in snapshot.orders
                                                      if o.id in chosen]})
        theirs = snapshot.model_copy(update={"orders": [o for o in snapshot.orders
                                                        if o.id not in chosen]})
        runs = [recorded_run(store, plan, theirs, group=names, source_text=source_text,
                             **kwargs)]
        stores = {o.product_store for o in ours.orders}
        for candidate, picked in self._by_candidate(names):
            if not any(g.product_store in stores for g in candidate.groups if g.name in picked):
                continue  # no order of the share waits for these groups
            seen: dict = {}

            def observe(routed, result, running, seen=seen) -> None:
                seen.update(routed=routed, running=running)
            try:
                result, ids = recorded_run(store, candidate, ours, group=picked,
                                           source_text=self.text(candidate), observe=observe,
                                           **kwargs)
            except Exception as error:  # noqa: BLE001 - production takes these next time
                self.trip(f"routing_errors: the candidate failed: {_describe(error)}")
                continue
            runs.append((result, ids))
            try:
                self._canary_rows(plan, candidate, result, ids, seen, kwargs)
            except Exception as error:  # noqa: BLE001 - the batches stand
                self._event("rollout_failed", error=_describe(error))
        try:
            self.check_guards()
        except Exception as error:  # noqa: BLE001 - the batches stand
            self._event("rollout_failed", error=_describe(error))
        return _merged(runs)

    def _canary_rows(self, plan: Plan, candidate: Plan, result: dict, ids: list[str],
                     seen: dict, kwargs: dict) -> None:
        """The candidate's figures for its batches, beside production's on the same orders
        and the same state: production shadows the canary's orders on the snapshot the
        candidate routed them on (production's own batch took its stock first), so that the
        guards compare like with like."""
        if not seen.get("running"):
            return
        record = self.record
        routed, running = seen["routed"], seen["running"]
        router = kwargs.get("router") or route
        options = {k: v for k, v in kwargs.items()
                   if k not in ("trigger", "started", "router", "webhook", "reflected_before",
                                "wait")}
        error = None
        try:
            baseline = router(plan, routed, group=frozenset(
                n for n in running if any(g.name == n for g in plan.groups)), **options)
        except Exception as failure:  # noqa: BLE001 - production's figures are missing
            baseline, error = None, _describe(failure)
        started = kwargs.get("started") or datetime.now(UTC)
        stores = {o.id: o.product_store for o in routed.orders}
        promises = Promises(routed)
        ours = {g.name: g for g in candidate.groups}
        theirs = {g.name: g for g in plan.groups}
        rows = []
        for batch, batch_id in zip(result["batches"], ids, strict=True):
            name = batch["group"]
            if batch.get("skipped") or name not in running or name not in theirs:
                continue
            common = {"group": name, "trigger": kwargs["trigger"], "started": started}
            mine = batch_rows(result, ours[name], stores)
            if baseline is None:
                base, count, shown = Kpis(errors=1), 0, []
            else:
                other = batch_rows(baseline, theirs[name], stores)
                base = batch_kpis(*other, promises)
                count, shown = differences(other[:2], mine[:2])
            rows.append(records.kpi_row(record, batch_id, "production", **common,
                                        plan=(self._hashes[id(plan)], plan.version_label),
                                        kpis=base, error=error))
            rows.append(records.kpi_row(record, batch_id, "candidate", **common,
                                        plan=(self._hashes[id(candidate)],
                                              candidate.version_label),
                                        kpis=batch_kpis(*mine, promises), differing=count,
                                        differences=shown))
        records.record(self.store, rows)

    # ---- guards ----
    def check_guards(self) -> list[str]:
        """Compare both versions' recent figures with the guards; trip when one fails."""
        record = self.record
        if record is None or not self.canary_active:
            return []
        units = self.guards.window
        production = records.window(self.store, record.id, "production", units)
        candidate = records.window(self.store, record.id, "candidate", units)
        reasons = tripped(self.guards, production, candidate)
        if reasons:
            self.trip("; ".join(reasons), production_figures=production.kpis.report(),
                      candidate_figures=candidate.kpis.report())
        return reasons

    def trip(self, reason: str, **figures) -> None:
        """Back to production alone, now; recorded (once, by whichever process sees it
        first), logged and sent to the webhook."""
        with self._lock:
            if self.status != "active":
                return
            self.status = "tripped"
        record = self.record
        if record is None or not records.end(self.store, record.id, "tripped", reason):
            return  # another process tripped it (or ended it) first: it announced it
        event = self._event("canary_tripped", reason=reason, **figures)
        url = self.guards.webhook or getattr(self.webhook, "url", None)
        if url is not None:
            from ..ops.sinks import Webhook
            failure = Webhook(url).post(event, f"canary|{record.id}|tripped")
            if failure:
                self._event("canary_webhook_failed", url=url, error=failure)

    def _event(self, name: str, **values) -> dict:
        record = self.record
        event = {"at": datetime.now(UTC).isoformat(), "event": name, "mode": self.mode,
                 **({"rollout": record.id, "candidate": record.candidate_label,
                     "production": record.production_label} if record else {}),
                 **({"share": self.share} if self.mode == "canary" else {}), **values}
        self.log(event)
        return event


def _names(plan: Plan, group) -> frozenset[str]:
    if group is None:
        return frozenset(g.name for g in plan.groups)
    return frozenset([group]) if isinstance(group, str) else frozenset(group)


def _merged(runs: list[tuple[dict, list[str]]]) -> tuple[dict, list[str]]:
    """Several recorded runs as one: their rows and batches in turn, the ids in the same
    order (the scheduler pairs each batch with its id)."""
    if len(runs) == 1:
        return runs[0]
    first = dict(runs[0][0])
    for key in ("allocations", "unfillable", "batches"):
        first[key] = [row for result, _ in runs for row in result[key]]
    first["warnings"] = sorted(w for result, _ in runs for w in result["warnings"])
    for key, name in (("inventory_after", ("facility", "product")),
                      ("facility_counts_after", ("facility",))):
        if key in first:  # the later run's figure is the latest
            merged = {tuple(row[n] for n in name): row for result, _ in runs
                      for row in result.get(key, [])}
            first[key] = [merged[k] for k in sorted(merged)]
    return first, [batch_id for _, ids in runs for batch_id in ids]


def _describe(error: BaseException) -> str:
    from ..ops.scheduler import describe
    return describe(error)
