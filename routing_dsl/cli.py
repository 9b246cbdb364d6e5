"""The ``routing`` command line: presentation only. Each command parses its options, calls the
application layer (`app`), renders what comes back, and maps the layer's typed errors to exit
codes; nothing else in the package imports this module. The heavy libraries load with the
command that needs them, so that `routing check` and `--help` start quickly.

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
import sys
from collections.abc import Iterable
from pathlib import Path

import click

from . import __version__, app
from .app import ENGINES, EXECUTORS, AppError, InputError, ProblemsError
from .diagnostics import Diagnostic, printable, render_json, render_text, summary
from .errorcodes import Severity


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


def warning(message: str) -> None:
    say(f"warning: {message}", err=True)


def printable_lines(text: str) -> str:
    """Lines of text, each with its control characters escaped (see `printable`)."""
    return "".join(printable(line) + "\n" for line in text.splitlines())


def note(message: str) -> None:
    click.echo(f"note: {printable(message)}", err=True)


def emit(path: Path | None, text: str | bytes | Iterable[bytes]) -> bool:
    """Write ``text`` to ``path``, or to standard output when ``path`` is None or ``-``.
    Returns whether it went to a file."""
    if path is None or str(path) == "-":
        click.echo(text, nl=False)
        return False
    app.write_output(path, text)
    return True


def print_diagnostics(diagnostics: list[Diagnostic], output_format: str) -> None:
    if output_format == "json":
        click.echo(render_json(diagnostics), nl=False)
        return
    for diagnostic in diagnostics:
        say(render_text(diagnostic))
        click.echo()


def report(error: AppError) -> None:
    """An application error as the CLI shows it: diagnostics as `routing check` prints them,
    then each problem as one `error: ...` line, then what was not done."""
    if isinstance(error, ProblemsError):
        print_diagnostics(error.diagnostics, "text")
        for problem in error.problems:
            say(f"error: {printable(problem)}", err=True)
        if error.closing:
            say(printable(error.closing), err=True)
        return
    for line in error.lines:
        say(f"error: {printable(line)}", err=True)


class _Commands(click.Group):
    """Every problem as one line in one style (``error: ...``): usage mistakes, the
    application's errors (each with its exit code), and unexpected failures (exit 3, with
    ROUTING_DEBUG=1 showing the traceback)."""

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
        except AppError as error:
            report(error)
            sys.exit(error.exit_code)
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
    files, diagnostics = app.check_paths(paths)
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
        formatted = app.format_text(sys.stdin.read(), "<stdin>")
        if formatted.text is None:
            print_diagnostics(formatted.diagnostics, "text")
            sys.exit(1)
        click.echo(formatted.text, nl=False)
        return
    failed = False
    changed: list[Path] = []
    for path in app.expand_paths(paths):
        formatted = app.format_path(path)
        if formatted.text is None:
            print_diagnostics(formatted.diagnostics, "text")
            click.echo(f"{formatted.name}: not formatted: it has syntax errors", err=True)
            failed = True
            continue
        if not formatted.changed:
            continue
        changed.append(path)
        if check_only:
            click.echo(f"would reformat {formatted.name}")
        else:
            app.write_output(path, formatted.text)
            click.echo(f"reformatted {formatted.name}")
    if check_only and changed:
        failed = True
    if failed:
        sys.exit(1)


webhook_option = click.option(
    "--webhook", metavar="URL",
    help="Also POST each committed batch here (JSON, Idempotency-Key: the batch id), "
         "retrying on errors; needs the run store.")
sink_option = click.option(
    "--sink", type=click.Choice(list(app.SINKS)),
    help="oms: write each committed batch back into the OMS database the snapshot is read "
         "from (the reference schema, or the [sink] statements of --mapping), refusing "
         "orders changed there since the read; needs the run store.")
alerts_option = click.option(
    "--alerts", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
    help="Alert rules (TOML) evaluated after each batch: a JSON event on stderr, a webhook, "
         "and with --port a metric; needs the run store.")


version_label_option = click.option(
    "--version-label", metavar="LABEL",
    help="The rules' version label when the file declares none (`version \"...\"`); "
         "recorded with every batch and decision beside the plan's hash (default: the git "
         "commit when the file is in a git work tree).")


def log_event(event: dict) -> None:
    """One JSON line on standard error (alert and write-back events of `routing run`)."""
    click.echo(json.dumps(event, default=str), err=True)


mapping_option = click.option(
    "--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With a database source: the TOML file of SQL queries (default: the reference OMS "
         "schema).")


LOOPBACK = ("127.0.0.1", "localhost", "::1")


_WHAT_IF = click.option(
    "--what-if", "what_ifs", multiple=True, metavar="CHANGE",
    help="Change the snapshot in memory first (repeatable): `close F`, `stock P at F = N`, "
         "`limit F N|none`."), click.option(
    "--what-if-file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
    help="What-if changes, one per line (# comments).")


def what_if_options(command):
    """The two options above, on one command."""
    return _WHAT_IF[0](_WHAT_IF[1](command))


@main.command("compile")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the plan here (`-` or nothing: standard output).")
@click.option("--version-label", metavar="LABEL",
              help="Label the plan with this version when the file declares none.")
def compile_command(source: Path, output: Path | None, version_label: str | None) -> None:
    """Compile a .route file to an executable plan (JSON)."""
    plan = app.label_plan(app.load_plan(source), source, version_label)
    if emit(output, plan.to_json()):
        click.echo(f"wrote {output}", err=True)


def counted(n: int, word: str, comma: bool = False, plural: str | None = None) -> str:
    """`1 item`, `2 items` (`1,000 items` with ``comma``; `2 facilities` given ``plural``)."""
    return (f"{n:,}" if comma else str(n)) + " " + (
        word if n == 1 else plural or word + "s")


def shipping_line(figures: dict) -> str:
    """`12 packages, shipping 104.50, 2 split orders, 1 late item` (no cost without rate
    cards)."""
    cost = f", shipping {figures['shipping_cost']:.2f}" if figures["shipping_cost"] else ""
    return (f"{counted(figures['packages'], 'package')}{cost}, "
            f"{counted(figures['split_orders'], 'split order')}, "
            f"{counted(figures['late_items'], 'late item')}")


def summarize(result: dict, stores: dict[str, str] | None = None) -> str:
    """A short human report: per group and routing, what was attempted and routed;
    ``stores`` (order id -> product store) tells apart the unfilled items of two groups'
    routings of the same name."""
    from .runtime.rows import field_values
    lines = []
    by_rule: dict[tuple, int] = {}
    allocations = result["allocations"]
    for key in zip(field_values(allocations, "group"), field_values(allocations, "routing"),
                   field_values(allocations, "rule"), strict=True):
        by_rule[key] = by_rule.get(key, 0) + 1
    # A run's unfilled records come together, in run order, but name only their routing
    # (two groups may each have a "Web orders"): take them run by run, and by the product
    # store of their order when the snapshot tells it.
    unfilled: dict[tuple, dict[str, int]] = {}
    left = result["unfillable"]
    records = ({"routing": r, "order": o, "action": a} for r, o, a in zip(
        field_values(left, "routing"), field_values(left, "order"),
        field_values(left, "action"), strict=True))
    entry = next(records, None)
    for batch in result["batches"]:
        for run in batch["runs"]:
            counts = unfilled.setdefault((batch["group"], run["routing"]), {})
            while entry is not None and entry["routing"] == run["routing"] and (
                    stores is None or stores.get(entry["order"]) in (None,
                                                                     batch["product_store"])):
                counts[entry["action"]] = counts.get(entry["action"], 0) + 1
                entry = next(records, None)
    for batch in result["batches"]:
        lines.append(f"group {batch['group']!r} (store {batch['product_store']})")
        if batch.get("skipped"):
            lines.append(f"  skipped: {batch['skipped']}")
        for run in batch["runs"]:
            lines.append(f"  routing {run['routing']!r}: "
                         f"{counted(run['attempted_items'], 'item')} attempted, "
                         f"{run['brokered_items']} brokered")
            if run.get("packages"):
                lines.append("    " + shipping_line(run))
            if run["error"]:
                lines.append(f"    error: {run['error']}")
            for (group, routing, rule), count in by_rule.items():
                if group == batch["group"] and routing == run["routing"]:
                    lines.append(f"    rule {rule!r}: {count} allocation"
                                 f"{'' if count == 1 else 's'}")
            actions = unfilled.get((batch["group"], run["routing"]))
            if actions:
                described = ", ".join(f"{n} {a.replace('_', ' ')}" for a, n in sorted(actions.items()))
                lines.append(f"    unfilled items: {described}")
    lines.append(f"{counted(len(result['allocations']), 'allocation')}, "
                 f"{counted(len(result['unfillable']), 'unfilled item record')}")
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
              help="Write the result here (`-` or nothing: standard output).")
@click.option("--format", "output_format", type=click.Choice(["json", "csv", "table"]),
              default="json", show_default=True,
              help="json: the result document; csv or table: one row per allocation and per "
                   "unfilled item (order, ship group, item, product, outcome, facility, "
                   "quantity, rule, distance, cost, delivery date), the table sized to the "
                   "terminal.")
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
@click.option("--wait", type=click.FloatRange(0, 3600), default=None, metavar="SECONDS",
              help="With --db: how long a group waits for its partition while another "
                   "process routes it, before it is recorded as skipped  [default: 10].")
@webhook_option
@sink_option
@alerts_option
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="fast: the columnar, compiled engine; reference: the interpreter that "
                   "states the semantics (same results, explanations and optimised "
                   "routings included); auto: fast unless the snapshot is a file under "
                   "256 KB (routed before the fast engine could start).")
@what_if_options
@version_label_option
@click.option("--executor", type=click.Choice(EXECUTORS), default="local",
              show_default=True,
              help="process: route the partitions of the run (stores that share no facility) "
                   "on a pool of processes; ray: as Ray tasks (pip install ray); the result "
                   "is the same bytes.")
@click.option("--jobs", type=click.IntRange(1), default=2, show_default=True,
              help="With --executor process: worker processes.")
@click.option("--address", metavar="HOST:PORT",
              help="With --executor ray: the Ray cluster to use (default: start a local one).")
def run(source: Path, snapshot_path: str, mapping: Path | None, out: Path | None,
        output_format: str, group: str | None, routing: str | None, pretty: bool,
        explain: bool, facilities: tuple[str, ...], db_url: str | None, wait: float | None,
        webhook: str | None, sink: str | None, alerts: Path | None, engine: str,
        what_ifs: tuple[str, ...], what_if_file: Path | None, version_label: str | None,
        executor: str, jobs: int,
        address: str | None) -> None:
    """Run a .route file or a compiled plan against a snapshot."""
    from .result import dump_result, result_chunks
    progress = Progress(sys.stderr)
    try:
        progress.phase("loading")
        job = app.prepare_run(app.RunRequest(
            source=source, snapshot=snapshot_path, mapping=mapping, group=group,
            routing=routing, explain=explain, explain_facilities=frozenset(facilities),
            engine=engine, what_ifs=what_ifs, what_if_file=what_if_file,
            version_label=version_label, executor=executor, jobs=jobs, address=address,
            db_url=db_url, webhook=webhook, sink=sink, alerts=alerts, wait=wait),
            warn=progress.quiet(warning), note=progress.quiet(note),
            log=progress.quiet(log_event))
        # A one-shot process: the snapshot lives to the end, so the cyclic GC need not walk
        # its millions of objects again and again while routing allocates (about 9% of
        # routing time).
        gc.collect()
        gc.freeze()
        progress.phase("routing", total=job.steps)
        outcome = job.run(progress=progress.advance if progress.enabled else None)
        progress.phase("writing")
        result = outcome.result
        if output_format == "json":
            # to a file: written piece by piece, the rows straight from their columns
            text = result_chunks(result, pretty) if out is not None and str(out) != "-" \
                else dump_result(result, pretty)
        else:
            rows = app.result_rows(result)
            text = csv_text(app.RESULT_COLUMNS, rows) if output_format == "csv" else \
                table_text(app.RESULT_COLUMNS, rows, width=None if out not in (None, Path("-"))
                           else terminal_width())
        written = emit(out, text)
    finally:
        progress.close()
    stores = {o.id: o.product_store for o in job.snapshot.orders}
    if written:
        say(summarize(result, stores))
        click.echo(f"wrote {out}")
    else:
        say(summarize(result, stores), err=True)
    if outcome.store is not None:
        count = len(outcome.batch_ids)
        click.echo(f"recorded {counted(count, 'batch', plural='batches')} in "
                   f"{app.display_url(outcome.store.url)}", err=True)
    if sink is not None:
        written = [w for w in outcome.writeback if w.error is None]
        orders = sum(len(w.applied) for w in written)
        conflicts = sum(len(w.conflicts) for w in written)
        click.echo(f"wrote {orders} order{'' if orders == 1 else 's'} back into the OMS"
                   + (f"; {conflicts} changed there since the snapshot was read, left for the "
                      "next round" if conflicts else ""), err=True)
        for failed in (w for w in outcome.writeback if w.error is not None):
            warning(f"batch {failed.batch_id}: not written back into the OMS: {failed.error}")
    outcome.raise_for_failure()


class Progress:
    """What a long run is doing, on standard error: the phase (loading, routing, writing) and,
    while routing, how far it is. Drawn only on a terminal, and only once the run has taken
    longer than DELAY seconds (ROUTING_PROGRESS_AFTER sets it; `off`: never), so short runs
    and pipes print nothing; warnings said meanwhile clear the line first."""

    DELAY = 2.0

    def __init__(self, stream) -> None:
        import os
        import threading
        import time
        self.stream = stream
        after = os.environ.get("ROUTING_PROGRESS_AFTER", "").strip()
        try:
            self.delay = float(after) if after and after != "off" else self.DELAY
        except ValueError:
            self.delay = self.DELAY
        self.enabled = hasattr(stream, "isatty") and stream.isatty() and after != "off"
        self.started = time.monotonic()
        self.name, self.total, self.done = "", None, 0
        self.drawn = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if self.enabled:
            self._thread = threading.Thread(target=self._draw_loop, daemon=True,
                                            name="progress")
            self._thread.start()

    def phase(self, name: str, total: int | None = None) -> None:
        with self._lock:
            self.name, self.total, self.done = name, total, 0

    def advance(self, steps: int = 1) -> None:
        self.done += steps  # from the routing thread; read, roughly, by the drawing one

    def quiet(self, say_it):
        """``say_it``, clearing the progress line first."""
        def said(message: str) -> None:
            self._clear()
            say_it(message)
        return said

    def _line(self) -> str:
        import time
        seconds = time.monotonic() - self.started
        name = self.name
        if self.total:
            share = min(1.0, self.done / self.total)
            if share >= 1.0 and name == "routing":
                name = "recording"
            filled = int(share * 20)
            return (f"{name:<9} [{'#' * filled}{'.' * (20 - filled)}] {share:4.0%}  "
                    f"{seconds:5.1f} s")
        return f"{name:<9} {seconds:5.1f} s"

    def _draw_loop(self) -> None:
        import time
        while not self._stop.wait(0.2):
            if time.monotonic() - self.started < self.delay:
                continue
            with self._lock:
                self.stream.write("\r\x1b[K" + self._line())
                self.stream.flush()
                self.drawn = True

    def _clear(self) -> None:
        with self._lock:
            if self.drawn:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self.drawn = False

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._clear()


def terminal_width() -> int | None:
    """Columns of the terminal standard output is, or None when it is not one."""
    import shutil
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size((100, 24)).columns


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return _plain(value)
    return printable(str(value))


def csv_text(columns, rows: list[dict]) -> str:
    import csv
    import io
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row[c] is None else (_plain(row[c]) if isinstance(row[c], float)
                                                     else row[c]) for c in columns])
    return buffer.getvalue()


def table_text(columns, rows: list[dict], width: int | None = None,
               numeric=("quantity", "cost", "attempted", "brokered", "allocations",
                        "unfilled")) -> str:
    """Rows as aligned columns under a header; with ``width``, the widest columns are cut
    (ending in an ellipsis) until a line fits in it."""
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    header = [c.replace("_", " ") for c in columns]
    widths = [max([len(header[k])] + [len(r[k]) for r in cells]) for k in range(len(columns))]
    if width is not None:
        floor = [min(w, 4) for w in widths]  # headers are cut too, if need be
        while sum(widths) + 2 * (len(widths) - 1) > width:
            widest = max(range(len(widths)), key=lambda k: widths[k] - floor[k])
            if widths[widest] <= floor[widest]:
                break
            widths[widest] -= 1

    def fit(text: str, k: int) -> str:
        if len(text) > widths[k]:
            text = text[:widths[k] - 1] + "…"
        return text.rjust(widths[k]) if columns[k] in numeric else text.ljust(widths[k])
    lines = ["  ".join(fit(h, k) for k, h in enumerate(header)).rstrip()]
    lines += ["  ".join(fit(cell, k) for k, cell in enumerate(r)).rstrip() for r in cells]
    return "\n".join(lines) + "\n"


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
    explained = app.explain_order(source, snapshot_path, order_id, facility=facility,
                                  mapping=mapping)
    click.echo(explain_text(explained.result, order_id, facility, explained.not_routed))


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
        if "optimization" in unit:
            lines += _optimization_lines(unit["optimization"])
    for entry in result["allocations"]:
        if entry["order"] == order_id:
            lines.append(f"  allocated: item {entry['item']} x{entry['quantity']} -> "
                         f"{entry['facility']} (rule {entry['rule']!r})")
    for entry in result["unfillable"]:
        if entry["order"] == order_id:
            lines.append(f"  unfilled: item {entry['item']} x{entry['quantity']}: "
                         f"{entry['action'].replace('_', ' ')} (queue {entry['queue']})")
    return "\n".join(printable(line) for line in lines)


def _optimization_lines(found: dict) -> list[str]:
    """The rules' choice for a unit beside the optimum's, with their costs."""
    same = found["rules"] == found["optimized"]
    lines = [f"    optimisation ({found['mode']}): the rules' choice costs "
             f"{found['rules_cost']:.2f}, the optimum's {found['optimized_cost']:.2f}"
             + (" (the same packages)" if same else "")]
    if same:
        return lines
    for side, label in (("rules", "rules"), ("optimized", "optimum")):
        if not found[side]:
            lines.append(f"      {label}: nothing shipped")
        for package in found[side]:
            items = ", ".join(f"{i['item']} x{i['quantity']}" for i in package["items"])
            cost = "unpriced" if package["shipping_cost"] is None else \
                f"{package['shipping_cost']:.2f}"
            lines.append(f"      {label}: {package['facility']} (rule {package['rule']!r}) "
                         f"ships {items} for {cost}, arriving {package['delivery_date']}")
    return lines


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
    from .authoring.ruletests import Coverage, junit
    files = app.find_rule_tests(paths)
    coverage = Coverage() if show_coverage or fail_under is not None else None
    results = app.run_rule_tests(files, coverage)
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
        app.write_output(junit_path, junit(results))
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
    text, notes = app.import_hotwax(export)
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
    documents = app.export_hotwax(source, group_name)
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
    findings = app.analyze_paths(paths)
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
    found = app.partition_run(source, snapshot_path, mapping)
    if output_format == "json":
        click.echo(json.dumps([p.to_json() for p in found], indent=2))
        return
    for number, part in enumerate(found, start=1):
        say(printable(f"partition {number}: stores {', '.join(part.stores)}; groups "
                      f"{', '.join(part.groups)}; "
                      f"{counted(len(part.facilities), 'facility', plural='facilities')}, "
                      f"{counted(part.orders, 'order')}"))


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
    from .authoring.diff import render
    try:
        result = app.diff_versions(old, new, snapshot_path, mapping=mapping, engine=engine,
                                   what_ifs=what_ifs, what_if_file=what_if_file)
    except AppError as error:  # diff's convention (as terraform plan's): 1 for any error
        error.exit_code = 1
        raise
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
    written = app.init_project(directory)
    where = "" if str(directory) == "." else f"cd {directory} && "
    click.echo(f"wrote {', '.join(written)} in {directory}\n"
               f"next: {where}routing check routes.route && "
               "routing run routes.route --snapshot snapshot.json --out result.json")


def open_store(db_url: str | None):
    """The run store at ``db_url`` (or ROUTING_DB, or ./routing.db), migrated and with stale
    batches closed (said as a warning)."""
    return app.open_store(db_url, warning, note)


def _scenario(name: str, orders, facilities, skus, seed, explicit=None):
    """A named scenario with the sizes given on the command line."""
    from dataclasses import replace

    from .bench.scenarios import SCENARIOS
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
    from .bench.scenarios import generate
    chosen = _scenario(scenario, orders, None, skus, seed)
    if facilities is not None:
        from dataclasses import replace
        chosen = replace(chosen, facilities=facilities)
    document = generate(chosen)
    import orjson
    app.write_output(out, orjson.dumps(document) + b"\n")
    click.echo(f"wrote {out}: {counted(len(document['orders']), 'order', True)}, "
               f"{counted(len(document['facilities']), 'facility', True, 'facilities')}, "
               f"{counted(len(document['inventory']), 'inventory row', True)}")


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
    counts, where = app.load_oms(snapshot_path, db_url)
    total = sum(counts.values())
    click.echo(f"loaded {total} rows into {where} "
               f"({counted(counts['oms_order'], 'order')}, "
               f"{counted(counts['oms_inventory'], 'inventory row')}); "
               f"read it with --snapshot {where}")


@oms.command("schema")
@click.option("--dialect", type=click.Choice(["postgresql", "sqlite"]), default="postgresql",
              show_default=True)
def oms_schema(dialect: str) -> None:
    """Print the reference OMS schema as CREATE TABLE statements."""
    click.echo(app.oms_schema(dialect), nl=False)


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


@main.command()
@click.option("--db", "db_url", metavar="URL", help="The run store (default ./routing.db).")
@click.option("--order", "order_id", required=True, help="The order.")
@click.option("--item", required=True, help="The order line (item id) refused.")
@click.option("--facility", required=True, help="The facility that refuses it.")
@click.option("--reason", help="Why (e.g. NOT_IN_STOCK); shown in explanations.")
@click.option("--ship-group", help="The ship group as the allocation names it.")
@click.option("--at", "at", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]),
              help="When, with a UTC offset (default: now).")
@click.option("--key", required=True,
              help="Idempotency key: the same key again changes nothing.")
@click.option("--reroute", "reroute", multiple=True, metavar="RULES",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Route the item again at once with these rules (needs --source).")
@click.option("--source", "source", metavar="SNAPSHOT",
              help="With --reroute: the snapshot file, folder or database URL.")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With a database --source: the mapping of its tables.")
@click.option("--queue", help="With --reroute: the queue to route it from, when the OMS "
                              "already shows it at the facility.")
@click.option("--explain", is_flag=True, help="With --reroute: explain the new decision.")
def reject(db_url, order_id, item, facility, reason, ship_group, at, key, reroute, source,
           mapping, queue, explain) -> None:
    """Record that a facility rejected a committed line: its reservation is released, and
    every later routing carries the rejection (rules avoid the rejecter). Prints the answer
    as JSON: the rejection, and with --reroute the new decision."""
    if at is not None and at.tzinfo is None:
        raise click.BadParameter("needs a UTC offset", param_hint="--at")
    answer = app.reject_line(db_url, order=order_id, item=item, facility=facility, key=key,
                             reason=reason, ship_group=ship_group, at=at,
                             reroute=list(reroute) or None, source=source, mapping=mapping,
                             queue=queue, explain=explain)
    click.echo(json.dumps(answer, indent=2))


@main.group()
def db() -> None:
    """The run store's database."""


