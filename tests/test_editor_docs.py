"""docs/editors.md: the install commands work from a clone, and the Neovim setup attaches."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

EDITORS = (ROOT / "docs" / "editors.md").read_text(encoding="utf-8")


def _block(marker: str) -> str:
    match = re.search(rf"<!-- tested: {marker} -->\n```sh\n(.*?)```", EDITORS, re.S)
    assert match, f"no tested block {marker}"
    return match.group(1)


def test_install_from_a_clone_puts_routing_on_the_path(tmp_path: Path):
    clone = tmp_path / "clone"
    shutil.copytree(ROOT, clone, ignore=shutil.ignore_patterns(
        ".venv", "node_modules", ".git", "__pycache__", "*.vsix", ".pytest_cache"))
    home = tmp_path / "home"
    home.mkdir()
    python = Path(sys.base_prefix) / "bin" / "python3"
    env = {**os.environ, "HOME": str(home), "PATH": f"{python.parent}:/usr/bin:/bin",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           # the bytecode of every installed module (scipy alone has thousands) is compiled
           # at first import instead: most of the install time, and not what is tested
           "PIP_NO_COMPILE": "1"}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(["bash", "-euc", _block("install")], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode and "Could not find a version" in done.stderr + done.stdout:
        pytest.skip("no package index reachable to install the dependencies")
    assert done.returncode == 0, done.stderr[-2000:]
    routing = home / ".local" / "bin" / "routing"
    checked = subprocess.run([str(routing), "check", str(clone / "examples")], cwd=clone,
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr


def test_neovim_setup_declares_the_file_type_before_enabling():
    lua = re.search(r"## Neovim\n.*?```lua\n(.*?)```", EDITORS, re.S).group(1)
    assert "0.11" in EDITORS.split("## Neovim")[1].split("```")[0]
    assert lua.index("vim.filetype.add") < lua.index("vim.lsp.enable")
    assert 'extension = { route = "routing" }' in lua
    assert 'filetypes = { "routing" }' in lua
    assert "lspconfig" not in lua
