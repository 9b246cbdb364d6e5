"""The ``routing`` command line.

Exit codes: 0 success; 1 the input has problems (diagnostics, unformatted files, a refused
plan); 2 usage or I/O errors (missing or unreadable files, bad arguments, a broken snapshot);
3 an internal error; 4 a run finished but a routing failed (the result is still written).
Problems are printed as one line each (``error: ...``), never as tracebacks; anything taken
from the input is printed with its control characters escaped; no output file is ever left
half-written.
"""

from __future__ import annotations

import gc
import json
import os
import re
import secrets
import sys
from pathlib import Path

import click
import orjson

from . import __version__
from .checker import Workspace
from .compiler import compile_program
from .diagnostics import (Diagnostic, printable, render_json, render_text, sort_diagnostics,
                          summary)
from .errorcodes import Severity
from .formatter import format_module
from .engine import ENGINES, FastUnsupported, choose, load_columnar, route
from .interpreter import not_routed_reasons, run_plan
from .loader import Loader, SourceError, display_name
from .plan import Plan, PlanError, load_plan
from .result import Result
from .snapshot import Snapshot, SnapshotError, load_snapshot

EXIT_ROUTING_FAILED = 4
TEMP_MARK = ".routing-tmp."


_SEVERITY_WORD = re.compile(r"^(\s*(?:\S+: )?)(error|warning|info)(\[RT\d+\])?:", re.M)
_PAINT = {"error": "red", "warning": "yellow", "info": "cyan"}


def colour() -> bool | None:
    """None lets click colour a terminal and strip colour from pipes and files; NO_COLOR
    (https://no-color.org) turns it off everywhere."""
    return False if os.environ.get("NO_COLOR") else None


def say(text: str, err: bool = False, nl: bool = True) -> None:
    """Print ``text`` with its severity words coloured when the output is a terminal."""
    painted = _SEVERITY_WORD.sub(
        lambda m: m.group(1) + click.style(m.group(2) + (m.group(3) or ""),
                                           fg=_PAINT[m.group(2)], bold=True) + ":", text)
    click.echo(painted, err=err, nl=nl, color=colour())


class InputError(click.ClickException):
    """Bad input (I/O, arguments): message on stderr, exit code 2."""

    exit_code = 2




def expand_paths(paths: tuple[str, ...]) -> list[Path]:
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


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write ``path`` completely or not at all.

    The data goes to a temporary file beside the target (``.NAME.routing-tmp.PID.RANDOM``),
    then replaces it in one rename. A link is written through (its target is replaced, the
    link stays); an existing file keeps its mode; a new file gets the mode the umask allows.
    Temporary files left by a killed run are removed on the next write."""
    target = Path(os.path.realpath(path))
    directory = target.parent
    _remove_stale_temporaries(directory, target.name)
    temp = directory / f".{target.name}{TEMP_MARK}{os.getpid()}.{secrets.token_hex(4)}"
    try:
        mode = target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise InputError(f"{path}: cannot write here: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        if temp.exists():
            temp.unlink()
        raise


def _remove_stale_temporaries(directory: Path, name: str) -> None:
    """Remove ``.NAME.routing-tmp.PID.*`` files whose writing process is gone."""
    try:
        candidates = list(directory.glob(f".{name}{TEMP_MARK}*"))
    except OSError:
        return
    for candidate in candidates:
        pid_text = candidate.name[len(f".{name}{TEMP_MARK}"):].split(".")[0]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
            continue  # still writing
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue
        try:
            candidate.unlink()
        except OSError:
            pass


def emit(path: Path | None, text: str | bytes) -> bool:
    """Write ``text`` to ``path``, or to standard output when ``path`` is None or ``-``.
    Returns whether it went to a file."""
    if path is None or str(path) == "-":
        click.echo(text, nl=False)
        return False
    write_atomically(path, text)
    return True


def print_diagnostics(diagnostics: list[Diagnostic], output_format: str) -> None:
    if output_format == "json":
        click.echo(render_json(diagnostics), nl=False)
        return
    for diagnostic in diagnostics:
        say(render_text(diagnostic))
        click.echo()


class _Commands(click.Group):
    """Every problem as one line in one style (``error: ...``): usage mistakes, bad input, and
    unexpected failures (exit 3, with ROUTING_DEBUG=1 showing the traceback)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)
        except click.UsageError as error:
            command = f" {error.ctx.command_path.split(' ', 1)[1]}" if error.ctx and \
                " " in error.ctx.command_path else ""
            say(f"error: {printable(error.format_message())} (see `routing{command} --help`)",
                err=True)
            sys.exit(2)
        except click.ClickException as error:
            say(f"error: {printable(error.format_message())}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit,
                KeyboardInterrupt):
            raise
        except BrokenPipeError:  # output piped to `head` and the like: stop quietly
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the interpreter flushes it at exit
            sys.exit(0)
        except Exception as error:  # noqa: BLE001 - last line of defence for users
            if os.environ.get("ROUTING_DEBUG"):
                raise
            click.echo(f"error: internal error: {type(error).__name__}: "
                       f"{printable(str(error))[:300]}\n"
                       "please report it; ROUTING_DEBUG=1 shows the details", err=True)
            sys.exit(3)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="routing")
def main() -> None:
    """Order routing rules as code: check, format, compile and run .route files.

    Exit codes: 0 success, 1 problems in the input (diagnostics, unformatted files),
    2 unusable input or arguments, 3 internal error, 4 a routing failed at run time (the
    result is still written).
    """


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="FILE|DIR...")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Diagnostics as text for people or JSON for tools.")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
def check(paths: tuple[str, ...], output_format: str, strict: bool) -> None:
    """Check .route files: syntax, names, types, units and structure."""
    files = expand_paths(paths)
    workspace = Workspace()
    diagnostics: list[Diagnostic] = []
    for path in files:
        try:
            diagnostics.extend(workspace.check_path(path).diagnostics)
        except SourceError as error:
            raise InputError(str(error)) from None
    diagnostics = sort_diagnostics(diagnostics)
    print_diagnostics(diagnostics, output_format)
    if output_format == "text":
        noun = "file" if len(files) == 1 else "files"
        click.echo(f"checked {len(files)} {noun}: {summary(diagnostics)}", err=True)
    failing = {Severity.ERROR, Severity.WARNING} if strict else {Severity.ERROR}
    if any(d.level in failing for d in diagnostics):
        sys.exit(1)


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="FILE|DIR...")
@click.option("--check", "check_only", is_flag=True,
              help="Change nothing; exit 1 if any file is not formatted.")
