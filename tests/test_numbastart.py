"""numba starts without its BLAS probe (engine/numbastart.py): a fast run does not import
scipy.linalg (about 0.13 s a process), and BLAS routines still work when something asks for
them. Fresh interpreters: what a process has imported is the point."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from .conftest import ROOT


def fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_fast_run_does_not_import_scipy_linalg():
    said = fresh("""
        import sys
        from pathlib import Path
        from routing_dsl.app import load_plan
        from routing_dsl.engine.columnar import load_columnar
        from routing_dsl.engine.fast import run_fast
        from routing_dsl.result import dump_result
        folder = "examples/shipping_cost/"
        plan = load_plan(Path(folder + "shipping_cost.route"))
        result = run_fast(plan, load_columnar(Path(folder + "snapshot.json")))
        print(len(result["allocations"]) > 0, "scipy.linalg" in sys.modules)""")
    assert said == "True False"


def test_blas_routines_still_compile_after_it():
    said = fresh("""
        import numpy as np
        from numba import njit
        from routing_dsl.engine import numbastart  # noqa: F401

        @njit
        def dot(a, b):
            return np.dot(a, b)
        print(dot(np.arange(3.0), np.arange(3.0)))""")
    assert said == "5.0"
