"""The version label a plan is recorded with: the file's own ``version "..."``, else the label
given on the command line (``--version-label``), else the git commit checked out in the work
tree holding the file (``-dirty`` when the file differs from it), else none.

Git is asked with a timeout and never required: no git, no work tree, a slow or refusing git
all mean "no label from git".
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ..plan import Plan

GIT_TIMEOUT = 3.0  # seconds each git command may take
MAX_LABEL = 100
_COMMIT = re.compile(r"[0-9a-f]{7,64}")


def label_problem(label: str) -> str | None:
    """Why ``label`` cannot label a version (None when it can)."""
    if not label.strip() or label != label.strip():
        return "a label needs text, without leading or trailing spaces"
    if len(label) > MAX_LABEL:
        return f"a label takes at most {MAX_LABEL} characters"
    if not label.isprintable():
        return "a label holds printable characters only"
    return None


def git_label(path: Path, timeout: float = GIT_TIMEOUT) -> str | None:
    """The commit checked out in the git work tree holding ``path`` (12 characters), with
    ``-dirty`` when ``path`` differs from it (changed, or not committed); None outside a work
    tree or without git."""
    folder = path.resolve().parent
    head = _git(["rev-parse", "--short=12", "HEAD"], folder, timeout)
    if head is None or not _COMMIT.fullmatch(head):
        return None
    status = _git(["status", "--porcelain", "--", path.name], folder, timeout)
    return f"{head}-dirty" if status else head


def _git(arguments: list[str], folder: Path, timeout: float) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *arguments], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def labelled(plan: Plan, path: Path, given: str | None = None, *, git: bool = True) -> Plan:
    """``plan`` with its version label: its own, else ``given``, else (with ``git``) the git
    commit of ``path``'s work tree."""
    if plan.version_label is not None:
        return plan
    if given is None and git:
        given = git_label(path)
    return plan.labelled(given)
