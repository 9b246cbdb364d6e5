"""`routing warm` compiles the fast engine once, into numba's cache, for every run after it:
`make venv`, `make demo` and `make test` run it first, so no demo step and no test waits
for the compile (issue 27: a fresh install's first run within 2 s)."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT

# Routes every example the fast engine supports, both ways a snapshot is read, and reports
# the kernel functions numba had to compile (not found in its cache) in this process.
EXAMPLES_ON_THE_FAST_ENGINE = """
import json, sys
from pathlib import Path
from routing_dsl.app import load_plan
from routing_dsl.engine import kernel, load_columnar, run_fast
from routing_dsl.snapshot import load_snapshot
routed = 0
for folder in sorted(Path("examples").iterdir()):
    for source in sorted(folder.glob("*.route")):
        plan = load_plan(source)
        for snapshot in sorted(folder.glob("snapshot*.json")):
            run_fast(plan, load_snapshot(snapshot))
            run_fast(plan, load_columnar(snapshot))
            routed += 1
misses = sum(len(d.stats.cache_misses) for d in vars(kernel).values()
             if hasattr(d, "stats") and hasattr(d, "py_func"))
print(json.dumps({"routed": routed, "compiled": misses}))
"""


def routing(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "routing_dsl", *arguments], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)


def test_warm_leaves_nothing_to_compile_for_the_next_process():
    routing("warm")  # compiles only if the cache is cold (outside `make test`)
    again = routing("warm")
    assert again.returncode == 0, again.stderr
    assert "(0 kernel functions compiled)" in again.stderr


def test_after_warm_the_examples_compile_nothing_on_the_fast_engine():
    routing("warm")
    done = subprocess.run([sys.executable, "-c", EXAMPLES_ON_THE_FAST_ENGINE], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["routed"] >= 3
    assert figures["compiled"] == 0
