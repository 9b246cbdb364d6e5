"""The HTTP API: decisions, state refresh, runs and the run store's records, health and
metrics. Every error is an RFC 9457 problem document; input never gets a 500."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException

from .. import __version__
from ..result import Allocation, Unfillable
from ..snapshot import Order, SnapshotError
from .state import DecisionError, LiveState

PROBLEM = "application/problem+json"
_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DecisionRequest(_Body):
    order: Order = Field(description="One order, in the snapshot's order shape; its ship "
                                     "groups wait in a queue of its product store.")
    commit: Literal[False] = Field(False, description="Reserve the stock and record the "
                                                      "decision: not available yet, so only "
                                                      "quotes (false) are accepted.")
    idempotency_key: str | None = Field(None, max_length=200,
                                        description="With commit: the same key twice gives "
                                                    "the same answer.")

    @field_validator("commit", mode="before")
    @classmethod
    def _boolean(cls, value):
        if not isinstance(value, bool):  # 0 equals False in Python, not in JSON
            raise ValueError("must be a boolean")
        return value


class Decision(_Body):
    """The result contract's entries for one order (as `routing run` writes them)."""

    order: str
    lines: list[Allocation]
    unfilled: list[Unfillable]
    explanations: list[dict[str, Any]]


class Problem(_Body):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None


def problem(status: int, title: str, detail: str | None = None,
            headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"type": "about:blank", "title": title, "status": status,
                         "detail": detail}, status_code=status, media_type=PROBLEM,
                        headers=headers)


def create_app(state: LiveState, store=None) -> FastAPI:
    """The application for one live state and (optionally) a run store."""
    responses = {status: {"model": Problem, "content": {PROBLEM: {}}}
                 for status in (400, 404, 409, 422)}
    app = FastAPI(title="routing-dsl", version=__version__, responses=responses)
    app.state.live = state  # set here, not in a lifespan: test transports skip lifespans
    app.state.store = store

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return problem(422, "invalid request", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return problem(error.status_code, str(error.detail), headers=error.headers)

    @app.get("/healthz")
    def healthz() -> dict:
        """Whether the live state is loaded, and when it was."""
        return {"status": "ok" if state.snapshot is not None else "loading",
                "loaded_at": state.loaded_at.isoformat() if state.loaded_at else None}

    body_schema = {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/DecisionRequest"}}}}

    @app.post("/v1/decisions", response_model=Decision,
              openapi_extra={"requestBody": body_schema})
    async def decide(http: Request):
        """Where one order would ship from, per line, with the explanation. No side effects.

        The body is validated strictly as JSON (a number is not a string, `0` is not
        `false`); timestamps are ISO 8601 strings."""
        try:
            request = DecisionRequest.model_validate_json(await http.body(), strict=True)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "body"
            return problem(422, "invalid request", f"{where}: {first['msg']}")
        try:
            return state.quote(request.order)
        except DecisionError as error:
            return problem(422, "cannot decide this order", str(error))

    @app.post("/v1/state/refresh")
    def refresh() -> dict:
        """Reload the live state from its source."""
        try:
            state.refresh()
        except SnapshotError as error:
            return problem(409, "the source is not a valid snapshot",
                           "; ".join(error.problems[:5]))
        return {"loaded_at": state.loaded_at.isoformat()}

    def need_store():
        if store is None:
            raise HTTPException(409, "this service has no run store (start it with --db)")
        return store

    @app.post("/v1/groups/{name}/runs")
    def run_group(name: str) -> dict:
        """Run one group now against the live state, recorded as a batch (trigger api)."""
        from ..ops.runner import run_recorded
        plan, group = state.group(name)
        if group is None:
            raise HTTPException(404, f"no group named {name!r}")
        result, ids = run_recorded(need_store(), plan, state.snapshot, source_text=None,
                                   trigger="api", group=name)
        return {"batches": ids, "allocations": len(result["allocations"]),
                "unfillable": len(result["unfillable"])}

    @app.get("/v1/batches")
    def batches(limit: int = Query(100, ge=1, le=1000)) -> list[dict]:
        """The latest batches, newest first."""
        return [_batch(b) for b in need_store().batches(limit)]

    @app.get("/v1/batches/{batch_id}")
    def batch(batch_id: str) -> dict:
        for record in need_store().batches(10_000):
            if record.id == batch_id:
                return _batch(record)
        raise HTTPException(404, f"no batch {batch_id!r}")

    @app.get("/v1/orders/{order_id}/history")
    def history(order_id: str) -> list[dict]:
        """Every move routing made for one order."""
        return need_store().history(order=order_id)

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> str:
        """Prometheus text: decisions, their latency, batches by status."""
        lines = ["# TYPE routing_decisions_total counter",
                 f"routing_decisions_total {state.decisions}",
                 "# TYPE routing_decision_seconds histogram"]
        for bound in _BUCKETS:
            count = sum(1 for value in state.latencies if value <= bound)
            lines.append(f'routing_decision_seconds_bucket{{le="{bound}"}} {count}')
        lines += [f'routing_decision_seconds_bucket{{le="+Inf"}} {len(state.latencies)}',
                  f"routing_decision_seconds_sum {sum(state.latencies):.6f}",
                  f"routing_decision_seconds_count {len(state.latencies)}"]
        if store is not None:
            lines.append("# TYPE routing_batches gauge")
            counts: dict[str, int] = {}
            for record in store.batches(100_000):
                counts[record.status] = counts.get(record.status, 0) + 1
            lines += [f'routing_batches{{status="{status}"}} {count}'
                      for status, count in sorted(counts.items())]
        return "\n".join(lines) + "\n"

    def openapi() -> dict:
        if app.openapi_schema is None:
            document = FastAPI.openapi(app)
            schema = DecisionRequest.model_json_schema(
                ref_template="#/components/schemas/{model}")
            components = document.setdefault("components", {}).setdefault("schemas", {})
            components.update(schema.pop("$defs", {}))
            components["DecisionRequest"] = schema
        return app.openapi_schema

    app.openapi = openapi
    return app


def _batch(record) -> dict:
    return {"id": record.id, "group": record.group, "product_store": record.product_store,
            "trigger": record.trigger, "status": record.status,
            "started": record.started.isoformat(),
            "finished": record.finished.isoformat() if record.finished else None,
            "attempted_items": record.attempted_items, "brokered_items": record.brokered_items,
            "allocations": record.allocations, "unfillable": record.unfillable,
            "error": record.error}
