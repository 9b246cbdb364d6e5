"""The HTTP API: decisions, state refresh, runs and the run store's records, health and
metrics. Every error is an RFC 9457 problem document; input never gets a 500.

Limits (see docs/service.md): a body of at most ``Limits.max_body_bytes`` (413), a decision of
at most ``Limits.max_lines`` lines (422), no NUL in any id or key, in bodies and paths (422: no
database stores one), every query parameter validated (422). Decisions with more than
``LOOP_LINES`` lines, and big bodies, are decided on a worker thread, not on the event loop.
An unreachable run store is a 503 with ``Retry-After``; so is a live state not loaded yet.
"""

from __future__ import annotations

import functools
import hmac
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Annotated, Any

import orjson
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import (AwareDatetime, BaseModel, ConfigDict, Field, ValidationError,
                      field_validator)
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import ClientDisconnect

from .. import __version__
from ..app import BadSnapshot
from ..ops import rejections
from ..ops.scheduler import Supervision, describe
from ..ranges import OUT_OF_RANGE, find, out_of_range
from ..ranges import describe as number_text
from ..result import Allocation, Unfillable
from ..snapshot import Order, SnapshotError, range_problem
from .console import error_page, mount_console, wants_page
from .server import ConnectionStats, Limits
from .state import LATENCY_BUCKETS, ConflictError, DecisionError, LiveState, Unavailable

PROBLEM = "application/problem+json"
LOOP_LINES = 20        # decisions with more lines run on a worker thread (about 1 ms and up)
LOOP_BYTES = 64 * 1024  # bodies bigger than this are parsed on a worker thread too
RETRY_AFTER = "5"
# A JSON string escape of NUL (\u0000) not itself escaped: no database stores it in a text
# column (PostgreSQL refuses it), so no id or key may hold it.
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
NO_NUL = r"^[^\x00]*$"
Name = Annotated[str, Path(pattern=NO_NUL, description="Any text without NUL.")]
# The console's pages and everything else but the interactive API docs (which load scripts)
CONSOLE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
               "frame-ancestors 'none'; base-uri 'none'")
API_CSP = "default-src 'none'; frame-ancestors 'none'"


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


# an id as the run store keeps it: any text without NUL (one no decision holds matches nothing)
Id = Annotated[str, Field(max_length=1000, pattern=NO_NUL)]


class RejectionBody(_Body):
    """A facility's refusal of a committed order line."""

    order_id: Id = Field(description="The order id.")
    item: Id = Field(description="The order line (item id) the facility refuses.")
    facility: Id = Field(description="The facility that refuses it.")
    ship_group: Id | None = Field(None, description="The ship group as the allocation names "
                                                    "it (optional: every committed line of "
                                                    "the item at the facility).")
    reason: str | None = Field(None, max_length=200, pattern=NO_NUL,
                               description="Why (e.g. NOT_IN_STOCK); shown in explanations.")
    at: AwareDatetime | None = Field(None, description="When, with a UTC offset (default: "
                                                        "now, by the run store's clock).")
    reroute: bool = Field(False, description="Route the item again at once with the live "
                                             "plans (the rejection on it) and commit that "
                                             "decision in the same transaction.")
    queue: Id | None = Field(None, description="With reroute: the queue to route it from, "
                                               "when the OMS already shows it at the facility "
                                               "(default: the queue it was allocated from).")
    order: Order | None = Field(None, description="With reroute: the order, in the "
                                                  "snapshot's shape (as a decision request "
                                                  "gives it), when the live state's source "
                                                  "does not hold it.")
    explain: bool = Field(False, description="With reroute: explain the new decision.")
    idempotency_key: str = Field(min_length=1, max_length=200, pattern=NO_NUL,
                                 description="The same key again gives the same answer and "
                                             "changes nothing; with another request it is "
                                             "a 409.")

    @field_validator("reroute", "explain", mode="before")
    @classmethod
    def _boolean(cls, value):
        if not isinstance(value, bool):
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
    not_routed: list[str] = Field(default_factory=list, description=(
        "When no routing took the order (no lines, nothing unfilled): why not, as `routing "
        "explain` says it (the order or its items not approved, a ship group not waiting in "
        "a queue of its store, no group for its store, the first filter each routing's "
        "units fail)."))