@db.command("upgrade")
@click.option("--db", "db_url", metavar="URL", help="SQLite file or URL, or postgresql://...")
def db_upgrade(db_url: str | None) -> None:
    """Create the run store's tables, or upgrade them to this version."""
    where, revision = app.upgrade_store(db_url)
    click.echo(f"{where}: run store at revision {revision}")


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


@main.command("batches")
@click.option("--db", "db_url", metavar="URL", help="SQLite file or URL, or postgresql://...")
@click.option("--group", help="Only this group.")
@click.option("--status", type=click.Choice(list(app.BATCH_STATUSES)), help="Only this status.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Only batches started at or after this date (UTC).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True,
              help="At most this many, newest first.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def batches_command(db_url, group, status, since, limit, output_format) -> None:
    """The batches, newest first: status, trigger, counts and the version of the rules that
    ran (its label and the plan's short hash)."""
    rows = app.list_batches(db_url, group=group, status=status, since=since, limit=limit,
                            warn=warning, note=note)
    if output_format == "json":
        click.echo(json.dumps([{
            "id": b.id, "group": b.group, "product_store": b.product_store,
            "trigger": b.trigger, "status": b.status, "started": b.started.isoformat(),
            "finished": b.finished.isoformat() if b.finished else None,
            "attempted_items": b.attempted_items, "brokered_items": b.brokered_items,
            "allocations": b.allocations, "unfillable": b.unfillable,
            "version": b.version, "version_label": b.version_label, "plan_hash": b.plan_hash,
            "error": b.error} for b in rows], indent=2))
        return
    columns = ("started", "status", "trigger", "group", "attempted", "brokered",
               "allocations", "unfilled", "version", "batch")
    click.echo(table_text(columns, [{
        "started": b.started.strftime("%Y-%m-%d %H:%M:%S"), "status": b.status,
        "trigger": b.trigger, "group": b.group, "attempted": b.attempted_items,
        "brokered": b.brokered_items, "allocations": b.allocations, "unfilled": b.unfillable,
        "version": b.version, "batch": b.id} for b in rows], terminal_width()),
        nl=False)
    for b in rows:
        if b.error:
            say(printable(f"{b.id}: {b.error}"), err=True)
    click.echo(f"{len(rows)} batch{'' if len(rows) == 1 else 'es'}", err=True)


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
@sink_option
@alerts_option
@click.option("--port", type=click.IntRange(1, 65535),
              help="Also answer HTTP on this port: decisions, runs, batches, history, "
                   "health and metrics (see docs/service.md).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="With --port. Any address but loopback needs ROUTING_TOKEN, a bearer token "
                   "every write must carry.")
@click.option("--once", is_flag=True, help="Run every due group once, then exit.")
@click.option("--executor", type=click.Choice(EXECUTORS), default="local",
              show_default=True,
              help="Run the due groups of a round together, their partitions (stores that "
                   "share no facility) on a process pool or Ray.")
@click.option("--jobs", type=click.IntRange(1), default=2, show_default=True,
              help="With --executor process: worker processes.")
@click.option("--address", metavar="HOST:PORT", help="With --executor ray: the Ray cluster.")
@click.option("--poll-seconds", default=30.0, show_default=True, type=click.FloatRange(0.1),
              help="Look for due groups at least this often (and retry a failed round at "
                   "least this often, backing off from 1 s).")
@click.option("--max-lines", type=click.IntRange(1), default=100, show_default=True,
              help="With --port: most lines (items) one decision may hold; more is a 422.")
@click.option("--max-body-bytes", type=click.IntRange(1024), default=1_048_576,
              show_default=True, help="With --port: largest request body; larger is a 413.")
@click.option("--max-connections", type=click.IntRange(1), default=1000, show_default=True,
              help="With --port: most open connections; a new one beyond closes the one idle "
                   "the longest (or gets a 503 when none is idle).")
@click.option("--header-timeout", type=click.FloatRange(0.1), default=10.0, show_default=True,
              help="With --port: seconds for a request's headers to arrive.")
@click.option("--body-timeout", type=click.FloatRange(0.1), default=30.0, show_default=True,
              help="With --port: seconds for a request's body to arrive after its headers.")
@click.option("--keep-alive-timeout", type=click.FloatRange(0.1), default=5.0,
              show_default=True, help="With --port: seconds an idle connection stays open.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="With --port: processes answering the port (one core each), sharing the "
                   "run store, whose ledger and locks keep their decisions exact; the first "
                   "also runs the schedule, and a reload in one is done in all.")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="With --port: the engine of decisions; auto takes the fast one unless the "
                   "request is one the reference engine decides faster (docs/service.md, "
                   "\"Speed\").")
