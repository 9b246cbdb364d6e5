"""The application layer: what every front door does with the core, as functions that return
values and raise typed errors, never printing and never exiting the process.

Load a plan (a ``.route`` file, a compiled plan, or either as it was at a git revision), open
a snapshot (a file, a folder, or a database URL read through a mapping), choose an engine and
an executor, run, and record in the run store; plus the authoring and operations commands'
work. The CLI renders what these return and maps the errors to exit codes (`AppError.exit_code`);
the service, the bench and the tests call them directly.

Each function imports the libraries it needs when it runs, so that a command pays only for
its own: `routing check` loads neither numba, SQLAlchemy nor FastAPI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .diagnostics import Diagnostic, printable, sort_diagnostics, summary

if TYPE_CHECKING:
    from .checker import CheckResult
    from .ops.store import RunStore
    from .plan import Plan
    from .snapshot import Snapshot

# What `--engine` and `--executor` accept: the same as `engine.ENGINES` and
# `scaleout.EXECUTORS` (a test holds them equal), spelled here so that showing the options
# does not load the engines.
ENGINES = ("auto", "fast", "reference")
EXECUTORS = ("local", "process", "ray")

Warn = Callable[[str], None]


def _ignore(message: str) -> None:
    pass


# ---- errors ----

class AppError(Exception):
    """A request the application cannot carry out; ``exit_code`` is what a command line
    exits with, ``lines`` what it reports (one problem per line)."""

    exit_code: ClassVar[int] = 3

    @property
    def lines(self) -> list[str]:
        return [str(self)]


class InputError(AppError):
    """Unusable input or arguments: a missing or unreadable file, a bad option value, an
    unknown name (exit code 2)."""

    exit_code = 2


class InputProblems(InputError):
    """Unusable input with several problems: every one found, with where, a line each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = list(problems)

    @property
    def lines(self) -> list[str]:
        return self.problems


class BadSnapshot(InputProblems):
    """A snapshot source that is not a valid snapshot: every problem found, with where."""


class ProblemsError(AppError):
    """The input has problems the user must fix (exit code 1): ``diagnostics`` (rendered as
    `routing check` renders them), other ``problems`` (one line each), then ``closing``, a
    line saying what was not done."""

    exit_code = 1

    def __init__(self, diagnostics: Iterable[Diagnostic] = (), problems: Iterable[str] = (),
                 closing: str | None = None):
        self.diagnostics = list(diagnostics)
        self.problems = list(problems)
        self.closing = closing
        super().__init__(closing or "; ".join(self.problems) or summary(self.diagnostics))

    @property
    def lines(self) -> list[str]:
        return self.problems


class RunFailed(AppError):
    """A run finished but a routing in it failed (exit code 4); the result holds what ran
    (each failed run's error is in its batch)."""

    exit_code = 4

    def __init__(self, result: dict):
        super().__init__("a routing failed (see above); the result holds what ran")
        self.result = result


# ---- files and outputs ----