class Problem(_Body):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None


def problem(status: int, title: str, detail: str | None = None,
            headers: dict | None = None) -> JSONResponse:
    headers = dict(headers or {})
    if status in (408, 413):  # the rest of the body is not wanted: do not read it
        headers["Connection"] = "close"
    return JSONResponse({"type": "about:blank", "title": title, "status": status,
                         "detail": detail}, status_code=status, media_type=PROBLEM,
                        headers=headers)


class Boundary:
    """What every request meets first: a body over the limit is refused (413, a problem
    document: before anything is read when its length is declared, which the server holds it
    to; else Starlette's RequestBodyLimitMiddleware counts the bytes as they come), and every
    response gets its headers: no MIME sniffing, no referrer, no framing, and a
    Content-Security-Policy (the console's allows its own stylesheet; the rest load nothing;
    the interactive API docs, which load scripts, get none)."""

    def __init__(self, app, max_body_bytes: int, lane: dict | None = None) -> None:
        self.app = app
        self.counted = RequestBodyLimitMiddleware(app, max_body_size=max_body_bytes)
        self.max_body_bytes = max_body_bytes
        self.lane = lane if lane is not None else {}  # "decide": see create_app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        extra = _CONSOLE_HEADERS if path.startswith("/console") else (
            _DOCS_HEADERS if path in ("/docs", "/redoc", "/docs/oauth2-redirect") else
            _API_HEADERS)

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)
        declared = next((value for name, value in scope["headers"]
                         if name == b"content-length"), None)
        if declared is None or not declared.isdigit():  # chunked: counted as it comes
            return await self.counted(scope, receive, send_with_headers)
        if int(declared) > self.max_body_bytes:
            return await too_large(self.max_body_bytes)(scope, receive, send_with_headers)
        decide = self.lane.get("decide")
        if decide is not None and path == "/v1/decisions" and scope["method"] == "POST":
            return await decide(scope, receive, send_with_headers, self.app)
        await self.app(scope, receive, send_with_headers)


_DOCS_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
_API_HEADERS = (*_DOCS_HEADERS, (b"content-security-policy", API_CSP.encode()),
                (b"x-frame-options", b"DENY"))
_CONSOLE_HEADERS = (*_DOCS_HEADERS, (b"content-security-policy", CONSOLE_CSP.encode()),
                    (b"x-frame-options", b"DENY"))


def too_large(limit: int) -> JSONResponse:
    return problem(413, "request body too large",
                   f"a request body may take {limit} bytes (routing serve --max-body-bytes)")


