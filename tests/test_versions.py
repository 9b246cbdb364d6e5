"""Versions of the rules: `version "..."` in a file, `--version-label`, the git commit, and
the label every batch and decision records beside the plan's hash (issue 25)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from routing_dsl import nodes as n
from routing_dsl.checker import Workspace
from routing_dsl.cli import main
from routing_dsl.compiler import compile_program
from routing_dsl.formatter import format_module
from routing_dsl.loader import Loader
from routing_dsl.lsp import features
from routing_dsl.plan import load_plan
from routing_dsl.rollout.versions import git_label

from .conftest import ROOT

EXAMPLE = ROOT / "examples" / "omnichannel"
RULES = """\
declare queue _NA_, PARK
declare facility_group WAREHOUSES

group "G" for store STORE {
  routing "R" {
    filter { queue == _NA_ }
    rule "r" {
      assign partial
      inventory { facility_group == WAREHOUSES }
      when unfilled { move to queue PARK }
    }
  }
}
"""


def invoke(*args: str, **kwargs):
    return CliRunner().invoke(main, list(args), **kwargs)


def checked(text: str, name: str = "rules.route"):
    return Workspace().check_text(text, name=name)


def test_a_version_declaration_labels_the_compiled_plan():
    result = checked('version "2026-11-bf"\n\n' + RULES)
    assert not result.diagnostics
    assert result.program.version == "2026-11-bf"
    plan = compile_program(result.program)
    assert plan.version_label == "2026-11-bf"
    assert json.loads(plan.to_json())["version_label"] == "2026-11-bf"
    assert load_plan(plan.to_json()).version_label == "2026-11-bf"
    version = next(i for i in result.parsed.module.items if isinstance(i, n.Version))
    assert result.parsed.source.slice(version.span) == 'version "2026-11-bf"'


def test_a_plan_without_a_label_is_written_as_before_labels_existed():
    plan = compile_program(checked(RULES).program)
    assert "version_label" not in plan.to_json()


def test_a_second_version_and_a_blank_label_are_errors_naming_where():
    twice = checked('version "a"\nversion "b"\n' + RULES)
    assert [(d.code, d.message) for d in twice.diagnostics] == [
        ("RT202", "duplicate `version`")]
    assert "first given at rules.route:1:1" in twice.diagnostics[0].hint
    for label in ("", " padded", "x" * 101):
        bad = checked(f'version "{label}"\n' + RULES)
        assert [d.code for d in bad.diagnostics] == ["RT307"], label
        assert bad.program.version is None


def test_the_formatter_writes_a_version_on_its_own_line():
    parsed = Loader.parse_text('version   "2026-11-bf"\n' + RULES, "rules.route")
    text = format_module(parsed.module, parsed.source)
    assert text.startswith('version "2026-11-bf"\n\ndeclare queue')
    again = Loader.parse_text(text, "rules.route")
    assert format_module(again.module, again.source) == text


def test_the_editor_completes_and_explains_version():
    text = 'version "x"\n' + RULES
    result = checked(text)
    labels = {c.label for c in features.complete(result, text + "\nver", len(text) + 4)}
    assert "version" in labels
    shown, _ = features.hover(result, 2)
    assert "version label" in shown
    symbols = features.document_symbols(result.parsed.module)
    assert ("x", "version") in [(s.name, s.kind) for s in symbols]


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
                           *args], cwd=folder, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_git_commit_labels_a_file_in_a_work_tree_and_dirty_when_it_differs(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    rules = repo / "rules.route"
    rules.write_text(RULES)
    _git(repo, "add", "rules.route")
    _git(repo, "commit", "-q", "-m", "rules")
    commit = _git(repo, "rev-parse", "--short=12", "HEAD")
    assert git_label(rules) == commit
    rules.write_text(RULES + "# changed\n")
    assert git_label(rules) == f"{commit}-dirty"
    outside = tmp_path / "outside.route"
    outside.write_text(RULES)
    assert git_label(outside) is None


def test_no_git_on_the_path_means_no_label(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `git` here
    assert git_label(EXAMPLE / "omnichannel.route") is None


def _project(tmp_path: Path, header: str = "") -> Path:
    """The omnichannel example in a folder of its own (a project root, outside any git
    work tree)."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / ".routing-root").write_text("")
    source = tmp_path / "examples" / "omnichannel" / "omnichannel.route"
    source.write_text(header + source.read_text())
    return source


def test_batches_record_the_files_label_else_the_options(tmp_path):
    source = _project(tmp_path, 'version "2026-11-bf"\n')
    snapshot = str(source.parent / "snapshot.json")
    db = str(tmp_path / "runs.db")
    ran = invoke("run", str(source), "--snapshot", snapshot, "--db", db, "--out", os.devnull,
                 "--version-label", "ignored: the file names its version")
    assert ran.exit_code == 0, ran.output
    plain = tmp_path / "plain.route"
    plain.write_text(source.read_text().replace('version "2026-11-bf"\n', "")
                     .replace('"../catalog.route"', '"examples/catalog.route"'))
    ran = invoke("run", str(plain), "--snapshot", snapshot, "--db", db, "--out", os.devnull,
                 "--version-label", "hotfix-7")
    assert ran.exit_code == 0, ran.output
    ran = invoke("run", str(plain), "--snapshot", snapshot, "--db", db, "--out", os.devnull)
    assert ran.exit_code == 0, ran.output
    listed = json.loads(invoke("batches", "--db", db, "--format", "json").stdout)
    labels = [b["version_label"] for b in reversed(listed)]
    assert labels == ["2026-11-bf", "hotfix-7", None]  # no git work tree here
    for batch in listed:
        assert batch["version"] == (f"{batch['version_label']}@{batch['plan_hash'][:8]}"
                                    if batch["version_label"] else batch["plan_hash"][:12])
    table = invoke("batches", "--db", db).stdout
    assert f"2026-11-bf@{listed[-1]['plan_hash'][:8]}" in table
    bad = invoke("run", str(plain), "--snapshot", snapshot, "--db", db, "--out", os.devnull,
                 "--version-label", " ")
    assert bad.exit_code == 2 and "--version-label" in bad.stderr


def test_a_committed_decision_records_its_version(tmp_path):
    from routing_dsl.ops.store import RunStore
    from routing_dsl.service.state import LiveState
    from routing_dsl.snapshot import load_snapshot
    source = _project(tmp_path, 'version "2026-11-bf"\n')
    plan = compile_program(Workspace().check_path(source).program)
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.upgrade()
    snapshot = load_snapshot(source.parent / "snapshot.json")
    state = LiveState([plan], lambda: snapshot, store=store)
    state.refresh()
    answer = json.loads(state.commit(snapshot.orders[0], "key-1"))
    found = store.batches(10)
    assert {b.id for b in found} == set(answer["batches"])
    assert {b.version_label for b in found} == {"2026-11-bf"}
    store.dispose()


def test_compile_labels_the_plan_with_the_option():
    done = invoke("compile", str(EXAMPLE / "omnichannel.route"), "--version-label", "v7")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["version_label"] == "v7"