def expand_paths(paths: Iterable[str]) -> list[Path]:
    """Files as given, and every ``*.route`` file under each directory, in a stable order."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.route") if p.is_file())
            if not found:
                raise InputError(f"{raw}: no .route files in this directory")
            files.extend(found)
        elif path.exists():
            if path.suffix != ".route":
                raise InputError(f"{raw}: not a .route file")
            files.append(path)
        else:
            raise InputError(f"{raw}: no such file or directory")
    return files


def write_output(path: Path, data: str | bytes | Iterable[bytes]) -> None:
    """Write ``path`` completely or not at all (see `outputs.write_atomically`)."""
    from .outputs import UnwritableOutput, write_atomically
    try:
        write_atomically(path, data)
    except UnwritableOutput as error:
        raise InputError(str(error)) from None


# ---- checking and formatting ----

def check_paths(paths: Iterable[str]) -> tuple[list[Path], list[Diagnostic]]:
    """The files ``paths`` name, and their diagnostics in reporting order."""
    from .checker import Workspace
    from .loader import SourceError
    files = expand_paths(paths)
    workspace = Workspace()
    diagnostics: list[Diagnostic] = []
    for path in files:
        try:
            diagnostics.extend(workspace.check_path(path).diagnostics)
        except SourceError as error:
            raise InputError(str(error)) from None
    return files, sort_diagnostics(diagnostics)


@dataclass(frozen=True)
class Formatted:
    """A source in canonical form: ``text`` is None when it has syntax errors (then
    ``diagnostics`` says which)."""

    name: str
    original: str
    text: str | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.text is not None and self.text != self.original


def format_text(text: str, name: str) -> Formatted:
    from .formatter import format_module
    from .loader import Loader
    parsed = Loader.parse_text(text, name)
    if parsed.syntax_diagnostics:
        return Formatted(name, text, None, list(parsed.syntax_diagnostics))
    return Formatted(name, text, format_module(parsed.module, parsed.source))


def format_path(path: Path) -> Formatted:
    from .formatter import format_module
    from .loader import Loader, SourceError, display_name
    try:
        parsed = Loader().load(path, display_name(path))
    except SourceError as error:
        raise InputError(str(error)) from None
    name, original = parsed.source.name, parsed.source.text
    if parsed.syntax_diagnostics:
        return Formatted(name, original, None, list(parsed.syntax_diagnostics))
    return Formatted(name, original, format_module(parsed.module, parsed.source))


# ---- plans ----

def check_source(path: Path) -> CheckResult:
    """``path`` parsed and checked (its diagnostics in the result)."""
    from .checker import Workspace
    from .loader import SourceError
    try:
        return Workspace().check_path(path)
    except SourceError as error:
        raise InputError(str(error)) from None


def compile_checked(result: CheckResult, name: str) -> Plan:
    """The plan of a checked file; ProblemsError with its errors when it has any."""
    errors = [d for d in result.diagnostics if d.is_error]
    if errors:
        raise ProblemsError(errors, closing=f"{name}: not compiled: {summary(errors)}")
    from .compiler import compile_program
    return compile_program(result.program)


def load_plan(path: Path) -> Plan:
    """A plan from a .route file (checked and compiled) or from a compiled plan (JSON)."""
    if path.suffix not in (".route", ".json"):
        raise InputError(f"{path}: expected a .route file or a compiled plan (.json)")
    if path.suffix == ".json":
        from .plan import PlanError
        from .plan import load_plan as parse_plan
        try:
            return parse_plan(path.read_bytes(), str(path))
        except OSError as error:
            raise InputError(f"{path}: {error.strerror or error}") from None
        except PlanError as error:
            raise InputError(str(error)) from None
    result = check_source(path)
    return compile_checked(result, result.parsed.source.name)


def label_plan(plan: Plan, path: Path, label: str | None = None, *,
               git: bool = False) -> Plan:
    """``plan`` with its version label: the file's own ``version``, else ``label``
    (`--version-label`, InputError when it cannot be one), else, with ``git``, the commit of
    the git work tree holding ``path`` (see `rollout.versions`)."""
    from .rollout.versions import label_problem, labelled
    if label is not None:
        problem = label_problem(label)
        if problem:
            raise InputError(f"--version-label {printable(label[:80])!r}: {problem}")
    return labelled(plan, path, label, git=git)


def load_plan_spec(spec: str) -> Plan:
    """A plan from a path (a .route file or a compiled plan) or from `git:REV:path` (the file
    as it was at that revision; its imports resolve against the working tree)."""
    if not spec.startswith("git:"):
        path = Path(spec)
        if not path.is_file():
            raise InputError(f"{spec}: no such file")
        return load_plan(path)
    revision, _, inside = spec[4:].partition(":")
    if not revision or not inside:
        raise InputError(f"{spec}: expected git:REVISION:PATH, e.g. git:HEAD~1:rules.route")
    import subprocess
    shown = subprocess.run(["git", "show", f"{revision}:{inside}"], capture_output=True)
    if shown.returncode != 0:
        reason = shown.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InputError(f"{spec}: git show failed: {reason[-1] if reason else 'no output'}")
    name = Path(inside).name
    if name.endswith(".json"):
        from .plan import PlanError
        from .plan import load_plan as parse_plan
        try:
            return parse_plan(shown.stdout, spec)
        except PlanError as error:
            raise InputError(str(error)) from None
    if not name.endswith(".route"):
        raise InputError(f"{spec}: expected a .route file or a compiled plan (.json)")
    try:
        text = shown.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{spec}: not UTF-8 text") from None
    # imports resolve against the working tree, next to where the file lives in it
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True,
                         text=True).stdout.strip()
    where = Path.cwd() / inside if inside.startswith("./") else Path(top or ".") / inside
    from .checker import Workspace
    return compile_checked(Workspace().check_text(text, name=spec, path=where), spec)


def source_text(path: Path) -> str | None:
    """The .route text a plan was compiled from, recorded with its batches (None for a
    compiled plan)."""
    return path.read_text(encoding="utf-8") if path.suffix == ".route" else None


# ---- snapshots ----

def open_snapshot(spec: str | Path, mapping: Path | None = None, *,
                  columnar: bool = False) -> Snapshot:
    """A snapshot from a file, a folder, or a database URL (read through ``mapping``, by
    default the reference OMS schema); with ``columnar``, a file's inventory is read as
    columns for the fast engine. BadSnapshot lists every problem of an invalid one."""
    from .snapshot import SnapshotError
    try:
        if "://" in str(spec):
            from .ops.oms import default_mapping, read_mapping
            from .ops.oms import read_snapshot as read_database
            from .ops.store import database_url
            queries = read_mapping(mapping) if mapping else default_mapping()
            return read_database(database_url(str(spec)), queries)
        if mapping is not None:
            raise InputError("--mapping goes with a database URL as the snapshot")
        path = Path(spec)
        if not path.exists():
            raise InputError(f"{spec}: no such file or directory")
        if columnar:
            from .engine import load_columnar
            return load_columnar(path)
        from .snapshot import load_snapshot
        return load_snapshot(path)
    except SnapshotError as error:
        raise BadSnapshot(error.problems) from None


def snapshot_source(spec: str | Path, mapping: Path | None = None) -> Callable[[], Snapshot]:
    """A source that reads the snapshot afresh on each call (a scheduler's round, a live
    state's refresh), raising InputError (BadSnapshot) when it has become unusable."""
    def read() -> Snapshot:
        return open_snapshot(spec, mapping)
    return read


def read_what_ifs(statements: Iterable[str], patch: Path | None) -> list:
    """What-if changes from a file (one per line) and from statements, in that order."""
    from .authoring.whatif import WhatIfError, parse, read_patch
    try:
        changes = read_patch(patch) if patch is not None else []
        return changes + [parse(statement) for statement in statements]
    except WhatIfError as error:
        raise InputError(printable(str(error))) from None


def apply_what_ifs(snapshot: Snapshot, changes: list) -> Snapshot:
    from .authoring.whatif import WhatIfError, apply
    try:
        return apply(snapshot, changes)
    except WhatIfError as error:
        raise InputError(printable(str(error))) from None


# ---- the run store and sinks ----

def display_url(url: str) -> str:
    """A database URL without its password, for messages."""
    from .ops.store import safe_url
    return safe_url(url)


def open_store(db_url: str | None, warn: Warn = _ignore, note: Warn = _ignore) -> RunStore:
    """The run store at ``db_url`` (or ROUTING_DB, or ./routing.db), migrated and with stale
    batches closed (``warn`` is told how many). A SQLite store is created, or upgraded, on
    first use (``note`` is told); PostgreSQL keeps the explicit `routing db upgrade`, and a
    missing or old schema there is an InputError saying so."""
    from .ops.store import RunStore, StoreError, database_url
    try:
        store = RunStore(database_url(db_url))
        try:
            store.require_current()
        except StoreError:
            if store.engine.dialect.name != "sqlite":
                raise
            from sqlalchemy.engine import make_url
            path = make_url(store.url).database
            fresh = path in (None, "", ":memory:") or not Path(path).exists()
            before = None if fresh else store.revision()
            revision = store.upgrade()
            note(f"created the run store {display_url(store.url)} (revision {revision})"
                 if before is None else
                 f"upgraded the run store {display_url(store.url)} from revision {before} "
                 f"to {revision}")
        from .ops.locks import close_stale
        closed = close_stale(store)
    except StoreError as error:
        raise InputError(str(error)) from None
    if closed:
        warn(f"closed {closed} batch{'' if closed == 1 else 'es'} left running by a "
             "process that stopped")
    return store


class RejectionRefused(AppError):
    """A rejection that names no committed line, or reuses a key for another request (exit
    code 1): nothing was recorded."""

    exit_code = 1


def reject_line(db_url: str | None, *, order: str, item: str, facility: str, key: str,
                reason: str | None = None, ship_group: str | None = None, at=None,
                reroute: list[Path] | None = None, source: str | None = None,
                mapping: Path | None = None, queue: str | None = None,
                explain: bool = False) -> dict:
    """Record that ``facility`` rejected a committed order line (ops/rejections.py): its
    reservations released, the rejection kept for every later routing. With ``reroute``
    (the plans' files) and ``source`` (the snapshot the live state reads), the item is routed
    again at once and that decision committed with it. Returns the answer: the rejection and
    the new decision (None without reroute)."""
    import orjson

    from .ops import rejections
    store = open_store(db_url)
    request = rejections.RejectionRequest(order=order, item=item, facility=facility, key=key,
                                          reason=reason, ship_group=ship_group, at=at,
                                          reroute=bool(reroute), queue=queue)
    try:
        if not reroute:
            return orjson.loads(rejections.reject(store, request))
        if source is None:
            raise InputError("--reroute needs --source (the snapshot the plans route)")
        from .service.state import DecisionError, LiveState, Unavailable
        state = LiveState([load_plan(path) for path in reroute], snapshot_source(source, mapping),
                          [source_text(path) for path in reroute], store=store)
        state.refresh()
        try:
            return orjson.loads(state.reject(request, explain=explain))
        except DecisionError as error:
            raise RejectionRefused(str(error)) from None
        except Unavailable as error:
            raise AppError(str(error)) from None
    except rejections.RejectionError as error:
        raise RejectionRefused(str(error)) from None
    except Exception as error:
        from .ops.locks import Busy
        if isinstance(error, Busy):
            raise AppError(f"the order's partition stayed locked: {error}") from None
        raise
    finally:
        store.dispose()


def upgrade_store(db_url: str | None) -> tuple[str, str]:
    """Create or upgrade the run store's tables: where it is (for messages) and the
    revision it is at."""
    from .ops.store import RunStore, StoreError, database_url
    try:
        store = RunStore(database_url(db_url))
        revision = store.upgrade()
    except StoreError as error:
        raise InputError(str(error)) from None
    return display_url(store.url), revision


def make_webhook(url: str | None):
    """The sink posting each committed batch to ``url`` (None without one)."""
    if url is None:
        return None
    if not url.startswith(("http://", "https://")):
        raise InputError(f"--webhook {url!r}: an http:// or https:// URL")
    from .ops.sinks import Webhook
    return Webhook(url)


SINKS = ("oms",)


def make_after(*, sink: str | None = None, source: str | None = None,
               mapping: Path | None = None, alerts: Path | None = None,
               log: Callable[[dict], None] | None = None):
    """What follows each recorded run (`ops.hooks.AfterBatches`): with ``sink`` "oms", the
    write-back into the OMS database ``source`` (a URL: where the snapshot is read), through
    the `[sink]` statements of ``mapping``; with ``alerts``, the rules of that file. None when
    neither is asked for."""
    if sink is None and alerts is None:
        return None
    from .ops.hooks import AfterBatches
    writer = rules = None
    if sink is not None:
        if sink not in SINKS:
            raise InputError(f"--sink {sink!r}: one of {', '.join(SINKS)}")
        if source is None or "://" not in str(source):
            raise InputError("--sink oms writes into the OMS database the snapshot is read "
                             "from: give a database URL as the snapshot (source)")
        from .ops.store import database_url
        from .ops.writeback import OmsSink, WriteBackError, read_sink_mapping
        try:
            writer = OmsSink(database_url(str(source)), read_sink_mapping(mapping))
        except WriteBackError as error:
            raise InputError(str(error)) from None
    if alerts is not None:
        from .ops.alerts import AlertError, Alerts, read_rules
        try:
            rules = Alerts(read_rules(alerts))
        except AlertError as error:
            raise BadAlerts(error.problems) from None
    return AfterBatches(writer, rules, log)


class BadAlerts(InputProblems):
    """An alert file that cannot be used: every problem, with where."""


def load_oms(snapshot_path: Path, db_url: str) -> tuple[dict[str, int], str]:
    """Create the reference OMS tables at ``db_url`` and fill them from a valid snapshot:
    the rows written per table, and where (for messages)."""
    import json

    from .ops.oms import load
    from .ops.store import database_url
    snapshot = open_snapshot(snapshot_path)  # only valid snapshots go in
    document = json.loads(snapshot_path.read_text(encoding="utf-8")) if snapshot_path.is_file() \
        else json.loads(snapshot.model_dump_json())
    url = database_url(db_url)
    try:
        counts = load(url, document)
    except Exception as error:  # noqa: BLE001 - any database failure is the user's to fix
        raise InputError(f"{display_url(url)}: {type(error).__name__}: "
                         f"{str(getattr(error, 'orig', error)).splitlines()[0]}") from None
    return counts, display_url(url)


def oms_schema(dialect: str) -> str:
    """The reference OMS schema as CREATE TABLE statements."""
    from .ops.oms import schema_sql
    return schema_sql(dialect)


# ---- running ----

# A snapshot file (or folder) smaller than this is routed by the reference engine under
# `--engine auto`: it finishes such a run before the fast engine has imported numba and
# loaded its compiled code (about half a second); both write the same bytes.
SMALL_SNAPSHOT_BYTES = 256 * 1024


def small_snapshot(spec: str | Path) -> bool:
    """Whether the snapshot at ``spec`` (a file or a folder; never a database) is small
    enough that the reference engine routes it sooner than the fast one can start."""
    if "://" in str(spec):
        return False
    path = Path(spec)
    try:
        if path.is_dir():
            size = 0
            for child in path.iterdir():
                if child.is_file():
                    size += child.stat().st_size
                    if size >= SMALL_SNAPSHOT_BYTES:
                        return False
            return True
        return path.stat().st_size < SMALL_SNAPSHOT_BYTES
    except OSError:
        return False


def choose_engine(engine: str = "auto", *, small: bool = False) -> str:
    """The engine a run asked to run on ``engine`` uses: "fast" or "reference"; ``small``
    inputs go to the reference engine under auto (engine.choose)."""
    from . import engine as engines
    return engines.choose(engine, small=small)


def warm_engine() -> dict:
    """Compile the fast engine's kernel into numba's cache (see engine/warm.py) and the
    language server's protocol types into theirs (lsp/typecache.py): the seconds taken and
    the kernel functions compiled."""
    from .engine.warm import warm
    from .lsp.typecache import write_cache
    done = warm()
    write_cache()
    return done


def router(executor: str = "local", jobs: int = 2, address: str | None = None,
           optimizing: bool = False, warn: Warn = _ignore):
    """What routes a run: `engine.route` in this process, or its partitions on a process
    pool or on Ray (the same result); it takes `engine.route`'s arguments. A plan that
    optimises routes in this process and solves its windows on the executor instead."""
    if executor == "local" or optimizing and executor in EXECUTORS:
        from .engine import route
        if executor == "local":
            return route
        from .optimize.run import executing

        def optimised(*args, **kwargs):
            with executing(executor, jobs):
                return route(*args, **kwargs)
        return optimised
    if executor not in EXECUTORS:
        raise InputError(f"--executor {executor!r}: one of {', '.join(EXECUTORS)}")
    if executor == "ray":
        try:
            import ray  # noqa: F401 - only to say early that it is missing
        except ImportError:
            raise InputError("--executor ray needs Ray: pip install 'routing-dsl[ray]' "
                             "(or pip install ray)") from None
    from functools import partial

    from .scaleout import route_partitioned
    return partial(route_partitioned, executor=executor, jobs=jobs, address=address,
                   warn=warn)


@dataclass(frozen=True)
class RunRequest:
    """What `routing run` is asked: a plan (a .route file or a compiled plan) against a
    snapshot, how, and where to record it."""

    source: Path
    snapshot: str
    mapping: Path | None = None
    group: str | None = None
    routing: str | None = None
    explain: bool = False
    explain_facilities: frozenset[str] = frozenset()
    engine: str = "auto"
    what_ifs: tuple[str, ...] = ()
    what_if_file: Path | None = None
    version_label: str | None = None
    executor: str = "local"
    jobs: int = 2
    address: str | None = None
    db_url: str | None = None
    webhook: str | None = None
    sink: str | None = None
    alerts: Path | None = None
    wait: float | None = None  # seconds a group waits for a busy partition (None: the default)

    @property
    def recording(self) -> bool:
        import os
        return self.db_url is not None or bool(os.environ.get("ROUTING_DB")) or \
            self.webhook is not None or self.sink is not None or self.alerts is not None


@dataclass
class RunOutcome:
    result: dict
    batch_ids: list[str] = field(default_factory=list)
    store: RunStore | None = None
    writeback: list = field(default_factory=list)  # ops.writeback.WriteBack, per batch
    alerts: list[dict] = field(default_factory=list)  # alert changes announced

    @property
    def failed(self) -> bool:
        return any(run["error"] for batch in self.result["batches"] for run in batch["runs"])

    def raise_for_failure(self) -> None:
        """RunFailed when a routing of the run failed (once its result is written)."""
        if self.failed:
            raise RunFailed(self.result)


@dataclass
class PreparedRun:
    """A run whose input is loaded and checked, ready to go: `run` routes (and records)."""

    request: RunRequest
    plan: Plan
    snapshot: Snapshot
    options: dict[str, Any]
    router: Callable[..., dict]
    store: RunStore | None = None
    webhook: Any = None
    # ledger lines acknowledged before this stay unapplied: the source holds them
    reflected_before: Any = None
    after: Any = None  # ops.hooks.AfterBatches

    @property
    def items(self) -> int:
        """Order items in the snapshot."""
        return sum(len(sg.items) for o in self.snapshot.orders for sg in o.ship_groups)

    @property
    def steps(self) -> int:
        """Progress steps of the run, at most: each unit (a ship group, or an item for a
        routing that routes items), once per routing (units its filters leave out are not
        counted as they go)."""
        groups = sum(len(o.ship_groups) for o in self.snapshot.orders)
        chosen = [g for g in self.plan.groups if self.request.group in (None, g.name)]
        return max(1, sum(self.items if r.item_mode else groups
                          for g in chosen for r in g.routings
                          if self.request.routing in (None, r.name)))

    def run(self, progress: Callable[[int], None] | None = None) -> RunOutcome:
        options = dict(self.options)
        if progress is not None:
            options["progress"] = progress
        if self.store is None:
            return RunOutcome(self.router(self.plan, self.snapshot, **options))
        from .ops.runner import run_recorded
        result, batch_ids = run_recorded(self.store, self.plan, self.snapshot,
                                         source_text=source_text(self.request.source),
                                         webhook=self.webhook, router=self.router,
                                         reflected_before=self.reflected_before,
                                         **({} if self.request.wait is None
                                            else {"wait": self.request.wait}), **options)
        outcome = RunOutcome(result, batch_ids, self.store)
        if self.after:
            followed = self.after(self.store, batch_ids, self.snapshot)
            outcome.writeback, outcome.alerts = followed["writeback"], followed["alerts"]
            self.after.dispose()
        return outcome


def prepare_run(request: RunRequest, warn: Warn = _ignore, note: Warn = _ignore,
                log: Callable[[dict], None] | None = None) -> PreparedRun:
    """Load and check everything ``request`` names (plan, engine, what-ifs, snapshot, group
    and routing, executor, run store), in that order, raising the first problem."""
    # recorded runs carry the rules' version label (the git commit when nothing else names it)
    plan = label_plan(load_plan(request.source), request.source, request.version_label,
                      git=request.recording)
    if request.executor != "local" and (request.explain or request.routing):
        raise InputError(f"--executor {request.executor} routes whole groups without "
                         "explanations: drop --explain and --routing, or use --executor local")
    engine = choose_engine(request.engine, small=request.executor == "local"
                           and small_snapshot(request.snapshot))
    changes = read_what_ifs(request.what_ifs, request.what_if_file)
    store = webhook = read_at = None
    if request.recording:  # opened first: its clock is read before the source (ops/ledger.py)
        store = open_store(request.db_url, warn, note)
        read_at = store.clock()
    snapshot = open_snapshot(request.snapshot, request.mapping,
                             columnar=engine == "fast" and not changes)
    snapshot = apply_what_ifs(snapshot, changes)
    names = {g.name for g in plan.groups}
    if request.group is not None and request.group not in names:
        raise InputError(f"no group named {request.group!r} (groups: "
                         f"{', '.join(sorted(names))})")
    if request.routing is not None and \
            request.routing not in {r.name for g in plan.groups for r in g.routings}:
        raise InputError(f"no active routing named {request.routing!r}")
    options = {"group": request.group, "routing": request.routing,
               "explain": request.explain,
               "explain_facilities": set(request.explain_facilities), "engine": engine}
    chosen = router(request.executor, request.jobs, request.address,
                    optimizing=any(r.optimize is not None for g in plan.groups
                                   for r in g.routings), warn=warn)
    reflected_before = after = None
    if request.sink is not None and changes:
        raise InputError("--sink writes decisions into the OMS: not ones taken on a "
                         "snapshot changed by --what-if")
    if store is not None:
        from .ops.ledger import reflection_cutoff
        after = make_after(sink=request.sink, source=request.snapshot, mapping=request.mapping,
                           alerts=request.alerts, log=log)
        webhook = make_webhook(request.webhook)
        reflected_before = reflection_cutoff(read_at, snapshot.now)
    return PreparedRun(request, plan, snapshot, options, chosen, store, webhook,
                       reflected_before, after)


def run(request: RunRequest, warn: Warn = _ignore) -> RunOutcome:
    """`prepare_run`, then run it."""
    return prepare_run(request, warn).run()


# ---- reading the run store ----

BATCH_STATUSES = ("running", "succeeded", "failed", "skipped")


def list_batches(db_url: str | None, *, group: str | None = None, status: str | None = None,
                 since=None, until=None, limit: int = 50, warn: Warn = _ignore,
                 note: Warn = _ignore) -> list:
    """The run store's batches, newest first (`ops.queries.BatchRow`), filtered by group,
    status and start time (UTC datetimes; naive ones are taken as UTC)."""
    from datetime import UTC

    from .ops import queries
    if status is not None and status not in BATCH_STATUSES:
        raise InputError(f"--status {status!r}: one of {', '.join(BATCH_STATUSES)}")
    store = open_store(db_url, warn, note)
    try:
        return queries.batches(store, group=group, status=status,
                               since=since and (since if since.tzinfo else
                                                since.replace(tzinfo=UTC)),
                               until=until and (until if until.tzinfo else
                                                until.replace(tzinfo=UTC)), limit=limit)
    finally:
        store.dispose()


# What `routing run --format csv|table` shows: one row per allocation and per unfilled item.
RESULT_COLUMNS = ("order", "ship_group", "item", "product", "outcome", "facility", "quantity",
                  "rule", "distance", "cost", "delivery_date")


def result_rows(result: dict) -> list[dict]:
    """The result's allocations, then its unfilled items, as flat rows (RESULT_COLUMNS): an
    unfilled item's outcome is what happened to it (moved, left, ...) and its facility the
    queue it waits in."""
    rows = [{"order": a["order"], "ship_group": a["ship_group"], "item": a["item"],
             "product": a["product"], "outcome": "allocated", "facility": a["facility"],
             "quantity": a["quantity"], "rule": a["rule"],
             "distance": None if a["distance"] is None else
             f"{a['distance']:g} {a['distance_unit']}",
             "cost": a.get("shipping_cost"), "delivery_date": a.get("delivery_date")}
            for a in result["allocations"]]
    rows += [{"order": u["order"], "ship_group": u["ship_group"], "item": u["item"],
              "product": u["product"], "outcome": u["action"].replace("_", " "),
              "facility": u["queue"], "quantity": u["quantity"], "rule": u["rule"],
              "distance": None, "cost": None,
              "delivery_date": None} for u in result["unfillable"]]
    return rows


# ---- explaining ----

@dataclass(frozen=True)
class Explained:
    """One order's explanation: the explained run's result, and when no routing picked the
    order up, the reasons why not."""

    result: dict
    not_routed: list[str] | None


def explain_order(source: Path, snapshot_spec: str, order_id: str, *,
                  facility: str | None = None, mapping: Path | None = None) -> Explained:
    plan = load_plan(source)
    # one order explained: a large snapshot routes on the fast engine, which explains alike
    engine = choose_engine(small=small_snapshot(snapshot_spec))
    snapshot = open_snapshot(snapshot_spec, mapping, columnar=engine == "fast")
    if order_id not in {o.id for o in snapshot.orders}:
        raise InputError(f"order {order_id!r} is not in the snapshot")
    if facility is not None and facility not in {f.id for f in snapshot.facilities}:
        raise InputError(f"facility {facility!r} is not in the snapshot")
    from .engine import route
    from .runtime import not_routed_reasons
    result = route(plan, snapshot, engine=engine, explain=True, explain_orders={order_id},
                   explain_facilities={facility} if facility else None)
    reasons = None
    if not any(u["order"] == order_id for u in result["explanations"]):
        reasons = not_routed_reasons(plan, snapshot, result, order_id)
    return Explained(result, reasons)


# ---- authoring ----

def find_rule_tests(paths: Iterable[str]) -> list[Path]:
    """The .routetest files given, and those under the folders given (default: the current
    one), hidden folders skipped."""
    files: list[Path] = []
    for given in paths or (".",):
        path = Path(given)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.routetest")
                            if not any(part.startswith(".") for part in p.parts))
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{given}: no such file or directory")
    if not files:
        raise InputError("no .routetest files found")
    return files


