"""Decisions pushed out: each committed batch POSTed to a webhook, with retries (the same
delivery carries alerts, see ops/alerts.py).

The outbox (in the run store) is the reliable path; a webhook is the fast one. Every delivery
carries the batch id as its ``Idempotency-Key``, so a receiver that sees a batch twice (a
retry after a lost response) applies it once.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass
class Webhook:
    url: str
    attempts: int = 4
    first_delay: float = 0.5    # seconds; doubled after each failed attempt
    timeout: float = 10.0

    def deliver(self, batch_id: str, batch: dict, allocations: list[dict],
                unfillable: list[dict]) -> str | None:
        """POST one batch; returns None when delivered, else the last error. Retries on
        connection errors and 5xx answers; a 4xx answer is final."""
        return self.post({"batch": batch_id, "group": batch["group"],
                          "product_store": batch["product_store"],
                          "skipped": batch.get("skipped"), "runs": batch["runs"],
                          "allocations": allocations, "unfillable": unfillable}, batch_id)

    def post(self, document: dict, key: str) -> str | None:
        """POST ``document`` as JSON with ``key`` as its Idempotency-Key, retrying as
        `deliver` does; None when delivered, else the last error."""
        body = json.dumps(document, default=str).encode()
        delay, error = self.first_delay, None
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(delay)
                delay *= 2
            request = urllib.request.Request(self.url, data=body, method="POST", headers={
                "Content-Type": "application/json", "Idempotency-Key": key,
                "User-Agent": "routing-dsl"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                return None
            except urllib.error.HTTPError as failure:
                error = f"HTTP {failure.code}"
                if failure.code < 500:
                    return error
            except (urllib.error.URLError, OSError) as failure:
                error = str(getattr(failure, "reason", failure))
        return error
