"""docs/rollout.md: every command of the worked change (draft, shadow, canary, promotion, a
guard that trips, an abort) runs as written, and says what the page says it does."""

from __future__ import annotations

import json
import re
import shlex
import shutil

from click.testing import CliRunner

from routing_dsl.cli import main
from routing_dsl.rollout.guards import read_guards

from .conftest import ROOT
from .test_docs import _block

BLOCKS = ("data", "draft", "shadow", "canary", "promote", "trip", "abort")


def test_every_block_of_the_rollout_walk_through_is_tested():
    text = (ROOT / "docs" / "rollout.md").read_text(encoding="utf-8")
    commands = re.findall(r"```sh\n(.*?)```", text, re.S)
    tested = re.findall(r"<!-- tested: (\w+) -->\n```sh", text)
    assert tested == list(BLOCKS) and len(commands) == len(BLOCKS)


def test_the_rollout_walk_through_runs(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "docs" / "rollout", tmp_path / "docs" / "rollout")
    (tmp_path / ".routing-root").write_text("")
    monkeypatch.chdir(tmp_path)
    said: dict[str, list] = {}
    for name in BLOCKS:
        said[name] = []
        for line in _block("rollout.md", name, "sh").strip().splitlines():
            result = CliRunner().invoke(main, shlex.split(line)[1:])
            assert result.exit_code == 0, (line, result.output)
            said[name].append(result)
    assert "281 units changed" in said["draft"][1].stdout
    shadow = said["shadow"]
    assert "2026-11 -> 2026-12-stores-600" in shadow[1].stdout
    assert "total over 1 batch" in shadow[1].stdout
    assert json.loads(shadow[2].stdout)["total"]["differing_units"] > 0
    assert "batches shadowed: 1" in shadow[3].stdout
    canary = said["canary"]
    assert "status: active" in canary[1].stdout and "guards: all hold" in canary[1].stdout
    assert "2026-12-stores-600@" in canary[2].stdout and "2026-11@" in canary[2].stdout
    assert "promoted 2026-12-stores-600" in said["promote"][0].stdout
    assert "status: promoted" in said["promote"][1].stdout
    assert '"event": "canary_tripped"' in said["trip"][0].stderr
    assert "status: tripped" in said["trip"][1].stdout
    assert "why: unfilled_rate: the candidate left" in said["trip"][1].stdout
    assert "status: aborted" in said["abort"][2].stdout
    assert "why: the holiday freeze starts" in said["abort"][2].stdout


def test_the_guards_the_page_shows_are_a_valid_guard_file(tmp_path):
    text = (ROOT / "docs" / "rollout.md").read_text(encoding="utf-8")
    shown = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    path = tmp_path / "guards.toml"
    path.write_text(shown)
    guards = read_guards(path)
    assert guards.unfilled_rate == 1.0 and guards.cost_per_unit == 10.0
    shipped = read_guards(ROOT / "docs" / "rollout" / "guards.toml")
    assert shipped.model_dump(exclude={"webhook"}) == guards.model_dump(exclude={"webhook"})
