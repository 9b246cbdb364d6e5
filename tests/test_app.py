"""The application layer as the service, the bench and other callers use it: values back,
typed errors (each with the exit code a command line gives it), never an exit or a print."""

from __future__ import annotations

import copy
import json

import pytest

from routing_dsl import app
from routing_dsl.result import Result, dump_result

from .conftest import ROOT

EXAMPLE = ROOT / "examples" / "omnichannel"
SOURCE = EXAMPLE / "omnichannel.route"
SNAPSHOT = EXAMPLE / "snapshot.json"


def test_a_run_gives_the_examples_expected_result_and_prints_nothing(capsys):
    outcome = app.run(app.RunRequest(source=SOURCE, snapshot=str(SNAPSHOT)))
    assert dump_result(outcome.result, pretty=True).decode() == \
        (EXAMPLE / "expected.json").read_text()
    Result.model_validate(outcome.result)
    assert not outcome.failed and outcome.store is None and outcome.batch_ids == []
    outcome.raise_for_failure()  # nothing failed: no error
    assert capsys.readouterr() == ("", "")


def test_a_compiled_plan_and_its_source_run_alike(tmp_path):
    plan = app.load_plan(SOURCE)
    compiled = tmp_path / "plan.json"
    compiled.write_text(plan.to_json())
    assert app.load_plan(compiled) == plan
    assert app.source_text(SOURCE) == SOURCE.read_text() and app.source_text(compiled) is None


def test_a_recorded_run_returns_its_batches(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    where, revision = app.upgrade_store(db)
    assert where == db and revision
    warnings = []
    outcome = app.run(app.RunRequest(source=SOURCE, snapshot=str(SNAPSHOT), db_url=db),
                      warn=warnings.append)
    assert outcome.store is not None and warnings == []
    assert [b.id for b in outcome.store.batches(10)][::-1] == outcome.batch_ids


def test_a_failed_routing_is_run_failed_with_the_result(tmp_path):
    document = json.loads(SNAPSHOT.read_text())
    document["facilities"] = [f for f in document["facilities"]
                              if f["id"] != "UNFILLABLE_PARKING"]
    document["inventory"] = [r for r in document["inventory"]
                             if r["facility"] != "UNFILLABLE_PARKING"]
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text(json.dumps(document))
    outcome = app.run(app.RunRequest(source=SOURCE, snapshot=str(snapshot)))
    assert outcome.failed
    with pytest.raises(app.RunFailed) as failed:
        outcome.raise_for_failure()
    assert failed.value.exit_code == 4 and failed.value.result is outcome.result


def test_a_source_with_errors_is_problems_with_its_diagnostics(tmp_path):
    broken = tmp_path / "broken.route"
    broken.write_text(SOURCE.read_text().replace("sort by", "sort by no_such_sort,", 1))
    with pytest.raises(app.ProblemsError) as problems:
        app.load_plan(broken)
    error = problems.value
    assert error.exit_code == 1
    assert error.diagnostics and all(d.is_error for d in error.diagnostics)
    assert f"broken.route: not compiled: {len(error.diagnostics)} error" in error.closing


@pytest.mark.parametrize("call, words", [
    (lambda tmp: app.load_plan(ROOT / "README.md"), "expected a .route file or a compiled plan"),
    (lambda tmp: app.open_snapshot(tmp / "missing.json"), "no such file or directory"),
    (lambda tmp: app.open_snapshot(SNAPSHOT, tmp / "mapping.toml"),
     "--mapping goes with a database URL"),
    (lambda tmp: app.run(app.RunRequest(source=SOURCE, snapshot=str(SNAPSHOT), group="X")),
     "no group named 'X'"),
    (lambda tmp: app.run(app.RunRequest(source=SOURCE, snapshot=str(SNAPSHOT),
                                        executor="process", explain=True)),
     "routes whole groups without explanations"),
    (lambda tmp: app.read_what_ifs(["open the floodgates"], None), "open the floodgates"),
    (lambda tmp: app.make_webhook("ftp://example.com"), "an http:// or https:// URL"),
    (lambda tmp: app.expand_paths([str(tmp)]), "no .route files in this directory"),
    (lambda tmp: app.init_project(EXAMPLE), "would overwrite snapshot.json"),
], ids=["not-a-plan", "no-snapshot", "mapping-without-url", "unknown-group",
        "executor-explain", "what-if", "webhook", "empty-folder", "init-refuses"])
def test_unusable_input_is_an_input_error(tmp_path, call, words):
    with pytest.raises(app.InputError) as raised:
        call(tmp_path)
    assert raised.value.exit_code == 2
    if words:
        assert words in str(raised.value)


def test_a_broken_snapshot_lists_every_problem(tmp_path):
    document = json.loads(SNAPSHOT.read_text())
    broken = copy.deepcopy(document)
    broken["timezone"] = "Mars/Olympus"
    broken["facilities"][0]["lat"] = 1000
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(app.BadSnapshot) as raised:
        app.open_snapshot(path)
    lines = raised.value.lines
    assert len(lines) >= 2 and raised.value.exit_code == 2
    assert any("timezone" in line for line in lines)
    assert any("facilities[0].lat" in line for line in lines)
    source = app.snapshot_source(path)  # what a service refreshes from: the same error
    with pytest.raises(app.InputError):
        source()
    path.write_text(json.dumps(document))
    assert source().orders


def test_outputs_are_written_whole_through_links_keeping_the_mode(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    app.write_output(link, b"new\n")
    assert link.is_symlink() and target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", "result.json"]
    with pytest.raises(app.InputError, match="cannot write here"):
        app.write_output(tmp_path / "missing" / "result.json", "x")


def test_the_schemas_are_the_contracts():
    assert app.json_schema("result")["title"] == "Result"
    assert "orders" in app.json_schema("snapshot")["properties"]
    with pytest.raises(app.InputError):
        app.json_schema("nothing")
