"""`routing bench`: routing throughput on a generated snapshot, reported as a ratio against a
baseline measured in the same run.

The baseline is the approach HotWax takes (`sql_baseline`): the data in a SQL database, one
candidate query per ship group per rule doing filtering and distance in SQL, reservations
written back with UPDATE; its allocations are checked equal to the engine's in every run.
"""

from __future__ import annotations

import gc
import json
import random
import time
from dataclasses import dataclass

from ..checker import Workspace
from ..compiler import compile_program
from ..runtime import run_plan
from ..plan import Plan
from ..snapshot import Snapshot, parse_snapshot

BENCH_ROUTE = """
declare queue _NA_, PARK
declare facility_group WAREHOUSES, STORES

group "Bench" for store STORE {
  routing "All orders" {
    filter { queue == _NA_ }
    sort by order_date
    rule "Nearest warehouse, whole order" {
      assign single
      inventory {
        facility_group == WAREHOUSES
        distance <= 1500 mi
      }
      sort by distance
    }
    rule "Stores split" {
      assign partial
      inventory { facility_group == STORES }
      sort by distance, inventory_balance desc
      when unfilled { move to queue PARK }
    }
  }
}
"""


def bench_plan() -> Plan:
    result = Workspace().check_text(BENCH_ROUTE, name="bench.route")
    assert not result.has_errors, result.diagnostics
    return compile_program(result.program)


def generate(facilities: int, ship_groups: int, products: int, seed: int = 7) -> Snapshot:
    rng = random.Random(seed)
    facility_rows = []
    inventory = []
    for index in range(facilities):
        group = "WAREHOUSES" if index % 10 == 0 else "STORES"
        fid = f"F{index:05d}"
        facility_rows.append({
            "id": fid, "virtual": False, "lat": rng.uniform(25, 48), "lon": rng.uniform(-123, -70),
            "max_orders_per_day": rng.choice([None, 500, 1000]), "orders_today": 0,
            "product_stores": ["STORE"], "groups": {group: index}})
        for product in rng.sample(range(products), k=min(products, 40)):
            inventory.append({"facility": fid, "product": f"P{product:05d}",
                              "atp": rng.randint(0, 30), "minimum_stock": rng.randint(0, 2)})
    facility_rows += [{"id": q, "virtual": True, "product_stores": ["STORE"]}
                      for q in ("_NA_", "PARK")]
    orders = []
    for index in range(ship_groups):
        items = [{"id": f"{i + 1:05d}", "product": f"P{rng.randrange(products):05d}",
                  "quantity": rng.randint(1, 3)} for i in range(rng.choice([1, 1, 2, 3]))]
        orders.append({"id": f"O{index:07d}", "product_store": "STORE",
                       "order_date": f"2026-11-{rng.randint(1, 22):02d}T10:00:00-05:00",
                       "ship_groups": [{"id": "00001", "facility": "_NA_",
                                        "ship_to": {"lat": rng.uniform(25, 48),
                                                    "lon": rng.uniform(-123, -70)},
                                        "items": items}]})
    return parse_snapshot({
        "format": "routing-snapshot/1", "now": "2026-11-23T09:30:00-05:00",
        "timezone": "America/New_York", "product_stores": [{"id": "STORE"}],
        "facilities": facility_rows, "products": [{"id": f"P{p:05d}"} for p in range(products)],
        "inventory": inventory, "orders": orders})


@dataclass
class BenchReport:
    facilities: int
    ship_groups: int
    rounds: int
    run_seconds: float        # the fast engine
    reference_seconds: float  # the reference interpreter
    baseline_seconds: float   # the SQL baseline's routing
    allocations: int
    rule_attempts: int

    @property
    def ship_groups_per_second(self) -> float:
        return self.ship_groups / self.run_seconds

    @property
    def speedup(self) -> float:
        return self.baseline_seconds / self.run_seconds

    def text(self) -> str:
        def rate(seconds: float) -> str:
            return f"{self.ship_groups / seconds:,.0f} ship groups/s"
        return (f"{self.ship_groups} ship groups, {self.facilities} facilities, 2 rules, "
                f"best of {self.rounds}\n"
                f"  fast engine:       {self.run_seconds:.3f} s  ({rate(self.run_seconds)}, "
                f"{self.allocations} allocations, "
                f"{self.rule_attempts / self.run_seconds:,.0f} rule attempts/s)\n"
                f"  reference engine:  {self.reference_seconds:.3f} s  "
                f"({rate(self.reference_seconds)}; the same bytes)\n"
                f"  SQL baseline:      {self.baseline_seconds:.3f} s  "
                f"({rate(self.baseline_seconds)}; one SQLite query per ship group per rule, "
                f"same data, same allocations)\n"
                f"  ratio:             {self.speedup:.1f}x the baseline's throughput, "
                f"{self.reference_seconds / self.run_seconds:.1f}x the reference engine's")


def run_bench(facilities: int = 1000, ship_groups: int = 5000, products: int = 2000,
              rounds: int = 3) -> BenchReport:
    """The fast engine, the reference engine and the SQL baseline on the same generated data
    (loaded once, outside the timings), the best of ``rounds`` each."""
    from ..engine import run_fast
    from ..result import dump_result
    from .sqlbaseline import load_database, route_in_sql

    snapshot = generate(facilities, ship_groups, products)
    _ = snapshot.inventory.columns  # made outside the timings, as loading a file makes them
    plan = bench_plan()
    best_run = best_reference = best_base = float("inf")
    allocations = attempts = 0
    for _ in range(rounds):
        started = time.perf_counter()
        result = run_fast(plan, snapshot)
        best_run = min(best_run, time.perf_counter() - started)
        started = time.perf_counter()
        reference = run_plan(plan, snapshot)
        best_reference = min(best_reference, time.perf_counter() - started)
        if dump_result(result) != dump_result(reference):
            raise AssertionError("the fast and the reference engine disagree")
        allocations = len(result["allocations"])
        # ship groups reaching rule 2 are those rule 1 could not fill
        first_rule = {a["order"] for a in result["allocations"]
                      if a["rule"] == "Nearest warehouse, whole order"}
        attempts = ship_groups + (ship_groups - len(first_rule))
        database = load_database(snapshot)
        started = time.perf_counter()
        baseline = route_in_sql(plan, snapshot, database)
        best_base = min(best_base, time.perf_counter() - started)
        database.close()
        if _allocation_rows(result) != baseline:  # a baseline that decides differently
            raise AssertionError("the SQL baseline and the engine allocate differently")
    return BenchReport(facilities, ship_groups, rounds, best_run, best_reference, best_base,
                       allocations, attempts)