def fmt(paths: tuple[str, ...], check_only: bool) -> None:
    """Format .route files in place (`-` formats standard input to standard output)."""
    if paths == ("-",):
        text = sys.stdin.read()
        parsed = Loader.parse_text(text, "<stdin>")
        if parsed.syntax_diagnostics:
            print_diagnostics(parsed.syntax_diagnostics, "text")
            sys.exit(1)
        click.echo(format_module(parsed.module, parsed.source), nl=False)
        return
    failed = False
    changed: list[Path] = []
    for path in expand_paths(paths):
        try:
            parsed = Loader().load(path, display_name(path))
        except SourceError as error:
            raise InputError(str(error)) from None
        if parsed.syntax_diagnostics:
            print_diagnostics(parsed.syntax_diagnostics, "text")
            click.echo(f"{parsed.source.name}: not formatted: it has syntax errors", err=True)
            failed = True
            continue
        formatted = format_module(parsed.module, parsed.source)
        if formatted == parsed.source.text:
            continue
        changed.append(path)
        if check_only:
            click.echo(f"would reformat {parsed.source.name}")
        else:
            write_atomically(path, formatted)
            click.echo(f"reformatted {parsed.source.name}")
    if check_only and changed:
        failed = True
    if failed:
        sys.exit(1)


def load_plan_or_source(path: Path) -> Plan:
    """A plan from a .route file (checked and compiled) or from a compiled plan (JSON)."""
    if path.suffix not in (".route", ".json"):
        raise InputError(f"{path}: expected a .route file or a compiled plan (.json)")
    if path.suffix == ".json":
        try:
            return load_plan(path.read_bytes(), str(path))
        except OSError as error:
            raise InputError(f"{path}: {error.strerror or error}") from None
        except PlanError as error:
            raise InputError(str(error)) from None
    try:
        result = Workspace().check_path(path)
    except SourceError as error:
        raise InputError(str(error)) from None
    return compiled(result, result.parsed.source.name)


def compiled(result, name: str) -> Plan:
    """The plan of a checked file; its errors printed and exit 1 when it has any."""
    errors = [d for d in result.diagnostics if d.is_error]
    if errors:
        print_diagnostics(errors, "text")
        click.echo(f"{name}: not compiled: {summary(errors)}", err=True)
        sys.exit(1)
    return compile_program(result.program)


webhook_option = click.option(
    "--webhook", metavar="URL",
    help="Also POST each committed batch here (JSON, Idempotency-Key: the batch id), "
         "retrying on errors; needs the run store.")


def make_webhook(url: str | None):
    if url is None:
        return None
    if not url.startswith(("http://", "https://")):
        raise InputError(f"--webhook {url!r}: an http:// or https:// URL")
    from .ops.sinks import Webhook
    return Webhook(url)


mapping_option = click.option(
    "--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With a database source: the TOML file of SQL queries (default: the reference OMS "
         "schema).")


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def read_snapshot(spec: str | Path, mapping: Path | None = None, *,
                  columnar: bool = False) -> Snapshot:
    """A snapshot from a file, a folder, or a database URL (through ``mapping``); with
    ``columnar``, a file's inventory is read as columns for the fast engine."""
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
        return load_columnar(path) if columnar else load_snapshot(path)
    except SnapshotError as error:
        for problem in error.problems:
            say(f"error: {printable(problem)}", err=True)
        sys.exit(2)


