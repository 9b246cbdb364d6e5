"""Optimised routings on the fast engine (issues 21 and 24): the rules' run, the look-ahead of
the later routings and the optimum's commit run in the kernel (engine.optimizing, ir.Fixed),
and the result is the reference engine's, byte for byte, explained or not, on any number of
workers."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing_dsl.bench.scenarios import Scenario, generate
from routing_dsl.engine import run_fast
from routing_dsl.optimize.run import executing
from routing_dsl.result import dump_result
from routing_dsl.runtime import run_plan
from routing_dsl.snapshot import parse_snapshot

from .builders import facility, item, order, plan, stock, world
from .test_engines import explain_options
from .test_engines import plans as generated_plans
from .test_engines import snapshots as generated_snapshots
from .test_semantics_optimize import (first_routing, optimised, retailer_plan,
                                      two_routings_one_store)


@pytest.fixture(scope="module")
def retailer():
    document = generate(Scenario(orders=120, facilities=30, skus=150, shipping=True, seed=3))
    return parse_snapshot(json.dumps(document).encode(), "retailer")


def both(the_plan, snapshot, **options) -> bytes:
    """The result's bytes, the same on both engines."""
    reference = dump_result(run_plan(the_plan, snapshot, **options))
    assert dump_result(run_fast(the_plan, snapshot, **options)) == reference
    return reference


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated_snapshots(), generated_plans(), st.sampled_from(["apply", "report"]),
       st.sampled_from([{}, {"window": 1}, {"facilities_per_line": 1}]))
def test_generated_optimised_runs_give_the_same_bytes_on_both_engines(snapshot, the_plan, mode,
                                                                      options):
    the_plan = optimised(the_plan, mode, **options)
    both(the_plan, snapshot)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated_snapshots(), generated_plans(), st.data())
def test_generated_optimised_runs_explain_alike_on_both_engines(snapshot, the_plan, data):
    options = explain_options(snapshot, data)
    both(optimised(the_plan, only_first=data.draw(st.booleans())), snapshot, explain=True,
         **options)


def test_the_retailer_gives_the_same_bytes_on_both_engines_and_any_number_of_workers(retailer):
    """Three optimised routings of the bench's plan, several windows: the later routings'
    look-ahead, the optimum committed rule by rule."""
    the_plan = retailer_plan(window=60)
    first = both(the_plan, retailer)
    with executing("process", 2):
        assert dump_result(run_fast(the_plan, retailer)) == first
    assert both(retailer_plan(window=25, facilities_per_line=1), retailer)


def test_a_later_routing_left_short_is_seen_alike():
    """The optimum would leave a later routing short: not applied, on either engine (the
    look-ahead runs the later routing in the kernel and puts the state back)."""
    snapshot, the_plan = two_routings_one_store()
    group = the_plan.groups[0]
    first = optimised(first_routing(the_plan)).groups[0].routings[0]
    mixed = the_plan.model_copy(update={"groups": [group.model_copy(
        update={"routings": [first, group.routings[1]]})]})
    assert b"the optimum was not applied" in both(mixed, snapshot)
    both(optimised(the_plan), snapshot)
    both(optimised(first_routing(the_plan)), snapshot, explain=True)


def test_max_facilities_alike():
    """The (ship group, facility) pairs in use, saved and put back with the rest of the
    state: a second routing's optimum still ships from at most 2 facilities in all."""
    snapshot = world([facility("F1", 40.70, -74.0), facility("F2", 40.75, -74.0),
                      facility("F3", 40.80, -74.0)],
                     [stock(f, "P1", 2) for f in ("F1", "F2", "F3")] +
                     [stock(f, "P2", 3) for f in ("F1", "F2", "F3")],
                     [order("O1", [item("00001", "P1", 6), item("00002", "P2", 4)])])
    rules = ('rule "two places" { assign partial inventory { max_facilities 2 } '
             'sort by distance desc }')
    the_plan = optimised(plan(
        'routing "R" { filter { queue == _NA_ } ' + rules + ' } '
        'routing "Again" { filter { queue == _NA_ } ' + rules + " }"))
    both(the_plan, snapshot)
    both(the_plan, snapshot, explain=True, explain_facilities={"F2"})


def test_a_checkpoint_puts_the_fast_engine_back_where_it_was(retailer):
    """`Run.checkpoint` and `restore` on the fast engine's arrays: a routing routed, put back
    and routed again writes the same rows (new ship group numbers included) and leaves the
    same state as routed once."""
    from routing_dsl.engine.fast import FastAllocator, FastContext
    from routing_dsl.runtime import Run

    the_plan = retailer_plan(window=60)
    group = the_plan.groups[0]
    routing = group.routings[0].model_copy(update={"optimize": None})

    def state(run) -> list:
        ctx = run.ctx
        return [array.copy() for array in (ctx.s_net, ctx.s_alloc, ctx.orders_today_array,
                                           ctx.it_open, ctx.it_queue, ctx.it_ac,
                                           ctx.brokered, ctx.fac_warn)] + [
            list(ctx.it_auto_cancel), dict(ctx.orders_today), dict(run.warnings)]

    def same(a: list, b: list) -> bool:
        return all((x == y).all() if hasattr(x, "all") else x == y
                   for x, y in zip(a, b, strict=True))

    run = Run(the_plan, retailer, False, None, context=FastContext, allocator=FastAllocator)
    store = group.product_store
    units = run.allocator.select_units(store, routing)
    before = state(run)
    saved = run.checkpoint(units)
    run.allocator.route_units(group.name, store, routing, units, None)
    once, rows = state(run), list(run.allocations)
    assert rows and not same(before, once)
    run.restore(saved)
    assert same(before, state(run)) and len(run.allocations) == 0
    run.allocator.route_units(group.name, store, routing, units, None)
    assert same(once, state(run)) and list(run.allocations) == rows
