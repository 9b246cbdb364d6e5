"""The grammar and the stdlib ship inside the wheel and load from an installed wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from lark import Lark

from .conftest import ROOT


def test_wheel_contains_grammar_and_stdlib_and_works_installed(tmp_path: Path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path), str(ROOT)], check=True)
    [wheel] = tmp_path.glob("routing_dsl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "routing_dsl/_data/grammar/routing.lark" in names
    assert "routing_dsl/_data/stdlib/hotwax.route" in names
    assert "routing_dsl/_data/stdlib/templates.route" in names
    for migration in ("env.py", "script.py.mako", "versions/0001_run_store.py"):
        assert f"routing_dsl/ops/migrations/{migration}" in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), str(wheel)], check=True)
    probe = ("import sys; sys.path.insert(0, sys.argv[1]);"
             "from routing_dsl import _resources;"
             "print(_resources.grammar_path()); print(_resources.stdlib_dir())")
    out = subprocess.run([sys.executable, "-c", probe, str(target)], check=True,
                         capture_output=True, text=True, cwd=tmp_path).stdout.split()
    assert all(line.startswith(str(target)) for line in out)


def test_grammar_has_no_conflicts():
    # strict mode turns shift/reduce and terminal collisions into errors
    Lark((ROOT / "grammar" / "routing.lark").read_text(), parser="lalr", strict=True)