def run_rule_tests(files: Iterable[Path], coverage=None) -> list:
    """Every case of every file (`authoring.ruletests.CaseResult`), coverage recorded in
    ``coverage`` when given."""
    from .authoring.ruletests import TestFileError, run_file
    results = []
    for file in files:
        try:
            results += run_file(file, coverage)
        except TestFileError as error:
            raise InputError(printable(str(error))) from None
    return results


def analyze_paths(paths: Iterable[str]) -> list[Diagnostic]:
    """The findings proved from the rules of every file (its checker errors first: a file
    with errors is a ProblemsError)."""
    from .authoring.analysis import analyze
    findings = []
    for path in expand_paths(paths):
        result = check_source(path)
        compile_checked(result, result.parsed.source.name)
        findings += analyze(result.program)
    return findings


def diff_versions(old: str, new: str, snapshot_spec: str, *, mapping: Path | None = None,
                  engine: str = "auto", what_ifs: Iterable[str] = (),
                  what_if_file: Path | None = None):
    """Two versions of the rules (paths or git:REV:path) run on one snapshot: every unit
    whose routing changed (`authoring.diff.DiffResult`)."""
    from .authoring.diff import diff_plans
    plans = load_plan_spec(old), load_plan_spec(new)
    changes = read_what_ifs(what_ifs, what_if_file)
    snapshot = apply_what_ifs(open_snapshot(snapshot_spec, mapping), changes)
    return diff_plans(*plans, snapshot, engine)


