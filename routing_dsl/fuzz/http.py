"""Requests generated from the service's OpenAPI document, sent to the ASGI app in this
process or to a real `routing serve`.

The document is the app's own (`/openapi.json`) with the console's pages added: they are
left out of the published one (they are HTML), but their parameters are declared the same way
(:func:`operations`). Each request is made from its operation's schemas (path and query
parameters, the JSON body) with the starter project's ids, and most are broken at one place:
a body at one JSON path (:func:`~.values.mutate`), a parameter given a hostile value, left
out, repeated or joined by an unknown one.

Every answer must be (see :func:`judge`): never a 5xx (but a 503 with Retry-After, which
the service documents), never an exception out of the app; a 4xx to a broken input names
the field that was broken; a 2xx never to a body holding a number beyond the engines' range
(:mod:`routing_dsl.ranges`); a JSON endpoint's 2xx is JSON.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from .lsp import Finding, Tally
from .values import (HOSTILE_NUMBERS, HOSTILE_STRINGS, JSON_HOSTILE, SchemaValues, mutate,
                     paths)
from .values import value_at as _at

# Values a query or path parameter may be given: every hostile string, and numbers as text.
HOSTILE_PARAMETERS = (*HOSTILE_STRINGS, *(str(n) for n in HOSTILE_NUMBERS), "true", "[]",
                      "%00", "%", "a&b=c", "%ZZ")


@dataclass(frozen=True)
class Operation:
    """One method on one path, with what it takes."""

    method: str
    path: str
    parameters: tuple[dict, ...]
    body: dict | None  # the JSON body's schema


@dataclass
class Case:
    """One request: made from an operation's schemas, perhaps broken at one place."""

    operation: Operation
    path_values: dict[str, str]
    query: list[tuple[str, str]]
    body: Any = None
    has_body: bool = False
    raw_body: bytes | None = None
    broken: str = "valid"
    names: str | None = None  # the field the answer should name, when one was broken
    accept: str = "application/json"

    def url(self) -> str:
        path = self.operation.path
        for name, value in self.path_values.items():
            path = path.replace("{" + name + "}", quote(value, safe="", errors="surrogatepass"))
        query = urlencode(self.query, quote_via=quote, errors="surrogatepass")
        return path + ("?" + query if query else "")

    def content(self) -> bytes | None:
        if self.raw_body is not None:
            return self.raw_body
        if not self.has_body:
            return None
        return json.dumps(self.body).encode("utf-8", "surrogatepass")

    def describe(self) -> str:
        body = self.content()
        text = f"{self.operation.method} {self.url()[:200]} [{self.broken}]"
        if body is not None:
            shown = body[:300].decode("utf-8", "replace")
            text += f" {shown}{'...' if len(body) > 300 else ''}"
        return text


def openapi_document(app) -> dict:
    """The app's OpenAPI document with the console's pages added (declared like the rest,
    left out of the published document because they answer HTML)."""
    from fastapi.openapi.utils import get_openapi
    from fastapi.routing import APIRoute
    document = copy.deepcopy(app.openapi())
    hidden = []
    for route in app.routes:
        if isinstance(route, APIRoute) and not route.include_in_schema:
            shown = copy.copy(route)
            shown.include_in_schema = True
            hidden.append(shown)
    pages = get_openapi(title=app.title, version=app.version, routes=hidden)
    document["paths"].update(pages.get("paths", {}))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in pages.get("components", {}).get("schemas", {}).items():
        schemas.setdefault(name, schema)
    return document


def operations(document: dict) -> list[Operation]:
    """Every operation of the document, with its parameters and JSON body schema."""
    found = []
    for path, methods in sorted(document["paths"].items()):
        for method, operation in sorted(methods.items()):
            body = operation.get("requestBody", {}).get("content", {}).get(
                "application/json", {}).get("schema")
            found.append(Operation(method.upper(), path,
                                   tuple(operation.get("parameters", ())), body))
    return found


