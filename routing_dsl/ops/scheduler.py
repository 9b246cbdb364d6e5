"""The scheduler: runs each group on its cron schedule, in its time zone, recorded in the run
store. A slot missed while nothing ran (downtime) is run once, not once per missed slot;
paused groups never run; one structured JSON line is logged per event."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from croniter import croniter

from ..plan import Plan, PlanGroup
from ..snapshot import Snapshot
from . import schema as t
from ..engine import route
from .ledger import reflection_cutoff
from .runner import run_recorded
from .store import RunStore


def _cron(expression: str, start: datetime) -> croniter:
    fields = expression.split()
    return croniter(expression, start, second_at_beginning=len(fields) > 5)


def latest_slot(expression: str, zone: str, now: datetime) -> datetime:
    """The most recent time at or before ``now`` the schedule fires (in the group's zone, so
    daylight-saving changes move slots as a wall clock does)."""
    local = now.astimezone(ZoneInfo(zone))
    iterator = _cron(expression, local + timedelta(seconds=1))  # a slot exactly at now counts
    slot = iterator.get_prev(datetime)
    return slot if slot <= local else iterator.get_prev(datetime)


def next_slot(expression: str, zone: str, now: datetime) -> datetime:
    return _cron(expression, now.astimezone(ZoneInfo(zone))).get_next(datetime)


def group_zone(group: PlanGroup) -> str:
    return group.timezone or "UTC"


class Scheduler:
    """Runs the due groups of one plan against snapshots from ``source`` (called once per
    round, so each round sees fresh data)."""

    def __init__(self, store: RunStore, plan: Plan, source: Callable[[], Snapshot], *,
                 source_text: str | None = None, log=None, webhook=None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.store = store
        self.plan = plan
        self.source = source
        self.source_text = source_text
        self.webhook = webhook
        self.clock = clock
        self.log = log or (lambda event: print(json.dumps(event, default=str),
                                               file=sys.stderr, flush=True))
        # A service sets this to its live state: each round then runs on the state's
        # snapshot (LiveState.run_groups), which its decisions share.
        self.live = None
        # A scale-out router (scaleout.route_partitioned with an executor) runs the round's
        # partitions in parallel; run_recorded still takes each partition's lock for its
        # groups, so one writer at a time per partition.
        self.router = None

    def last_scheduled(self, group: str) -> datetime | None:
        query = sa.select(sa.func.max(t.batches.c.started)).where(
            t.batches.c.group_name == group, t.batches.c.trigger == "scheduled")
        with self.store.engine.connect() as connection:
            value = connection.execute(query).scalar()
        return None if value is None else (value if value.tzinfo else value.replace(tzinfo=UTC))

    def due(self, now: datetime) -> list[PlanGroup]:
        """Groups whose latest slot has not been run yet (each at most once, however many
        slots passed), skipping paused groups and groups without a schedule."""
        due = []
        for group in self.plan.groups:
            if group.paused or not group.cron:
                continue
            slot = latest_slot(group.cron, group_zone(group), now)
            last = self.last_scheduled(group.name)
            if last is None or last < slot:
                due.append(group)
        return due

    def run_once(self) -> list[dict]:
        """Run every due group once; returns the batches recorded."""
        now = self.clock()
        due = self.due(now)
        if not due:
            return []
        for group in due:
            self.log({"at": now.isoformat(), "event": "start", "group": group.name,
                      "product_store": group.product_store})
        # One run for all the round's due groups, as `routing run` does: groups in plan order
        # see what earlier ones took (two groups sharing a facility share its stock and its
        # daily limit), and every decision recorded before (the ledger).
        names = frozenset(g.name for g in due)
        if self.live is not None:
            result, ids = self.live.run_groups(self.plan, names, trigger="scheduled",
                                               started=now, webhook=self.webhook,
                                               router=self.router or route)
        else:
            read_at = self.store.clock()  # before the source: see ledger.reflection_cutoff
            snapshot = self.source()
            result, ids = run_recorded(self.store, self.plan, snapshot,
                                       source_text=self.source_text, trigger="scheduled",
                                       group=names, started=now, webhook=self.webhook,
                                       router=self.router or route,
                                       reflected_before=reflection_cutoff(read_at,
                                                                          snapshot.now))
        return self._log_batches(result, ids, [])

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
        return min([(slot - now).total_seconds() for slot in upcoming] + [poll_seconds])


def serve(schedulers: list[Scheduler], stop: threading.Event, poll_seconds: float = 30.0) -> None:
    """Until ``stop`` is set: run what is due in every plan, then sleep until the next slot
    (or at most ``poll_seconds``). A stop request lets the batch in flight finish."""
    if not schedulers:
        return
    first = schedulers[0]
    first.log({"at": first.clock().isoformat(), "event": "serving",
               "groups": [g.name for s in schedulers for g in s.plan.groups
                          if g.cron and not g.paused]})
    while not stop.is_set():
        for scheduler in schedulers:
            if stop.is_set():
                break
            scheduler.run_once()
        now = first.clock()
        stop.wait(max(0.05, min(s.next_wake(now, poll_seconds) for s in schedulers)))
    first.log({"at": first.clock().isoformat(), "event": "stopped"})