def import_hotwax(export: Path) -> tuple[str, list[str]]:
    """A HotWax routing group export translated into a formatted .route text, and notes on
    what was adapted; ProblemsError listing what cannot be translated."""
    import json

    from .interchange.hotwax import HotWaxImportError, HotWaxSchemaError, import_group
    try:
        document = json.loads(export.read_bytes())
    except OSError as error:
        raise InputError(f"{export}: {error.strerror or error}") from None
    except (ValueError, RecursionError) as error:
        raise InputError(f"{export}: not valid JSON: {error}") from None
    try:
        return import_group(document, name=str(export))
    except HotWaxSchemaError as error:  # not the shape of an export: bad input (exit 2)
        raise InputError(printable(str(error))) from None
    except HotWaxImportError as error:
        count = len(error.problems)
        raise ProblemsError(problems=error.problems,
                            closing=f"{export}: not translated ({count} problem"
                                    f"{'' if count == 1 else 's'}); nothing written") from None


def export_hotwax(source: Path, group_name: str | None = None) -> list[dict]:
    """A .route file's groups (or one) as HotWax routing group exports; ProblemsError for a
    file with errors or for what HotWax cannot hold."""
    from .interchange.hotwax import HotWaxExportError, export_group
    if source.suffix != ".route":
        raise InputError(f"{source}: expected a .route file")
    result = check_source(source)
    compile_checked(result, result.parsed.source.name)  # refuse a file with errors
    groups = [g for g in result.program.groups if group_name in (None, g.name)]
    if not groups:
        raise InputError(f"no group named {group_name!r}" if group_name else
                         f"{source}: no group to export")
    try:
        return [export_group(group) for group in groups]
    except HotWaxExportError as error:
        raise ProblemsError(problems=error.problems) from None