def dump_result(result: dict, pretty: bool = False) -> bytes:
    """The result document as UTF-8 JSON: compact (fast to write and to parse) unless
    ``pretty``, indented by two spaces for people and golden files."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(result, option=option) + b"\n"


_WHAT_IF = click.option(
    "--what-if", "what_ifs", multiple=True, metavar="CHANGE",
    help="Change the snapshot in memory first (repeatable): `close F`, `stock P at F = N`, "
         "`limit F N|none`."), click.option(
    "--what-if-file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
    help="What-if changes, one per line (# comments).")


def what_if_options(command):
    """The two options above, on one command."""
    return _WHAT_IF[0](_WHAT_IF[1](command))


def read_what_ifs(statements: tuple[str, ...], patch: Path | None) -> list:
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


@main.command("compile")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the plan here (`-` or nothing: standard output).")
def compile_command(source: Path, output: Path | None) -> None:
    """Compile a .route file to an executable plan (JSON)."""
    plan = load_plan_or_source(source)
    if emit(output, plan.to_json()):
        click.echo(f"wrote {output}", err=True)


def shipping_line(figures: dict) -> str:
    """`12 packages, shipping 104.50, 2 split orders, 1 late item` (no cost without rate
    cards)."""
    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"
    cost = f", shipping {figures['shipping_cost']:.2f}" if figures["shipping_cost"] else ""
    return (f"{count(figures['packages'], 'package')}{cost}, "
            f"{count(figures['split_orders'], 'split order')}, "
            f"{count(figures['late_items'], 'late item')}")


def summarize(result: dict) -> str:
    """A short human report: per group and routing, what was attempted and routed."""
    lines = []
    by_rule: dict[tuple, int] = {}
    for allocation in result["allocations"]:
        key = (allocation["group"], allocation["routing"], allocation["rule"])
        by_rule[key] = by_rule.get(key, 0) + 1
    unfilled: dict[tuple, dict[str, int]] = {}
    for entry in result["unfillable"]:
        counts = unfilled.setdefault(entry["routing"], {})
        counts[entry["action"]] = counts.get(entry["action"], 0) + 1
    for batch in result["batches"]:
        lines.append(f"group {batch['group']!r} (store {batch['product_store']})")
        if batch.get("skipped"):
            lines.append(f"  skipped: {batch['skipped']}")
        for run in batch["runs"]:
            lines.append(f"  routing {run['routing']!r}: {run['attempted_items']} items "
                         f"attempted, {run['brokered_items']} brokered")
            if run.get("packages"):
                lines.append("    " + shipping_line(run))
            if run["error"]:
                lines.append(f"    error: {run['error']}")
            for (group, routing, rule), count in by_rule.items():
                if group == batch["group"] and routing == run["routing"]:
                    lines.append(f"    rule {rule!r}: {count} allocation"
                                 f"{'' if count == 1 else 's'}")
            actions = unfilled.get(run["routing"])
            if actions:
                described = ", ".join(f"{n} {a.replace('_', ' ')}" for a, n in sorted(actions.items()))
                lines.append(f"    unfilled items: {described}")
    lines.append(f"{len(result['allocations'])} allocations, "
                 f"{len(result['unfillable'])} unfilled item records")
    totals = [b["totals"] for b in result["batches"] if b.get("totals")]
    if any(t["packages"] for t in totals):
        summed = {key: sum(t[key] for t in totals) for key in totals[0]}
        lines.append("shipping: " + shipping_line(summed))
    for warning in result["warnings"]:
        lines.append(f"warning: {warning}")
    return "\n".join(printable(line) for line in lines)  # ids may hold control characters


@main.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                metavar="FILE|PLAN")
@click.option("--snapshot", "snapshot_path", required=True, metavar="SNAPSHOT",
              help="Snapshot JSON file, a folder of per-collection files, or a database URL "
                   "(sqlite:///oms.db, postgresql://...) read through --mapping.")
@mapping_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the result JSON here (`-` or nothing: standard output).")
@click.option("--group", help="Run only this group.")
@click.option("--routing", help="Run only this routing.")
@click.option("--pretty", is_flag=True, help="Indent the result JSON (default: compact).")
@click.option("--explain", is_flag=True,
              help="Add, per unit and rule, the chosen facilities with their sort keys and the "
                   "others counted by the first condition that excluded them.")
@click.option("--facility", "facilities", multiple=True, metavar="F",
              help="With --explain: full detail for this facility (repeatable).")
@click.option("--db", "db_url", metavar="URL",
              help="Record the run (one batch per group) in this run store: a SQLite file or "
                   "URL, or postgresql://... (ROUTING_DB works too).")
@webhook_option
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="fast: the columnar, compiled engine; reference: the interpreter that "
                   "states the semantics (same results); auto: fast unless the plan or "
                   "--explain needs the reference engine.")
@what_if_options
@click.option("--executor", type=click.Choice(["local", "process", "ray"]), default="local",
              show_default=True,
              help="process: route the partitions of the run (stores that share no facility) "
                   "on a pool of processes; ray: as Ray tasks (pip install ray); the result "
                   "is the same bytes.")
@click.option("--jobs", type=click.IntRange(1), default=2, show_default=True,
              help="With --executor process: worker processes.")
@click.option("--address", metavar="HOST:PORT",
              help="With --executor ray: the Ray cluster to use (default: start a local one).")
def run(source: Path, snapshot_path: str, mapping: Path | None, out: Path | None,
        group: str | None, routing: str | None, pretty: bool, explain: bool,
        facilities: tuple[str, ...], db_url: str | None, webhook: str | None,
        engine: str, what_ifs: tuple[str, ...], what_if_file: Path | None, executor: str,
        jobs: int, address: str | None) -> None:
    """Run a .route file or a compiled plan against a snapshot."""
    plan = load_plan_or_source(source)
    if executor != "local" and (explain or routing):
        raise InputError(f"--executor {executor} routes whole groups without explanations: "
                         "drop --explain and --routing, or use --executor local")
    try:
        engine = choose(plan, engine, explain=explain)
    except FastUnsupported as error:
        raise InputError(f"--engine fast: {error}; use --engine reference or auto") from None
    changes = read_what_ifs(what_ifs, what_if_file)
    recording = db_url is not None or bool(os.environ.get("ROUTING_DB")) or webhook is not None
    store = open_store(db_url) if recording else None
    read_at = store.clock() if store is not None else None  # before the source: see ledger
    snapshot = read_snapshot(snapshot_path, mapping, columnar=engine == "fast" and not changes
                             and executor == "local")
    snapshot = apply_what_ifs(snapshot, changes)
    # A one-shot process: the snapshot lives to the end, so the cyclic GC need not walk its
    # millions of objects again and again while routing allocates (about 9% of routing time).
    gc.collect()
    gc.freeze()
    names = {g.name for g in plan.groups}
    if group is not None and group not in names:
        raise InputError(f"no group named {group!r} (groups: {', '.join(sorted(names))})")
    if routing is not None and routing not in {r.name for g in plan.groups for r in g.routings}:
        raise InputError(f"no active routing named {routing!r}")
    options = {"group": group, "routing": routing, "explain": explain,
               "explain_facilities": set(facilities), "engine": engine}
    router = route
    if executor != "local":
        from functools import partial

        from .scaleout import route_partitioned
        router = partial(route_partitioned, executor=executor, jobs=jobs, address=address)
        if executor == "ray":
            try:
                import ray  # noqa: F401 - only to say early that it is missing
            except ImportError:
                raise InputError("--executor ray needs Ray: pip install 'routing-dsl[ray]' "
                                 "(or pip install ray)") from None
    stream = sys.stderr
    total = sum(len(sg.items) for o in snapshot.orders for sg in o.ship_groups)
    bar = None
    if stream.isatty() and total > 5000:
        bar = click.progressbar(length=total * max(1, sum(len(g.routings) for g in plan.groups)),
                                label="routing", file=stream)
        options["progress"] = bar.update
    try:
        if store is not None:
            from .ops.ledger import reflection_cutoff
            from .ops.runner import run_recorded
            text = source.read_text(encoding="utf-8") if source.suffix == ".route" else None
            result, batch_ids = run_recorded(store, plan, snapshot, source_text=text,
                                             webhook=make_webhook(webhook), router=router,
                                             reflected_before=reflection_cutoff(
                                                 read_at, snapshot.now), **options)
        else:
            result = router(plan, snapshot, **options)
    finally:
        if bar is not None:
            bar.render_finish()
    text = dump_result(result, pretty)
    if emit(out, text):
        say(summarize(result))
        click.echo(f"wrote {out}")
    else:
        say(summarize(result), err=True)
    if store is not None:
        click.echo(f"recorded {len(batch_ids)} batch{'' if len(batch_ids) == 1 else 'es'} in "
                   f"{store_name(store)}", err=True)
    if any(run["error"] for batch in result["batches"] for run in batch["runs"]):
        say("error: a routing failed (see above); the result holds what ran", err=True)
        sys.exit(EXIT_ROUTING_FAILED)


@main.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                metavar="FILE|PLAN")
@click.option("--snapshot", "snapshot_path", required=True, metavar="SNAPSHOT",
              help="Snapshot file or folder, or a database URL.")
@mapping_option
@click.option("--order", "order_id", required=True, help="The order to explain.")
@click.option("--facility", help="Also say why this facility was not chosen.")
def explain(source: Path, snapshot_path: str, mapping: Path | None, order_id: str,
            facility: str | None) -> None:
    """Explain where one order went, and why not elsewhere."""
    plan = load_plan_or_source(source)
    snapshot = read_snapshot(snapshot_path, mapping)
    if order_id not in {o.id for o in snapshot.orders}:
        raise InputError(f"order {order_id!r} is not in the snapshot")
    if facility is not None and facility not in {f.id for f in snapshot.facilities}:
        raise InputError(f"facility {facility!r} is not in the snapshot")
    result = run_plan(plan, snapshot, explain=True, explain_orders={order_id},
                      explain_facilities={facility} if facility else None)
    reasons = None
    if not any(u["order"] == order_id for u in result["explanations"]):
        reasons = not_routed_reasons(plan, snapshot, result, order_id)
    click.echo(explain_text(result, order_id, facility, reasons))


def explain_text(result: dict, order_id: str, facility: str | None,
                 not_routed: list[str] | None = None) -> str:
    lines = [f"order {order_id}"]
    units = [u for u in result["explanations"] if u["order"] == order_id]
    if not units:
        lines.append("  no routing picked it up:")
        lines += [f"    {reason}" for reason in not_routed or ["(no reason found)"]]
    for unit in units:
        label = f"ship group {unit['ship_group']}" + (f" item {unit['item']}" if "item" in unit
                                                      else "")
        lines.append(f"  {label}, routing {unit['routing']!r}:")
        for rule in unit["rules"]:
            where = f" ({rule['source']})" if "source" in rule else ""
            chosen = [f"{c['facility']}{_keys(c['sort_keys'])}" for c in rule["chosen"]]
            lines.append(f"    rule {rule['rule']!r}{where}: {rule['outcome']}"
                         + (f" -> {', '.join(chosen)}" if chosen else ""))
            if "rejected" in rule:
                lines.append(f"      rejected: {rule['rejected']}")
            for entry in rule.get("facilities", []):
                if entry["chosen"]:
                    continue
                reason = entry["excluded_by"]
                values = {k: v for k, v in reason["values"].items()
                          if k not in ("sort_keys", "chosen")}
                shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items())
                at = f" ({reason['source']})" if "source" in reason else ""
                lines.append(f"      not {entry['facility']}: {reason['condition']}{at}"
                             + (f" [{shown}]" if shown else ""))
                if "sort_keys" in reason["values"]:
                    lines.append(f"        {entry['facility']}{_keys(reason['values']['sort_keys'])}"
                                 f" vs chosen " + ", ".join(
                                     f"{name}{_keys(keys)}" for name, keys in
                                     reason["values"]["chosen"].items()))
            if facility is None:
                for group in rule["not_chosen"]:
                    examples = ", ".join(group["examples"])
                    more = ", ..." if group["count"] > len(group["examples"]) else ""
                    lines.append(f"      {group['count']} not chosen: {group['condition']}"
                                 f" (e.g. {examples}{more})")
    for entry in result["allocations"]:
        if entry["order"] == order_id:
            lines.append(f"  allocated: item {entry['item']} x{entry['quantity']} -> "
                         f"{entry['facility']} (rule {entry['rule']!r})")
    for entry in result["unfillable"]:
        if entry["order"] == order_id:
            lines.append(f"  unfilled: item {entry['item']} x{entry['quantity']}: "
                         f"{entry['action'].replace('_', ' ')} (queue {entry['queue']})")
    return "\n".join(printable(line) for line in lines)


def _keys(keys: dict) -> str:
    shown = [f"{name} {value}" for name, value in keys.items() if name != "distance_unit"]
    if "distance_unit" in keys and keys.get("distance") is not None:
        shown = [f"{s} {keys['distance_unit']}" if s.startswith("distance ") else s
                 for s in shown]
    return f" [{', '.join(shown)}]" if shown else ""


@main.command("test")
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE", help="Also write the results as JUnit XML, for CI.")
@click.option("--coverage", "show_coverage", is_flag=True,
              help="Report which rules fired and were passed over, and which inventory "
                   "conditions were seen true and false.")
@click.option("--coverage-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--fail-under", type=click.FloatRange(0, 100), metavar="PERCENT",
              help="Fail (exit 1) when coverage is below this.")
def test_command(paths: tuple[str, ...], junit_path: Path | None, show_coverage: bool,
                 coverage_format: str, fail_under: float | None) -> None:
    """Run rule tests: .routetest files (TOML; see docs/authoring.md) given, or found under
    the folders given (default: the current one). Exit 0 when every case passes, 1 when one
    fails (or coverage is under --fail-under), 2 when a test file cannot be run."""
    from .authoring.ruletests import Coverage, TestFileError, junit, run_file
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
    coverage = Coverage() if show_coverage or fail_under is not None else None
    results = []
    for file in files:
        try:
            results += run_file(file, coverage)
        except TestFileError as error:
            raise InputError(printable(str(error))) from None
    for result in results:
        if result.passed:
            say(f"PASS {printable(result.file)}: {printable(result.name)}")
        else:
            say(f"FAIL {printable(result.file)}: {printable(result.name)}", err=True)
            for failure in result.failures:
                say("\n".join("  " + printable(line) for line in failure.splitlines()),
                    err=True)
    failed = sum(not r.passed for r in results)
    say(f"{len(results) - failed} passed, {failed} failed")
    if junit_path is not None:
        write_atomically(junit_path, junit(results))
    under = False
    if coverage is not None:
        if coverage_format == "json":
            click.echo(json.dumps(coverage.to_json(), indent=2))
        elif show_coverage:
            say("\n".join(printable(line) for line in coverage.text().splitlines()))
        if fail_under is not None and coverage.percent() + 1e-9 < fail_under:
            say(f"error: coverage {coverage.percent():.1f}% is under {fail_under:g}%",
                err=True)
            under = True
    if failed or under:
        sys.exit(1)


@main.command("import-hotwax")
@click.argument("export", type=click.Path(dir_okay=False, path_type=Path), metavar="GROUP.json")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the .route file here (`-` or nothing: standard output).")
def import_hotwax(export: Path, output: Path | None) -> None:
    """Translate a HotWax routing group export (GET .../groups/{id}/raw) into a formatted
    .route file. Anything it cannot translate is listed with its JSON path and nothing is
    written (exit 1)."""
    from .interchange.hotwax import HotWaxImportError, import_group
    try:
        document = json.loads(export.read_bytes())
    except OSError as error:
        raise InputError(f"{export}: {error.strerror or error}") from None
    except (ValueError, RecursionError) as error:
        raise InputError(f"{export}: not valid JSON: {error}") from None
    try:
        text, notes = import_group(document, name=str(export))
    except HotWaxImportError as error:
        for problem in error.problems:
            say(f"error: {printable(problem)}", err=True)
        say(f"{export}: not translated ({len(error.problems)} problem"
            f"{'' if len(error.problems) == 1 else 's'}); nothing written", err=True)
        sys.exit(1)
    for note in notes:
        say(f"note: {printable(note)}", err=True)
    if emit(output, text):
        click.echo(f"wrote {output}", err=True)


@main.command("export-hotwax")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                metavar="FILE.route")
@click.option("--group", "group_name", help="Export only this group (default: every group).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the JSON here (`-` or nothing: standard output).")
def export_hotwax(source: Path, group_name: str | None, output: Path | None) -> None:
    """Write a .route file's groups as HotWax routing group exports (the shape of GET
    .../groups/{id}/raw, without HotWax's ids): one object for one group, else a list.
    What HotWax cannot hold is listed with where it is (exit 1)."""
    from .interchange.hotwax import HotWaxExportError, export_group
    if source.suffix != ".route":
        raise InputError(f"{source}: expected a .route file")
    try:
        result = Workspace().check_path(source)
    except SourceError as error:
        raise InputError(str(error)) from None
    compiled(result, result.parsed.source.name)  # refuse a file with errors, as compile does
    groups = [g for g in result.program.groups if group_name in (None, g.name)]
    if not groups:
        raise InputError(f"no group named {group_name!r}" if group_name else
                         f"{source}: no group to export")
    try:
        documents = [export_group(group) for group in groups]
    except HotWaxExportError as error:
        for problem in error.problems:
            say(f"error: {printable(problem)}", err=True)
        sys.exit(1)
    text = json.dumps(documents[0] if len(documents) == 1 else documents, indent=2) + "\n"
    if emit(output, text):
        click.echo(f"wrote {output}", err=True)


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--strict", is_flag=True, help="Exit 1 when there is any finding.")
def analyze(paths: tuple[str, ...], output_format: str, strict: bool) -> None:
    """Find what the rules will do wrong, proved from the rules alone: shadowed rules (RT501),
    routings no order can enter (RT502), rules that take any facility (RT503)."""
    from .authoring.analysis import analyze as analyze_program
    findings = []
    for path in expand_paths(paths):
        try:
            result = Workspace().check_path(path)
        except SourceError as error:
            raise InputError(str(error)) from None
        compiled(result, result.parsed.source.name)  # the checker's errors come first
        findings += analyze_program(result.program)
    print_diagnostics(findings, output_format)
    if output_format == "text":
        click.echo(f"{len(findings)} finding{'' if len(findings) == 1 else 's'}", err=True)
    if strict and findings:
        sys.exit(1)


@main.command("partitions")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                metavar="FILE|PLAN")
@click.option("--snapshot", "snapshot_path", required=True, metavar="SNAPSHOT")
@mapping_option
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def partitions_command(source: Path, snapshot_path: str, mapping: Path | None,
                       output_format: str) -> None:
    """Show how a run splits into partitions that cannot conflict: product stores linked by a
    shared facility route together."""
    from .scaleout import partitions
    plan = load_plan_or_source(source)
    found = partitions(plan, read_snapshot(snapshot_path, mapping))
    if output_format == "json":
        click.echo(json.dumps([p.to_json() for p in found], indent=2))
        return
    for number, part in enumerate(found, start=1):
        say(printable(f"partition {number}: stores {', '.join(part.stores)}; groups "
                      f"{', '.join(part.groups)}; {len(part.facilities)} facilities, "
                      f"{part.orders} orders"))


def load_plan_spec(spec: str) -> Plan:
    """A plan from a path (a .route file or a compiled plan) or from `git:REV:path` (the file
    as it was at that revision; its imports resolve against the working tree)."""
    if not spec.startswith("git:"):
        path = Path(spec)
        if not path.is_file():
            raise InputError(f"{spec}: no such file")
        return load_plan_or_source(path)
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
        try:
            return load_plan(shown.stdout, spec)
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
    return compiled(Workspace().check_text(text, name=spec, path=where), spec)


@main.command()
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option("--snapshot", "snapshot_path", required=True, metavar="SNAPSHOT",
              help="Snapshot file or folder, or a database URL.")
@mapping_option
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--exit-code", "exit_code", is_flag=True,
              help="Exit 2 when a unit changed (0 when none did), for CI.")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True)
@what_if_options
def diff(old: str, new: str, snapshot_path: str, mapping: Path | None, output_format: str,
         exit_code: bool, engine: str, what_ifs: tuple[str, ...],
         what_if_file: Path | None) -> None:
    """Run two versions of the rules (files, plans or git:REV:path) on one snapshot and show
    every unit whose routing changed, with figures before and after. Exit 0, or with
    --exit-code 2 when something changed; 1 when the input is wrong."""
    from .authoring.diff import diff_plans, render
    try:
        plans = load_plan_spec(old), load_plan_spec(new)
        changes = read_what_ifs(what_ifs, what_if_file)
        snapshot = apply_what_ifs(read_snapshot(snapshot_path, mapping), changes)
    except InputError as error:  # diff's convention (as terraform plan's): 1 for any error
        error.exit_code = 1
        raise
    except SystemExit as stop:
        raise SystemExit(1 if stop.code else 0) from None
    result = diff_plans(*plans, snapshot, engine)
    if output_format == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        say("\n".join(printable(line) for line in
                       render(result, old, new, str(snapshot_path)).split("\n")))
    if exit_code and result.changes:
        sys.exit(2)


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Write a starter project (rules, catalog, a snapshot) that routes out of the box."""
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
        write_atomically(directory / name, text)
    where = "" if str(directory) == "." else f"cd {directory} && "
    click.echo(f"wrote {', '.join(sorted(starter))} in {directory}\n"
               f"next: {where}routing check routes.route && "
               "routing run routes.route --snapshot snapshot.json --out result.json")


