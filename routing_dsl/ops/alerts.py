"""Alerts: rules in a small TOML file, evaluated after each batch (and, for the scheduler's
lateness, after each round), announced when they start and stop firing.

    webhook = "https://hooks.example.com/routing"   # optional, for every rule

    [[rule]]
    name = "batch failed"
    when = "batch_failed"

    [[rule]]
    name = "unfilled spike"
    when = "unfilled_units"     # or parked_units (with queue = "Q": only that queue)
    above = 500                 # a batch's units above this...
    times_average = 3           # ...or above 3x the average of the group's last `window`
    window = 20                 # batches before it (both given: either fires)
    group = "Web orders"        # only this group (default: every group)

    [[rule]]
    name = "scheduler late"
    when = "scheduler_late"
    slots = 2                   # a scheduled group more than 2 slots behind its schedule

A rule fires per group. Its state lives in the run store (`alert_state`), so several
processes sharing a store announce a change once: a JSON log event (`alert`, with `state`
`firing` or `resolved`), a POST to the webhook (the batches' delivery, with retries; the
Idempotency-Key names the rule, group, state and since when), and, in a service, the
`routing_alert_firing{rule,group}` gauge and `routing_alert_transitions_total{rule,state}`
counter on `/metrics`.
"""

from __future__ import annotations

import threading
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import schema as t

KINDS = ("batch_failed", "unfilled_units", "parked_units", "scheduler_late")


class AlertError(Exception):
    """An alert file that cannot be used: every problem, with where."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    when: Literal["batch_failed", "unfilled_units", "parked_units", "scheduler_late"]
    above: float | None = Field(default=None, ge=0)
    times_average: float | None = Field(default=None, gt=0)
    window: int = Field(default=20, ge=1, le=1000)
    queue: str | None = None
    slots: int | None = Field(default=None, ge=0, le=1000)
    group: str | None = None
    webhook: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        units = self.when in ("unfilled_units", "parked_units")
        if units and self.above is None and self.times_average is None:
            raise ValueError(f"{self.when} needs `above` or `times_average` (or both)")
        if not units and (self.above is not None or self.times_average is not None):
            raise ValueError(f"{self.when} takes no `above` or `times_average`")
        if self.queue is not None and self.when != "parked_units":
            raise ValueError("`queue` goes with parked_units")
        if (self.slots is None) == (self.when == "scheduler_late"):
            raise ValueError("`slots` goes with scheduler_late, which needs it")
        if self.webhook is not None and not self.webhook.startswith(("http://", "https://")):
            raise ValueError("`webhook` must be an http:// or https:// URL")
        return self


class AlertFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook: str | None = None
    rule: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> AlertFile:
        names = [r.name for r in self.rule]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"rule names must differ: {', '.join(twice)}")
        if self.webhook is not None and not self.webhook.startswith(("http://", "https://")):
            raise ValueError("`webhook` must be an http:// or https:// URL")
        return self


def read_rules(path: Path) -> AlertFile:
    """The alert file at ``path``, validated (AlertError lists every problem)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise AlertError([f"{path}: {getattr(error, 'strerror', None) or error}"]) from None
    try:
        return AlertFile.model_validate(document)
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            where = ".".join(str(p) for p in detail["loc"])
            message = detail["msg"].removeprefix("Value error, ")
            problems.append(f"{path}: {where + ': ' if where else ''}{message}")
        raise AlertError(problems) from None