def create_app(state: LiveState, store=None, token: str | None = None, *,
               limits: Limits | None = None, supervision: Supervision | None = None,
               connections: ConnectionStats | None = None, after=None,
               worker: int | None = None) -> FastAPI:
    """The application for one live state and (optionally) a run store: by default the live
    state's, where its commits are recorded. With ``token``, every write (POST) needs
    `Authorization: Bearer <token>`. ``supervision`` is the scheduler's (for /healthz and
    /metrics), ``connections`` the HTTP server's; ``after`` (`ops.hooks.AfterBatches`)
    follows the group runs it starts (the OMS write-back, the alert rules, whose state
    /metrics shows); the decisions it commits and the lines it reroutes are written back. ``worker``: this process's index under `routing serve --workers`
    (only worker 0 runs the schedule), shown by /healthz."""
    if store is None:
        store = state.store
    limits = limits or Limits()
    supervision = supervision or Supervision()
    responses = {status: {"model": Problem, "content": {PROBLEM: {}}}
                 for status in (400, 401, 404, 409, 413, 422, 503)}
    app = FastAPI(title="routing-dsl", version=__version__, responses=responses)
    lane: dict = {}
    # committed decisions' batches are written back into the OMS on one thread once
    # answered, in the order they committed (a reroute after the decision it moves), never
    # holding up the answer
    delivery = ThreadPoolExecutor(1, thread_name_prefix="write-back") \
        if getattr(after, "sink", None) is not None else None

    def follow(batches: list[str], order: Order | None) -> None:
        if delivery is not None and batches:
            delivery.submit(after.write_back, store, batches, state.snapshot,
                            orders=() if order is None else (order,))
    app.add_middleware(Boundary, max_body_bytes=limits.max_body_bytes, lane=lane)

    def authorized(given: str) -> bool:
        if token is None:
            return True
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.encode(),
                                                                  token.encode())

    async def writer(request: Request) -> None:
        """Writes need the bearer token when the service has one (async: checked on the event
        loop, not handed to a worker thread)."""
        if not authorized(request.headers.get("authorization", "")):
            raise HTTPException(401, "a bearer token is needed for this request",
                                headers={"WWW-Authenticate": "Bearer"})
    write = [Depends(writer)]
    app.state.live = state  # set here, not in a lifespan: test transports skip lifespans
    app.state.store = store
    app.state.supervision = supervision

    def page_or_problem(request: Request, status: int, title: str, detail: str | None,
                        headers=None) -> Response:
        """A problem document; for a browser on a console page, the console's error page."""
        if wants_page(request.url.path, request.headers.get("accept", "")):
            return error_page(status, title, detail, state)
        return problem(status, title, detail, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return page_or_problem(request, 422, "invalid request",
                               f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        if error.status_code in (404, 422) and wants_page(request.url.path,
                                                          request.headers.get("accept", "")):
            title = "not found" if error.status_code == 404 else "invalid request"
            return error_page(error.status_code, title, str(error.detail), state)
        return http_problem(error, limits)

    @app.exception_handler(sa.exc.OperationalError)
    @app.exception_handler(sa.exc.InterfaceError)
    async def store_down(request: Request, error: sa.exc.DBAPIError):
        return store_problem(error)

    @app.get("/healthz", responses={503: {"description": "The live state is not loaded: "
                                                       "no decision can be served."}})
    async def healthz() -> JSONResponse:
        """`ok`; `degraded` (HTTP 200: decisions are served from the last good state) while
        scheduled rounds or loads fail, with the reasons; `loading` (HTTP 503) until the
        live state is first loaded."""
        reasons = supervision.problems()
        loaded = state.snapshot is not None
        status = "loading" if not loaded else ("degraded" if reasons else "ok")
        return JSONResponse({
            "status": status, "reasons": reasons,
            "loaded_at": state.loaded_at.isoformat() if state.loaded_at else None,
            "scheduler": {"running": supervision.running,
                          "last_success": _iso(supervision.last_success)},
            **({} if worker is None else {"worker": worker})},
            status_code=200 if loaded else 503)

    body_schema = {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/DecisionRequest"}}}}

    def parse(body: bytes, model=DecisionRequest):
        """``body`` as a ``model`` (a decision or a rejection request), or the 422 naming the
        field that is wrong."""
        nul = b"\\u0000" in body and _NUL.search(body)
        try:
            request = model.model_validate_json(body, strict=True)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "body"
            if not nul or first["type"] == "json_invalid":
                what = range_problem(first, body) or first["msg"]
                return problem(422, "invalid request", f"{where}: {what}")
        # Checked on the JSON as sent: a NUL anywhere (no database stores one), and every
        # number within the engines' range, quote or commit alike (2^53 + 1 would become
        # 2^53 as a float, 2^64 cannot be held at all).
        sent = _sent(body)
        if nul:
            where, _ = find(sent, lambda v: isinstance(v, str) and "\x00" in v) or \
                find(sent, lambda v: isinstance(v, dict) and any("\x00" in k for k in v)) or \
                ("body", None)
            return problem(422, "invalid request", f"{where or 'body'}: a string holds a NUL "
                                                   "character (\\u0000), which no id or key "
                                                   "may hold")
        if (found := out_of_range(sent)) is not None:
            where, number = found
            return problem(422, "invalid request", f"{where}: {number_text(number)} "
                                                   f"{OUT_OF_RANGE}")
        return request

    def quoted(order: Order, explain: bool) -> bytes:
        return orjson.dumps(state.quote(order, explain=explain))

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
        `false`); timestamps are ISO 8601 strings. An order has at most the service's
        `--max-lines` lines (100 unless set): more is a 422."""
        try:
            body = await http.body()
        except ClientDisconnect:  # gone (or cut off by the body timeout): nobody reads this
            return Response(status_code=400)
        return await decide_body(body)

    async def decide_body(body: bytes) -> Response:
        request = await run_in_threadpool(parse, body) if len(body) > LOOP_BYTES \
            else parse(body)
        if isinstance(request, Response):
            return request
        lines = sum(len(group.items) for group in request.order.ship_groups)
        if lines > limits.max_lines:
            return problem(422, "too many lines",
                           f"order.ship_groups: {lines} lines; a decision takes at most "
                           f"{limits.max_lines} (routing serve --max-lines)")
        if state.snapshot is None:
            return problem(503, "the live state is not loaded yet",
                           "; ".join(supervision.problems()) or None,
                           headers={"Retry-After": RETRY_AFTER})
        try:
            if not request.commit:
                # the answer is built from the result contract's own rows: sent as it is,
                # not validated again against the response model (the schema documents it);
                # a big order is decided on a worker thread, not on the event loop
                answer = await run_in_threadpool(quoted, request.order, request.explain) \
                    if lines > LOOP_LINES else quoted(request.order, request.explain)
                return Response(answer, media_type="application/json")
            if request.idempotency_key is None:
                return problem(422, "invalid request",
                               "idempotency_key: needed with commit, so that a retry cannot "
                               "reserve twice")
            if state.store is None:
                need_store()
            later: list = []  # a rollout's shadow of it: once the answer is sent
            answer = await state.commit_async(request.order, request.idempotency_key,
                                              explain=request.explain, followups=later)
            if delivery is not None:  # written back with the order's version as sent
                later.append(functools.partial(follow, orjson.loads(answer)["batches"],
                                               request.order))
            return Response(answer, media_type="application/json",
                            background=BackgroundTask(_run_all, later) if later else None)
        except ConflictError as error:
            return problem(409, "idempotency key reused", str(error))
        except DecisionError as error:
            return problem(422, "cannot decide this order", str(error))
        except Unavailable as error:
            return problem(503, "the decision cannot be committed now", str(error),
                           headers={"Retry-After": str(error.retry_after)})

    rejection_schema = {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/RejectionBody"}}}}

    def rejected(body: bytes) -> Response:
        request = parse(body, RejectionBody)
        if isinstance(request, Response):
            return request
        if state.snapshot is None:
            return problem(503, "the live state is not loaded yet",
                           "; ".join(supervision.problems()) or None,
                           headers={"Retry-After": RETRY_AFTER})
        if state.store is None:
            need_store()
        asked = rejections.RejectionRequest(
            order=request.order_id, item=request.item, facility=request.facility,
            key=request.idempotency_key, reason=request.reason, ship_group=request.ship_group,
            at=request.at, reroute=request.reroute, queue=request.queue)
        try:
            answer = state.reject(asked, request.order, explain=request.explain)
            decision = orjson.loads(answer)["decision"] if delivery is not None else None
            if decision is not None:  # the rerouted line's new facility, written back
                follow(decision["batches"], request.order)
        except rejections.NothingCommitted as error:
            return problem(404, "no committed line to reject", str(error))
        except ConflictError as error:
            return problem(409, "idempotency key reused", str(error))
        except (DecisionError, rejections.RejectionError) as error:
            return problem(422, "cannot reject this line", str(error))
        except Unavailable as error:
            return problem(503, "the rejection cannot be recorded now", str(error),
                           headers={"Retry-After": str(error.retry_after)})
        return Response(answer, media_type="application/json")

    @app.post("/v1/rejections", dependencies=write,
              openapi_extra={"requestBody": rejection_schema})
    async def reject(http: Request):
        """A facility rejects a committed line: its reservations are released, the
        rejection is recorded (every later routing carries it on the item, so rules can
        avoid the rejecter) and, with `"reroute": true`, the item is routed again at once
        with the live plans and that decision committed in the same transaction. Idempotent
        by key. 404 when no committed line of that item at that facility holds stock."""
        try:
            body = await http.body()
        except ClientDisconnect:
            return Response(status_code=400)
        return await run_in_threadpool(rejected, body)

    @app.get("/v1/orders/{order_id}/rejections")
    def order_rejections(order_id: Name) -> list[dict]:
        """The rejections recorded for one order, oldest first."""
        return [r.entry() for r in rejections.history(need_store(), order_id)]

    async def decide_lane(scope, receive, send, framework) -> None:
        """POST /v1/decisions without the framework's routing, dependencies and exception
        middleware (about a tenth of a quote's CPU): the same checks and the same answers,
        from the same code (decide_body); a request without the bearer token takes the
        framework's path, which refuses it."""
        if token is not None and not authorized(
                next((v for k, v in scope["headers"] if k == b"authorization"),
                     b"").decode("latin-1")):
            return await framework(scope, receive, send)
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":  # gone: nobody reads the answer
                return await Response(status_code=400)(scope, receive, send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            answer = await decide_body(b"".join(chunks))
        except HTTPException as error:
            answer = http_problem(error, limits)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as error:
            answer = store_problem(error)
        await answer(scope, receive, send)

    lane["decide"] = decide_lane

    @app.post("/v1/state/refresh", dependencies=write)
    def refresh() -> dict:
        """Reload the live state from its source (the state loaded before keeps serving when
        the source cannot be read)."""
        try:
            state.refresh()
        except (BadSnapshot, SnapshotError) as error:  # read, but not a valid snapshot
            return problem(409, "the source is not a valid snapshot",
                           "; ".join(error.problems[:5]))
        except Exception as error:  # noqa: BLE001 - gone, unreachable: say so, retry later
            return problem(503, "the source cannot be read", describe(error),
                           headers={"Retry-After": RETRY_AFTER})
        return {"loaded_at": state.loaded_at.isoformat()}

    def need_store():
        if store is None:
            raise HTTPException(409, "this service has no run store (start it with --db)")
        return store

    @app.post("/v1/groups/{name}/runs", dependencies=write)
    def run_group(name: Name) -> dict:
        """Run one group now against the live state (with what decisions took), recorded as
        a batch (trigger api); what it takes stays taken for later decisions."""
        plan, group = state.group(name)
        if group is None:
            raise HTTPException(404, f"no group named {name!r}")
        result, ids = state.run_group(plan, group, need_store())
        supervision.count("api", [_status(b) for b in result["batches"]])
        if after:  # versions as the live state read them
            after(store, ids, state.snapshot)
        return {"batches": ids, "allocations": len(result["allocations"]),
                "unfillable": len(result["unfillable"])}

    @app.get("/v1/batches")
    def batches(limit: int = Query(100, ge=1, le=1000)) -> list[dict]:
        """The latest batches, newest first."""
        return [_batch(b) for b in need_store().batches(limit)]

    @app.get("/v1/batches/{batch_id}")
    def batch(batch_id: Name) -> dict:
        """One batch, by id, however old."""
        found = need_store().batches(1, batch_id=batch_id)
        if not found:
            raise HTTPException(404, f"no batch {batch_id!r}")
        return _batch(found[0])

    @app.get("/v1/orders/{order_id}/history")
    def history(order_id: Name) -> list[dict]:
        """Every move routing made for one order."""
        return need_store().history(order=order_id)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> str:
        """Prometheus text, from counters this process keeps (no query): decisions and
        their latency, batches it ran, the scheduler's rounds and failures, the live state's
        age, HTTP connections."""
        lines = ["# TYPE routing_decisions_total counter",
                 f"routing_decisions_total {state.decisions}",
                 "# TYPE routing_commits_total counter",
                 f"routing_commits_total {state.commits_total}",
                 "# TYPE routing_commits_decided_ahead_total counter",
                 'routing_commits_decided_ahead_total{outcome="kept"} '
                 f"{state.ahead_kept}",
                 'routing_commits_decided_ahead_total{outcome="decided_again"} '
                 f"{state.ahead_redone}",
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
        rounds, batches = supervision.counters()
        lines.append("# TYPE routing_batches_total counter")
        lines += [f'routing_batches_total{{trigger="{trigger}",status="{status}"}} {n}'
                  for (trigger, status), n in sorted(batches.items())]
        lines += ["# TYPE routing_scheduler_rounds_total counter",
                  f"routing_scheduler_rounds_total {rounds['succeeded'] + rounds['failed']}",
                  "# TYPE routing_scheduler_failures_total counter",
                  f"routing_scheduler_failures_total {rounds['failed']}",
                  "# TYPE routing_scheduler_failing gauge",
                  f"routing_scheduler_failing {len(supervision.failing())}",
                  "# TYPE routing_scheduler_up gauge",
                  f"routing_scheduler_up {int(supervision.running)}"]
        if supervision.last_success is not None:
            lines += ["# TYPE routing_scheduler_last_success_timestamp_seconds gauge",
                      "routing_scheduler_last_success_timestamp_seconds "
                      f"{supervision.last_success.timestamp():.3f}"]
        if state.loaded_at is not None:
            lines += ["# TYPE routing_live_state_loaded_timestamp_seconds gauge",
                      f"routing_live_state_loaded_timestamp_seconds "
                      f"{state.loaded_at.timestamp():.3f}"]
        alerts = getattr(after, "alerts", None)
        if alerts is not None:
            lines += alerts.metrics()
        if connections is not None:
            lines += ["# TYPE routing_http_connections gauge",
                      f"routing_http_connections {connections.open}",
                      "# TYPE routing_http_connections_closed_total counter"]
            lines += [f'routing_http_connections_closed_total{{reason="{reason}"}} {n}'
                      for reason, n in sorted(connections.closed.items())]
        return "\n".join(lines) + "\n"

    def openapi() -> dict:
        if app.openapi_schema is None:
            document = FastAPI.openapi(app)
            schema = DecisionRequest.model_json_schema(
                ref_template="#/components/schemas/{model}")
            components = document.setdefault("components", {}).setdefault("schemas", {})
            components.update(schema.pop("$defs", {}))
            components["DecisionRequest"] = schema
            schema = RejectionBody.model_json_schema(
                ref_template="#/components/schemas/{model}")
            components.update(schema.pop("$defs", {}))
            components["RejectionBody"] = schema
        return app.openapi_schema

    app.openapi = openapi
    mount_console(app, state, store, supervision, getattr(after, "alerts", None))
    return app


def _sent(body: bytes) -> Any:
    """The JSON body as Python values, for the checks on what was sent: msgspec keeps whole
    numbers exact up to 64 bits and reads bigger ones as floats (still beyond the range);
    the standard library reads what msgspec refuses (1e400, which the model refused first)."""
    import msgspec
    try:
        return msgspec.json.decode(body)
    except msgspec.MsgspecError:
        import json
        return json.loads(body)


async def _run_all(calls: list) -> None:
    for call in calls:  # each only hands its work to a worker thread
        call()


def http_problem(error: HTTPException, limits: Limits) -> JSONResponse:
    if error.status_code == 413:
        return too_large(limits.max_body_bytes)
    return problem(error.status_code, str(error.detail), headers=error.headers)


def store_problem(error: sa.exc.DBAPIError) -> JSONResponse:
    return problem(503, "the run store is unavailable",
                   f"{type(error.orig).__name__}: {str(error.orig).strip()[:300]}",
                   headers={"Retry-After": RETRY_AFTER})



def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _status(batch: dict) -> str:
    """A result batch's status, as the run store records it."""
    return "skipped" if batch.get("skipped") else (
        "failed" if any(r["error"] for r in batch["runs"]) else "succeeded")


def _batch(record) -> dict:
    return {"id": record.id, "group": record.group, "product_store": record.product_store,
            "trigger": record.trigger, "status": record.status,
            "started": record.started.isoformat(),
            "finished": record.finished.isoformat() if record.finished else None,
            "attempted_items": record.attempted_items, "brokered_items": record.brokered_items,
            "allocations": record.allocations, "unfillable": record.unfillable,
            "error": record.error}