def open_store(db_url: str | None):
    """The run store at ``db_url`` (or ROUTING_DB, or ./routing.db), migrated and with stale
    batches closed; a usage error when it cannot be used."""
    from .ops.store import RunStore, StoreError, database_url
    try:
        store = RunStore(database_url(db_url))
        store.require_current()
        from .ops.locks import close_stale
        closed = close_stale(store)
    except StoreError as error:
        raise InputError(str(error)) from None
    if closed:
        say(f"warning: closed {closed} batch{'' if closed == 1 else 'es'} left running by a "
            "process that stopped", err=True)
    return store


def store_name(store) -> str:
    return store_display(store.url)


def _scenario(name: str, orders, facilities, skus, seed, explicit=None):
    """A named scenario with the sizes given on the command line."""
    from dataclasses import replace

    from .scenarios import SCENARIOS
    chosen = SCENARIOS[name]
    changes = {"orders": orders, "skus": skus, "seed": seed}
    if explicit is not None and explicit.get_parameter_source("facilities") is \
            click.core.ParameterSource.COMMANDLINE:
        changes["facilities"] = facilities
    return replace(chosen, **{k: v for k, v in changes.items() if v is not None})


@main.command("gen-snapshot")
@click.option("--scenario", type=click.Choice(["small", "reference", "large", "shipping"]),
              default="small", show_default=True)