@dataclass
class Alerts:
    """The rules of one file, evaluated against a run store; what this process announced
    (for /metrics)."""

    rules: AlertFile
    log: Callable[[dict], None] = lambda event: None
    webhooks: dict = field(default_factory=dict)  # url -> ops.sinks.Webhook
    firing_now: dict = field(default_factory=dict)  # (rule, group) -> message
    transitions: Counter = field(default_factory=Counter)  # (rule, state) -> count
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- after a batch ----
    def after_batches(self, store, batch_ids: list[str]) -> list[dict]:
        """Evaluate the batch rules for each batch; returns the changes announced."""
        changes = []
        for batch_id in batch_ids:
            found = store.batches(1, batch_id=batch_id)
            if not found or found[0].status == "running":
                continue
            batch = found[0]
            for rule in self.rules.rule:
                if rule.when == "scheduler_late" or rule.group not in (None, batch.group):
                    continue
                firing, value, message = self._measure(store, rule, batch)
                changes += self._settle(store, rule, batch.group, firing, value, message,
                                        batch.id)
        return changes

    def _measure(self, store, rule: Rule, batch) -> tuple[bool, float, str]:
        if rule.when == "batch_failed":
            failed = batch.status == "failed"
            return failed, float(failed), (f"batch {batch.id} failed: {batch.error}"
                                           if failed else f"batch {batch.id} {batch.status}")
        value = _units(store, rule, [batch.id]).get(batch.id, 0.0)
        units = "unit" if value == 1 else "units"
        what = f"{units} unfilled" if rule.when == "unfilled_units" else (
            f"{units} parked in {rule.queue}" if rule.queue else f"{units} parked")
        reasons = []
        if rule.above is not None and value > rule.above:
            reasons.append(f"above {rule.above:g}")
        if rule.times_average is not None:
            before = _trailing(store, batch, rule.window)
            if before:
                average = sum(_units(store, rule, before).values()) / len(before)
                if value > rule.times_average * average:
                    last = "batch" if len(before) == 1 else f"{len(before)} batches"
                    reasons.append(f"above {rule.times_average:g} x the average of the last "
                                   f"{last} ({average:g})")
        message = f"batch {batch.id}: {value:g} {what}" + (
            f", {' and '.join(reasons)}" if reasons else "")
        return bool(reasons), value, message

    # ---- after a scheduler's round ----
    def after_round(self, store, plan, now: datetime) -> list[dict]:
        """Evaluate the scheduler-late rules for each scheduled group of ``plan``."""
        from . import queries
        from .scheduler import slots_missed
        changes = []
        for rule in self.rules.rule:
            if rule.when != "scheduler_late":
                continue
            for group in plan.groups:
                if not group.cron or group.paused or rule.group not in (None, group.name):
                    continue
                last = queries.last_scheduled(store, group.name)
                late = slots_missed(group, last, now)
                message = (f"group {group.name}: {late} slot{'s' if late != 1 else ''} behind "
                           f"its schedule (last scheduled batch "
                           f"{last.isoformat() if last else 'never'})")
                changes += self._settle(store, rule, group.name, late > rule.slots,
                                        float(late), message, None)
        return changes

    # ---- state ----
    def _settle(self, store, rule: Rule, group: str, firing: bool, value: float,
                message: str, batch_id: str | None) -> list[dict]:
        """Record the rule's state for the group; announce it when it changed."""
        now = datetime.now(UTC)
        a = t.alert_state.c
        with store.engine.begin() as connection:
            query = sa.select(a.firing, a.since).where(a.rule == rule.name,
                                                       a.group_name == group)
            if store.engine.dialect.name == "postgresql":
                query = query.with_for_update()
            known = connection.execute(query).first()
            was = bool(known and known.firing)
            since = (known.since if was else now) if firing else None
            values = {"firing": firing, "since": since, "value": value, "message": message,
                      "batch_id": batch_id, "updated": now}
            if known is None:
                connection.execute(t.alert_state.insert().values(
                    rule=rule.name, group_name=group, **values))
            else:
                connection.execute(t.alert_state.update().where(
                    a.rule == rule.name, a.group_name == group).values(**values))
        with self._lock:
            if firing:
                self.firing_now[(rule.name, group)] = message
            else:
                self.firing_now.pop((rule.name, group), None)
        if firing == was:
            return []
        state = "firing" if firing else "resolved"
        event = {"at": now.isoformat(), "event": "alert", "rule": rule.name, "when": rule.when,
                 "group": group, "state": state, "value": value, "message": message,
                 **({"batch": batch_id} if batch_id else {})}
        with self._lock:
            self.transitions[(rule.name, state)] += 1
        url = rule.webhook or self.rules.webhook
        if url is not None:
            failure = self._webhook(url).post(
                event, f"{rule.name}|{group}|{state}|{(since or now).isoformat()}")
            if failure:
                event["webhook_error"] = failure
        self.log(event)
        return [event]

    def _webhook(self, url: str):
        from .sinks import Webhook
        with self._lock:
            return self.webhooks.setdefault(url, Webhook(url))

    def firing(self) -> list[dict]:
        """The rules firing now, as this process last saw them (for the dashboard)."""
        with self._lock:
            return [{"rule": rule, "group": group, "message": message}
                    for (rule, group), message in sorted(self.firing_now.items())]

    def metrics(self) -> list[str]:
        """Prometheus lines: firing per rule and group, transitions per rule and state."""
        def label(text: str) -> str:
            return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        with self._lock:
            firing, transitions = dict(self.firing_now), Counter(self.transitions)
        lines = ["# TYPE routing_alert_firing gauge"]
        lines += [f'routing_alert_firing{{rule="{label(rule)}",group="{label(group)}"}} 1'
                  for rule, group in sorted(firing)]
        lines.append("# TYPE routing_alert_transitions_total counter")
        lines += [f'routing_alert_transitions_total{{rule="{label(rule)}",state="{state}"}} '
                  f'{n}' for (rule, state), n in sorted(transitions.items())]
        return lines


def _units(store, rule: Rule, batch_ids: list[str]) -> dict[str, float]:
    """Units unfilled (or parked, in the rule's queue) per batch."""
    u = t.unfillable.c
    query = sa.select(u.batch_id, sa.func.sum(u.quantity)).where(
        u.batch_id.in_(batch_ids)).group_by(u.batch_id)
    if rule.when == "parked_units":
        query = query.where(u.action == "moved")
        if rule.queue is not None:
            query = query.where(u.queue == rule.queue)
    with store.engine.connect() as connection:
        return {batch_id: float(units or 0) for batch_id, units in connection.execute(query)}


def _trailing(store, batch, window: int) -> list[str]:
    """The group's last ``window`` finished batches started before ``batch``."""
    b = t.batches.c
    query = sa.select(b.id).where(b.group_name == batch.group, b.started < batch.started,
                                  b.status != "running").order_by(
        b.started.desc()).limit(window)
    with store.engine.connect() as connection:
        return [row[0] for row in connection.execute(query)]
