"""What follows a recorded run, once its batches are committed: the write-back into the OMS
(`writeback.OmsSink`), then the alert rules (`alerts.Alerts`); and what follows each of a
scheduler's rounds: the scheduler-late rules. `routing run`, the scheduler and the service's
group runs call the same `AfterBatches`.

Nothing here raises: the batches are committed by then, so a failure is logged (one JSON
event) and recorded where it can be (`sink_batches`), and the run goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from .scheduler import describe


class AfterBatches:
    def __init__(self, sink=None, alerts=None, log: Callable[[dict], None] | None = None):
        self.sink = sink
        self.alerts = alerts
        self.log = log or (lambda event: None)
        if alerts is not None:
            alerts.log = self.log

    def __bool__(self) -> bool:
        return self.sink is not None or self.alerts is not None

    def __call__(self, store, batch_ids: list[str], snapshot) -> dict:
        """Write the batches back, then evaluate the alert rules: what each did."""
        done: dict = {"writeback": self.write_back(store, batch_ids, snapshot), "alerts": []}
        if self.alerts is not None and batch_ids:
            try:
                done["alerts"] = self.alerts.after_batches(store, batch_ids)
            except Exception as error:  # noqa: BLE001
                self.log({"at": _now(), "event": "alerts_failed", "error": describe(error)})
        return done

    def write_back(self, store, batch_ids: list[str], snapshot, orders=()) -> list:
        """Only the write-back (committed decisions: their batches of one are no round for
        the alert rules). ``orders``: the decisions' orders as their requests gave them
        (their versions)."""
        if self.sink is None or not batch_ids:
            return []
        try:
            outcomes = self.sink.deliver(store, batch_ids, snapshot, orders)
        except Exception as error:  # noqa: BLE001 - logged; the batches stand
            self.log({"at": _now(), "event": "writeback_failed", "error": describe(error)})
            return []
        for outcome in outcomes:
            self._log_writeback(outcome)
        return outcomes

    def after_round(self, store, plan, now: datetime) -> list[dict]:
        """The scheduler-late rules, after a scheduler's round (whether it ran anything)."""
        if self.alerts is None:
            return []
        try:
            return self.alerts.after_round(store, plan, now)
        except Exception as error:  # noqa: BLE001
            self.log({"at": _now(), "event": "alerts_failed", "error": describe(error)})
            return []

    def _log_writeback(self, outcome) -> None:
        if outcome.error is not None:
            self.log({"at": _now(), "event": "writeback_failed", "batch": outcome.batch_id,
                      "error": outcome.error})
            return
        self.log({"at": _now(), "event": "writeback", "batch": outcome.batch_id,
                  "orders": len(outcome.applied), "conflicts": len(outcome.conflicts),
                  **({"already_applied": True} if outcome.already else {})})
        for conflict in outcome.conflicts:
            self.log({"at": _now(), "event": "writeback_conflict", "batch": outcome.batch_id,
                      **conflict})

    def dispose(self) -> None:
        if self.sink is not None:
            self.sink.dispose()


def _now() -> str:
    return datetime.now(UTC).isoformat()
