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
    from .fast import FastUnsupported, run_fast, unsupported_reason

ENGINES = ("auto", "fast", "reference")

__all__ = ["ENGINES", "FastUnsupported", "choose", "inventory_columns", "load_columnar",
           "route", "run_fast", "snapshot_digest", "unsupported_reason"]

# Loaded on first use: numba (the kernel) costs about half a second to import and to load
# its cached machine code, which a run the reference engine decides, a check or a format
# never needs (see docs/performance.md, "Start-up").
_LAZY = {"FastUnsupported": "fast", "run_fast": "fast", "unsupported_reason": "fast",
         "inventory_columns": "columnar", "load_columnar": "columnar",
         "snapshot_digest": "columnar"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def choose(plan: Plan, engine: str = "auto", *, explain: bool = False,
           small: bool = False) -> str:
    """The engine that runs ``plan``: "fast" or "reference". ``auto`` takes the fast one
    whenever it can, unless the input is ``small`` (a run the reference engine finishes
    before the fast one has loaded its compiled code: both give the same bytes); asking for
    ``fast`` when it cannot raises FastUnsupported."""
    if engine == "reference" or (engine == "auto" and small):
        return "reference"
    from .fast import FastUnsupported, unsupported_reason
    reason = unsupported_reason(plan, explain=explain)
    if engine == "fast" and reason:
        raise FastUnsupported(reason)
    return "reference" if reason else "fast"


def route(plan: Plan, snapshot: Snapshot, *, engine: str = "auto", group=None, routing=None,
          explain: bool = False, explain_orders=None, explain_facilities=None,
          progress=None) -> dict:
    """Run ``plan`` on ``snapshot`` with the engine `choose` picks; both give the same
    result document."""
    if choose(plan, engine, explain=explain) == "fast":
        from .fast import run_fast
        return run_fast(plan, snapshot, group=group, routing=routing, explain=explain,
                        explain_orders=explain_orders, explain_facilities=explain_facilities,
                        progress=progress)
    from ..interpreter import run_plan
    return run_plan(plan, snapshot, group=group, routing=routing, explain=explain,
                    explain_orders=explain_orders, explain_facilities=explain_facilities,
                    progress=progress)