@click.option("--orders", type=click.IntRange(1))
@click.option("--facilities", type=click.IntRange(1))
@click.option("--skus", type=click.IntRange(1))
@click.option("--seed", type=int)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The snapshot JSON file to write.")
def gen_snapshot(scenario: str, orders, facilities, skus, seed, out: Path) -> None:
    """Write the seeded benchmark snapshot of a scenario (the data `routing bench
    --scenario` routes; its plan is `routing gen-snapshot`'s companion in the docs)."""
    from .scenarios import generate
    chosen = _scenario(scenario, orders, None, skus, seed)
    if facilities is not None:
        from dataclasses import replace
        chosen = replace(chosen, facilities=facilities)
    document = generate(chosen)
    write_atomically(out, orjson.dumps(document) + b"\n")
    click.echo(f"wrote {out}: {len(document['orders']):,} orders, "
               f"{len(document['facilities']):,} facilities, "
               f"{len(document['inventory']):,} inventory rows")


@main.group()
def oms() -> None:
    """The reference OMS schema, for reading snapshots from SQL."""


@oms.command("load")
@click.argument("snapshot_path", type=click.Path(exists=True, path_type=Path),
                metavar="SNAPSHOT")
@click.option("--db", "db_url", required=True, metavar="URL",
              help="The database to fill: a SQLite file or URL, or postgresql://...")
