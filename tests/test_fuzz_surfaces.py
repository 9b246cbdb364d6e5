"""Seeded campaigns on the surfaces that read files and statements (routing_dsl/fuzz): inputs
generated from the `.routetest` schema, the what-if grammar and the HotWax export schema,
most broken at one place. Each
must give a result or its surface's one-line refusal. `make test` runs a few hundred per
surface; `pytest -m fuzz` many more over several seeds. Each finding is a named test in the
surface's own test file (test_ruletests.py, test_authoring.py, test_interchange.py)."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from routing_dsl.cli import main
from routing_dsl.fuzz.surfaces import (Project, hotwax_campaign, hotwax_documents,
                                       routetest_campaign, routetest_documents,
                                       whatif_campaign, whatif_statements)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    return Project(tmp_path_factory.mktemp("fuzz"))


def no_findings(tally) -> None:
    assert not tally.findings, "\n".join(f"{f.input}\n  -> {f.problem}"
                                         for f in tally.findings[:10])
    assert tally.accepted > tally.inputs // 20 and tally.refused > tally.inputs // 20


def test_generated_routetest_files_run_or_are_refused_in_one_line(project):
    no_findings(routetest_campaign(22, 200, project))


def test_generated_what_ifs_route_or_are_refused_naming_the_statement(project):
    no_findings(whatif_campaign(22, 400, project))


def test_generated_hotwax_exports_import_and_round_trip_or_are_refused():
    no_findings(hotwax_campaign(22, 400))


def test_the_cli_gives_exit_1_or_2_and_nothing_written_for_broken_hotwax_exports(tmp_path):
    codes = set()
    for document, note in hotwax_documents(random.Random(5), 40, mutate_share=1.0):
        path, out = tmp_path / "group.json", tmp_path / "out.route"
        path.write_text(json.dumps(document))
        result = CliRunner().invoke(main, ["import-hotwax", str(path), "-o", str(out)])
        codes.add(result.exit_code)
        assert result.exit_code in (0, 1, 2), (note, result.output)
        if result.exit_code == 2:
            assert len(result.stderr.splitlines()) == 1 and not out.exists()
        out.unlink(missing_ok=True)
    assert 2 in codes


def test_the_cli_gives_exit_2_and_one_line_for_generated_routetest_files(project):
    path = project.folder / "cli.routetest"
    codes = set()
    for text, _ in routetest_documents(random.Random(7), project, 25):
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        result = CliRunner().invoke(main, ["test", str(path)])
        codes.add(result.exit_code)
        assert result.exit_code in (0, 1, 2), result.output
        if result.exit_code == 2:
            assert len(result.stderr.splitlines()) == 1
    assert 2 in codes


def test_the_cli_refuses_generated_what_ifs_with_exit_2(project):
    statements = whatif_statements(random.Random(3), project, 30)
    for statement in statements:
        result = CliRunner().invoke(main, [
            "run", str(project.rules), "--snapshot", str(project.folder / "snapshot.json"),
            "--out", "-", "--what-if", statement])
        assert result.exit_code in (0, 2), (statement, result.output)
        if result.exit_code == 2:
            assert result.stderr.startswith("error: --what-if")


@pytest.mark.fuzz
@pytest.mark.parametrize("seed", range(3))
def test_generated_routetest_files_long(project, seed):
    no_findings(routetest_campaign(1000 + seed, 3000, project))


@pytest.mark.fuzz
@pytest.mark.parametrize("seed", range(3))
def test_generated_what_ifs_long(project, seed):
    no_findings(whatif_campaign(1000 + seed, 5000, project))


@pytest.mark.fuzz
@pytest.mark.parametrize("seed", range(3))
def test_generated_hotwax_exports_long(seed):
    no_findings(hotwax_campaign(1000 + seed, 5000))


def test_counts_reports_every_surface_for_the_bench():
    from routing_dsl.fuzz import SURFACES, counts
    found = counts(seed=1, per_surface=40)
    assert list(found) == list(SURFACES)
    for surface, tally in found.items():
        assert tally["inputs"] == 40 and tally["findings"] == 0, (surface, tally)
        assert tally["accepted"] + tally["refused"] == 40