class Generator:
    """Cases for the operations of one document, with ids from a pool per name."""

    def __init__(self, rng: random.Random, document: dict, pools: dict):
        self.rng = rng
        self.values = SchemaValues(rng, document, pools, max_depth=6)
        self.pools = pools

    def case(self, operation: Operation, break_share: float) -> Case:
        rng = self.rng
        path_values, query = {}, []
        for parameter in operation.parameters:
            name, where = parameter["name"], parameter["in"]
            if where == "path":
                path_values[name] = str(self._parameter(parameter))
            elif where == "query" and (parameter.get("required") or rng.random() < 0.6):
                query.append((name, _text(self._parameter(parameter))))
        case = Case(operation, path_values, query)
        if operation.body is not None:
            case.body, case.has_body = self.values.make(operation.body), True
            if isinstance(case.body, dict) and case.body.get("commit"):  # as documented
                case.body["idempotency_key"] = self.pools["idempotency_key"](rng)
        if rng.random() < 0.2 and operation.path.startswith("/console"):
            case.accept = "text/html,application/xhtml+xml"
        if rng.random() < break_share:
            self._break(case)
        return case

    def _parameter(self, parameter: dict) -> Any:
        name = parameter["name"]
        if name in self.pools:
            return self.pools[name](self.rng)
        return self.values.make(parameter.get("schema", {}), name)

    def _break(self, case: Case) -> None:
        rng = self.rng
        places = ["body"] * 3 * case.has_body + ["query"] * bool(case.operation.parameters)
        places += ["path"] * bool(case.path_values) + ["text"] * case.has_body
        place = rng.choice(places or ["query"])
        if place == "body":
            numbers = [p for p in paths(case.body) if isinstance(_at(case.body, p), int | float)
                       and not isinstance(_at(case.body, p), bool)]
            if numbers and rng.random() < 0.3:  # a number out of range, where one belongs
                case.body, case.broken = mutate(rng, case.body, HOSTILE_NUMBERS,
                                                keep=lambda p: p in numbers, replace_only=True)
            else:
                case.body, case.broken = mutate(rng, case.body, JSON_HOSTILE)
            case.names = _field_of(case.broken)
        elif place == "text":  # damaged as text: cut, a stray byte, not UTF-8
            text = case.content() or b""
            at = rng.randrange(len(text) + 1)
            case.raw_body = text[:at] + rng.choice([b"", b"{", b'"', b"\xff\xfe", b"\x00"])
            case.broken = "damaged body"
        elif place == "path":
            name = rng.choice(list(case.path_values))
            case.path_values[name] = rng.choice(HOSTILE_PARAMETERS)
            case.broken = f"path {name} = {case.path_values[name][:40]!r}"
        else:
            declared = [p["name"] for p in case.operation.parameters if p["in"] == "query"]
            roll = rng.random()
            if roll < 0.15 and case.query:
                name, _ = case.query.pop(rng.randrange(len(case.query)))
                case.broken = f"left out {name}"
            elif roll < 0.3:
                case.query.append(("unknown", rng.choice(HOSTILE_PARAMETERS)))
                case.broken = "unknown parameter"
            elif roll < 0.4 and case.query:
                case.query.append(rng.choice(case.query))
                case.broken = "repeated parameter"
            elif declared:
                name = rng.choice(declared)
                value = rng.choice(HOSTILE_PARAMETERS)
                case.query = [(k, v) for k, v in case.query if k != name] + [(name, value)]
                case.broken, case.names = f"query {name} = {value[:40]!r}", name


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _field_of(broken: str) -> str | None:
    """The field a body mutation broke (`$.order.items[0].quantity = ...` → `quantity`),
    when there is one to name."""
    if not broken.startswith("$.") and not broken.startswith("removed $."):
        return None
    path = broken.split(" ", 2)[1] if broken.startswith("removed") else broken.split(" ")[0]
    name = path.rsplit(".", 1)[-1].split("[", 1)[0]
    return name or None


# ---- judging an answer ---------------------------------------------------------------------------

def judge(case: Case, status: int, headers: dict[str, str], body: bytes) -> str | None:
    """What is wrong with this answer to this case, or None (see the module)."""
    from ..ranges import out_of_range
    kind = headers.get("content-type", "")
    if status >= 500 and not (status == 503 and "retry-after" in headers):
        return f"answered {status}: {body[:300]!r}"
    if 200 <= status < 300:
        if case.has_body and case.raw_body is None and (found := out_of_range(case.body)):
            return f"accepted {found[0]} = {found[1]!r}, beyond the engines' range"
        if kind.startswith("application/json"):
            try:
                json.loads(body)
            except ValueError:
                return f"a 2xx whose body is not JSON: {body[:200]!r}"
        return None
    if 400 <= status < 500:
        if kind.startswith("text/html"):
            if "text/html" not in case.accept:
                return "an HTML error page to a client that asked for JSON"
            detail = body.decode("utf-8", "replace")
        elif kind.startswith("application/problem+json"):
            try:
                detail = str(json.loads(body).get("detail") or json.loads(body)["title"])
            except (ValueError, KeyError, AttributeError):
                return f"a problem document that is not one: {body[:200]!r}"
        elif status in (405,):
            return None
        else:
            return f"a {status} that is not a problem document ({kind})"
        if status == 422 and case.names and case.names not in detail and \
                _quoted(case.names) not in detail:
            return f"a 422 that does not name {case.names!r}: {detail[:200]}"
    return None


def _quoted(name: str) -> str:
    import html
    return html.escape(name)


# ---- the campaign ---------------------------------------------------------------------------------

