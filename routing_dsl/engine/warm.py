"""`routing warm`: compile the fast engine's kernel into numba's cache now, once, rather than
in the first run that needs it (about half a minute of CPU, a minute of wall time on a busy
2-core machine: docs/performance.md, "The compiled kernel's compile time").

The kernel is compiled with ``cache=True``: numba writes the machine code next to the source
(``routing_dsl/engine/__pycache__``, or ``~/.cache/numba`` when the package directory is
read-only, or ``$NUMBA_CACHE_DIR``) and every later process loads it in a fraction of a
second, until the kernel's source changes. `make venv` runs this after installing, and
`make demo` and `make test` before they start, so that no demo step and no test pays the
compile. A warm cache makes this take about a second.

The runs below give the kernel every type signature a real run gives it: a snapshot parsed
into models and one read as columns from a file, with and without rate cards (the
differential tests and the examples compile nothing more)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def warm() -> dict:
    """Route small generated scenarios with the fast engine, both ways a snapshot is read;
    returns the seconds taken and the kernel functions compiled (0 when all were cached)."""
    import orjson

    from ..bench.scenarios import PLAN, SHIPPING_PLAN, Scenario, generate
    from ..checker import Workspace
    from ..compiler import compile_program
    from ..snapshot import parse_snapshot
    from ..result import dump_result
    from . import jsonrows, kernel
    from .columnar import load_columnar
    from .fast import run_fast

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="routing-warm-") as folder:
        for text, shipping in ((PLAN, False), (SHIPPING_PLAN, True)):
            checked = Workspace().check_text(text, name="warm.route")
            plan = compile_program(checked.program)
            document = generate(Scenario(orders=60, facilities=20, skus=40, seed=3,
                                         shipping=shipping))
            path = Path(folder) / f"warm-{int(shipping)}.json"
            path.write_bytes(orjson.dumps(document))
            run_fast(plan, parse_snapshot(document))
            dump_result(run_fast(plan, load_columnar(path)))  # and the result's writer
    compiled = sum(len(dispatcher.stats.cache_misses)
                   for module in (kernel, jsonrows) for dispatcher in vars(module).values()
                   if hasattr(dispatcher, "stats") and hasattr(dispatcher, "py_func"))
    return {"seconds": time.perf_counter() - started, "compiled": compiled}


if __name__ == "__main__":  # python -m routing_dsl.engine.warm
    done = warm()
    print(f"fast engine ready in {done['seconds']:.1f} s "
          f"({done['compiled']} kernel functions compiled)")