def oms_load(snapshot_path: Path, db_url: str) -> None:
    """Create the reference OMS tables and fill them from a snapshot (replacing their rows)."""
    from .ops.oms import load
    from .ops.store import database_url
    read_snapshot(snapshot_path)  # only valid snapshots go in
    document = json.loads(snapshot_path.read_text(encoding="utf-8")) if snapshot_path.is_file() \
        else json.loads(read_snapshot(snapshot_path).model_dump_json())
    url = database_url(db_url)
    try:
        counts = load(url, document)
    except Exception as error:  # noqa: BLE001 - any database failure is the user's to fix
        raise InputError(f"{store_display(url)}: {type(error).__name__}: "
                         f"{str(getattr(error, 'orig', error)).splitlines()[0]}") from None
    total = sum(counts.values())
    click.echo(f"loaded {total} rows into {store_display(url)} "
               f"({counts['oms_order']} orders, {counts['oms_inventory']} inventory rows); "
               f"read it with --snapshot {store_display(url)}")


@oms.command("schema")
@click.option("--dialect", type=click.Choice(["postgresql", "sqlite"]), default="postgresql",
              show_default=True)
def oms_schema(dialect: str) -> None:
    """Print the reference OMS schema as CREATE TABLE statements."""
    from .ops.oms import schema_sql
    click.echo(schema_sql(dialect), nl=False)