@version_label_option
@click.option("--shadow", "shadows", multiple=True, metavar="CANDIDATE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Also route every batch and committed decision with this candidate "
                   "version (repeatable: its files), on the same state, applying nothing; "
                   "both versions' figures go to the run store (`routing shadow`).")
@click.option("--canary", "canaries", multiple=True, metavar="CANDIDATE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Route a share of the orders (--canary-share) with this candidate version "
                   "for real (repeatable: its files), the rest with production, back to "
                   "production alone when a guard trips (`routing rollout status`).")
@click.option("--canary-share", metavar="SHARE",
              help="With --canary: the share of orders it routes, e.g. 10% (chosen by a hash "
                   "of the order id: an order always goes the same way).")
@click.option("--guards", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="With --canary: its guards (TOML: unfilled_rate, cost_per_unit, "
                   "routing_errors over a window of units; default: no routing error).")
def serve(sources: tuple[Path, ...], snapshot_path: str, mapping: Path | None,
          db_url: str | None, webhook: str | None, sink: str | None, alerts: Path | None,
          port: int | None, host: str, once: bool,
          executor: str, jobs: int, address: str | None, poll_seconds: float, max_lines: int,
          max_body_bytes: int, max_connections: int, header_timeout: float,
          body_timeout: float, keep_alive_timeout: float, workers: int, engine: str,
          version_label: str | None, shadows: tuple[Path, ...], canaries: tuple[Path, ...],
          canary_share: str | None, guards: Path | None) -> None:
    """Run each group of each file on its schedule, recording every batch (stop with SIGTERM
    or Ctrl-C).

    A group runs at its cron slots in its schedule's time zone (UTC when it names none); a
    slot missed while the scheduler was down runs once; paused groups never run. Every round
    reads the source afresh; a round that fails (a bad source, the database down) is logged
    and retried with backoff, and the previous data keeps serving. Each event is one JSON
    line on standard error."""
    import signal
    import threading
    from datetime import UTC, datetime

    from .ops.scheduler import Scheduler, Supervision, describe
    from .ops.scheduler import serve as serve_all
    token = os.environ.get("ROUTING_TOKEN") or None
    if port is not None and host not in LOOPBACK and token is None:
        raise InputError(f"--host {host}: serving beyond this machine needs a bearer token; "
                         "set ROUTING_TOKEN (every write must then carry it)")
    if workers > 1 and (port is None or once):
        raise InputError("--workers N answers --port from N processes: it needs --port, "
                         "and not --once")
    if workers > 1 and not hasattr(os, "fork"):
        raise InputError("--workers needs a platform with fork(); run one process per port")
    plans = [(app.label_plan(app.load_plan(path), path, version_label, git=True), path)
             for path in sources]
    texts = [app.source_text(path) for _, path in plans]
    if once:  # a cron job: a broken source is an error, now
        app.open_snapshot(snapshot_path, mapping)
    if mapping is not None and "://" not in snapshot_path:
        raise InputError("--mapping goes with a database URL as the snapshot")
    # afresh at each call; raises, never exits: serve logs it and retries
    source = app.snapshot_source(snapshot_path, mapping)
    store = open_store(db_url)

    def serve_one(index: int = 0, peers=None, listen=None) -> None:
        """One serving process: worker ``index`` of ``--workers`` (only worker 0 runs the
        schedule; ``peers`` relays reloads between workers), accepting on the socket
        ``listen()`` opens, once loaded (until then, the kernel gives new connections to
        the other workers)."""
        hook = app.make_webhook(webhook)
        supervision = Supervision()
        schedulers = [Scheduler(store, plan, source, webhook=hook, source_text=text,
                                supervision=supervision)
                      for (plan, _), text in zip(plans, texts, strict=True)]
        log = schedulers[0].log
        after = app.make_after(sink=sink, source=snapshot_path, mapping=mapping,
                               alerts=alerts, log=log)
        rollout = app.make_rollout(store, [plan for plan, _ in plans], shadow=shadows,
                                   canary=canaries, share=canary_share, guards=guards,
                                   webhook=hook, log=log)
        for scheduler in schedulers:
            scheduler.rollout = rollout
        for scheduler in schedulers:
            scheduler.after = after
        if executor != "local":
            for scheduler in schedulers:
                scheduler.router = app.router(executor, jobs, address)
        if once:
            from .ops.scheduler import run_due_once
            try:
                run_due_once(schedulers)  # logs what ran, or that nothing was due
            except Exception as error:  # noqa: BLE001 - said plainly, exit code 1
                raise click.ClickException(describe(error)) from None
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        if port is None:
            serve_all(schedulers, stop, poll_seconds)
            return
        from .service import server
        from .service.app import create_app
        from .service.state import LiveState
        state = LiveState([plan for plan, _ in plans], source, texts, store=store,
                          rollout=rollout, engine=engine)
        if rollout is not None:
            rollout.start_polling()  # promote, abort, other processes' trips, within a second
        prepare = None
        try:
            state.refresh()
        except Exception as error:  # noqa: BLE001 - e.g. a half-written file: serve, retry
            log({"at": datetime.now(UTC).isoformat(), "event": "round_failed",
                 "component": "live state", "error": describe(error), "failures": 1,
                 "retry_in": 1.0})
            supervision.failed("live state", datetime.now(UTC), describe(error), 1.0)
            prepare = state.refresh
        for scheduler in schedulers:  # scheduled batches and decisions share one live state
            scheduler.live = state
        if index == 0:
            loop = threading.Thread(target=serve_all, args=(schedulers, stop, poll_seconds),
                                    kwargs={"prepare": prepare}, name="scheduler",
                                    daemon=True)
        else:  # the schedule is worker 0's: this one only loads what the others load
            loop = threading.Thread(target=follow_loads, args=(state, supervision, stop,
                                                               prepare, log),
                                    name="loader", daemon=True)
        if peers is not None:
            state.on_refresh = peers.announce
            peers.follow(lambda failures: reload(state, supervision, log, failures),
                         stop)
        loop.start()
        limits = server.Limits(max_body_bytes=max_body_bytes, max_lines=max_lines,
                               max_connections=max_connections, header_timeout=header_timeout,
                               body_timeout=body_timeout, keep_alive_timeout=keep_alive_timeout)
        connections = server.ConnectionStats()
        application = create_app(state, store, token, limits=limits, supervision=supervision,
                                 connections=connections, after=after,
                                 worker=index if peers is not None else None)
        # returns on SIGTERM/SIGINT (our handlers above absorb uvicorn's re-raise)
        server.run(application, host=host, port=port, limits=limits, stats=connections,
                   log=log, sock=listen() if listen is not None else None, stop=stop)
        stop.set()
        loop.join()
        if rollout is not None:
            rollout.stop()  # the decisions answered are shadowed before the process ends

    if workers > 1:
        from .service import workers as pool
        try:
            pool.bind(host, port).close()  # a port another program holds: said now
        except OSError as error:
            raise InputError(f"--port {port}: {error.strerror or error}") from None
        store.dispose()  # no connection crosses the fork: each worker opens its own

        def worker(index: int, peers) -> int:
            serve_one(index, peers, lambda: pool.bind(host, port))
            return 0
        sys.exit(pool.supervise(workers, worker, log_event))
    serve_one()