def partition_run(source: Path, snapshot_spec: str, mapping: Path | None = None) -> list:
    """The partitions of a run (`scaleout.Partition`): stores linked by a shared facility
    route together."""
    from .scaleout import partitions
    plan = load_plan(source)
    return partitions(plan, open_snapshot(snapshot_spec, mapping))


def init_project(directory: Path) -> list[str]:
    """Write a starter project into ``directory`` (refusing to overwrite anything): the
    names written."""
    from .starter import files
    starter = files()
    existing = sorted(name for name in starter if (directory / name).exists())
    if existing:
        raise InputError(f"{directory}: would overwrite {', '.join(existing)}; "
                         "choose an empty folder")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"{directory}: {error.strerror or error}") from None
    for name, text in starter.items():
        write_output(directory / name, text)
    return sorted(starter)


def json_schema(kind: str) -> dict:
    """The JSON Schema of a contract: "snapshot", "result" or "plan"."""
    if kind == "snapshot":
        from .snapshot import Snapshot as model
    elif kind == "result":
        from .result import Result as model
    elif kind == "plan":
        from .plan import Plan as model
    else:
        raise InputError(f"no schema named {kind!r} (snapshot, result, plan)")
    return model.model_json_schema()


# ---- rolling out a rule change ----

class BadGuards(InputProblems):
    """A canary's guard file that cannot be used: every problem, naming its key."""


