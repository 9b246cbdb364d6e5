"""The live state: the source's data a service decides against, with the reservation ledger
applied. Memory is only a cache of the source and the run store's ledger, rebuilt at start.

``refresh`` reads the source (the run store's clock taken just before) and applies every
ledger line the source does not reflect (see ops/ledger.py): stock taken, today's order
counts. Lines written later, by this process or any other, are applied as they appear:
a committed decision reads them under its partition's lock, so it sees every decision before
it; a quote reads them at most ``quote_lag`` seconds late. After a restart, even a kill -9,
the same state is rebuilt from the source and the ledger: nothing committed is sold again.

Quotes change nothing. A commit is decided under its partition's lock (ops/locks.py) in one
transaction that writes its batch, outbox rows, ledger lines and idempotency key; nothing of
it is kept in memory but the stock and counts it took. Commits waiting for the same partition
are decided as a group: one of them takes the lock for all, decides each in turn (each sees
those before it), writes them in one transaction and answers each once that has committed.
A busy lock, a key another transaction is writing for longer than the wait, or an unreachable
store is ``Unavailable`` (the API's 503): nothing was written and the key stays unused.

While a group's rows and COMMIT are on their way to the database, the next group is decided
ahead, on the live index as that group leaves it (`_Ahead`): the committer would otherwise
decide nothing while it waits. Those decisions stand only if, once the next group holds the
partition's lock, the database shows that nothing else changed what they read: the group
before committed, no other transaction wrote a ledger line of the partition since, none of
the keys is known, none of the orders has earlier lines or rejections, and nothing else in
this process touched the partition's state meanwhile (`_Queue.epoch`). Otherwise they are
undone and the group is decided again under the lock, as any group is.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import functools
import gc
import hashlib
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from ..engine import route, snapshot_digest
from ..engine.live import decide, live_stock, needs_arrays
from ..runtime import Prepared
from ..ops import ledger, rejections
from ..ops.locks import COMMIT_WAIT, Busy, locked, release_kept
from ..ops.commits import GroupReads
from ..ops.store import (Recorded, RunStore, batch_values, is_key_race, optimizations_of,
                         pipelined, plan_hash)
from ..plan import Plan
from ..scaleout import connected_stores
from ..snapshot import Inventory, Order, Snapshot, order_problems


ledger_epsilon = 1e-9  # open quantities at or below this are filled

# upper bounds of the decision latency histogram's buckets, in seconds
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
QUOTE_LAG = 0.5     # seconds a quote may lag behind other processes' decisions
GROUP_LIMIT = 64    # commits decided in one transaction at most
KEY_RACES = 3       # times a group is redone when another store's commit took one of its keys
KEEP_IDLE = 1.0     # seconds a committer keeps its connection with nothing to commit


class DecisionError(Exception):
    """A decision request that cannot be decided as given (the message says why)."""


class ConflictError(DecisionError):
    """An idempotency key reused for a different order."""


class Unavailable(Exception):
    """A commit that could not be made now (its partition stayed locked, or the run store
    is unreachable): nothing was written; the same request can be sent again."""

    retry_after = 1


def request_digest(order: Order) -> str:
    """What an idempotency key is held to: the order, as JSON."""
    return hashlib.sha256(order.model_dump_json().encode("utf-8")).hexdigest()


@dataclass
class _View:
    """One read of the source and the ledger lines applied to it since: what decisions read
    until the next refresh replaces it."""

    snapshot: Snapshot
    loaded_at: datetime
    plans: list[Plan]
    reflected_before: datetime | None = None
    digest: str = ""
    taken: dict = field(default_factory=lambda: defaultdict(float))  # (facility, product)
    counted: dict = field(default_factory=lambda: defaultdict(int))  # facility, today
    seen: dict = field(default_factory=dict)  # product store -> last ledger id applied
    synced: dict = field(default_factory=dict)  # lock domain -> when quotes last read it
    # stores with a group of commits in flight: their lines are applied by that group
    inflight: dict = field(default_factory=lambda: defaultdict(int))
    engine: str = "auto"  # which engine decides (engine.live.decide)

    # recorded rejections by order and item (rejections.by_line), read with the source and
    # kept current by this process's own (a commit reads its orders' afresh under the lock)
    refused: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        snapshot = self.snapshot
        self.today = ledger.local_day(snapshot)
        self.live = live_stock(snapshot, needs_arrays(self.engine))
        rows: dict[str, list] = defaultdict(list)
        for row in snapshot.inventory:
            rows[row.product].append(row)
        self.rows = dict(rows)
        self.facility_ids = frozenset(f.id for f in snapshot.facilities)
        self.style = {p.id: p.parent for p in snapshot.products if p.parent}
        self.variants = defaultdict(list)
        for product in snapshot.products:
            if product.parent:
                self.variants[product.parent].append(product.id)
        self.prepared = {id(plan): Prepared() for plan in self.plans}
        self.domains = {store: tuple(sorted(component))
                        for component in connected_stores(snapshot) for store in component}

    def order(self, order_id: str) -> Order | None:
        """The source's order ``order_id``, or None."""
        index = self.__dict__.get("_orders")
        if index is None:
            index = self.__dict__["_orders"] = {o.id: o for o in self.snapshot.orders}
        return index.get(order_id)

    def domain(self, product_store: str) -> tuple[str, ...]:
        """The stores locked to decide for ``product_store``: its partition."""
        return self.domains.get(product_store, (product_store,))

    def take(self, facility: str, product: str, quantity: float) -> None:
        key = (facility, product)
        self.taken[key] += quantity
        self.live.taken(facility, product, self.taken[key])

    def count(self, facility: str, orders: int) -> None:
        self.counted[facility] += orders
        self.live.counted(facility, self.counted[facility])

    def apply(self, lines: list[ledger.Line]) -> None:
        """Apply ledger lines read as the lines of their stores above ``seen`` (each store's
        lines are a gap-free sequence there: see ops/schema.py), once each."""
        for line in lines:
            if line.id <= self.seen.get(line.product_store, 0):
                continue
            self.seen[line.product_store] = line.id
            if line.kind == "allocation":
                self.take(line.facility, line.product, line.quantity)
                if line.opens and line.day == self.today:
                    self.count(line.facility, 1)


