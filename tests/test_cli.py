"""The command line as a user meets it: exit codes, output formats, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from routing_dsl.cli import main

from .conftest import GOLDEN, ROOT

BROKEN = GOLDEN / "diagnostics" / "RT201.route"
CLEAN = 'use std.hotwax\n\ngroup "G" for store S {\n  routing "R" {\n    rule "a" {\n      assign single\n    }\n  }\n}\n'


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_check_examples_exits_zero():
    result = run("check", str(ROOT / "examples"))
    assert result.exit_code == 0, result.output
    assert "0 errors" in result.stderr


def test_check_reports_errors_with_exit_one():
    result = run("check", str(BROKEN))
    assert result.exit_code == 1
    assert "error[RT201]: undefined name `UNFILLABLE_PARKIN`" in result.stdout
    assert "did you mean `UNFILLABLE_PARKING`?" in result.stdout


def test_check_json_output():
    result = run("check", "--format", "json", str(BROKEN))
    assert result.exit_code == 1
    [diagnostic] = json.loads(result.stdout)
    assert (diagnostic["code"], diagnostic["line"], diagnostic["column"]) == ("RT201", 6, 16)


def test_warnings_fail_only_with_strict():
    warning = str(GOLDEN / "diagnostics" / "RT208.route")
    assert run("check", warning).exit_code == 0
    assert run("check", "--strict", warning).exit_code == 1


def test_missing_file_is_a_usage_error():
    result = run("check", "no/such.route")
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_not_utf8_is_an_input_error(tmp_path: Path):
    bad = tmp_path / "bad.route"
    bad.write_bytes(b"group \xff\xfe")
    result = run("check", str(bad))
    assert result.exit_code == 2
    assert "not UTF-8" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_directory_without_route_files(tmp_path: Path):
    result = run("check", str(tmp_path))
    assert result.exit_code == 2
    assert "no .route files" in result.stderr


def test_fmt_rewrites_and_check_mode(tmp_path: Path):
    path = tmp_path / "a.route"
    path.write_text(CLEAN.replace("\n    ", " "))
    assert run("fmt", "--check", str(path)).exit_code == 1
    assert run("fmt", str(path)).exit_code == 0
    assert path.read_text() == CLEAN
    assert run("fmt", "--check", str(path)).exit_code == 0


def test_fmt_never_rewrites_a_file_that_does_not_parse(tmp_path: Path):
    path = tmp_path / "a.route"
    text = 'group "G" for store S { routing "R" { filter { queue == } } }'
    path.write_text(text)
    result = run("fmt", str(path))
    assert result.exit_code == 1
    assert "syntax errors" in result.stderr
    assert path.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["a.route"]


def test_fmt_stdin_to_stdout():
    result = CliRunner().invoke(main, ["fmt", "-"], input=CLEAN.replace("\n    ", " "))
    assert result.exit_code == 0
    assert result.stdout == CLEAN


def test_fmt_check_examples():
    assert run("fmt", "--check", str(ROOT / "examples")).exit_code == 0


def test_console_script_runs_as_a_module():
    completed = subprocess.run([sys.executable, "-m", "routing_dsl", "check", str(BROKEN)],
                               capture_output=True, text=True)
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