def rollout_plans(paths: Iterable[Path], production: list[Plan], mode: str,
                  ) -> tuple[list[Plan], list[str | None]]:
    """A candidate's plans (each labelled: its `version`, else the git commit) and their
    .route texts, checked to stand beside ``production`` (see `rollout.controller`)."""
    from .rollout.controller import check_groups
    paths = list(paths)
    plans = [label_plan(load_plan(path), path, git=True) for path in paths]
    problems = check_groups(mode, production, plans)
    if problems:
        raise InputProblems([f"--{mode}: {problem}" for problem in problems])
    return plans, [source_text(path) for path in paths]


def canary_share(text: str) -> float:
    """``--canary-share`` as a percent (InputError saying what it takes)."""
    from .rollout.canary import parse_share
    try:
        return parse_share(text)
    except ValueError as error:
        raise InputError(f"--canary-share: {error}") from None


def read_guards(path: Path):
    """A canary's guard file (`rollout.guards.Guards`); BadGuards lists every problem."""
    from .rollout.guards import GuardError
    from .rollout.guards import read_guards as read
    try:
        return read(path)
    except GuardError as error:
        raise BadGuards(error.problems) from None


def make_rollout(store: RunStore, production: list[Plan], *, shadow: Iterable[Path] = (),
                 canary: Iterable[Path] = (), share: str | None = None,
                 guards: Path | None = None, webhook=None,
                 log: Callable[[dict], None] | None = None):
    """The candidate `routing serve` runs beside production (`rollout.controller.Rollout`),
    resumed from the run store or started; None without --shadow or --canary."""
    shadow, canary = list(shadow), list(canary)
    if shadow and canary:
        raise InputError("--shadow and --canary: one candidate at a time (shadow it first, "
                         "then start its canary)")
    if not canary and (share is not None or guards is not None):
        raise InputError(f"{'--canary-share' if share is not None else '--guards'} goes with "
                         "--canary")
    if not shadow and not canary:
        return None
    if canary and share is None:
        raise InputError("--canary needs --canary-share, e.g. --canary-share 10%")
    from .rollout.controller import Rollout
    mode = "canary" if canary else "shadow"
    plans, texts = rollout_plans(canary or shadow, production, mode)
    rollout = Rollout(store, mode, production, plans, texts=texts,
                      share=canary_share(share) if canary else None,
                      guards=read_guards(guards) if guards is not None else None,
                      webhook=webhook, log=log)
    rollout.start()
    return rollout


