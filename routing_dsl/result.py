"""The result document's schema (routing-result/1), published by `routing schema result`,
and its writer (`dump_result`).

The interpreter builds plain dicts for speed; tests validate its output against these models.
Order of entries: allocations and unfillable items in execution order (group, routing, unit,
rule); inventory_after (only the rows the run changed) by facility then product; facility_counts_after by facility; warnings
sorted. Distances are rounded to 0.01, quantities to 1e-6 (whole numbers print as integers),
money to whole cents.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict

from .ranges import Amount, Count, Positive, Real, Whole
from .validation import Moment


class _Model(BaseModel):
    # Every field an engine always writes is required (the readers rely on it); optional
    # ones (a batch's `skipped`, `totals`; `explanations`) are what a run may leave out.
    # Every number within the engines' range (routing_dsl/ranges.py): what an engine writes
    # fits, and so does every reader of results (orjson, the run store's 64-bit columns).
    # Built on first use, not at import (start-up).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)


class Allocation(_Model):
    order: str
    ship_group: str
    item: str
    product: str
    facility: str
    quantity: Positive
    new_ship_group: str
    group: str
    routing: str
    rule: str
    distance: Amount | None
    distance_unit: Literal["mi", "km"]
    shipping_cost: Amount | None
    """This row's share of its package's cost (by weight); null without a rate card or a
    weight. A package is one new ship group."""
    transit_days: Count | None
    delivery_date: date | None
    """The day the package arrives (ISO date in the snapshot's time zone)."""


class Unfillable(_Model):
    order: str
    ship_group: str
    item: str
    product: str
    quantity: Amount
    routing: str
    rule: str | None
    action: Literal["moved", "auto_cancel_set", "auto_cancel_cleared", "left"]
    queue: str
    auto_cancel_date: Moment | None


class RunRecord(_Model):
    routing: str
    attempted_items: Count
    brokered_items: Count
    error: str | None
    shipping_cost: Amount
    """What the run's packages cost (those with a known cost)."""
    packages: Count
    """New ship groups the run created."""
    split_orders: Count
    """Orders with a ship group the run split into more than one package."""
    late_items: Count
    """Items allocated to arrive after their promised date."""


class Totals(_Model):
    """The figures of a batch's runs added up."""

    shipping_cost: Amount
    packages: Count
    split_orders: Count
    late_items: Count


class Batch(_Model):
    group: str
    product_store: str
    runs: list[RunRecord]
    skipped: str | None = None
    totals: Totals | None = None


class InventoryAfter(_Model):
    facility: str
    product: str
    atp: Real


class FacilityCount(_Model):
    facility: str
    orders_today: Count


class OptimizationFigures(_Model):
    """One allocation of an optimised batch, measured (docs/snapshot.md, "Optimisation")."""

    cost: Real
    """Shipping cost + split_cost x extra packages + late_cost x late unit-days."""
    shipping_cost: Real
    packages: Count
    unpriced_packages: Count
    split_orders: Count
    extra_packages: Count
    late_units: Real
    late_unit_days: Real
    filled_units: Real
    unfilled_units: Real


class RuleCost(_Model):
    rule: str | None
    units: Count
    """Units this rule decided in the rules' run that the optimum allocates differently."""
    extra_cost: Real
    """What those units cost under the rules minus what they cost in the optimum."""


class OptimizedUnit(_Model):
    order: str
    ship_group: str
    item: str | None = None
    rule: str | None
    rules_cost: Real
    optimized_cost: Real


class OptimizedRouting(_Model):
    group: str
    routing: str
    mode: Literal["report", "apply"]
    status: Literal["optimal", "work_limit", "time_limit", "infeasible", "error"]
    windows: Count
    rules_cost: Real
    optimized_cost: Real
    saving: Real
    lower_bound: Real | None
    gap: Real | None
    rules: OptimizationFigures
    optimized: OptimizationFigures
    work: dict[str, Whole]
    rule_costs: list[RuleCost]
    units: list[OptimizedUnit]


class Optimization(_Model):
    """Every optimised routing run, and their totals."""

    rules_cost: Real
    optimized_cost: Real
    saving: Real
    lower_bound: Real | None
    gap: Real | None
    status: str
    rules: OptimizationFigures
    optimized: OptimizationFigures
    routings: list[OptimizedRouting]


class Result(_Model):
    format: Literal["routing-result/1"]
    allocations: list[Allocation]
    unfillable: list[Unfillable]
    batches: list[Batch]
    inventory_after: list[InventoryAfter]
    facility_counts_after: list[FacilityCount]
    warnings: list[str]
    explanations: list[dict] | None = None
    optimization: Optimization | None = None
    """Only when a routing has an `optimize` block."""


def dump_result(result: dict, pretty: bool = False) -> bytes:
    """The result document as UTF-8 JSON: compact (fast to write and to parse) unless
    ``pretty``, indented by two spaces for people and golden files."""
    return b"".join(result_chunks(result, pretty))


def result_chunks(result: dict, pretty: bool = False) -> Iterator[bytes]:
    """`dump_result`'s bytes in pieces, to be written one after the other. Compact, the rows
    kept as columns (runtime.rows.ResultRows) are written from their columns a few thousand
    at a time, never all as dictionaries: the same bytes orjson writes for the whole
    document, key by key."""
    from .runtime.rows import ResultRows, plain
    if pretty:
        # the newline appended by orjson: `+ b"\n"` copied the whole document once more
        yield orjson.dumps(result, default=plain,
                           option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_INDENT_2)
        return
    separator = b"{"
    for key, value in result.items():
        yield separator + orjson.dumps(key) + b":"
        separator = b","
        if isinstance(value, ResultRows):
            yield b"["
            first = True
            for chunk in value.json_chunks():
                if chunk:
                    yield chunk if first else b"," + chunk
                    first = False
            yield b"]"
        else:
            yield orjson.dumps(value, default=plain)
    yield b"}\n" if result else b"{}\n"