class _Commit:
    """One commit request waiting for its group's answer."""

    __slots__ = ("order", "key", "request", "explain", "event", "notify", "answer", "error",
                 "followup")

    def __init__(self, order: Order, key: str, request: str, explain: bool = True,
                 notify=None):
        self.order, self.key, self.request, self.explain = order, key, request, explain
        self.event = threading.Event()
        self.notify = notify  # called once settled (an event loop's wake-up), if given
        self.answer: bytes | None = None
        self.error: Exception | None = None
        self.followup = None  # what a rollout does with the decision once it is answered

    def settle(self, answer: bytes | None = None, error: Exception | None = None) -> None:
        self.answer, self.error = answer, error
        self.event.set()
        if self.notify is not None:
            self.notify()

    @property
    def settled(self) -> bool:
        return self.answer is not None or self.error is not None


class _Queue:
    """The commits waiting for one partition, decided a group at a time by the partition's
    committer thread (started with its first commit)."""

    def __init__(self) -> None:
        self.ready = threading.Condition()  # guards waiting
        self.waiting: list[_Commit] = []
        self.busy = threading.Lock()        # held while a group (or a catch-up) runs
        self.thread: threading.Thread | None = None
        # counts what else than the committer changed the partition's live state under
        # `busy` (catch-ups, rejections): a group decided ahead across a change is undone
        self.epoch = 0
        self.ahead: concurrent.futures.ThreadPoolExecutor | None = None  # decides ahead

    def take(self) -> list[_Commit]:
        """The next group: the oldest waiting commits (none when nothing waits)."""
        with self.ready:
            group = self.waiting[:GROUP_LIMIT]
            del self.waiting[:GROUP_LIMIT]
        return group


def _firsts(group: list[_Commit]) -> tuple[list[_Commit], list[_Commit], dict]:
    """A group's commits decided (the first of each key), those that repeat a key, and the
    first by key."""
    firsts: dict[str, _Commit] = {}
    repeats: list[_Commit] = []
    for entry in group:
        if entry.key in firsts:
            repeats.append(entry)
        else:
            firsts[entry.key] = entry
    return list(firsts.values()), repeats, firsts


class _Ahead:
    """A group decided ahead (see the module's docstring): its commits (taken from ``queue``
    as they arrive, until ``stop``), and, when ``valid``, their decisions with what they
    took from ``view`` (``undo``), taken at ``epoch`` of the queue, to be checked under the
    lock before they are written."""

    def __init__(self, queue: _Queue, view: _View) -> None:
        self.queue, self.view, self.epoch = queue, view, queue.epoch
        self.group: list[_Commit] = []
        self.entries: list[_Commit] = []  # the first of each key, in order
        self.firsts: dict[str, _Commit] = {}
        self.stop = threading.Event()
        self.valid = False
        self.answers: list[bytes] = []
        self.recorded: list = []
        self.batch_rows: list = []
        self.notes: list = []
        self.undo: list[tuple] = []


class _Pipe:
    """The group decided ahead while one group commits: started once that group's rows are
    sent (`launch`), collected once it has committed (or failed: then undone)."""

    def __init__(self, state: LiveState, queue: _Queue) -> None:
        self.state, self.queue = state, queue
        self.future: concurrent.futures.Future | None = None
        self.ahead: _Ahead | None = None

    def launch(self, view: _View) -> None:
        if self.future is not None or self.ahead is not None:
            return  # one group ahead at most (a retried group keeps the first)
        queue = self.queue
        self.ahead = _Ahead(queue, view)
        if queue.ahead is None:
            queue.ahead = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="decide-ahead")
        self.future = queue.ahead.submit(self.state._decide_ahead, self.ahead)

    def collect(self, committed: bool) -> _Ahead | None:
        """The group decided ahead (undone unless the group before ``committed``)."""
        if self.future is not None:
            future, self.future = self.future, None
            self.ahead.stop.set()  # what arrives from now on waits for the group after
            with self.queue.ready:
                self.queue.ready.notify_all()
            concurrent.futures.wait([future])  # it undoes its own work when it fails
        ahead = self.ahead
        if ahead is not None and ahead.valid and not committed:
            self.state._undo_ahead(ahead)
        return ahead if ahead is not None and ahead.group else None


