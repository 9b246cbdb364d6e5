"""The checked program: what the checker hands to the compiler.

Names are resolved (constants substituted, template bodies merged into rules), values have
their types and units, and every piece keeps the span it came from. The compiler never looks
at the raw AST.
"""

from __future__ import annotations

from dataclasses import dataclass

from .source import SourceFile, Span


@dataclass(frozen=True, slots=True)
class Where:
    """A span in a named source file."""

    source: SourceFile
    span: Span

    def label(self) -> str:
        position = self.source.position(self.span.start)
        return f"{self.source.name}:{position.line}:{position.column}"


@dataclass(frozen=True, slots=True)
class CheckedCondition:
    """``field op value``; ``ids`` for id fields, ``number`` (in the field's unit) otherwise."""

    field: str
    op: str
    ids: tuple[str, ...] = ()
    number: float | None = None
    unit: str | None = None
    where: Where | None = None


@dataclass(frozen=True, slots=True)
class CheckedSortKey:
    field: str
    descending: bool
    nulls_first: bool
    where: Where | None = None


@dataclass(frozen=True, slots=True)
class CheckedRule:
    name: str
    status: str
    assign: str  # "single" | "partial"
    conditions: tuple[CheckedCondition, ...]
    sorts: tuple[CheckedSortKey, ...]
    keep_item_groups_together: bool
    ignore_facility_order_limit: bool
    only_if_all_items_available: bool
    shipment_threshold: float | None
    split_cost: float | None
    split_cost_unit: str  # "money", "mi" or "km"
    distance_unit: str | None  # None: the rule has no distance condition
    move_to_queue: str | None
    auto_cancel_days: int | None
    clear_auto_cancel: bool
    where: Where
    # where each inventory setting was written (the HotWax export keeps the file's order)
    settings_where: tuple[tuple[str, Where], ...] = ()
    max_facilities: int | None = None
    # `active from "..." until "..."` as written (None: unbounded)
    active_from: str | None = None
    active_until: str | None = None


@dataclass(frozen=True, slots=True)
class CheckedOptimize:
    """A routing's `optimize` block: each setting's value (the defaults filled in)."""

    values: tuple[tuple[str, object], ...]
    where: Where


@dataclass(frozen=True, slots=True)
class CheckedRouting:
    name: str
    status: str
    filters: tuple[CheckedCondition, ...]
    sorts: tuple[CheckedSortKey, ...]
    rules: tuple[CheckedRule, ...]
    item_mode: bool
    where: Where
    active_from: str | None = None
    active_until: str | None = None
    optimize: CheckedOptimize | None = None


@dataclass(frozen=True, slots=True)
class CheckedGroup:
    name: str
    product_store: str
    cron: str | None
    timezone: str | None
    paused: bool
    routings: tuple[CheckedRouting, ...]
    where: Where


@dataclass(frozen=True, slots=True)
class CheckedProgram:
    source: SourceFile
    groups: tuple[CheckedGroup, ...]
    priority_order: tuple[str, ...]
    version: str | None = None  # the file's `version` label
