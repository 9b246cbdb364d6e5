"""The ``routing`` command line.

Exit codes: 0 success; 1 the input has problems (diagnostics, unformatted files, a refused
plan); 2 usage or I/O errors (missing or unreadable files, bad arguments). Problems are printed,
never raised as tracebacks, and no output file is left half-written.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from . import __version__
from .checker import Workspace
from .diagnostics import Diagnostic, render_json, render_text, sort_diagnostics, summary
from .errorcodes import Severity
from .formatter import format_module
from .loader import Loader, SourceError, display_name


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
            files.append(path)
        else:
            raise InputError(f"{raw}: no such file or directory")
    return files


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write ``path`` completely or not at all."""
    mode = "wb" if isinstance(data, bytes) else "w"
    directory = path.resolve().parent
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def print_diagnostics(diagnostics: list[Diagnostic], output_format: str) -> None:
    if output_format == "json":
        click.echo(render_json(diagnostics), nl=False)
        return
    for diagnostic in diagnostics:
        click.echo(render_text(diagnostic))
        click.echo()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="routing")
def main() -> None:
    """Order routing rules as code: check, format, compile and run .route files."""


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


if __name__ == "__main__":
    main()
