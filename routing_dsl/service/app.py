"""The HTTP API: decisions, state refresh, runs and the run store's records, health and
metrics. Every error is an RFC 9457 problem document; input never gets a 500."""

from __future__ import annotations

import hmac

import orjson
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException

from .. import __version__
from ..result import Allocation, Unfillable
from ..snapshot import Order, SnapshotError
from .console import mount_console
from .state import LATENCY_BUCKETS, ConflictError, DecisionError, LiveState, Unavailable

PROBLEM = "application/problem+json"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DecisionRequest(_Body):
    order: Order = Field(description="One order, in the snapshot's order shape; its ship "
                                     "groups wait in a queue of its product store.")
    commit: bool = Field(False, description="Reserve the stock: the decision is recorded in "
                                            "the run store as a batch of one, with its "
                                            "reservations and its key (needs "
                                            "idempotency_key and a bearer token when the "
                                            "service has one).")
    explain: bool = Field(True, description="Explain the decision (rules tried, facilities "
                                            "not chosen and why); false leaves "
                                            "`explanations` empty, for a checkout that only "
                                            "needs the lines (a commit costs about a third "
                                            "less).")
    idempotency_key: str | None = Field(None, min_length=1, max_length=200,
                                        description="With commit: the same key again (from "
                                                    "any process, after any restart) gives "
                                                    "the same answer and reserves nothing "
                                                    "more; with another order it is a 409.")

    @field_validator("commit", "explain", mode="before")
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
    committed: bool
    batches: list[str]


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


def create_app(state: LiveState, store=None, token: str | None = None) -> FastAPI:
    """The application for one live state and (optionally) a run store: by default the live
    state's, where its commits are recorded. With ``token``, every write (POST) needs
    `Authorization: Bearer <token>`."""
    if store is None:
        store = state.store
    responses = {status: {"model": Problem, "content": {PROBLEM: {}}}
                 for status in (400, 401, 404, 409, 422, 503)}
    app = FastAPI(title="routing-dsl", version=__version__, responses=responses)

    async def writer(request: Request) -> None:
        """Writes need the bearer token when the service has one (async: checked on the event
        loop, not handed to a worker thread)."""
        if token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.encode(), token.encode()):
            raise HTTPException(401, "a bearer token is needed for this request",
                                headers={"WWW-Authenticate": "Bearer"})
    write = [Depends(writer)]
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

    @app.post("/v1/decisions", response_model=Decision, dependencies=write,
              openapi_extra={"requestBody": body_schema})
    async def decide(http: Request):
        """Where one order would ship from, per line, with the explanation. A quote has no
        side effects; with `"commit": true` and an idempotency key the stock is reserved and
        the decision recorded as a batch of one, in one transaction with its key (the same
        key again gives the same answer and reserves nothing more). A commit whose partition
        stays locked (or whose run store is unreachable) is a 503 with Retry-After: nothing
        was reserved and the key is still unused.

        The body is validated strictly as JSON (a number is not a string, `0` is not
        `false`); timestamps are ISO 8601 strings."""
        try:
            request = DecisionRequest.model_validate_json(await http.body(), strict=True)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "body"
            return problem(422, "invalid request", f"{where}: {first['msg']}")
        try:
            if not request.commit:
                # the answer is built from the result contract's own rows: sent as it is,
                # not validated again against the response model (the schema documents it)
                answer = state.quote(request.order, explain=request.explain)
                return Response(orjson.dumps(answer), media_type="application/json")
            if request.idempotency_key is None:
                return problem(422, "invalid request",
                               "idempotency_key: needed with commit, so that a retry cannot "
                               "reserve twice")
            if state.store is None:
                need_store()
            answer = await state.commit_async(request.order, request.idempotency_key,
                                              explain=request.explain)
            return Response(answer, media_type="application/json")
        except ConflictError as error:
            return problem(409, "idempotency key reused", str(error))
        except DecisionError as error:
            return problem(422, "cannot decide this order", str(error))
        except Unavailable as error:
            return problem(503, "the decision cannot be committed now", str(error),
                           headers={"Retry-After": str(error.retry_after)})

    @app.post("/v1/state/refresh", dependencies=write)
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

    @app.post("/v1/groups/{name}/runs", dependencies=write)
    def run_group(name: str) -> dict:
        """Run one group now against the live state (with what decisions took), recorded as
        a batch (trigger api); what it takes stays taken for later decisions."""
        plan, group = state.group(name)
        if group is None:
            raise HTTPException(404, f"no group named {name!r}")
        result, ids = state.run_group(plan, group, need_store())
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
                 "# TYPE routing_commits_total counter",
                 f"routing_commits_total {state.commits_total}",
                 "# TYPE routing_decision_seconds histogram"]
        # cumulative since the start, as Prometheus histograms are: a bucket counts every
        # decision up to its bound
        counts, below = list(state.latency_counts), 0
        for bound, count in zip(LATENCY_BUCKETS, counts, strict=False):
            below += count
            lines.append(f'routing_decision_seconds_bucket{{le="{bound}"}} {below}')
        lines += [f'routing_decision_seconds_bucket{{le="+Inf"}} {sum(counts)}',
                  f"routing_decision_seconds_sum {state.latency_sum:.6f}",
                  f"routing_decision_seconds_count {sum(counts)}"]
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
    mount_console(app, state, store)
    return app


def _batch(record) -> dict:
    return {"id": record.id, "group": record.group, "product_store": record.product_store,
            "trigger": record.trigger, "status": record.status,
            "started": record.started.isoformat(),
            "finished": record.finished.isoformat() if record.finished else None,
            "attempted_items": record.attempted_items, "brokered_items": record.brokered_items,
            "allocations": record.allocations, "unfillable": record.unfillable,
            "error": record.error}
