"""One failing file per diagnostic code (tests/golden/diagnostics/RTnnn.route) and the exact
text `routing check` prints for it, with line, column and underline."""

from __future__ import annotations

import pytest

from routing_dsl.authoring.analysis import analyze
from routing_dsl.checker import Workspace
from routing_dsl.diagnostics import render_text
from routing_dsl.errorcodes import CODES

from .conftest import GOLDEN

DIAGNOSTICS = GOLDEN / "diagnostics"


@pytest.mark.parametrize("code", sorted(CODES))
def test_each_code_has_a_failing_example(code, golden, monkeypatch):
    monkeypatch.chdir(DIAGNOSTICS)
    path = DIAGNOSTICS / f"{code}.route"
    assert path.exists(), f"no failing example for {code}"
    result = Workspace().check_path(path, name=path.name)
    diagnostics = list(result.diagnostics)
    if code.startswith("RT5"):  # `routing analyze`'s findings, on a file the checker accepts
        assert not [d for d in diagnostics if d.is_error]
        diagnostics += analyze(result.program)
    codes = [d.code for d in diagnostics]
    assert code in codes, f"{path.name} does not produce {code}: {codes}"
    rendered = "\n\n".join(render_text(d) for d in diagnostics) + "\n"
    golden(path.with_suffix(".expected"), rendered)


def test_no_stray_golden_files():
    stems = {p.stem for p in DIAGNOSTICS.glob("RT*.route")}
    assert stems == set(CODES)
