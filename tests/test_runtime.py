"""The runtime's public interface: a run composes whatever allocator it is given (the fast
engine's plugs in the same way, with its own context), and both engines' allocators implement
the protocol."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from routing_dsl.app import load_plan
from routing_dsl.result import dump_result
from routing_dsl.runtime import Allocator, ReferenceAllocator, Run, run_plan
from routing_dsl.snapshot import load_snapshot

EXAMPLES = Path(__file__).parent.parent / "examples"
CASES = [(route_file, folder / "snapshot.json") for folder in sorted(EXAMPLES.iterdir())
         if (folder / "snapshot.json").exists() for route_file in sorted(folder.glob("*.route"))]


class Counting:
    """An allocator by composition: the reference one inside, each call counted."""

    def __init__(self, run: Run) -> None:
        self.inner = ReferenceAllocator(run)
        self.calls: Counter = Counter()

    def select_units(self, store, routing):
        self.calls["select_units"] += 1
        return self.inner.select_units(store, routing)

    def count_items(self, units) -> int:
        self.calls["count_items"] += 1
        return self.inner.count_items(units)

    def route_units(self, group_name, store, routing, units, progress, *fixed) -> int:
        self.calls["route_units"] += 1
        return self.inner.route_units(group_name, store, routing, units, progress, *fixed)

    def inventory_after(self) -> list[dict]:
        self.calls["inventory_after"] += 1
        return self.inner.inventory_after()

    def __getattr__(self, name: str):
        """What an optimised routing asks beyond the protocol (`save`, `restore`,
        `admitting`, ...: runtime.protocol) is the inner allocator's, counted too."""
        found = getattr(self.inner, name)
        if callable(found):
            def counted(*args, **kwargs):
                self.calls[name] += 1
                return found(*args, **kwargs)
            return counted
        return found


@pytest.mark.parametrize("route_file,snapshot_file", CASES,
                         ids=[r.parent.name for r, _ in CASES])
def test_a_run_composing_another_allocator_writes_the_same_result(route_file, snapshot_file):
    the_plan = load_plan(route_file)
    optimised = any(r.optimize is not None for g in the_plan.groups for r in g.routings)
    snapshot = load_snapshot(snapshot_file)
    made: list[Counting] = []

    def counting(run: Run) -> Counting:
        made.append(Counting(run))
        return made[-1]

    run = Run(the_plan, snapshot, True, None, allocator=counting)
    result = run.run(None, None, None)
    assert dump_result(result) == dump_result(run_plan(the_plan, snapshot, explain=True))
    routed = sum(1 for batch in result["batches"] for entry in batch["runs"]
                 if entry["error"] is None)
    if optimised:  # the rules' run, then the optimum committed: through the wrapper
        assert made[0].calls["route_units"] > routed and made[0].calls["save"] >= 1
        return
    assert made[0].calls == {"select_units": routed, "count_items": routed,
                             "route_units": routed, "inventory_after": 1}


def test_the_reference_allocator_and_a_composed_one_are_allocators():
    the_plan = load_plan(CASES[0][0])
    run = Run(the_plan, load_snapshot(CASES[0][1]), False, None)
    assert isinstance(run.allocator, ReferenceAllocator)
    assert isinstance(run.allocator, Allocator)
    assert isinstance(Counting(run), Allocator)
    assert not isinstance(object(), Allocator)


@pytest.mark.parametrize("route_file,snapshot_file", CASES,
                         ids=[r.parent.name for r, _ in CASES])
def test_the_fast_engine_is_a_context_and_an_allocator_a_run_composes(route_file,
                                                                       snapshot_file):
    from routing_dsl.engine.fast import FastAllocator, FastContext
    from routing_dsl.runtime import Context
    the_plan = load_plan(route_file)
    snapshot = load_snapshot(snapshot_file)
    run = Run(the_plan, snapshot, False, None, context=FastContext, allocator=FastAllocator)
    assert type(run) is Run and isinstance(run.ctx, FastContext)
    assert isinstance(run.ctx, Context) and isinstance(run.allocator, Allocator)
    assert not issubclass(FastAllocator, (Run, ReferenceAllocator))
    assert dump_result(run.run(None, None, None)) == dump_result(run_plan(the_plan, snapshot))