def reload(state, supervision, log, failures: int) -> float | None:
    """Reread the source into ``state`` because another worker did (`serve --workers`).
    None when it worked; else the seconds before trying again (the failure is reported as
    the live state's, and the state loaded before keeps serving)."""
    from datetime import UTC, datetime

    from .ops.scheduler import backoff, describe
    try:
        state.refresh(announce=False)
    except Exception as error:  # noqa: BLE001 - tried again
        wait = backoff(failures + 1, 30.0)
        log({"at": datetime.now(UTC).isoformat(), "event": "round_failed",
             "component": "live state", "error": describe(error), "failures": failures + 1,
             "retry_in": wait})
        supervision.failed("live state", datetime.now(UTC), describe(error), wait)
        return wait
    supervision.clear("live state")
    return None


def follow_loads(state, supervision, stop, prepare, log) -> None:
    """A worker without the schedule: its first load, when it failed at start, is retried
    with backoff until it succeeds; later loads come from the other workers (`reload`)."""
    from datetime import UTC, datetime

    from .ops.scheduler import backoff, describe
    failures = 0
    while prepare is not None and not stop.is_set():
        try:
            prepare()
        except Exception as error:  # noqa: BLE001 - retried
            failures += 1
            wait = backoff(failures, 30.0)
            log({"at": datetime.now(UTC).isoformat(), "event": "round_failed",
                 "component": "live state", "error": describe(error), "failures": failures,
                 "retry_in": wait})
            supervision.failed("live state", datetime.now(UTC), describe(error), wait)
            stop.wait(wait)
        else:
            prepare = None
            supervision.clear("live state")
            log({"at": datetime.now(UTC).isoformat(), "event": "loaded"})
    stop.wait()