def lsp_document(lines: int = 2000) -> str:
    """A realistic .route file of about ``lines`` lines: one group, many routings."""
    head = ('use std.hotwax\nuse std.templates\n\ndeclare facility_group WAREHOUSES, STORES\n'
            'let EXPRESS = [NEXT_DAY, SECOND_DAY]\n\n'
            'group "Big" for store STORE {\n  schedule "0 */15 * * * ?" in "America/New_York"\n')
    routing = ('\n  routing "Web orders {n}" {{\n    filter {{\n      queue == _NA_\n'
               '      shipment_method in EXPRESS\n      priority is not null\n    }}\n'
               '    sort by priority, order_date\n\n'
               '    rule "Nearest warehouse" extends closest_single_facility {{\n'
               '      inventory {{\n        facility_group == WAREHOUSES\n'
               '        distance <= 500 mi\n      }}\n    }}\n\n'
               '    rule "Stores split" {{\n      assign partial\n      inventory {{\n'
               '        facility_group == STORES\n        shipment_threshold 25.00\n      }}\n'
               '      sort by distance, inventory_balance desc\n      when unfilled {{\n'
               '        move to queue UNFILLABLE_PARKING\n      }}\n    }}\n  }}\n')
    parts = [head]
    count = 0
    while sum(part.count("\n") for part in parts) < lines:
        parts.append(routing.format(n=count))
        count += 1
    return "".join(parts) + "}\n"


def lsp_latency(lines: int = 2000, rounds: int = 5) -> str:
    """Time from a changed buffer to its diagnostics, against the 100 ms budget and against
    parsing alone (the floor), measured in the same run."""
    from pathlib import Path

    from ..lsp.features import Project, own_diagnostics
    from ..parser import parse
    from ..source import SourceFile

    text = lsp_document(lines)
    project = Project()
    path = Path("bench-document.route").resolve()
    best = parse_best = float("inf")
    for round_number in range(rounds + 1):
        changed = text.replace("Web orders 0", f"Web orders 0 v{round_number}")
        started = time.perf_counter()
        diagnostics = own_diagnostics(project.check(path, changed))
        elapsed = time.perf_counter() - started
        started = time.perf_counter()
        parse(SourceFile("bench", changed))
        parse_elapsed = time.perf_counter() - started
        if round_number:  # the first round pays for loading the grammar
            best, parse_best = min(best, elapsed), min(parse_best, parse_elapsed)
    assert not diagnostics, diagnostics
    return (f"language server: diagnostics for a {text.count(chr(10))}-line file after a "
            f"change, best of {rounds}\n"
            f"  check:         {best * 1000:.1f} ms  ({best / 0.1:.2f} of the 100 ms budget)\n"
            f"  parse only:    {parse_best * 1000:.1f} ms  (floor; check is "
            f"{best / parse_best:.1f}x parse)")


# Start-up targets (issue 27), as multiples of an empty `python -c pass` in the same run
STARTUP_TARGETS = {"check": 10.0, "run": 25.0}
LSP_READY_BUDGET = 0.300


def startup_costs(rounds: int = 5) -> str:
    """How long commands take from a cold process, best of ``rounds``, against an empty
    Python started the same way (`python -c pass`): `routing check` and `routing run` on
    the starter project (`routing init`: the omnichannel example's rules and snapshot),
    `routing --help`, and the language server until it answers `initialize`. Bytecode is
    written on a first, untimed run, as an installed package has it."""
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from ..app import init_project

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="routing-startup-") as temporary:
        folder = Path(temporary)
        init_project(folder)
        routing = [sys.executable, "-m", "routing_dsl"]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "routing --help": [*routing, "--help"],
            "routing check": [*routing, "check", str(folder / "routes.route")],
            "routing run": [*routing, "run", str(folder / "routes.route"), "--snapshot",
                            str(folder / "snapshot.json"), "--out", os.devnull],
        }
        best = dict.fromkeys([*commands, "routing lsp"], float("inf"))
        for round_number in range(rounds + 1):
            for name, command in commands.items():
                started = time.perf_counter()
                subprocess.run(command, env=env, cwd=folder, capture_output=True, check=True)
                if round_number:  # the first writes the bytecode
                    best[name] = min(best[name], time.perf_counter() - started)
            ready = _lsp_ready([*routing, "lsp"], env, folder)
            if round_number:
                best["routing lsp"] = min(best["routing lsp"], ready)
    empty = best["python -c pass"]
    lines = [f"start-up: best of {rounds}, as a multiple of `python -c pass` "
             f"({empty * 1000:.0f} ms)"]
    for name, seconds in best.items():
        if name == "python -c pass":
            continue
        what = "until it answers initialize" if name == "routing lsp" else (
            "the starter project" if name in ("routing check", "routing run") else "")
        target = STARTUP_TARGETS.get(name.split()[-1])
        aim = f", target {target:g}x" if target else (
            f", target {LSP_READY_BUDGET * 1000:.0f} ms" if name == "routing lsp" else "")
        lines.append(f"  {name + ':':<15} {seconds * 1000:6.0f} ms  "
                     f"({seconds / empty:4.1f}x{aim}){'; ' + what if what else ''}")
    return "\n".join(lines)


def _lsp_ready(command: list[str], env: dict, cwd) -> float:
    """Seconds from starting the language server to its answer to `initialize`."""
    import subprocess
    request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                          "params": {"processId": None, "rootUri": None,
                                     "capabilities": {}}}).encode()
    started = time.perf_counter()
    server = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        server.stdin.write(b"Content-Length: %d\r\n\r\n" % len(request) + request)
        server.stdin.flush()
        while True:  # headers, then the body of each message, until the answer to id 1
            length = 0
            while (line := server.stdout.readline().strip()):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not length:
                raise RuntimeError("the language server stopped before answering")
            if json.loads(server.stdout.read(length)).get("id") == 1:
                return time.perf_counter() - started
    finally:
        server.kill()
        server.wait()