def shadow_report(db_url: str | None, *, since=None, limit: int = 50, warn: Warn = _ignore,
                  note: Warn = _ignore):
    """The batches shadowed since ``since`` (newest first, at most ``limit``), both versions'
    figures side by side, and their totals (`rollout.report.ShadowReport`)."""
    from datetime import UTC

    from .rollout.records import shadow_batches
    from .rollout.report import ShadowReport
    store = open_store(db_url, warn, note)
    try:
        since = since and (since if since.tzinfo else since.replace(tzinfo=UTC))
        return ShadowReport(shadow_batches(store, since=since, limit=limit))
    finally:
        store.dispose()


def rollout_status(db_url: str | None, warn: Warn = _ignore, note: Warn = _ignore) -> list:
    """The canary (in progress, else the latest) and the shadows in progress, each with its
    guards' figures (`rollout.report.Standing`)."""
    from .rollout.report import standings
    store = open_store(db_url, warn, note)
    try:
        return standings(store)
    finally:
        store.dispose()


def end_canary(db_url: str | None, action: str, reason: str | None = None,
               warn: Warn = _ignore, note: Warn = _ignore):
    """``promote`` (the candidate becomes production) or ``abort`` (production alone) the
    canary in progress: its row as it now stands. InputError when there is none."""
    from .rollout import records
    store = open_store(db_url, warn, note)
    try:
        found = records.current_canary(store)
        if found is None or found.status != "active":
            state = "" if found is None else (
                f" (the last one, of {found.candidate_label}, was {found.status}"
                f"{': ' + found.reason if found.reason else ''})")
            raise InputError(f"no canary in progress{state}")
        status = "promoted" if action == "promote" else "aborted"
        why = reason or (f"promoted: {found.candidate_label} is production"
                         if action == "promote" else "aborted by `routing rollout abort`")
        if not records.end(store, found.id, status, why):
            raise InputError("the canary ended meanwhile; see `routing rollout status`")
        return records.get(store, found.id)
    finally:
        store.dispose()