@main.command()
@click.option("--db", "db_url", metavar="URL", help="SQLite file or URL, or postgresql://...")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Only batches started at or after this date (UTC).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True,
              help="At most this many batches, newest first.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def shadow(db_url, since, limit, output_format) -> None:
    """What a shadow candidate would have done: per batch and in total, production's and the
    candidate's figures side by side, and the units they decide differently."""
    report = app.shadow_report(db_url, since=since, limit=limit, warn=warning, note=note)
    if output_format == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    click.echo(printable_lines(report.text()), nl=False)


@main.group()
def rollout() -> None:
    """Where a canary (or a shadow) stands; promote its candidate or abort it."""


@rollout.command("status")
@click.option("--db", "db_url", metavar="URL", help="SQLite file or URL, or postgresql://...")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def rollout_status(db_url, output_format) -> None:
    """The canary in progress (else the last one) with its guards and both versions' recent
    figures, and the shadows in progress."""
    found = app.rollout_status(db_url, warn=warning, note=note)
    if output_format == "json":
        click.echo(json.dumps([s.to_json() for s in found], indent=2))
        return
    if not found:
        click.echo("no rollout: production routes alone")
        return
    click.echo(printable_lines("\n".join(s.text() for s in found)), nl=False)


@rollout.command("promote")
@click.option("--db", "db_url", metavar="URL", help="SQLite file or URL, or postgresql://...")
def rollout_promote(db_url) -> None:
    """Make the canary's candidate production: every process serving it routes all orders
    with it from its next batch (and after a restart); then deploy it as production."""
    ended = app.end_canary(db_url, "promote", warn=warning, note=note)
    click.echo(printable(f"promoted {ended.candidate_label}: it routes every order now "
                         f"(production was {ended.production_label})"))