@dataclass
class LiveState:
    plans: list[Plan]
    source: Callable[[], Snapshot]
    texts: list[str | None] = field(default_factory=list)  # each plan's .route text, if any
    store: RunStore | None = None
    commit_wait: float = COMMIT_WAIT   # seconds a commit waits for its partition's lock
    quote_lag: float = QUOTE_LAG
    lock: threading.Lock = field(default_factory=threading.Lock)  # the view's numbers
    decisions: int = 0
    commits_total: int = 0
    # commits decided ahead (see the module's docstring): kept, or decided again under the lock
    ahead_kept: int = 0
    ahead_redone: int = 0
    # decisions per latency bucket (the last: beyond every bound), and their total time
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    _view: _View | None = None
    _queues: dict = field(default_factory=dict)  # lock domain -> _Queue
    _queues_lock: threading.Lock = field(default_factory=threading.Lock)
    _plans_json: dict = field(default_factory=dict)  # plan id -> its JSON and hash
    _saved_plans: set = field(default_factory=set)  # plan hashes known to be stored
    # A candidate version beside production (rollout.controller.Rollout): decisions of a
    # canary's orders are its plans', committed ones are shadowed, group runs go through it.
    rollout: Any = None
    # called after each load (`routing serve --workers`: the other workers then load too)
    on_refresh: Callable[[], None] | None = None
    # the engine of decisions (engine.ENGINES): auto takes the fast one where it is faster
    engine: str = "auto"

    # ---- the source and the ledger ----
    def refresh(self, announce: bool = True) -> None:
        """Reread the source and reapply the ledger lines it does not reflect (those
        acknowledged before the read began and before the snapshot's `now`, see
        ops/ledger.py): the state a restart would build. Decisions in flight finish on the
        state they started on. ``announce``: tell ``on_refresh`` (not when this load is
        another worker's, passed on)."""
        store = self.store
        read_at = store.clock() if store is not None else None
        snapshot = self.source()
        view = _View(snapshot, datetime.now(UTC), self._all_plans(), engine=self.engine)
        if store is not None:
            view.reflected_before = ledger.reflection_cutoff(read_at, snapshot.now)
            view.digest = snapshot_digest(snapshot)
            heads = store.heads()  # before the lines: any line above a head comes later
            lines = store.ledger(reflected_before=view.reflected_before)
            view.apply([line for line in lines
                        if line.id <= heads.get(line.product_store, 0)])
            view.seen = dict(heads)
            with store.reading() as connection:
                view.refused = rejections.by_line(rejections.stored(connection))
        with self.lock:
            self._view = view
        # The state is long-lived and holds millions of objects: kept out of the cyclic
        # collector's reach, a decision never pays for walking them (p99 drops ~15x).
        gc.collect()
        gc.freeze()
        if announce and self.on_refresh is not None:
            self.on_refresh()

    @property
    def snapshot(self) -> Snapshot | None:
        """The source's data as last read (the ledger is applied to stock and counts only
        in the live index: see batch_snapshot)."""
        return self._view.snapshot if self._view is not None else None

    @property
    def loaded_at(self) -> datetime | None:
        return self._view.loaded_at if self._view is not None else None

    @property
    def reflected_before(self) -> datetime | None:
        """Acknowledgements before this time are reflected by the loaded source."""
        return self._view.reflected_before if self._view is not None else None

    def pending(self, orders=None) -> ledger.Effects:
        """What the ledger lines the loaded source does not reflect do to it (lines of
        ``orders`` only, when given): stock taken, today's order counts, and per order line
        what was allocated, where it was moved, its auto-cancel date. Read from the run store
        (for the console: decisions never wait for it); nothing without one."""
        view = self._current()
        effects = ledger.Effects(view.today)
        if self.store is None:
            return effects
        return effects.extend(self.store.ledger(reflected_before=view.reflected_before,
                                                orders=orders))

    def counted_today(self) -> dict[str, int]:
        """Orders per facility the applied ledger lines added to today's counts."""
        view = self._current()
        with self.lock:
            return dict(view.counted)

    def catch_up(self, product_stores) -> None:
        """Apply the ledger lines written since for the partitions of ``product_stores``."""
        view = self._current()
        for domain in sorted({view.domain(s) for s in product_stores}):
            queue = self._queue(domain)
            with queue.busy:
                queue.epoch += 1
                self._read_ledger(view, domain)

    def _read_ledger(self, view: _View, domain: tuple[str, ...], connection=None,
                     group: bool = False) -> None:
        """Apply the lines of ``domain``'s stores written since they were last read; outside
        a group of commits, not while one is in flight on them (it reads and applies them
        itself, its own lines included)."""
        with self.lock:
            if not group and any(view.inflight[s] for s in domain):
                return
        lines = self.store.ledger(reflected_before=view.reflected_before, stores=domain,
                                  after={s: view.seen.get(s, 0) for s in domain},
                                  connection=connection)
        self._apply_read(view, domain, lines, group)

    def _apply_read(self, view: _View, domain: tuple[str, ...], lines: list[ledger.Line],
                    group: bool) -> None:
        with self.lock:
            if not group and any(view.inflight[s] for s in domain):
                return
            view.apply(lines)
        view.synced[domain] = time.monotonic()

    def _quote_catch_up(self, view: _View, product_store: str) -> None:
        """Lines other processes wrote, for quotes: read in the background when the last
        read is ``quote_lag`` old, so that a quote never waits for the database (nor fails
        when it is away), and never while a commit of the partition is in progress (that
        commit reads them itself)."""
        domain = view.domain(product_store)
        if time.monotonic() - view.synced.get(domain, 0.0) < self.quote_lag:
            return
        queue = self._queue(domain)
        if not queue.busy.acquire(blocking=False):
            return
        queue.epoch += 1
        view.synced[domain] = time.monotonic()  # one reader at a time, the next one later

        def read() -> None:
            try:
                self._read_ledger(view, domain)
            except sa.exc.SQLAlchemyError:
                pass  # the store is away: quotes answer from memory meanwhile
            finally:
                queue.busy.release()
        threading.Thread(target=read, daemon=True, name="quote catch-up").start()

    # ---- plans ----
    def group(self, name: str):
        for plan in self.plans:
            for group in plan.groups:
                if group.name == name:
                    return plan, group
        return None, None

    def text(self, plan: Plan) -> str | None:
        """The .route text ``plan`` was compiled from, recorded with its batches."""
        for known, text in zip(self.plans, self.texts, strict=False):
            if known is plan:
                return text
        return self.rollout.text(plan) if self.rollout is not None else None

    def _all_plans(self) -> list[Plan]:
        """Production's plans and a rollout's candidate's."""
        return self.plans + (self.rollout.candidate if self.rollout is not None else [])

    def _plans_for(self, order: Order) -> list[Plan]:
        """The plans that decide ``order`` (a canary's for the orders of its share)."""
        if self.rollout is None:
            return self.plans
        return self.rollout.plans_for(order, self.plans)

    def prepared(self, plan: Plan) -> Prepared | None:
        """The indexes ``plan``'s decisions share until the next refresh (the facilities do
        not change in between: only their daily counts, which are not indexed)."""
        view = self._view
        return view.prepared.get(id(plan)) if view is not None else None

    # ---- decisions ----
    def quote(self, order: Order, explain: bool = True) -> dict:
        """Where ``order`` would ship from now: its lines' facilities, quantities, rules and
        distances, what would stay unfilled, and (unless not ``explain``) the explanation.
        Changes nothing."""
        started = time.perf_counter()
        view = self._current()
        if self.store is not None:
            self._quote_catch_up(view, order.product_store)
        lines, unfilled, explanations, ran = [], [], [], []
        with self.lock:  # one consistent state: no commit or batch is absorbed halfway
            self._check(view, order)
            order = rejections.apply_order(order, view.refused)
            single = view.snapshot.model_copy(update={"orders": [order], "inventory": []})
            for plan in self._plans_for(order):
                # stock and counts come from the live index, copied for this order only
                result = decide(plan, single, engine=view.engine, live=view.live,
                                explain=explain, explain_orders={order.id},
                                prepared=view.prepared.get(id(plan)))
                ran.append((plan, result))
                lines += result["allocations"]
                unfilled += result["unfillable"]
                explanations += result.get("explanations", [])
        answer = {"order": order.id, "lines": lines, "unfilled": unfilled,
                  "explanations": explanations, "committed": False, "batches": [],
                  "not_routed": [] if lines or unfilled else
                  self._not_routed(order, single, ran)}
        self._count(started)
        return answer

    def _not_routed(self, order: Order, single: Snapshot, ran: list) -> list[str]:
        """Why no routing took ``order`` (``ran``: each plan with its result on ``single``),
        as `routing explain` says it: from the plans with a group for its store."""
        from ..runtime import not_routed_reasons
        routing = [(plan, result) for plan, result in ran
                   if any(g.product_store == order.product_store for g in plan.groups)]
        if not routing:
            return [f"no group routes product store {order.product_store!r}"]
        reasons = [reason for plan, result in routing
                   for reason in not_routed_reasons(plan, single, result, order.id)]
        return list(dict.fromkeys(reasons))

    def commit(self, order: Order, key: str, explain: bool = True) -> bytes:
        """Decide ``order`` and reserve what it takes: recorded in the run store (a batch of
        one per group of its store) with its outbox rows, ledger lines and ``key``, in one
        transaction; returns the answer (JSON) once that has committed. The same key again
        returns the same answer and takes nothing more, from any process, after any restart;
        with a different order it is a ConflictError. Unavailable when it could not be made
        now (nothing was written). Without ``explain`` the answer has no explanations."""
        started = time.perf_counter()
        entry = self._enqueue(order, key, explain)
        entry.event.wait()
        answer = self._outcome(entry, started)
        if entry.followup is not None:
            entry.followup()
        return answer

    async def commit_async(self, order: Order, key: str, explain: bool = True,
                           followups: list | None = None) -> bytes:
        """``commit`` for an event loop: it waits without holding a thread. What a rollout
        does with the decision is added to ``followups``, for the caller to run once the
        answer is sent (run here when it gives no list)."""
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def wake() -> None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))
        entry = self._enqueue(order, key, explain, wake)
        await done
        answer = self._outcome(entry, started)
        if entry.followup is not None:
            if followups is None:
                entry.followup()
            else:
                followups.append(entry.followup)
        return answer

    def _enqueue(self, order: Order, key: str, explain: bool = True, notify=None) -> _Commit:
        if self.store is None:
            raise DecisionError("this service has no run store")
        view = self._current()
        self._check(view, order)
        if not any(g.product_store == order.product_store
                   for plan in self.plans for g in plan.groups):
            raise DecisionError(f"order.product_store: no group routes product store "
                                f"{order.product_store!r}")
        entry = _Commit(order, key, request_digest(order), explain, notify)
        queue = self._queue(view.domain(order.product_store))
        with queue.ready:
            queue.waiting.append(entry)
            queue.ready.notify_all()  # the committer, or the group being decided ahead
            if queue.thread is None:
                queue.thread = threading.Thread(target=self._commit_loop, args=(queue,),
                                                daemon=True, name="committer")
                queue.thread.start()
        return entry

    def _outcome(self, entry: _Commit, started: float) -> bytes:
        if entry.error is not None:
            raise entry.error
        self._count(started)
        return entry.answer

    def _commit_loop(self, queue: _Queue) -> None:
        """The partition's committer: decides what waits, a group at a time (what arrives
        meanwhile forms the next group, decided ahead while this one commits)."""
        ahead: _Ahead | None = None
        while True:
            if ahead is None:
                with queue.ready:
                    while not queue.waiting:
                        if not queue.ready.wait(timeout=KEEP_IDLE):
                            release_kept()  # idle: its connection goes back to the pool
                group = queue.take()
            else:
                group = ahead.group
            pipe = _Pipe(self, queue)
            try:
                with queue.busy:
                    self._decide_group(group, queue, ahead, pipe)
            except BaseException as error:  # noqa: BLE001 - the thread must live on
                for entry in group:
                    if not entry.settled:
                        entry.settle(error=error)
            for entry in group:  # never leave a request unanswered
                if not entry.settled:
                    entry.settle(error=Unavailable("the commit was not decided"))
            ahead = pipe.collect(committed=True)  # (undone already if that group failed)

    def _decide_group(self, group: list[_Commit], queue: _Queue | None = None,
                      ahead: _Ahead | None = None, pipe: _Pipe | None = None) -> None:
        """Decide a group of commits (a key sent twice in it is decided once); every one
        of them is settled when this returns. ``ahead``: the group as decided ahead;
        ``pipe``: where the next group is decided ahead while this one commits."""
        entries, repeats, firsts = _firsts(group)
        for _ in range(KEY_RACES):
            try:
                self._transact(entries, queue, ahead, pipe)
            except _KeyRace:
                ahead = None  # (undone): decided again under the lock
                continue
            except Busy as error:
                failure: Exception = Unavailable(str(error))
            except sa.exc.SQLAlchemyError as error:
                reason = str(getattr(error, "orig", error)).splitlines()[0][:200]
                failure = Unavailable(f"the run store failed: {reason}")
            except Exception as error:  # noqa: BLE001 - every waiting request gets it
                failure = error
            else:
                break
            for entry in entries:
                if not entry.settled:
                    entry.settle(error=failure)
            break
        for entry in repeats:
            first = firsts[entry.key]
            if not first.settled:
                continue  # the committer answers both: not decided
            if first.error is not None:
                entry.settle(error=first.error)
            else:
                try:
                    entry.settle(_answer_for(entry, first.request, first.answer.decode()))
                except ConflictError as error:
                    entry.settle(error=error)

    def _transact(self, entries: list[_Commit], queue: _Queue | None = None,
                  ahead: _Ahead | None = None, pipe: _Pipe | None = None) -> None:
        """Decide ``entries`` and write them in one transaction under their partitions'
        lock; settle each once it has committed."""
        view = self._current()
        stores = sorted({s for e in entries for s in view.domain(e.order.product_store)})
        if ahead is not None and ahead.valid and (
                ahead.view is not view or queue is None or ahead.epoch != queue.epoch):
            self._undo_ahead(ahead)  # the state changed under it: decided again
        with self.lock:
            for product_store in stores:
                view.inflight[product_store] += 1
        try:
            self._transact_on(view, stores, entries, ahead, pipe)
        finally:
            with self.lock:
                for product_store in stores:
                    view.inflight[product_store] -= 1

    def _transact_on(self, view: _View, stores: list[str], entries: list[_Commit],
                     ahead: _Ahead | None = None, pipe: _Pipe | None = None) -> None:
        store = self.store
        undo: list[tuple] = []
        saved: set[str] = set()
        kept = 0  # commits whose decisions were made ahead
        # read once the lock is held, on PostgreSQL in the lock's own round trip: the keys,
        # lines others wrote since, the orders' own lines and rejections, ids for the rows
        reads = GroupReads(store, [e.key for e in entries], stores,
                           {s: view.seen.get(s, 0) for s in stores},
                           {e.order.id for e in entries}, view.reflected_before,
                           ids_wanted=sum(2 * len(g.items) for e in entries
                                          for g in e.order.ship_groups) + 4)
        try:
            with locked(store, stores, self.commit_wait, prefetch=reads,
                        keep=True) as connection:
                # a committed key is final (one committed after this read makes the keys'
                # insert below find it taken, and the group is decided again)
                known = reads.known
                for entry in entries:
                    if entry.key in known:
                        try:
                            entry.settle(_answer_for(entry, *known[entry.key]))
                        except ConflictError as error:
                            entry.settle(error=error)
                fresh = [e for e in entries if e.key not in known]
                fresh_orders = {e.order.id for e in fresh}
                own_lines = [line for line in reads.own if line.order in fresh_orders]
                refusals = [r for r in reads.refused if r.order in fresh_orders]
                if ahead is not None and ahead.valid:
                    if known or reads.lines or own_lines or refusals:
                        self._undo_ahead(ahead)  # it read what no longer holds
                    else:  # decided on exactly what the database shows now
                        undo += ahead.undo
                        kept = len(ahead.entries)
                if not fresh:
                    return
                if ahead is not None and ahead.valid:
                    answers, recorded = ahead.answers, ahead.recorded
                    batch_rows, notes = ahead.batch_rows, ahead.notes
                else:
                    self._apply_read(view, tuple(stores), reads.lines, group=True)
                    own = ledger.Effects(view.today).extend(own_lines)
                    refused = rejections.by_line(refusals)
                    answers, recorded, batch_rows, notes = [], [], [], []
                    for entry in fresh:
                        answer = self._decide(view, rejections.apply_order(entry.order,
                                                                           refused),
                                              entry.explain, own, recorded, batch_rows, undo,
                                              notes)
                        answers.append(orjson.dumps(answer))
                for plan in self._all_plans():
                    plan_json, digest = self._plan_json(plan)
                    if digest not in self._saved_plans and any(
                            row["plan_hash"] == digest for row in batch_rows):
                        store.save_plan(connection, plan_json, plan.source, self.text(plan))
                        saved.add(digest)
                rows = [{"key": e.key, "order_id": e.order.id, "request": e.request,
                         "answer": answer.decode()} for e, answer in zip(fresh, answers,
                                                                         strict=True)]
                # PostgreSQL: every row and the commit in one round trip
                with pipelined(connection, commit=True):
                    store.insert_batches(connection, batch_rows)
                    heads = store.record(connection, recorded, reads.ids)
                    store.settle_batches(connection, batch_rows)
                    written = store.insert_keys(connection, rows)
                    if pipe is not None:  # the next group, while these rows commit
                        pipe.launch(view)
                if written is not None and len(written) != len(rows):
                    raise _KeyRace()  # rolled back; the next attempt finds those keys
        except BaseException as error:
            if pipe is not None:
                pipe.collect(committed=False)  # decided on what did not commit: undone
            if isinstance(error, sa.exc.IntegrityError) and is_key_race(error):
                error = _KeyRace()  # rolled back; the next attempt finds those keys
            elif isinstance(error, sa.exc.IntegrityError):
                self._saved_plans.clear()  # a purge may have removed a plan row: write again
            with self.lock:
                _give_back(view, undo)
                self.ahead_redone += kept
            if isinstance(error, _KeyRace):
                raise error from None
            raise
        self._saved_plans |= saved
        with self.lock:
            for product_store, last_id in heads.items():
                view.seen[product_store] = max(view.seen.get(product_store, 0), last_id)
            self.commits_total += len(fresh)
            self.ahead_kept += kept
        for entry, answer, note in zip(fresh, answers, notes, strict=True):
            if note is not None:
                entry.followup = functools.partial(self.rollout.after_decision, note)
            entry.settle(answer)

    def _decide_ahead(self, ahead: _Ahead) -> None:
        """Take the commits that arrive until ``ahead.stop`` (the group before has
        committed) and decide them on ``ahead.view`` as it is (that group taken), as if no
        order had earlier lines or rejections: `_transact_on` checks that under the lock.
        Thread "decide-ahead", while the committer waits for the group before."""
        queue, view = ahead.queue, ahead.view
        own = ledger.Effects(view.today)
        try:
            while True:
                with queue.ready:
                    # (bounded: a process that stops mid-group is not held up by it)
                    if not queue.waiting and not ahead.stop.is_set():
                        queue.ready.wait_for(lambda: queue.waiting or ahead.stop.is_set(),
                                             timeout=KEEP_IDLE)
                    if ahead.stop.is_set() or not queue.waiting:
                        break
                    room = GROUP_LIMIT - len(ahead.group)
                    arrived = queue.waiting[:room]
                    del queue.waiting[:room]
                    ahead.group += arrived  # in the group now: answered whatever happens
                for entry in arrived:
                    if entry.key in ahead.firsts:
                        continue  # a repeat: answered as its first is
                    ahead.firsts[entry.key] = entry
                    ahead.entries.append(entry)
                    if entry.order.id in view.refused:
                        raise _Refused()  # its rejections to read: decided under the lock
                    answer = self._decide(view, entry.order, entry.explain, own,
                                          ahead.recorded, ahead.batch_rows, ahead.undo,
                                          ahead.notes)
                    ahead.answers.append(orjson.dumps(answer))
                if len(ahead.group) >= GROUP_LIMIT:
                    break
        except BaseException:  # noqa: BLE001 - decided again under the lock, which says
            self._undo_ahead(ahead)
            return
        ahead.valid = True

    def _undo_ahead(self, ahead: _Ahead) -> None:
        """Give back what ``ahead``'s decisions took; it is decided again."""
        with self.lock:
            _give_back(ahead.view, ahead.undo)
            self.ahead_redone += len(ahead.entries)
        ahead.valid = False
        ahead.undo, ahead.answers, ahead.recorded = [], [], []
        ahead.batch_rows, ahead.notes = [], []

    def _decide(self, view: _View, order: Order, explain: bool, own: ledger.Effects,
                recorded: list, batch_rows: list, undo: list, notes: list) -> dict:
        """One commit's decision on the live index (taking its stock there, noted in
        ``undo``) with its own earlier decisions applied (``own``), and the rows it writes;
        what a rollout needs of it goes to ``notes``."""
        lines, unfilled, explanations, batch_ids, ran = [], [], [], [], []
        note = self.rollout.note(order, view.snapshot.timezone) \
            if self.rollout is not None else None
        notes.append(note)
        for plan in self._plans_for(order):
            groups = frozenset(g.name for g in plan.groups
                               if g.product_store == order.product_store)
            if not groups:
                continue
            current = ledger.apply_order(order, own) if order.id in own.orders else order
            started = datetime.now(UTC)
            single = view.snapshot.model_copy(update={"orders": [current], "inventory": []})
            with self.lock:
                if note is not None and self.rollout.shadowing and note.state is None:
                    # the state this decision is taken on, for the candidate to decide on
                    note.state = self._order_state(view, current, view.taken, view.counted,
                                                   stocked_only=True)
                    note.order, note.prepared = current, view.prepared
                result = decide(plan, single, engine=view.engine, live=view.live,
                                group=groups, explain=explain, explain_orders={order.id},
                                prepared=view.prepared.get(id(plan)))
                opened = set()
                for a in result["allocations"]:
                    view.take(a["facility"], a["product"], a["quantity"])
                    undo.append((a["facility"], a["product"], a["quantity"]))
                    if (a["order"], a["new_ship_group"]) not in opened:
                        opened.add((a["order"], a["new_ship_group"]))
                        view.count(a["facility"], 1)
                        undo.append((a["facility"], None, 1))
            states = ledger.item_states([current])
            digest = self._plan_json(plan)[1]
            finished = datetime.now(UTC)
            for batch in result["batches"]:
                mine = [a for a in result["allocations"] if a["group"] == batch["group"]]
                routings = {r["routing"] for r in batch["runs"]}
                left = [u for u in result["unfillable"] if u["routing"] in routings]
                decisions = ledger.decisions(batch["group"], mine, left, states,
                                             product_store=order.product_store,
                                             day=view.today, at=finished)
                batch_id = str(uuid.uuid4())
                batch_ids.append(batch_id)
                batch_rows.append({
                    "id": batch_id, "trigger": "api", "group_name": batch["group"],
                    "product_store": order.product_store, "plan_hash": digest,
                    "snapshot_hash": view.digest, "started": started, "finished": finished,
                    "version_label": plan.version_label, **batch_values(batch, mine, left)})
                recorded.append(Recorded(batch_id, batch, mine, left, decisions,
                                         optimizations_of(result, batch["group"])))
                if note is not None:
                    note.batches.append((plan, batch["group"], batch_id, mine, left,
                                         batch["runs"]))
                own.extend(ledger.Line(0, order.product_store, line["kind"], line["order_id"],
                                       line["ship_group"], line["item"], line["product"],
                                       line["facility"], line["quantity"], line["opens"],
                                       line["day"], line["auto_cancel_date"])
                           for line in decisions.lines)
            ran.append((plan, result, single))
            lines += result["allocations"]
            unfilled += result["unfillable"]
            explanations += result.get("explanations", [])
        not_routed = [] if lines or unfilled or not ran else self._not_routed(
            order, ran[0][2], [(plan, result) for plan, result, _ in ran])
        return {"order": order.id, "lines": lines, "unfilled": unfilled,
                "explanations": explanations, "committed": True, "batches": batch_ids,
                "not_routed": not_routed}

    # ---- rejections ----
    def reject(self, request: rejections.RejectionRequest, order: Order | None = None,
               explain: bool = False) -> bytes:
        """Record that a facility rejected a committed line (see ops/rejections.py): its
        reservations released here at once, and with ``request.reroute`` the item routed
        again now with the live plans (``order`` as the request gives it, else as the source
        has it, with the ledger and the rejection applied), recorded as a batch of one per
        group, all in one transaction with the key. Returns the answer (JSON): the rejection
        and the new decision (null without reroute). RejectionError, ConflictError,
        DecisionError or Unavailable when it cannot be made."""
        store = self.store
        if store is None:
            raise DecisionError("this service has no run store")
        view = self._current()
        started = time.perf_counter()
        try:
            answer = rejections.known_answer(store, request)
            if answer is not None:
                return answer
            with store.reading() as connection:
                lines = rejections.held_lines(connection, request)
            if not lines:
                raise rejections._nothing(request)
            domain = view.domain(lines[0].product_store)
            queue = self._queue(domain)
            with queue.busy:  # this process's commits of the partition wait
                queue.epoch += 1
                answer = self._reject_locked(view, domain, request, order, explain)
        except rejections.KeyConflict as error:
            raise ConflictError(str(error)) from None
        except Busy as error:
            raise Unavailable(str(error)) from None
        except sa.exc.SQLAlchemyError as error:
            reason = str(getattr(error, "orig", error)).splitlines()[0][:200]
            raise Unavailable(f"the run store failed: {reason}") from None
        self._count(started)
        return answer

    def _reject_locked(self, view: _View, domain: tuple[str, ...],
                       request: rejections.RejectionRequest, order: Order | None,
                       explain: bool) -> bytes:
        store = self.store
        undo: list[tuple] = []
        try:
            with locked(store, domain, self.commit_wait) as connection:
                answer = rejections.known_answer(store, request, connection)
                if answer is not None:
                    return answer
                self._read_ledger(view, domain, connection, group=True)
                lines = rejections.held_lines(connection, request)
                if not lines:
                    raise rejections._nothing(request)
                rejection = rejections.record(connection, request, lines)
                with self.lock:  # the stock and count this process took for them, back
                    for line in lines:
                        if line.id > view.seen.get(line.product_store, 0) or (
                                view.reflected_before is not None and line.acked is not None
                                and line.acked < view.reflected_before):
                            continue  # not applied here: the source shows it, or not read
                        view.take(request.facility, line.product, -line.quantity)
                        undo.append((request.facility, line.product, -line.quantity))
                        if line.opens and line.day == view.today:
                            view.count(request.facility, -1)
                            undo.append((request.facility, None, -1))
                decision, recorded, batch_rows = None, [], []
                if request.reroute:
                    current = self._rerouted(view, connection, request, order, lines)
                    # (a rollout's shadow does not follow a rerouted item: its note is dropped)
                    decision = self._decide(view, current, explain, ledger.Effects(view.today),
                                            recorded, batch_rows, undo, [])
                    for plan in self._all_plans():
                        plan_json, digest = self._plan_json(plan)
                        if any(row["plan_hash"] == digest for row in batch_rows):
                            store.save_plan(connection, plan_json, plan.source,
                                            self.text(plan))
                    store.insert_batches(connection, batch_rows)
                heads = store.record(connection, recorded)
                store.settle_batches(connection, batch_rows)
                answer = orjson.dumps({"rejection": rejection.entry(), "decision": decision})
                rejections.keep_answer(store, connection, request, answer)
        except BaseException:
            with self.lock:
                for facility, product, quantity in undo:
                    if product is None:
                        view.count(facility, -quantity)
                    else:
                        view.take(facility, product, -quantity)
            raise
        with self.lock:
            for product_store, last_id in heads.items():
                view.seen[product_store] = max(view.seen.get(product_store, 0), last_id)
            found = view.refused.setdefault(request.order, {})
            found.setdefault(request.item, []).append(rejection)
            if request.reroute:
                self.commits_total += 1
        return answer

    def _rerouted(self, view: _View, connection, request: rejections.RejectionRequest,
                  order: Order | None, lines) -> Order:
        """The rejected item as an order of one line to route again: as given, or as the
        source has the order, with the ledger (the released lines no longer applying) and
        the recorded rejections applied; units the OMS already shows at the rejecting
        facility go back to the queue they came from (or ``request.queue``)."""
        if order is None:
            order = view.order(request.order)
            if order is None:
                raise DecisionError(f"order {request.order!r} is not in the live state's "
                                    "source; send it in `order` to route it again")
        elif order.id != request.order:
            raise DecisionError(f"order: {order.id!r} is not the rejected order "
                                f"{request.order!r}")
        self._check(view, order)
        own = ledger.Effects(view.today).extend(self.store.ledger(
            reflected_before=view.reflected_before, orders={order.id}, connection=connection))
        current = ledger.apply_order(order, own) if order.id in own.orders else order
        current = rejections.apply_order(current, rejections.by_line(rejections.stored(
            connection, orders={order.id})))
        facilities = {f.id: f for f in view.snapshot.facilities}
        groups = []
        for group in current.ship_groups:
            items = [i for i in group.items if i.id == request.item
                     and i.quantity - i.cancel_quantity > ledger_epsilon]
            if not items:
                continue
            where = facilities.get(group.facility)
            if where is not None and not where.virtual:
                if group.facility != request.facility:
                    continue  # shipping from elsewhere: not what was rejected
                queue = request.queue or rejections.source_queue(connection, lines[0],
                                                                 request)
                if queue is None or queue not in facilities or not facilities[queue].virtual:
                    raise DecisionError(
                        f"the source shows order {request.order!r} item {request.item!r} at "
                        f"{request.facility!r}; name the queue to route it from (`queue`)")
                group = ledger.replace_fields(group, facility=queue)
            groups.append(ledger.replace_fields(group, items=type(group.items)(items)))
        if not groups:
            raise DecisionError(f"order {request.order!r} item {request.item!r} has nothing "
                                "open to route again")
        return ledger.replace_fields(current, ship_groups=type(current.ship_groups)(groups))

    # ---- batches ----
    def run_groups(self, plan: Plan, names: frozenset[str], *, trigger: str = "api",
                   started=None, webhook=None, router=route) -> tuple[dict, list[str]]:
        """Run groups of ``plan`` now, recorded as batches, on the loaded source with the
        ledger applied under their partitions' locks (ops/runner.py); what they take is
        then read into the live state."""
        view = self._current()
        recorder = self.rollout.run_recorded if self.rollout is not None else _run_recorded
        result, ids = recorder(self.store, plan, view.snapshot,
                                    source_text=self.text(plan), trigger=trigger, group=names,
                                    started=started, webhook=webhook, router=router,
                                    reflected_before=view.reflected_before)
        self.catch_up({g.product_store for g in plan.groups if g.name in names})
        return result, ids

    def run_group(self, plan: Plan, group, store=None) -> tuple[dict, list[str]]:
        """Run one group now (see run_groups), trigger api."""
        return self.run_groups(plan, frozenset([group.name]))

    def batch_snapshot(self) -> Snapshot:
        """The loaded snapshot with the live index's stock and daily counts: what a quote
        decides on (orders as loaded)."""
        view = self._current()
        with self.lock:
            taken, counted = dict(view.taken), dict(view.counted)
        snapshot = view.snapshot
        return snapshot.model_copy(update={
            "inventory": snapshot.inventory.less(taken),
            "facilities": _facilities(snapshot, counted)})

    def order_snapshot(self, order: Order, taken: bool = True) -> Snapshot:
        """A snapshot holding only ``order`` and the stock rows it can use (its products and
        their styles' variants), with what was taken applied (unless not ``taken``: as
        loaded; the rejections recorded for it on its items): built from validated parts, so
        only the order's references are checked."""
        view = self._current()
        with self.lock:
            consumed = dict(view.taken) if taken else {}
            counted = dict(view.counted) if taken else {}
            self._check(view, order)
            order = rejections.apply_order(order, view.refused)
        return self._order_state(view, order, consumed, counted)

    def _order_state(self, view: _View, order: Order, consumed: dict,
                     counted: dict, stocked_only: bool = False) -> Snapshot:
        """`order_snapshot` of ``view`` with ``consumed`` stock and ``counted`` orders (with
        ``stocked_only``, the counts of the facilities stocking the order's products only:
        the others cannot take it, and copying them all costs a decision dear)."""
        snapshot = view.snapshot
        products = {i.product for g in order.ship_groups for i in g.items}
        for style in {view.style.get(p) for p in products} - {None}:
            products.update(view.variants[style])
        inventory = []
        for product in sorted(products):
            for row in view.rows.get(product, ()):
                quantity = consumed.get((row.facility, row.product))
                inventory.append(row if quantity is None else
                                 row.model_copy(update={"atp": row.atp - quantity}))
        if stocked_only:
            stocked = {row.facility for row in inventory}
            counted = {f: n for f, n in counted.items() if f in stocked}
        return Snapshot.model_construct(
            format=snapshot.format, now=snapshot.now, timezone=snapshot.timezone,
            product_stores=snapshot.product_stores,
            facilities=_facilities(snapshot, counted), products=snapshot.products,
            inventory=Inventory(inventory), shipment_methods=snapshot.shipment_methods,
            orders=[order])

    # ---- helpers ----
    def _current(self) -> _View:
        view = self._view
        if view is None:
            raise DecisionError("the live state is not loaded")
        return view

    def _plan_json(self, plan: Plan) -> tuple[str, str]:
        known = self._plans_json.get(id(plan))
        if known is None:
            text = plan.to_json()
            known = self._plans_json[id(plan)] = (text, plan_hash(text))
        return known

    def _queue(self, domain: tuple[str, ...]) -> _Queue:
        with self._queues_lock:
            queue = self._queues.get(domain)
            if queue is None:
                queue = self._queues[domain] = _Queue()
            return queue

    def _check(self, view: _View, order: Order) -> None:
        """The order's references, checked against the loaded facilities."""
        problems = order_problems(order, "order", view.facility_ids)
        if problems:
            raise DecisionError("; ".join(problems[:5]))

    def _count(self, started: float) -> None:
        with self.lock:
            self.decisions += 1
            seconds = time.perf_counter() - started
            self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self.latency_sum += seconds


class _KeyRace(Exception):
    """A key of the group was committed meanwhile by another transaction."""


class _Refused(Exception):
    """A commit decided ahead whose order has recorded rejections."""


def _answer_for(entry: _Commit, request: str, answer: str) -> bytes:
    if request != entry.request:
        raise ConflictError(f"idempotency key {entry.key!r} was used for another order")
    return answer.encode("utf-8")


def _give_back(view: _View, undo: list[tuple]) -> None:
    """Undo what decisions took from ``view`` (their ``undo`` notes); the caller holds the
    state's lock."""
    for facility, product, quantity in undo:
        if product is None:
            view.count(facility, -quantity)
        else:
            view.take(facility, product, -quantity)


def _facilities(snapshot: Snapshot, counted: dict) -> list:
    return [f.model_copy(update={"orders_today": f.orders_today + counted[f.id]})
            if f.id in counted else f for f in snapshot.facilities]


def _run_recorded(*args, **kwargs):
    from ..ops.runner import run_recorded
    return run_recorded(*args, **kwargs)