# Targets for a 5,000-line file on this machine: every request, and an edit to its diagnostics.
LSP_REQUEST_BUDGET = 0.100
LSP_EDIT_BUDGET = 0.300


def lsp_session(lines: int = 5000, rounds: int = 5) -> str:
    """A real language-server session over stdio (the server as an editor starts it): each
    request on a ``lines``-line file, best of ``rounds``, and the time from an edit to the
    diagnostics of the edited version, against the budgets above."""
    import asyncio

    return asyncio.run(_lsp_session(lines, rounds))


async def _lsp_session(lines: int, rounds: int) -> str:
    import asyncio
    import sys
    import tempfile
    from pathlib import Path

    from lsprotocol import types as t
    from pygls.lsp.client import LanguageClient

    text = lsp_document(lines)
    folder = Path(tempfile.mkdtemp(prefix="routing-bench-"))
    path = folder / "big.route"
    path.write_text(text, encoding="utf-8")
    uri = path.as_uri()
    client = LanguageClient("routing-bench", "1")
    published: dict[int, asyncio.Event] = {}

    @client.feature(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: t.PublishDiagnosticsParams) -> None:
        published.setdefault(params.version or 0, asyncio.Event()).set()

    @client.feature(t.CLIENT_REGISTER_CAPABILITY)
    def on_register(params) -> None:
        return None

    async def diagnostics_for(version: int) -> None:
        await asyncio.wait_for(published.setdefault(version, asyncio.Event()).wait(), 60)

    await client.start_io(sys.executable, "-m", "routing_dsl", "lsp")
    try:
        await client.initialize_async(t.InitializeParams(
            capabilities=t.ClientCapabilities(), root_uri=folder.as_uri(),
            workspace_folders=[t.WorkspaceFolder(uri=folder.as_uri(), name="bench")]))
        client.initialized(t.InitializedParams())
        started = time.perf_counter()
        client.text_document_did_open(t.DidOpenTextDocumentParams(
            text_document=t.TextDocumentItem(uri=uri, language_id="routing", version=1,
                                             text=text)))
        await diagnostics_for(1)
        opened = time.perf_counter() - started
        doc = t.TextDocumentIdentifier(uri=uri)
        offset = text.index("queue == _NA_", len(text) // 2) + len("queue == ")
        line = text.count("\n", 0, offset)
        position = t.Position(line, offset - text.rfind("\n", 0, offset) - 1)
        field = t.Position(line, position.character - len("queue == ") + 1)
        requests = {
            "semantic tokens": lambda: client.text_document_semantic_tokens_full_async(
                t.SemanticTokensParams(text_document=doc)),
            "document symbols": lambda: client.text_document_document_symbol_async(
                t.DocumentSymbolParams(text_document=doc)),
            "folding ranges": lambda: client.text_document_folding_range_async(
                t.FoldingRangeParams(text_document=doc)),
            "completion": lambda: client.text_document_completion_async(
                t.CompletionParams(text_document=doc, position=position)),
            "hover": lambda: client.text_document_hover_async(
                t.HoverParams(text_document=doc, position=field)),
            "definition": lambda: client.text_document_definition_async(
                t.DefinitionParams(text_document=doc, position=position)),
            "references": lambda: client.text_document_references_async(
                t.ReferenceParams(text_document=doc, position=position,
                                  context=t.ReferenceContext(include_declaration=True))),
            "formatting": lambda: client.text_document_formatting_async(
                t.DocumentFormattingParams(
                    text_document=doc, options=t.FormattingOptions(tab_size=2, insert_spaces=True))),
            "document links": lambda: client.text_document_document_link_async(
                t.DocumentLinkParams(text_document=doc)),
        }
        timings: dict[str, float] = {}
        for name, request in requests.items():
            best = float("inf")
            for _ in range(rounds):
                started = time.perf_counter()
                await request()
                best = min(best, time.perf_counter() - started)
            timings[name] = best
        edits = []
        for version in range(2, rounds + 2):
            changed = text.replace("Web orders 0", f"Web orders 0 v{version}")
            started = time.perf_counter()
            client.text_document_did_change(t.DidChangeTextDocumentParams(
                text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[t.TextDocumentContentChangeWholeDocument(text=changed)]))
            await diagnostics_for(version)
            edits.append(time.perf_counter() - started)
            await requests["semantic tokens"]()  # as an editor does after every edit
        await client.shutdown_async(None)
        client.exit(None)
    finally:
        await client.stop()
        path.unlink(missing_ok=True)
        folder.rmdir()
    edit = min(edits)
    rows = [f"language server session: a {text.count(chr(10))}-line file over stdio, "
            f"best of {rounds}",
            f"  open to diagnostics:   {opened * 1000:7.1f} ms"]
    for name, seconds in timings.items():
        rows.append(f"  {name + ':':22} {seconds * 1000:7.1f} ms  "
                    f"({seconds / LSP_REQUEST_BUDGET:.2f} of the "
                    f"{LSP_REQUEST_BUDGET * 1000:.0f} ms budget)")
    rows.append(f"  edit to diagnostics:   {edit * 1000:7.1f} ms  ({edit / LSP_EDIT_BUDGET:.2f} of "
                f"the {LSP_EDIT_BUDGET * 1000:.0f} ms budget, including the "
                f"debounce of 150 ms)")
    worst = max(timings.values())
    verdict = "within" if worst <= LSP_REQUEST_BUDGET and edit <= LSP_EDIT_BUDGET else "OVER"
    rows.append(f"  {verdict} budget: slowest request {worst * 1000:.1f} ms")
    return "\n".join(rows)


def pathological_inputs(size: int = 1_000_000) -> str:
    """`routing check` on hostile inputs of ``size`` characters: the slowest against the 2 s
    target, and diagnostics per file against the cap."""
    from ..diagnostics import MAX_DIAGNOSTICS

    rng = random.Random(1)
    cases = {
        "nested lists": "let X = " + "[" * (size // 2) + "]" * (size // 2),
        "repeated operator": 'group "g" for store S { routing "r" { filter { '
                             + "queue == " * (size // 9),
        "unclosed groups": 'group "g" for store S {' * (size // 23),
        "one long name": "let " + "a" * size,
        "random characters": "".join(rng.choice('abc{}[]@#=<>"\n ,.0123') for _ in range(size)),
        "huge number": "let X = 1" + "0" * size,
        "a real file, repeated": lsp_document(size // 30),
    }
    rows = [f"front end on hostile {size // 1000} KB inputs (target: under 2 s, "
            f"at most {MAX_DIAGNOSTICS} diagnostics + 1 per file)"]
    worst = 0.0
    for name, text in cases.items():
        started = time.perf_counter()
        result = Workspace().check_text(text, "hostile.route")
        elapsed = time.perf_counter() - started
        worst = max(worst, elapsed)
        rows.append(f"  {name + ':':24} {elapsed:6.2f} s  {len(result.diagnostics):4d} diagnostics")
    rows.append(f"  slowest: {worst:.2f} s ({worst / 2:.2f} of the target)")
    return "\n".join(rows)


def hostile_campaigns(per_surface: int = 300, seed: int = 0) -> str:
    """`fuzz.counts()`: a seeded campaign of ``per_surface`` inputs generated from each
    surface's schema and broken at one place, per surface the inputs sent, accepted,
    refused and the findings (inputs answered with a crash, a hang, a 500 or a refusal
    that does not say where; the target is none)."""
    from ..fuzz import counts
    started = time.perf_counter()
    found = counts(seed=seed, per_surface=per_surface)
    elapsed = time.perf_counter() - started
    rows = [f"hostile inputs from each surface's schema (seed {seed}, {per_surface:,} a "
            "surface; target: no findings)",
            f"  {'surface':12} {'inputs':>7} {'accepted':>9} {'refused':>8} {'findings':>9}"]
    total = dict.fromkeys(("inputs", "accepted", "refused", "findings"), 0)
    for surface, tally in found.items():
        rows.append(f"  {surface:12} {tally['inputs']:7,} {tally['accepted']:9,} "
                    f"{tally['refused']:8,} {tally['findings']:9,}")
        for key in total:
            total[key] += tally[key]
    rows.append(f"  {'all':12} {total['inputs']:7,} {total['accepted']:9,} "
                f"{total['refused']:8,} {total['findings']:9,}  in {elapsed:.1f} s")
    return "\n".join(rows)


def explanation_costs(facilities: int = 1020, ship_groups: int = 2000, rounds: int = 3) -> str:
    """What explanations cost against a plain run of the same data, in the same process:
    `explain --order` (target at most 1.5x the time) and `run --explain` (target at most 2x
    the peak memory)."""
    import tracemalloc

    from ..result import dump_result

    snapshot = generate(facilities, ship_groups, products=max(100, ship_groups))
    plan = bench_plan()
    order = snapshot.orders[len(snapshot.orders) // 2].id

    def timed(**options) -> float:
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            run_plan(plan, snapshot, **options)
            best = min(best, time.perf_counter() - started)
        return best

    def peak(**options) -> int:
        tracemalloc.start()
        result = run_plan(plan, snapshot, **options)
        json_size = len(dump_result(result))
        current, highest = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return highest + json_size  # the result as written counts too

    plain, one = timed(), timed(explain=True, explain_orders={order})
    plain_memory, explain_memory = peak(), peak(explain=True)
    return (f"explanations: {ship_groups} ship groups x {facilities} facilities\n"
            f"  explain one order:  {one / plain:.2f}x a plain run's time (target <= 1.5x)\n"
            f"  run --explain:      {explain_memory / plain_memory:.2f}x a plain run's peak "
            f"memory (target <= 2x)")


def sql_source_costs(ship_groups: int = 20_000, facilities: int = 300,
                     url: str | None = None) -> str:
    """Reading a snapshot from SQL (the reference OMS schema) against routing it, measured in
    the same run: the read must not dominate. ``url`` defaults to a temporary SQLite file."""
    import tempfile
    from pathlib import Path

    from ..ops.oms import load, read_snapshot
    from ..snapshot import load_snapshot

    snapshot = generate(facilities, ship_groups, products=max(100, ship_groups // 10))
    document = json.loads(snapshot.model_dump_json())
    with tempfile.TemporaryDirectory(prefix="routing-bench-") as folder:
        target = url or f"sqlite:///{Path(folder) / 'oms.db'}"
        load(target, document)
        started = time.perf_counter()
        from_sql = read_snapshot(target)
        read = time.perf_counter() - started
        file = Path(folder) / "snapshot.json"
        file.write_text(json.dumps(document))
        started = time.perf_counter()
        load_snapshot(file)
        from_file = time.perf_counter() - started
    plan = bench_plan()
    started = time.perf_counter()
    run_plan(plan, from_sql)
    routed = time.perf_counter() - started
    kind = target.split(":", 1)[0]
    return (f"SQL source ({kind}): {ship_groups} ship groups read in {read:.2f} s "
            f"({read / from_file:.2f}x loading the same snapshot from a file), routed in "
            f"{routed:.2f} s (reading is {read / routed:.2f}x routing)")


def run_scenario(scenario, rounds: int = 1, folder=None,
                 baseline_orders: int | None = 100_000, engine: str = "fast") -> dict:
    """One scenario end to end, as a user runs it: the snapshot written to disk, then, in a
    fresh process (so that its peak memory is the run's own), loaded, the plan checked and
    compiled, routed and the result written. Times in seconds (compile in milliseconds), the
    best of ``rounds`` for routing and writing. Then the SQL baseline and the engine route the
    first ``baseline_orders`` orders (all when None) with the same facilities and stock; their
    allocations must be equal, and the speedup is the ratio of their routing times. A shipping
    scenario routes SHIPPING_PLAN instead, and its baseline is PLAN (the distance rules) on
    the same snapshot in the same process: the ratio is what cost and delivery ranking
    cost."""
    import multiprocessing
    import tempfile
    from pathlib import Path

    import orjson

    from .scenarios import generate

    with tempfile.TemporaryDirectory(prefix="routing-bench-") as temporary:
        folder = Path(folder or temporary)
        path, subset = folder / "snapshot.json", folder / "baseline-snapshot.json"
        document = generate(scenario)
        path.write_bytes(orjson.dumps(document))
        ship_groups = sum(len(o["ship_groups"]) for o in document["orders"])
        inventory_rows = len(document["inventory"])
        if not scenario.shipping:
            document["orders"] = document["orders"][:baseline_orders or len(document["orders"])]
            subset.write_bytes(orjson.dumps(document))
        del document
        gc.collect()
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            measured = pool.apply(_measure_scenario, (str(path), str(folder), rounds, engine,
                                                      scenario.shipping))
            baseline = {} if scenario.shipping else pool.apply(_measure_baseline, (str(subset),))
        measured |= _whole_run_against_json_load(path, folder, scenario.shipping, engine)
    end_to_end = measured["compile_ms"] / 1000 + measured["route_s"] + measured["write_s"]
    return {
        "orders": scenario.orders, "facilities": scenario.facilities, "skus": scenario.skus,
        "seed": scenario.seed, "engine": engine, "ship_groups": ship_groups,
        "inventory_rows": inventory_rows, **measured,
        "ship_groups_per_s": round(ship_groups / end_to_end),
        **baseline,
    }


def _measure_scenario(path: str, folder: str, rounds: int, engine: str,
                      shipping: bool = False) -> dict:
    from pathlib import Path

    from ..engine import load_columnar, route
    from ..result import dump_result
    from ..snapshot import load_snapshot

    started = time.perf_counter()
    snapshot = load_columnar(Path(path)) if engine == "fast" else load_snapshot(Path(path))
    load = time.perf_counter() - started
    gc.collect()
    gc.freeze()  # as `routing run` does after loading
    started = time.perf_counter()
    from .scenarios import PLAN, SHIPPING_PLAN
    plan = compile_program(Workspace().check_text(SHIPPING_PLAN if shipping else PLAN,
                                                  "bench.route").program)
    compile_ms = (time.perf_counter() - started) * 1000
    compared = {}
    if shipping:  # the distance rules on the same snapshot: the ratio's baseline
        distance_plan = compile_program(Workspace().check_text(PLAN, "bench.route").program)
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            route(distance_plan, snapshot, engine=engine)
            best = min(best, time.perf_counter() - started)
        compared = {"distance_route_s": round(best, 3)}
    best_route = best_write = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        result = route(plan, snapshot, engine=engine)
        best_route = min(best_route, time.perf_counter() - started)
        started = time.perf_counter()
        (Path(folder) / "result.json").write_bytes(dump_result(result))
        best_write = min(best_write, time.perf_counter() - started)
    return {"load_s": round(load, 3), "compile_ms": round(compile_ms, 1),
            "route_s": round(best_route, 3), "write_s": round(best_write, 3),
            "allocations": len(result["allocations"]),
            "peak_rss_mb": _peak_rss_mb(), **compared,
            **_shipping_totals(result, shipping)}


def _whole_run_against_json_load(path, folder, shipping: bool, engine: str) -> dict:
    """The whole `routing run` of the scenario (a fresh process: start, load, check, route,
    write) against a fresh process doing a bare `json.load` of the same file (target: 1.0x
    or less)."""
    import subprocess
    import sys

    from .scenarios import PLAN, SHIPPING_PLAN

    rules = folder / "scenario.route"
    rules.write_text(SHIPPING_PLAN if shipping else PLAN, encoding="utf-8")
    commands = {
        "run_s": [sys.executable, "-m", "routing_dsl", "run", str(rules), "--snapshot",
                  str(path), "--out", str(folder / "run-result.json"), "--engine", engine],
        "json_load_s": [sys.executable, "-c", "import json, sys; json.load(open(sys.argv[1]))",
                        str(path)],
    }
    timed = {}
    for name, command in commands.items():
        started, cpu = time.perf_counter(), _children_cpu()
        subprocess.run(command, check=True, capture_output=True)
        timed[name] = round(time.perf_counter() - started, 2)
        # CPU seconds too: on a machine shared with other work they move far less than
        # wall time does
        timed[name.removesuffix("_s") + "_cpu_s"] = round(_children_cpu() - cpu, 2)
    return {**timed, "run_vs_json_load": round(timed["run_s"] / timed["json_load_s"], 2),
            "run_vs_json_load_cpu": round(timed["run_cpu_s"] / timed["json_load_cpu_s"], 2)}


def _children_cpu() -> float:
    import resource
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _shipping_totals(result: dict, shipping: bool) -> dict:
    if not shipping:
        return {}
    totals = [b["totals"] for b in result["batches"] if b.get("totals")]
    return {key: round(sum(t[key] for t in totals), 2) for key in totals[0]}


def _peak_rss_mb() -> int:
    """This process's own peak resident memory. ru_maxrss would do, but a spawned child
    inherits its parent's high-water mark through fork and exec; VmHWM starts afresh."""
    import resource
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _measure_baseline(path: str) -> dict:
    from pathlib import Path

    from ..engine import load_columnar, run_fast
    from .scenarios import PLAN
    from .sqlbaseline import load_database, route_in_sql

    snapshot = load_columnar(Path(path))
    gc.collect()
    gc.freeze()  # as `routing run` does after loading, and as the engine's figures are taken
    plan = compile_program(Workspace().check_text(PLAN, "bench.route").program)
    run_fast(plan, snapshot)  # warm: the compiled kernel loads once per process
    started = time.perf_counter()
    result = run_fast(plan, snapshot)
    ours = time.perf_counter() - started
    database = load_database(snapshot)
    started = time.perf_counter()
    theirs = route_in_sql(plan, snapshot, database)
    baseline = time.perf_counter() - started
    database.close()
    if _allocation_rows(result) != theirs:  # a baseline that decides differently measures nothing
        raise AssertionError("the SQL baseline and the engine allocate differently")
    ship_groups = sum(len(o.ship_groups) for o in snapshot.orders)
    return {"baseline_orders": len(snapshot.orders),
            "baseline_ship_groups_per_s": round(ship_groups / baseline),
            "engine_ship_groups_per_s_on_baseline_orders": round(ship_groups / ours),
            "speedup": round(baseline / ours, 1)}


def _allocation_rows(result: dict) -> list[tuple]:
    return [(a["order"], a["ship_group"], a["item"], a["facility"], a["quantity"], a["rule"])
            for a in result["allocations"]]


def scenario_text(report: dict) -> str:
    return (f"scenario: {report['orders']:,} orders ({report['ship_groups']:,} ship groups), "
            f"{report['facilities']:,} facilities, {report['skus']:,} SKUs, "
            f"{report['inventory_rows']:,} inventory rows (seed {report['seed']}), "
            f"{report['engine']} engine\n"
            f"  load:     {report['load_s']:.2f} s\n"
            f"  compile:  {report['compile_ms']:.0f} ms\n"
            f"  route:    {report['route_s']:.2f} s\n"
            f"  write:    {report['write_s']:.2f} s\n"
            f"  end to end without load: {report['ship_groups_per_s']:,} ship groups/s, "
            f"{report['allocations']:,} allocations\n"
            f"  peak memory: {report['peak_rss_mb']:,} MB\n"
            f"  the whole `routing run`: {report['run_s']:.2f} s against a bare `json.load` of "
            f"the file, {report['json_load_s']:.2f} s: {report['run_vs_json_load']:.2f}x "
            f"(target 1.0x); in CPU time {report['run_cpu_s']:.2f} s against "
            f"{report['json_load_cpu_s']:.2f} s: {report['run_vs_json_load_cpu']:.2f}x\n"
            + (_shipping_text(report) if "distance_route_s" in report else
               f"  SQL baseline on the first {report['baseline_orders']:,} orders (same facilities "
            f"and stock, same allocations): {report['baseline_ship_groups_per_s']:,} ship "
            f"groups/s against the engine's "
            f"{report['engine_ship_groups_per_s_on_baseline_orders']:,}: "
            f"{report['speedup']}x"))


def _shipping_text(report: dict) -> str:
    return (f"  shipping: {report['packages']:,} packages costing {report['shipping_cost']:,.2f}, "
            f"{report['split_orders']:,} split orders, {report['late_items']:,} late items\n"
            f"  the same snapshot with the distance rules: route {report['distance_route_s']:.2f}"
            f" s; cost and delivery ranking takes {report['route_s'] / report['distance_route_s']:.2f}x"
            " as long")


def compile_cost(rules: int = 1000, rounds: int = 3) -> str:
    """Check and compile one file of ``rules`` rules (target: 0.25 s for 1,000)."""
    body = "\n".join(
        f'    rule "r{i}" {{\n      assign partial\n      inventory {{\n'
        f'        facility_group == WAREHOUSES\n        distance <= {100 + i} mi\n      }}\n'
        f'      sort by distance, inventory_balance desc\n    }}' for i in range(rules))
    text = ('use std.hotwax\ndeclare facility_group WAREHOUSES\ngroup "G" for store STORE {\n'
            f'  routing "R" {{\n    filter {{ queue == _NA_ }}\n{body}\n  }}\n}}\n')
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        result = Workspace().check_text(text, "rules.route")
        compile_program(result.program)
        best = min(best, time.perf_counter() - started)
    assert not result.has_errors, result.diagnostics
    return (f"check + compile: a {rules:,}-rule file in {best * 1000:.0f} ms "
            f"({best / 0.25:.2f} of the 250 ms target), best of {rounds}")


SCALING_GRID = {  # what grows -> scenarios; the others stay at the middle value
    "orders": [10_000, 30_000, 100_000],
    "facilities": [300, 1_000, 3_000],
    "skus": [5_000, 20_000, 50_000],
}
SCALING_BASE = {"orders": 30_000, "facilities": 1_000, "skus": 20_000}


def run_scaling(folder=None) -> list[dict]:
    """How cost grows with orders, facilities and SKUs: one scenario per grid point (the SQL
    baseline on its first 1,000 orders only)."""
    from .scenarios import Scenario

    reports = []
    for axis, values in SCALING_GRID.items():
        for value in values:
            sizes = {**SCALING_BASE, axis: value}
            report = run_scenario(Scenario(**sizes), folder=folder, baseline_orders=1000)
            reports.append({"axis": axis, **report})
    return reports


def scaling_table(reports: list[dict]) -> str:
    lines = ["| grows | orders | facilities | SKUs | inventory rows | load | route | "
             "ship groups/s | peak memory |", "|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        lines.append(f"| {r['axis']} | {r['orders']:,} | {r['facilities']:,} | {r['skus']:,} | "
                     f"{r['inventory_rows']:,} | {r['load_s']:.2f} s | {r['route_s']:.2f} s | "
                     f"{r['ship_groups_per_s']:,} | {r['peak_rss_mb']:,} MB |")
    return "\n".join(lines)


def scaling_svg(reports: list[dict]) -> str:
    """Three panels, one per axis: route time per ship group (microseconds) against the size
    that grows, the others fixed. Plain SVG: no plotting library needed."""
    width, height, pad = 240, 180, 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{3 * width}" height="{height}" '
             'font-family="sans-serif" font-size="11">',
             f'<rect width="{3 * width}" height="{height}" fill="white"/>']
    per_sg = [r["route_s"] / r["ship_groups"] * 1e6 for r in reports]
    top = max(per_sg) * 1.25
    for panel, axis in enumerate(SCALING_GRID):
        rows = [(r[axis], v) for r, v in zip(reports, per_sg, strict=True) if r["axis"] == axis]
        left = panel * width + pad
        inner_w, inner_h = width - pad - 40, height - 2 * pad
        low, high = min(x for x, _ in rows), max(x for x, _ in rows)

        def px(x, left=left, low=low, high=high, inner_w=inner_w):
            return left + (x - low) / ((high - low) or 1) * inner_w

        def py(y, inner_h=inner_h):
            return pad + inner_h - y / top * inner_h
        parts.append(f'<line x1="{left}" y1="{pad + inner_h}" x2="{left + inner_w}" '
                     f'y2="{pad + inner_h}" stroke="black"/>')
        parts.append(f'<line x1="{left}" y1="{pad}" x2="{left}" y2="{pad + inner_h}" '
                     'stroke="black"/>')
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in rows)
        parts.append(f'<polyline points="{points}" fill="none" stroke="#1f6feb" '
                     'stroke-width="2"/>')
        for x, y in rows:
            parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="#1f6feb"/>')
            parts.append(f'<text x="{px(x):.1f}" y="{pad + inner_h + 14}" '
                         f'text-anchor="middle">{x:,}</text>')
            parts.append(f'<text x="{px(x):.1f}" y="{py(y) - 6:.1f}" '
                         f'text-anchor="middle">{y:.0f}</text>')
        parts.append(f'<text x="{left + inner_w / 2}" y="{height - 6}" '
                     f'text-anchor="middle">{axis}</text>')
        parts.append(f'<text x="{left}" y="{pad - 12}">route time per ship group (µs)</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def service_latency(facilities: int = 1000, decisions: int = 1000, clients: int = 4,
                    db_url: str | None = None, commits: int = 2000,
                    commit_clients: int = 16, workers: tuple[int, ...] = (1,)) -> str:
    """A load generator on loopback against a live `routing serve`: quotes for 3-line orders
    against ``facilities`` facilities, one at a time (latency) and from ``clients``
    connections at once per worker (throughput: 4 fill one worker, 8 two); then ``commits``
    committed decisions (each its own order and idempotency key) from ``commit_clients``
    connections, recorded in the run store at ``db_url`` (default: a temporary SQLite file).
    Once per count of ``workers`` (`routing serve --workers N`), the connections spread
    evenly over them, in one run so that the counts compare."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import orjson

    from .scenarios import PLAN, Scenario
    from .scenarios import generate as generate_scenario
    from .loadgen import commit_bodies, drive, encode

    reports = []
    with tempfile.TemporaryDirectory(prefix="routing-service-bench-") as temporary:
        folder = Path(temporary)
        document = generate_scenario(Scenario(orders=max(2000, decisions * 8),
                                              facilities=facilities, skus=2000))
        orders = [o for o in document["orders"]
                  if sum(len(g["items"]) for g in o["ship_groups"]) == 3][:decisions]
        (folder / "snapshot.json").write_bytes(orjson.dumps(document))
        (folder / "bench.route").write_text(PLAN, encoding="utf-8")
        database = db_url or f"sqlite:///{folder}/runs.db"
        subprocess.run([sys.executable, "-m", "routing_dsl", "db", "upgrade", "--db", database],
                       check=True, capture_output=True)
        for count in workers:
            reports.append(_service_run(folder, database, orders, count, clients * count,
                                        commits, commit_clients, drive, encode,
                                        commit_bodies))
    store = "PostgreSQL" if database.startswith("postgres") else "SQLite"
    lines = [f"service: {len(orders)} quotes of 3-line orders, {facilities:,} facilities, on "
             f"loopback"]
    for count, (alone, together, cpu, runs) in zip(workers, reports, strict=True):
        per_decision = f", server CPU {cpu / len(orders) * 1000:.2f} ms a decision" \
            if cpu >= 0 else ""
        indent = "  "
        if len(workers) > 1 or count > 1:
            lines.append(f"  {count} worker{'' if count == 1 else 's'} (routing serve "
                         f"--workers {count}):")
            indent = "    "
        lines += [f"{indent}latency:    p50 {alone.percentile(0.5) * 1000:.1f} ms, p99 "
                  f"{alone.percentile(0.99) * 1000:.1f} ms (target p99 <= 10 ms)",
                  f"{indent}throughput: {together.rate:,.0f} decisions/s from "
                  f"{clients * count} "
                  f"clients at once, p99 {together.percentile(0.99) * 1000:.1f} ms "
                  f"(target 1,000; 4,000 with 2 workers at p99 <= 5 ms){per_decision}"]
        for (load, commit_cpu, database_cpu), label in zip(runs, ("commits:   ",
                                                                  "  (lines):"), strict=True):
            server = commit_cpu / len(load.latencies) * 1000
            per_commit = f", server CPU {server:.2f} ms a commit" if commit_cpu >= 0 else ""
            if commit_cpu >= 0 and cpu > 0:  # what a loaded machine changes less: a ratio
                per_commit += f" ({server / (cpu / len(orders) * 1000):.1f} quotes)"
            if commit_cpu >= 0 and database_cpu >= 0:
                # what this CPU a commit allows: on an idle 2-core machine the server's
                # Python process has one core (the GIL) and shares the two with the
                # database (a loaded machine inflates CPU times: the bound is low then)
                database = database_cpu / len(load.latencies) * 1000
                bound = min(1000 * count / server, 2000 / (server + database))
                per_commit += (f" + PostgreSQL {database:.2f} ms (at that CPU, an idle "
                               f"2-core machine: at most {bound:,.0f}/s)")
            lines.append(
                f"{indent}{label} {load.rate:,.0f} committed decisions/s from "
                f"{commit_clients} clients at once on {store}, p50 "
                f"{load.percentile(0.5) * 1000:.1f} ms, p99 "
                f"{load.percentile(0.99) * 1000:.1f} ms{per_commit}")
    lines.append("  (target: 500 committed decisions/s on PostgreSQL at p99 <= 50 ms; "
                 "(lines): commits with \"explain\": false)")
    return "\n".join(lines)


def _service_run(folder, database: str, orders: list[dict], workers: int, clients: int,
                 commits: int, commit_clients: int, drive, encode, commit_bodies) -> tuple:
    """One `routing serve --workers N` measured: quotes alone, quotes together, their
    server CPU, and the two commit loads with theirs (keys of their own: the run store may
    hold another count's commits)."""
    import orjson

    from ..service.launch import serving
    arguments = [str(folder / "bench.route"), "--source", str(folder / "snapshot.json"),
                 "--db", database, "--workers", str(workers)]
    with serving(arguments, timeout=180) as served:
        address = ("127.0.0.1", int(served.base.rsplit(":", 1)[1]))
        requests = encode(served.base, "/v1/decisions",
                          [orjson.dumps({"order": order}) for order in orders])
        drive(address, requests[:50] * workers, workers, workers)  # warm up every worker
        alone = drive(address, requests)
        cpu = _tree_cpu_seconds(served.process.pid)
        # the quotes once per worker (a longer load, a steadier figure); the CPU of one round
        together = drive(address, requests * workers, clients, workers)
        cpu = (_tree_cpu_seconds(served.process.pid) - cpu) / workers
        runs = []
        for explain in (True, False):  # with the explanations, then the lines only
            prefix = f"w{workers}-{'bench' if explain else 'lines'}"
            writes = encode(served.base, "/v1/decisions",
                            commit_bodies(orders, commits, explain, prefix))
            drive(address, writes[:50], commit_clients, workers)  # warm up: the first writes
            commit_cpu = _tree_cpu_seconds(served.process.pid)
            database_cpu = _database_cpu(database)
            load = drive(address, writes[50:], commit_clients, workers)
            runs.append((load, _tree_cpu_seconds(served.process.pid) - commit_cpu,
                         _database_cpu(database) - database_cpu))
    return alone, together, cpu, runs


def _database_cpu(url: str) -> float:
    """CPU time the PostgreSQL server processes of ``url``'s database have used so far (they
    run on this machine: loopback); -inf on SQLite or where /proc cannot tell. A connection
    opened meanwhile counts whole, one closed meanwhile not at all (the service's pool keeps
    its connections)."""
    if not url.startswith("postgres"):
        return float("-inf")
    import sqlalchemy as sa

    from ..ops.store import database_url
    engine = sa.create_engine(database_url(url), poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            pids = connection.execute(sa.text(
                "select pid from pg_stat_activity where datname = current_database() "
                "and pid <> pg_backend_pid()")).scalars().all()
    except sa.exc.SQLAlchemyError:
        return float("-inf")
    finally:
        engine.dispose()
    readable = [seconds for seconds in map(_cpu_seconds, pids) if seconds >= 0]
    return sum(readable) if readable else float("-inf")  # elsewhere: not on this machine


def _tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (the workers of `routing serve --workers`)."""
    total = _cpu_seconds(pid)
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as children:
            total += sum(_cpu_seconds(int(child)) for child in children.read().split())
    except OSError:
        return float("-inf")
    return total


def _cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used so far; -inf where /proc cannot tell."""
    import os
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("-inf")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stores_scenario(stores: int = 12, orders: int = 2000, regions: int = 3) -> tuple[str, dict]:
    """A retail group: ``stores`` product stores, each with its own facilities, orders and
    stock (a small scenario each), in ``regions`` regions whose stores share one regional
    warehouse. The rules (the scenario plan, one group per store) and the snapshot document."""
    from .scenarios import PLAN, Scenario
    from .scenarios import generate as generate_scenario

    header, body = PLAN.split('group "Bench" for store STORE {', 1)
    rules = [header]
    document = None
    for s in range(stores):
        store = f"STORE_{s:02d}"
        rules.append(f'group "Bench {store}" for store {store} {{' + body)
        part = generate_scenario(Scenario(orders=orders, facilities=40, skus=500, seed=s))
        renamed = {}
        for facility in part["facilities"]:
            if not facility.get("virtual"):
                renamed[facility["id"]] = f"{store}-{facility['id']}"
                facility["id"] = renamed[facility["id"]]
                facility["product_stores"] = [store]
        for row in part["inventory"]:
            row["facility"] = renamed[row["facility"]]
        for order in part["orders"]:
            order["id"] = f"{store}-{order['id']}"
            order["product_store"] = store
        if document is None:
            document = part
            document["product_stores"] = []
            document["facilities"] = [f for f in part["facilities"] if f.get("virtual")]
            document["inventory"], document["orders"] = [], []
        document["product_stores"].append({"id": store})
        document["facilities"] += [f for f in part["facilities"] if not f.get("virtual")]
        document["inventory"] += part["inventory"]
        document["orders"] += part["orders"]
    names = [s["id"] for s in document["product_stores"]]
    for facility in document["facilities"]:
        if facility.get("virtual"):
            facility["product_stores"] = names
    for region in range(regions):
        members = names[region::regions]
        hub = f"REGION-{region}"
        document["facilities"].append({
            "id": hub, "lat": 39.0 + region, "lon": -95.0 + 8 * region,
            "product_stores": members, "groups": {"WAREHOUSES": 0}})
        document["inventory"] += [{"facility": hub, "product": p["id"], "atp": 3}
                                  for p in document["products"][:200]]
    return "".join(rules), document


def stores_bench(stores: int = 12, orders: int = 2000, jobs: int = 2) -> str:
    """Sequential against a process pool and Ray tasks (a local Ray, started and stopped in
    the timing) on a retail group's stores: the same bytes, and their times as ratios."""
    from ..result import dump_result
    from ..scaleout import partitions, route_partitioned
    from ..snapshot import parse_snapshot

    text, document = stores_scenario(stores, orders)
    plan = compile_program(Workspace().check_text(text, "stores.route").program)
    snapshot = parse_snapshot(document)
    parts = partitions(plan, snapshot)
    started, cpu = time.perf_counter(), _cpu_of_tree()
    one = dump_result(run_plan(plan, snapshot))
    sequential, sequential_cpu = time.perf_counter() - started, _cpu_of_tree() - cpu
    timings = []
    runs = [("local", 1), ("process", jobs)]
    try:
        import ray  # noqa: F401 - the Ray row only when Ray is installed
        runs.append(("ray", jobs))
    except ImportError:
        pass
    for executor, workers in runs:
        started, cpu = time.perf_counter(), _cpu_of_tree()
        merged = dump_result(route_partitioned(plan, snapshot, executor=executor, jobs=workers,
                                               engine="reference"))
        timings.append((executor, workers, time.perf_counter() - started,
                        _cpu_of_tree() - cpu))
        if merged != one:
            raise AssertionError(f"the {executor} executor's result differs from one run's")
    lines = [f"stores: {stores} stores x {orders:,} orders, {len(parts)} partitions "
             f"({', '.join(str(len(p.stores)) for p in parts)} stores each), reference engine",
             f"  one process, unpartitioned:   {sequential:.2f} s, {sequential_cpu:.2f} s of CPU"]
    for executor, workers, seconds, used in timings:
        lines.append(f"  {executor:<7} executor, {workers} worker{'s' if workers > 1 else ''}: "
                     f"{seconds:.2f} s  ({sequential / seconds:.2f}x; the same bytes), "
                     f"{used:.2f} s of CPU ({used / sequential_cpu:.2f}x one process's)")
    return "\n".join(lines)


def _cpu_of_tree() -> float:
    """CPU seconds used so far by this process and its children that have ended (a pool's
    workers, once it has shut down): what a run costs, whatever the machine's other load."""
    import resource
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))