@rollout.command("abort")
@click.option("--db", "db_url", metavar="URL", help="SQLite file or URL, or postgresql://...")
@click.option("--reason", metavar="TEXT", help="Why, recorded with the canary.")
def rollout_abort(db_url, reason) -> None:
    """End the canary: production routes every order again, from its next batch."""
    ended = app.end_canary(db_url, "abort", reason, warn=warning, note=note)
    click.echo(printable(f"aborted the canary of {ended.candidate_label}: "
                         f"{ended.production_label} routes every order"))


@main.command()
def warm() -> None:
    """Compile the fast engine now, once (numba caches it), so that no later run waits for
    it, and the language server's protocol types; `make venv`, `make demo` and `make test`
    do this. About a second when it is done."""
    done = app.warm_engine()
    click.echo(f"fast engine ready in {done['seconds']:.1f} s ({done['compiled']} kernel "
               f"function{'' if done['compiled'] == 1 else 's'} compiled)", err=True)


@main.command()
def lsp() -> None:
    """Start the language server on standard input and output."""
    from .lsp.typecache import load_types
    load_types()  # before the server imports them: see lsp/typecache.py
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
@click.option("--fuzz-inputs", default=300, show_default=True, type=click.IntRange(1),
              help="Hostile inputs generated per surface from its schema (the language "
                   "server, .routetest files, what-ifs, HotWax exports, plans, results, the "
                   "HTTP service), for the hostile-input section.")