def store_display(url: str) -> str:
    from .ops.store import _safe
    return _safe(url)


@main.group()
def outbox() -> None:
    """Decisions waiting for the OMS: list them, acknowledge them once applied."""


@outbox.command("list")
@click.option("--db", "db_url", metavar="URL", help="The run store (default ./routing.db).")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1))
def outbox_list(db_url: str | None, limit: int) -> None:
    """Print the unacknowledged decisions as JSON, oldest first."""
    click.echo(json.dumps(open_store(db_url).pending(limit), indent=2))


@outbox.command("ack")
@click.argument("ids", nargs=-1, type=int)
@click.option("--batch", help="Acknowledge every decision of this batch.")
@click.option("--db", "db_url", metavar="URL", help="The run store (default ./routing.db).")
def outbox_ack(ids: tuple[int, ...], batch: str | None, db_url: str | None) -> None:
    """Mark decisions as applied by the OMS (by id, or a whole batch)."""
    if not ids and batch is None:
        raise click.UsageError("give outbox ids or --batch")
    done = open_store(db_url).ack(list(ids) if ids else None, batch)
    click.echo(f"acknowledged {done} decision{'' if done == 1 else 's'}")


@main.group()
def db() -> None:
    """The run store's database."""


@db.command("upgrade")
@click.option("--db", "db_url", metavar="URL", help="SQLite file or URL, or postgresql://...")
def db_upgrade(db_url: str | None) -> None:
    """Create the run store's tables, or upgrade them to this version."""
    from .ops.store import RunStore, StoreError, database_url
    try:
        store = RunStore(database_url(db_url))
        revision = store.upgrade()
    except StoreError as error:
        raise InputError(str(error)) from None
    click.echo(f"{store_name(store)}: run store at revision {revision}")


@main.command()
@click.option("--db", "db_url", metavar="URL", help="SQLite file or URL, or postgresql://...")
@click.option("--order", "order_id", help="Only this order.")
@click.option("--group", help="Only this group.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Only moves at or after this date (UTC).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def history(db_url, order_id, group, since, output_format) -> None:
    """Every item routing moved: from where, to where, by which rule, in which batch."""
    from datetime import UTC
    store = open_store(db_url)
    rows = store.history(order=order_id, group=group,
                         since=since.replace(tzinfo=UTC) if since else None)
    if output_format == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(printable(
            f"{row['at']}  order {row['order']} sg {row['ship_group']} item {row['item']} "
            f"x{_plain(row['quantity'])}: {row['from']} -> {row['to']} ({row['reason']}, "
            f"{row['group']} / {row['routing']} / {row['rule']})"))
    click.echo(f"{len(rows)} move{'' if len(rows) == 1 else 's'}", err=True)


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


@main.command()
@click.option("--db", "db_url", metavar="URL", help="SQLite file or URL, or postgresql://...")
@click.option("--older-than", "age", required=True, metavar="AGE",
              help="Delete batches started longer ago than this: 30d, 12h, 2w, 45m.")
def purge(db_url: str | None, age: str) -> None:
    """Delete old batches and everything they recorded."""
    from .ops.store import parse_age
    try:
        older_than = parse_age(age)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--older-than") from None
    store = open_store(db_url)
    removed = store.purge(older_than)
    click.echo(f"purged {removed} batch{'' if removed == 1 else 'es'} older than {age}")


@main.command()
@click.argument("sources", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                metavar="FILE|PLAN...")
@click.option("--source", "snapshot_path", required=True, metavar="SNAPSHOT",
              help="Where each round reads its data, afresh: a snapshot file or folder, or "
                   "a database URL read through --mapping.")
@mapping_option
@click.option("--db", "db_url", metavar="URL", help="The run store (default ./routing.db).")
@webhook_option
@click.option("--port", type=click.IntRange(1, 65535),
              help="Also answer HTTP on this port: decisions, runs, batches, history, "
                   "health and metrics (see docs/service.md).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="With --port. Any address but loopback needs ROUTING_TOKEN, a bearer token "
                   "every write must carry.")
@click.option("--once", is_flag=True, help="Run every due group once, then exit.")
@click.option("--executor", type=click.Choice(["local", "process", "ray"]), default="local",
              show_default=True,
              help="Run the due groups of a round together, their partitions (stores that "
                   "share no facility) on a process pool or Ray.")
@click.option("--jobs", type=click.IntRange(1), default=2, show_default=True,
              help="With --executor process: worker processes.")
@click.option("--address", metavar="HOST:PORT", help="With --executor ray: the Ray cluster.")
@click.option("--poll-seconds", default=30.0, show_default=True, type=click.FloatRange(0.1),
              help="Look for due groups at least this often.")
def serve(sources: tuple[Path, ...], snapshot_path: str, mapping: Path | None,
          db_url: str | None, webhook: str | None, port: int | None, host: str, once: bool,
          executor: str, jobs: int, address: str | None, poll_seconds: float) -> None:
    """Run each group of each file on its schedule, recording every batch (stop with SIGTERM
    or Ctrl-C).

    A group runs at its cron slots in its schedule's time zone (UTC when it names none); a
    slot missed while the scheduler was down runs once; paused groups never run. Each event
    is one JSON line on standard error."""
    import signal
    import threading

    from .ops.scheduler import Scheduler
    from .ops.scheduler import serve as serve_all
    token = os.environ.get("ROUTING_TOKEN") or None
    if port is not None and host not in LOOPBACK and token is None:
        raise InputError(f"--host {host}: serving beyond this machine needs a bearer token; "
                         "set ROUTING_TOKEN (every write must then carry it)")
    plans = [(load_plan_or_source(path), path) for path in sources]
    read_snapshot(snapshot_path, mapping)  # refuse a broken source before serving
    store = open_store(db_url)
    sink = make_webhook(webhook)
    schedulers = [
        Scheduler(store, plan, lambda: read_snapshot(snapshot_path, mapping), webhook=sink,
                  source_text=path.read_text(encoding="utf-8") if path.suffix == ".route"
                  else None)
        for plan, path in plans]
    if executor != "local":
        from functools import partial

        from .scaleout import route_partitioned
        for scheduler in schedulers:
            scheduler.router = partial(route_partitioned, executor=executor, jobs=jobs,
                                       address=address)
    if once:
        for scheduler in schedulers:
            scheduler.run_once()
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if port is None:
        serve_all(schedulers, stop, poll_seconds)
        return
    import uvicorn

    from .service.app import create_app
    from .service.state import LiveState
    state = LiveState([plan for plan, _ in plans], lambda: read_snapshot(snapshot_path, mapping),
                      [path.read_text(encoding="utf-8") if path.suffix == ".route" else None
                       for _, path in plans], store=store)
    state.refresh()
    for scheduler in schedulers:  # scheduled batches and decisions share one live state
        scheduler.live = state
    loop = threading.Thread(target=serve_all, args=(schedulers, stop, poll_seconds),
                            name="scheduler", daemon=True)
    loop.start()
    server = uvicorn.Server(uvicorn.Config(create_app(state, store, token), host=host, port=port,
                                           log_level="warning", timeout_graceful_shutdown=5))
    server.run()  # returns on SIGTERM/SIGINT (our handlers above absorb uvicorn's re-raise)
    stop.set()
    loop.join()


@main.command()
def lsp() -> None:
    """Start the language server on standard input and output."""
    from .lsp.server import main as serve
    serve()


@main.command()
@click.option("--facilities", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--ship-groups", default=5000, show_default=True, type=click.IntRange(1))
@click.option("--products", default=2000, show_default=True, type=click.IntRange(1))
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1))
@click.option("--lsp-lines", default=5000, show_default=True, type=click.IntRange(10),
              help="Size of the file the language-server session works on.")
