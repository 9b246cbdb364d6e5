"""The scheduler: runs each group on its cron schedule, in its time zone, recorded in the run
store, under supervision. One structured JSON line is logged per event.

Slots. A group is due when its latest slot has no attempt yet: after downtime, however many
slots passed, it runs once; paused groups never run. Slots are wall-clock times in the group's
zone. A time that falls in the hour skipped when daylight saving starts fires at the first time
after it (croniter's rule); a time shown twice when it ends is one slot, fired at its first
showing, for schedules at fixed hours (`30 1 * * *`). Schedules whose hour is `*` measure
intervals and keep firing through the repeated hour, as cron's own daemons do.

Supervision. Each round reads the source afresh (through the live state's refresh when a
service shares one). A round that raises (a bad or half-written source, an unreachable
database) is logged, recorded as a failed batch per due group once per slot when the store can
be written, reported to the :class:`Supervision` (which `/healthz` and `/metrics` read) and
retried with exponential backoff, for as long as its slot is the latest; the batches it left
`running` are closed before the retry. The loop itself never ends on an error.

Reruns. An attempt that recorded no decision (its process died mid-batch and `close_stale`
closed it, or the round failed before deciding) does not use up its slot: a process that did
not see it finish runs the slot once more, and only once.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from croniter import croniter

from ..engine import route
from ..plan import Plan, PlanGroup
from ..snapshot import Snapshot
from . import schema as t
from .ledger import reflection_cutoff
from .locks import StoreLock, close_stale
from .runner import run_recorded
from .store import RunStore

RETRY_FIRST = 1.0   # seconds before the first retry of a failed round; doubled each time
RETRY_MAX = 60.0    # and never more than this (nor than the poll interval)


def _cron(expression: str, start: datetime) -> croniter:
    fields = expression.split()
    return croniter(expression, start, second_at_beginning=len(fields) > 5)


@lru_cache(maxsize=256)
def _fixed_hours(expression: str) -> bool:
    """Whether the schedule fires at set hours of the day (its hour field is not `*`)."""
    return _cron(expression, datetime(2000, 1, 1, tzinfo=UTC)).expanded[1] != ["*"]


def _shown_again(expression: str, slot: datetime) -> bool:
    """Whether ``slot`` is the second showing of a wall-clock time (the repeated hour when
    daylight saving ends) of a fixed-hour schedule, which fired at the first showing."""
    return (slot.fold == 1 and slot.replace(fold=0).utcoffset() != slot.utcoffset()
            and _fixed_hours(expression))


def latest_slot(expression: str, zone: str, now: datetime) -> datetime:
    """The most recent slot at or before ``now``, in the group's zone (so daylight-saving
    changes move slots as a wall clock does; a time shown twice is one slot)."""
    # from UTC, so that a local time shown twice keeps its fold (its offset)
    start = (now.astimezone(UTC) + timedelta(seconds=1)).astimezone(ZoneInfo(zone))
    iterator = _cron(expression, start)  # a slot exactly at now counts
    slot = iterator.get_prev(datetime)
    if slot.astimezone(UTC) > now.astimezone(UTC):
        slot = iterator.get_prev(datetime)
    return slot.replace(fold=0) if _shown_again(expression, slot) else slot


def next_slot(expression: str, zone: str, now: datetime) -> datetime:
    iterator = _cron(expression, now.astimezone(ZoneInfo(zone)))
    slot = iterator.get_next(datetime)
    while _shown_again(expression, slot):
        slot = iterator.get_next(datetime)
    return slot


def slots_missed(group: PlanGroup, last: datetime | None, now: datetime,
                 most: int = 1000) -> int:
    """Slots of ``group`` that came after its last scheduled batch started (``last``) and
    are due by ``now``: 0 when it is on time (the alerts' "scheduler late" and the
    dashboard read it). At most ``most``; 0 for a group that never ran (nothing to measure
    from) or has no schedule."""
    if not group.cron or last is None:
        return 0
    iterator = _cron(group.cron, last.astimezone(ZoneInfo(group_zone(group))))
    missed = 0
    while missed < most:
        slot = iterator.get_next(datetime)
        if slot.astimezone(UTC) > now.astimezone(UTC):
            break
        if not _shown_again(group.cron, slot):
            missed += 1
    return missed


def group_zone(group: PlanGroup) -> str:
    return group.timezone or "UTC"


def _slot(group: PlanGroup, now: datetime) -> datetime:
    """The group's latest slot as a UTC instant (times of one zone compare by their wall
    clock, fold ignored: two showings of 01:30 would be equal)."""
    return latest_slot(group.cron, group_zone(group), now).astimezone(UTC)


def backoff(failures: int, most: float = RETRY_MAX) -> float:
    """Seconds to wait after ``failures`` failed rounds in a row: 1, 2, 4, ... up to ``most``."""
    return min(most, RETRY_FIRST * 2 ** min(failures - 1, 16))


def describe(error: BaseException) -> str:
    """One line saying what went wrong, for logs, batch rows and /healthz."""
    if isinstance(error, SourceFailed) and error.__cause__ is not None:
        return f"source: {describe(error.__cause__)}"
    problems = getattr(error, "problems", None)  # a snapshot's (SnapshotError, BadSnapshot)
    if isinstance(problems, list) and problems:
        more = len(problems) - 3
        text = "; ".join(problems[:3]) + (f" (and {more} more)" if more > 0 else "")
    elif isinstance(error, sa.exc.DBAPIError):
        text = f"{type(error.orig).__name__}: {str(error.orig).strip()}"
    else:
        text = f"{type(error).__name__}: {error}".rstrip(": ")
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:499] + "…"


class SourceFailed(Exception):
    """The round could not read its source (the cause says why)."""


class Supervision:
    """What the scheduler's rounds and the live state's loads went through: read by
    `/healthz` (what is failing now, and why) and `/metrics` (counters since the start).
    Components report by name (each plan's scheduler, the live state); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing: dict[str, dict] = {}   # component -> its current failure
        self.rounds: Counter = Counter()      # outcome (succeeded, failed) -> rounds
        self.batches: Counter = Counter()     # (trigger, status) -> batches this process ran
        self.last_success: datetime | None = None
        self.running = False                  # the scheduler loop is running
        self.crashed: str | None = None       # why the loop ended, if an error ended it

    def succeeded(self, component: str, at: datetime, batches=()) -> None:
        with self._lock:
            self._failing.pop(component, None)
            self.rounds["succeeded"] += 1
            self.last_success = at
            for batch in batches:
                self.batches[("scheduled", batch["status"])] += 1

    def failed(self, component: str, at: datetime, error: str, retry_in: float) -> None:
        with self._lock:
            failing = self._failing.setdefault(component, {"since": at, "failures": 0})
            failing.update(error=error, failures=failing["failures"] + 1,
                           retry_in=round(retry_in, 3))
            self.rounds["failed"] += 1

    def clear(self, component: str) -> None:
        """``component`` works again (without counting a round)."""
        with self._lock:
            self._failing.pop(component, None)

    def count(self, trigger: str, statuses) -> None:
        with self._lock:
            for status in statuses:
                self.batches[(trigger, status)] += 1

    def counters(self) -> tuple[Counter, Counter]:
        """Copies of ``rounds`` and ``batches`` (another thread may be adding to them)."""
        with self._lock:
            return Counter(self.rounds), Counter(self.batches)

    def problems(self) -> list[str]:
        """Why the service is degraded, one line each (empty when it is not)."""
        with self._lock:
            lines = [f"{name}: failing since {f['since'].isoformat()} ({f['failures']} "
                     f"failed attempt{'s' if f['failures'] != 1 else ''}, next in "
                     f"{f['retry_in']:g} s): {f['error']}"
                     for name, f in sorted(self._failing.items())]
            if self.crashed is not None:
                lines.append(f"the scheduler stopped: {self.crashed}")
            return lines

    def failing(self) -> dict[str, dict]:
        with self._lock:
            return {name: dict(f) for name, f in self._failing.items()}


class Scheduler:
    """Runs the due groups of one plan against snapshots from ``source`` (called once per
    round, so each round sees fresh data)."""

    def __init__(self, store: RunStore, plan: Plan, source: Callable[[], Snapshot], *,
                 source_text: str | None = None, log=None, webhook=None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 supervision: Supervision | None = None):
        self.store = store
        self.plan = plan
        self.source = source
        self.source_text = source_text
        self.webhook = webhook
        self.clock = clock
        self.log = log or (lambda event: print(json.dumps(event, default=str),
                                               file=sys.stderr, flush=True))
        self.supervision = supervision or Supervision()
        self.name = f"scheduler {plan.source}"
        # A service sets this to its live state: each round first rereads the source into the
        # state (LiveState.refresh), then runs on it (LiveState.run_groups), which its
        # decisions share.
        self.live = None
        # A scale-out router (scaleout.route_partitioned with an executor) runs the round's
        # partitions in parallel; run_recorded still takes each partition's lock for its
        # groups, so one writer at a time per partition.
        self.router = None
        # What follows the round's committed batches (ops.hooks.AfterBatches: the OMS
        # write-back, then the alert rules) and each round (the scheduler-late rules).
        self.after = None
        # A candidate version beside production (rollout.controller.Rollout): its
        # run_recorded stands for ops.runner's (with a live state, the state's is used).
        self.rollout = None
        self.failures = 0  # rounds failed in a row
        self._settled: dict[str, datetime] = {}   # group -> its latest slot, known to be run
        self._retrying: dict[str, datetime] = {}  # group -> slot whose round failed here
        self._recorded: dict[str, datetime] = {}  # group -> slot whose failure is recorded
        self._reruns: set[str] = set()            # groups due again after a dead attempt

    # ---- which groups are due ----
    def due(self, now: datetime) -> list[PlanGroup]:
        """Groups whose latest slot has not been run yet (each at most once, however many
        slots passed), skipping paused groups and groups without a schedule."""
        due = []
        self._reruns.clear()
        for group in self.plan.groups:
            if group.paused or not group.cron:
                continue
            slot = _slot(group, now)
            if self._settled.get(group.name) == slot:
                continue
            state = self._slot_state(group, slot)
            if state == "running" and self._close_abandoned(group.product_store):
                state = self._slot_state(group, slot)
            if state in ("due", "rerun"):
                due.append(group)
                if state == "rerun":
                    self._reruns.add(group.name)
            elif state == "done":
                self._settled[group.name] = slot
        return due

    def _slot_state(self, group: PlanGroup, slot: datetime) -> str:
        """``due`` (no attempt yet), ``rerun`` (its attempts decided nothing: died or failed
        early), ``running`` (an attempt is under way) or ``done``."""
        b = t.batches.c
        query = sa.select(b.status, b.allocations, b.unfillable).where(
            b.started >= slot, b.group_name == group.name,
            b.trigger == "scheduled")
        with self.store.engine.connect() as connection:
            attempts = connection.execute(query).all()
        if not attempts:
            return "due"
        if any(a.status == "running" for a in attempts):
            return "running"
        if any(a.status != "failed" or a.allocations or a.unfillable for a in attempts):
            return "done"  # it decided something: running it again could decide it twice
        # Every attempt decided nothing, so nothing of it reached the outbox. A slot whose
        # attempt died runs once more; a round that failed in this process is retried.
        if len(attempts) < 2 or self._retrying.get(group.name) == slot:
            return "rerun"
        return "done"

    def _close_abandoned(self, product_store: str) -> int:
        """Close the batches of ``product_store`` left running by a process that died (its
        lock is free); 0 when a live process holds the store."""
        with StoreLock(self.store, product_store) as held:
            closed = self.store.close_stale(product_store) if held else 0
        if closed:
            self.log({"at": self.clock().isoformat(), "event": "closed_stale",
                      "product_store": product_store, "batches": closed})
        return closed

    # ---- one round ----
    def run_once(self) -> list[dict]:
        """Run every due group once; returns the batches recorded. Raises when the round
        fails (the groups stay due: the next round retries them)."""
        now = self.clock()
        due = self.due(now)
        if not due:
            return []
        slots = {g.name: _slot(g, now) for g in due}
        for group in due:
            self.log({"at": now.isoformat(), "event": "start", "group": group.name,
                      "product_store": group.product_store,
                      "slot": slots[group.name].isoformat(),
                      **({"rerun": True} if group.name in self._reruns else {})})
        try:
            result, ids = self._run(due, now)
        except SourceFailed as error:
            for group in due:
                self._retrying[group.name] = slots[group.name]
            self._record_failure(due, slots, now, describe(error))
            raise
        except BaseException:
            for group in due:
                self._retrying[group.name] = slots[group.name]
            raise
        for group in due:  # seen to finish here: not run again, whatever its status
            self._retrying.pop(group.name, None)
            self._settled[group.name] = slots[group.name]
        return self._log_batches(result, ids, [])

    def _run(self, due: list[PlanGroup], now: datetime) -> tuple[dict, list[str]]:
        # One run for all the round's due groups, as `routing run` does: groups in plan order
        # see what earlier ones took (two groups sharing a facility share its stock and its
        # daily limit), and every decision recorded before (the ledger).
        names = frozenset(g.name for g in due)
        if self.live is not None:
            try:  # outside the locks: reading may take a while
                self.live.refresh()
            except Exception as error:
                raise SourceFailed("the source could not be read") from error
            result, ids = self.live.run_groups(self.plan, names, trigger="scheduled",
                                               started=now, webhook=self.webhook,
                                               router=self.router or route)
            snapshot = self.live.snapshot
        else:
            read_at = self.store.clock()  # before the source: see ledger.reflection_cutoff
            try:
                snapshot = self.source()
            except Exception as error:
                raise SourceFailed("the source could not be read") from error
            recorder = self.rollout.run_recorded if self.rollout is not None else run_recorded
            result, ids = recorder(self.store, self.plan, snapshot,
                                   source_text=self.source_text, trigger="scheduled",
                                   group=names, started=now, webhook=self.webhook,
                                   router=self.router or route,
                                   reflected_before=reflection_cutoff(read_at, snapshot.now))
        if self.after:  # the OMS write-back acknowledges what it wrote: the ledger then
            self.after(self.store, ids, snapshot)  # stops applying it once a read follows
        return result, ids

    def _record_failure(self, due: list[PlanGroup], slots: dict, now: datetime,
                        error: str) -> None:
        """A round that could not read its source leaves one failed batch per due group and
        slot (retries of the same slot add none), for the console and the batch list."""
        plan_json = None
        for group in due:
            if self._recorded.get(group.name) == slots[group.name]:
                continue
            try:
                plan_json = plan_json or self.plan.to_json()
                batch_id = self.store.start_batch(
                    group=group.name, product_store=group.product_store, plan_json=plan_json,
                    source_name=self.plan.source, source_text=self.source_text,
                    snapshot_hash="", trigger="scheduled", started=now,
                    version_label=self.plan.version_label)
                self.store.fail_batch(batch_id, error)
            except Exception as failure:  # the store is down too: the log keeps it
                self.log({"at": self.clock().isoformat(), "event": "not_recorded",
                          "group": group.name, "error": describe(failure)})
                return
            self._recorded[group.name] = slots[group.name]
            self.supervision.count("scheduled", ["failed"])
            self.log({"at": self.clock().isoformat(), "event": "batch", "group": group.name,
                      "batch": batch_id, "status": "failed", "allocations": 0,
                      "error": error})

    def supervised_round(self, most: float = RETRY_MAX) -> float | None:
        """:meth:`run_once` under supervision: None when the round went through, else the
        seconds to wait before retrying it (the failure is logged and reported)."""
        try:
            if self.failures:  # close what the failed round left running
                closed = close_stale(self.store)
                if closed:
                    self.log({"at": self.clock().isoformat(), "event": "closed_stale",
                              "batches": closed})
            batches = self.run_once()
        except Exception as error:
            self.failures += 1
            delay = backoff(self.failures, most)
            message = describe(error)
            self.log({"at": self.clock().isoformat(), "event": "round_failed",
                      "plan": self.plan.source, "error": message, "failures": self.failures,
                      "retry_in": delay})
            self.supervision.failed(self.name, self.clock(), message, delay)
            self._after_round()
            return delay
        if self.failures:
            self.log({"at": self.clock().isoformat(), "event": "recovered",
                      "plan": self.plan.source, "failures": self.failures})
        self.failures = 0
        self.supervision.succeeded(self.name, self.clock(), batches)
        self._after_round()
        return None

    def _after_round(self) -> None:
        if self.after:
            try:
                self.after.after_round(self.store, self.plan, self.clock())
            except Exception as error:  # noqa: BLE001 - the store is down: logged above
                self.log({"at": self.clock().isoformat(), "event": "alerts_failed",
                          "error": describe(error)})

    def _log_batches(self, result: dict, ids: list[str], recorded: list[dict]) -> list[dict]:
        for batch, batch_id in zip(result["batches"], ids, strict=True):
            event = {"at": self.clock().isoformat(), "event": "batch",
                     "group": batch["group"], "batch": batch_id,
                     "status": "skipped" if batch.get("skipped") else (
                         "failed" if any(r["error"] for r in batch["runs"]) else
                         "succeeded"),
                     "allocations": sum(1 for a in result["allocations"]
                                        if a["group"] == batch["group"])}
            self.log(event)
            recorded.append(event)
        return recorded

    def next_wake(self, now: datetime, poll_seconds: float) -> float:
        """Seconds until this plan's next slot (at most ``poll_seconds``)."""
        upcoming = [next_slot(g.cron, group_zone(g), now) for g in self.plan.groups
                    if g.cron and not g.paused]
        return min([(slot.astimezone(UTC) - now.astimezone(UTC)).total_seconds()
                    for slot in upcoming] + [poll_seconds])


def run_due_once(schedulers: list[Scheduler]) -> dict | None:
    """`serve --once`: run what is due in every plan, then log one `once` line saying what ran
    (`ran`: the groups, `batches`) or that nothing was due, and when the next slot comes."""
    if not schedulers:
        return None
    recorded = [event for scheduler in schedulers for event in scheduler.run_once()]
    first = schedulers[0]
    now = first.clock()
    upcoming = [(next_slot(g.cron, group_zone(g), now), g.name) for s in schedulers
                for g in s.plan.groups if g.cron and not g.paused]
    event = {"at": now.isoformat(), "event": "once",
             "ran": list(dict.fromkeys(e["group"] for e in recorded)),
             "batches": len(recorded), "nothing_due": not recorded}
    if upcoming:
        slot, group = min(upcoming)
        event["next"] = {"group": group, "at": slot.isoformat()}
    first.log(event)
    return event


def serve(schedulers: list[Scheduler], stop: threading.Event, poll_seconds: float = 30.0, *,
          prepare: Callable[[], None] | None = None) -> None:
    """Until ``stop`` is set: run what is due in every plan, then sleep until the next slot
    (or at most ``poll_seconds``, or until a failed round's retry). A stop request lets the
    batch in flight finish. ``prepare`` (a service's first load of its live state, when it
    failed at start) is retried with backoff until it succeeds; rounds wait for it.

    No error ends the loop: each is logged, reported to the schedulers' Supervision and
    retried. Only a stop (or an exception that is not an error, which is reported) does."""
    if not schedulers:
        return
    first = schedulers[0]
    supervision = first.supervision
    most = min(RETRY_MAX, max(RETRY_FIRST, poll_seconds))
    retry_at: dict[int, float] = {}  # scheduler -> when (monotonic) its failed round is retried
    failures = 0                     # the loader's or the loop's own, in a row

    def now() -> datetime:
        return first.clock()

    first.log({"at": now().isoformat(), "event": "serving",
               "groups": [g.name for s in schedulers for g in s.plan.groups
                          if g.cron and not g.paused]})
    supervision.running = True
    try:
        while not stop.is_set():
            wait = poll_seconds
            try:
                if prepare is not None:
                    prepare()
                    prepare = None
                    supervision.clear("live state")
                    first.log({"at": now().isoformat(), "event": "loaded"})
                for k, scheduler in enumerate(schedulers):
                    if stop.is_set():
                        break
                    if retry_at.get(k, 0.0) > time.monotonic():
                        continue
                    delay = scheduler.supervised_round(most)
                    if delay is None:
                        retry_at.pop(k, None)
                    else:
                        retry_at[k] = time.monotonic() + delay
                wait = min(s.next_wake(now(), poll_seconds) for s in schedulers)
                if retry_at:
                    wait = min(wait, min(retry_at.values()) - time.monotonic())
                if failures:
                    failures = 0
                    supervision.clear("scheduler")
            except Exception as error:  # the loader failed, or something no round caught
                failures += 1
                wait = backoff(failures, most)
                component = "live state" if prepare is not None else "scheduler"
                first.log({"at": now().isoformat(), "event": "round_failed",
                           "component": component, "error": describe(error),
                           "failures": failures, "retry_in": wait})
                supervision.failed(component, now(), describe(error), wait)
            stop.wait(max(0.05, wait))
    except BaseException as error:
        supervision.crashed = describe(error)
        first.log({"at": now().isoformat(), "event": "crashed", "error": describe(error)})
        raise
    finally:
        supervision.running = False
    first.log({"at": now().isoformat(), "event": "stopped"})