@click.option("--sql-url", metavar="URL",
              help="Database for the SQL-source figures (default: a temporary SQLite file), "
                   "e.g. postgresql://postgres@127.0.0.1/bench.")
@click.option("--scenario", type=click.Choice(["small", "reference", "large", "shipping",
                                               "stores", "optimize"]),
              help="Instead: one realistic scenario end to end (load, compile, route, write); "
                   "`optimize`: the reference rules against their optimum (issue 24).")
@click.option("--plot", "sizes_plot", type=click.Path(dir_okay=False, path_type=Path),
              metavar="PLOT.svg", help="With --scenario optimize --sizes: draw the solve time "
                                       "and the saving against the batch size here.")
@click.option("--sizes", metavar="N,N,...",
              help="With --scenario optimize: the table of solve time and cost at these batch "
                   "sizes (orders), e.g. 500,1000,2000,5000,10000,20000.")
@click.option("--engine", "scenario_engine", type=click.Choice(["auto", "fast", "reference"]),
              default="auto", show_default=True,
              help="With --scenario optimize: the engine that routes (the same figures).")
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
@click.option("--workers", "service_workers", default="1", show_default=True, metavar="N[,N]",
              help="With --service: measure `routing serve --workers N` for each N given "
                   "(e.g. 1,2), in one run.")