@click.option("--hostile-size", default=1_000_000, show_default=True, type=click.IntRange(100),
              help="Size in characters of each hostile input given to the checker.")
@click.option("--sql-url", metavar="URL",
              help="Database for the SQL-source figures (default: a temporary SQLite file), "
                   "e.g. postgresql://postgres@127.0.0.1/bench.")
@click.option("--scenario", type=click.Choice(["small", "reference", "large", "shipping",
                                               "stores"]),
              help="Instead: one realistic scenario end to end (load, compile, route, write).")
@click.option("--orders", type=click.IntRange(1), help="With --scenario: orders.")
@click.option("--skus", type=click.IntRange(1), help="With --scenario: SKUs.")
@click.option("--seed", type=int, help="With --scenario: the generator's seed.")
@click.option("--json", "as_json", is_flag=True, help="With --scenario: one JSON object.")
@click.option("--baseline-orders", type=click.IntRange(1), default=100_000, show_default=True,
              help="With --scenario: route the first N orders with the SQL baseline too (it "
                   "manages about 1,000 ship groups/s).")
@click.option("--service", "service_only", is_flag=True,
              help="Only the service's latency and throughput, with a load generator on "
                   "loopback against a live `routing serve`: quotes, then commits.")
@click.option("--db", "service_db", metavar="URL",
              help="With --service: the run store the commits go to (default: a temporary "
                   "SQLite file), e.g. postgresql://postgres@127.0.0.1/bench; it is written.")
@click.option("--scaling", "scaling_plot", type=click.Path(dir_okay=False, path_type=Path),
              metavar="PLOT.svg", help="Measure scenarios growing in orders, facilities and "
                                       "SKUs; print a table and draw the plot here.")
def bench(facilities: int, ship_groups: int, products: int, rounds: int, lsp_lines: int,
          hostile_size: int, sql_url: str | None, scenario: str | None, orders: int | None,
          skus: int | None, seed: int | None, as_json: bool, baseline_orders: int,
          service_only: bool, service_db: str | None, scaling_plot: Path | None) -> None:
    """Measure routing throughput on generated data against a SQL baseline, editor
    latency, hostile inputs, explanations and the SQL source; or, with --scenario, one
    realistic scenario end to end."""
    if scenario == "stores":  # scale-out: a retail group's stores, one process against pools
        from .bench import stores_bench
        click.echo(stores_bench(stores=40, orders=orders or 5000))
        return
    if service_only:
        from .bench import service_latency
        from .ops.store import database_url
        click.echo(service_latency(facilities,
                                   db_url=database_url(service_db) if service_db else None))
        return
    if scaling_plot is not None:
        from .bench import run_scaling, scaling_svg, scaling_table
        reports = run_scaling()
        click.echo(scaling_table(reports))
        write_atomically(scaling_plot, scaling_svg(reports))
        click.echo(f"wrote {scaling_plot}", err=True)
        return
    if scenario is not None:
        from .bench import run_scenario, scenario_text
        report = run_scenario(_scenario(scenario, orders, facilities, skus, seed,
                                        explicit=click.get_current_context()), rounds,
                              baseline_orders=baseline_orders)
        click.echo(json.dumps(report) if as_json else scenario_text(report))
        return
    from .bench import (compile_cost, explanation_costs, lsp_latency, lsp_session,
                        pathological_inputs, run_bench, sql_source_costs)
    click.echo(run_bench(facilities, ship_groups, products, rounds).text())
    click.echo(compile_cost(rounds=rounds))
    click.echo(explanation_costs(facilities, ship_groups, rounds))
    click.echo(sql_source_costs(ship_groups, facilities, sql_url))
    click.echo(lsp_latency(rounds=rounds))
    click.echo(lsp_session(lines=lsp_lines, rounds=rounds))
    click.echo(pathological_inputs(hostile_size))


@main.command()
@click.argument("kind", type=click.Choice(["snapshot", "result", "plan"]))
def schema(kind: str) -> None:
    """Print the JSON Schema of snapshots, results or plans."""
    model = {"snapshot": Snapshot, "result": Result, "plan": Plan}[kind]
    click.echo(json.dumps(model.model_json_schema(), indent=2))


if __name__ == "__main__":
    main()