class Service:
    """The starter project served in this process (a run store in ``folder``), with one
    group run so that batches and history exist."""

    def __init__(self, folder: Path):
        from ..ops.store import RunStore
        from ..service.app import create_app
        from ..service.state import LiveState
        from ..snapshot import load_snapshot
        from .surfaces import Project
        self.project = Project(folder / "project")
        snapshot = self.project.folder / "snapshot.json"
        self.store = RunStore(f"sqlite:///{folder / 'runs.db'}")
        self.store.upgrade()
        self.state = LiveState([self.project.plan], lambda: load_snapshot(snapshot),
                               store=self.store)
        self.state.refresh()
        plan, group = self.state.group(self.project.plan.groups[0].name)
        self.state.run_group(plan, group, self.store)
        self.app = create_app(self.state)
        self.document = openapi_document(self.app)

    def pools(self) -> dict:
        project = self.project
        batches = [b.id for b in self.store.batches(10)]
        groups = [g.name for g in project.plan.groups]
        queues = [f.id for f in project.snapshot.facilities if f.virtual]
        orders = json.loads((project.folder / "snapshot.json").read_text())["orders"]
        keys = iter(range(10**9))

        def either(known, rng, unknown=("nope", "")):
            return rng.choice(known * 4 + list(unknown))
        return {
            "name": lambda r: either(groups, r), "batch_id": lambda r: either(batches, r),
            "order_id": lambda r: either(project.orders, r), "queue": lambda r: either(queues, r),
            "facility": lambda r: either(project.facilities, r, ("",)),
            "product": lambda r: either(project.products, r, ("",)),
            "q": lambda r: r.choice(["O", "O-1", "TEE", "", "WH"]),
            "a": lambda r: either(batches, r, ("",)), "b": lambda r: either(batches, r, ("",)),
            "order": lambda r: copy.deepcopy(r.choice(orders)),
            "idempotency_key": lambda r: f"fuzz-{next(keys)}",
            "since": lambda r: r.choice(["", "2026-11-20", "2026-11-26"]),
            "until": lambda r: r.choice(["", "2026-11-25", "2026-12-31"]),
            "before": lambda r: "", "after": lambda r: r.choice(["", "O-1", "WH_NJ"]),
        }

    def serve_arguments(self) -> list[str]:
        """`routing serve` arguments serving the same project and run store."""
        return [str(self.project.rules), "--source", str(self.project.folder / "snapshot.json"),
                "--db", self.store.url]

    def close(self) -> None:
        self.store.dispose()


async def send(client, case: Case) -> tuple[int, dict[str, str], bytes]:
    headers = {"accept": case.accept}
    content = case.content()
    if content is not None:
        headers["content-type"] = "application/json"
    answer = await client.request(case.operation.method, case.url(), content=content,
                                  headers=headers)
    return answer.status_code, {k.lower(): v for k, v in answer.headers.items()}, answer.content


async def exercise(client, cases: list[Case], tally: Tally) -> None:
    for case in cases:
        tally.inputs += 1
        try:
            status, headers, body = await send(client, case)
        except Exception as error:  # noqa: BLE001 - the app raised: the finding
            where = traceback.extract_tb(error.__traceback__)[-1]
            tally.findings.append(Finding("http", case.describe(), (
                f"{type(error).__name__}: {str(error)[:200]} "
                f"({Path(where.filename).name}:{where.lineno})")))
            continue
        problem = judge(case, status, headers, body)
        if problem:
            tally.findings.append(Finding("http", case.describe(), problem))
        elif status < 300:
            tally.accepted += 1
        else:
            tally.refused += 1


def cases(seed: int, count: int, service: Service, break_share: float = 0.7) -> list[Case]:
    rng = random.Random(seed)
    generator = Generator(rng, service.document, service.pools())
    chosen = [o for o in operations(service.document)
              if not o.path.startswith("/console/static")]
    # each operation as often as it has inputs to break: a body counts for many
    weights = [1 + len(o.parameters) + 8 * (o.body is not None) for o in chosen]
    return [generator.case(rng.choices(chosen, weights)[0], break_share)
            for _ in range(count)]


def campaign(seed: int, count: int, service: Service, base_url: str | None = None) -> Tally:
    """``count`` cases against ``service``: its app in this process (ASGI), or the
    `routing serve` at ``base_url`` started with :meth:`Service.serve_arguments`."""
    import httpx
    tally = Tally()
    generated = cases(seed, count, service)

    async def go() -> None:
        transport = httpx.ASGITransport(app=service.app) if base_url is None else None
        async with httpx.AsyncClient(transport=transport, timeout=60,
                                     base_url=base_url or "http://fuzz") as client:
            await exercise(client, generated, tally)
    asyncio.run(go())
    return tally


__all__ = ["Case", "Operation", "Service", "campaign", "cases", "judge", "openapi_document",
           "operations"]