@click.option("--scaling", "scaling_plot", type=click.Path(dir_okay=False, path_type=Path),
              metavar="PLOT.svg", help="Measure scenarios growing in orders, facilities and "
                                       "SKUs; print a table and draw the plot here.")
@click.option("--console", "console_only", is_flag=True,
              help="Only the console: every page timed against a SQLite run store of "
                   "--console-batches batches and --console-history history rows (target "
                   "200 ms a page), and what its indexes add to recording a batch.")
@click.option("--console-batches", type=click.IntRange(10), default=100_000, show_default=True)
@click.option("--console-history", type=click.IntRange(10), default=1_000_000,
              show_default=True)
@click.option("--shadow", "shadow_only", is_flag=True,
              help="Only what a shadow candidate costs: a recorded batch, and committed "
                   "decisions, with and without one (ratios).")
@click.option("--decisions", type=click.IntRange(1), default=300, show_default=True,
              help="With --shadow: committed decisions timed each way.")
def bench(facilities: int, ship_groups: int, products: int, rounds: int, lsp_lines: int,
          hostile_size: int, fuzz_inputs: int, sql_url: str | None, scenario: str | None,
          orders: int | None,
          skus: int | None, seed: int | None, as_json: bool, baseline_orders: int,
          service_only: bool, service_db: str | None, service_workers: str,
          scaling_plot: Path | None, console_only: bool, console_batches: int,
          console_history: int, shadow_only: bool, decisions: int, sizes: str | None,
          sizes_plot: Path | None, scenario_engine: str) -> None:
    """Measure routing throughput on generated data against a SQL baseline, editor
    latency, hostile inputs, explanations and the SQL source; or, with --scenario, one
    realistic scenario end to end; or the service, or the console, or what shadowing
    costs."""
    if shadow_only:
        from .bench.rollout import shadow_cost
        click.echo(shadow_cost(facilities, ship_groups, products, rounds, decisions).text())
        return
    if console_only:
        from .bench.console import console_bench
        click.echo(console_bench(console_batches, console_history).text())
        return
    if scenario == "optimize":
        from .bench import optimize as bench_optimize
        if sizes:
            try:
                counts = [int(n) for n in sizes.split(",") if n.strip()]
            except ValueError:
                raise click.BadParameter("a comma-separated list of order counts",
                                         param_hint="--sizes") from None
            if not counts or min(counts) < 1:
                raise click.BadParameter("order counts are positive", param_hint="--sizes")
            reports = bench_optimize.run_sizes(counts, engine=scenario_engine)
            click.echo(json.dumps(reports) if as_json else bench_optimize.sizes_table(reports))
            if sizes_plot is not None:
                sizes_plot.write_text(bench_optimize.sizes_svg(reports), encoding="utf-8")
            return
        base = bench_optimize.OPTIMIZE_SCENARIO
        chosen = bench_optimize.Scenario(
            orders=orders or base.orders, facilities=base.facilities, skus=skus or base.skus,
            seed=base.seed if seed is None else seed, shipping=True)
        report = bench_optimize.run_optimize(chosen, engine=scenario_engine)
        click.echo(json.dumps(report) if as_json else bench_optimize.optimize_text(report))
        return
    if scenario == "stores":  # scale-out: a retail group's stores, one process against pools
        from .bench.suite import stores_bench
        click.echo(stores_bench(stores=40, orders=orders or 5000))
        return
    if service_only:
        from .bench.suite import service_latency
        from .ops.store import database_url
        try:
            counts = tuple(int(n) for n in service_workers.split(","))
        except ValueError:
            counts = ()
        if not counts or min(counts) < 1:
            raise click.BadParameter("worker counts, e.g. 1,2", param_hint="--workers")
        click.echo(service_latency(facilities,
                                   db_url=database_url(service_db) if service_db else None,
                                   workers=counts))
        from .bench.engines import decision_costs_text
        click.echo(decision_costs_text(facilities))  # what `--engine auto` chooses by
        return
    if scaling_plot is not None:
        from .bench.suite import run_scaling, scaling_svg, scaling_table
        reports = run_scaling()
        click.echo(scaling_table(reports))
        app.write_output(scaling_plot, scaling_svg(reports))
        click.echo(f"wrote {scaling_plot}", err=True)
        return
    if scenario is not None:
        from .bench.suite import run_scenario, scenario_text
        report = run_scenario(_scenario(scenario, orders, facilities, skus, seed,
                                        explicit=click.get_current_context()), rounds,
                              baseline_orders=baseline_orders)
        click.echo(json.dumps(report) if as_json else scenario_text(report))
        return
    from .bench.suite import (compile_cost, explanation_costs, hostile_campaigns, lsp_latency,
                              lsp_session, pathological_inputs, run_bench, sql_source_costs,
                              startup_costs)
    click.echo(run_bench(facilities, ship_groups, products, rounds).text())
    click.echo(compile_cost(rounds=rounds))
    click.echo(explanation_costs(facilities, ship_groups, rounds))
    click.echo(sql_source_costs(ship_groups, facilities, sql_url))
    click.echo(lsp_latency(rounds=rounds))
    click.echo(lsp_session(lines=lsp_lines, rounds=rounds))
    click.echo(pathological_inputs(hostile_size))
    click.echo(hostile_campaigns(fuzz_inputs))
    from .bench.rollout import shadow_cost
    click.echo(shadow_cost(facilities, ship_groups, products, rounds,
                           min(decisions, ship_groups)).text())
    click.echo(startup_costs(rounds=rounds))


@main.command()
@click.argument("kind", type=click.Choice(["snapshot", "result", "plan"]))
def schema(kind: str) -> None:
    """Print the JSON Schema of snapshots, results or plans."""
    click.echo(json.dumps(app.json_schema(kind), indent=2))


if __name__ == "__main__":
    main()
