"""The fast engine: columnar snapshot loading and a compiled allocation core.

It owns what makes a large run fast and small: inventory read straight into arrays with
integer ids and orders kept as compact records (`columnar`), and the per-unit, per-rule allocation loop compiled with numba
(`kernel`), driven by `fast`: a context and an allocator the runtime's `Run` composes, so
the walk over the plan, the records and the result document are the runtime's own. The reference interpreter
stays the statement of the semantics: the differential tests hold the two to byte-identical
results. `route` is what the CLI, the run store and the service call: it picks the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..plan import Plan
    from ..snapshot import Snapshot
    from .columnar import inventory_columns, load_columnar, snapshot_digest
    from .fast import run_fast

ENGINES = ("auto", "fast", "reference")

__all__ = ["ENGINES", "choose", "inventory_columns", "load_columnar", "route", "run_fast",
           "snapshot_digest"]

# Loaded on first use: numba (the kernel) costs about half a second to import and to load
# its cached machine code, which a run the reference engine decides, a check or a format
# never needs (see docs/performance.md, "Start-up").
_LAZY = {"run_fast": "fast", "inventory_columns": "columnar", "load_columnar": "columnar",
         "snapshot_digest": "columnar"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def choose(engine: str = "auto", *, small: bool = False) -> str:
    """The engine that runs a run asked to run on ``engine``: "fast" or "reference". Both run
    every plan, explained or optimised, with the same bytes; ``auto`` takes the fast one
    unless the input is ``small`` (a run the reference engine finishes before the fast one
    has loaded its compiled code)."""
    if engine == "reference" or (engine == "auto" and small):
        return "reference"
    return "fast"


def route(plan: Plan, snapshot: Snapshot, *, engine: str = "auto", group=None, routing=None,
          explain: bool = False, explain_orders=None, explain_facilities=None,
          progress=None) -> dict:
    """Run ``plan`` on ``snapshot`` with the engine `choose` picks; both give the same
    result document."""
    if choose(engine) == "fast":
        from .fast import run_fast
        return run_fast(plan, snapshot, group=group, routing=routing, explain=explain,
                        explain_orders=explain_orders, explain_facilities=explain_facilities,
                        progress=progress)
    from ..interpreter import run_plan
    return run_plan(plan, snapshot, group=group, routing=routing, explain=explain,
                    explain_orders=explain_orders, explain_facilities=explain_facilities,
                    progress=progress)

