"""The executable plan: what the compiler writes and the interpreter runs (routing-plan/1).

A plan is plain, versioned, JSON-serializable data. Every step keeps the source location it
came from, so run-time reports point back at the ``.route`` file. A plan is validated on load
without the source; a plan of another version is refused.
"""

from __future__ import annotations

import json
from typing import ClassVar, Literal

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_serializer)

from . import vocabulary as v
from .validation import not_unicode
from .criteria import REGISTRY
from .optimize.settings import FACILITIES_PER_LINE

PLAN_FORMAT = "routing-plan/1"
PLAN_VERSION = 1


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    # Fields added after plans were first written, left out when unset: a plan that does not
    # use them keeps its bytes and its hash.
    _absent_when_none: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _without_unset_additions(self, handler):
        data = handler(self)
        if self._absent_when_none and isinstance(data, dict):
            for name in self._absent_when_none:
                if data.get(name) is None:
                    data.pop(name, None)
        return data


class SourceRef(_Step):
    """Where a step came from: ``file:line:col``."""

    file: str
    line: int
    column: int

    def label(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


# The fields and sorts a plan may name: the criteria registry's.
OrderField = Literal[tuple(REGISTRY("order_filter"))]
InventoryField = Literal[tuple(REGISTRY("inventory_condition"))]
OrderSortField = Literal[tuple(REGISTRY("order_sort"))]
InventorySortField = Literal[tuple(REGISTRY("inventory_sort"))]
Operator = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null",
                   "not within"]


class OrderCondition(_Step):
    field: OrderField
    op: Operator
    ids: list[str] = []
    days: int | None = None
    count: int | None = None  # `rejections <op> count`
    source: SourceRef | None = None
    _absent_when_none: ClassVar[frozenset[str]] = frozenset({"count"})


class InventoryCondition(_Step):
    field: InventoryField
    op: Operator
    ids: list[str] = []
    number: float | None = None
    source: SourceRef | None = None


class OrderSort(_Step):
    field: OrderSortField
    descending: bool = False
    nulls_first: bool = False
    source: SourceRef | None = None


class InventorySort(_Step):
    field: InventorySortField
    descending: bool = False
    nulls_first: bool = False
    source: SourceRef | None = None


class Actions(_Step):
    move_to_queue: str | None = None
    auto_cancel_days: int | None = None
    clear_auto_cancel: bool = False


class PlanRule(_Step):
    name: str
    assign: Literal["single", "partial"]
    conditions: list[InventoryCondition] = []
    sorts: list[InventorySort] = []
    distance_unit: Literal["mi", "km"] = "mi"
    keep_item_groups_together: bool = False
    ignore_facility_order_limit: bool = False
    only_if_all_items_available: bool = False
    shipment_threshold: float | None = None
    split_cost: float | None = None
    split_cost_unit: Literal["money", "mi", "km"] = "money"
    max_facilities: int | None = None
    actions: Actions = Actions()
    # `active from ... until ...`: when it runs, as written (read in the group's time zone)
    active_from: str | None = None
    active_until: str | None = None
    source: SourceRef | None = None
    _absent_when_none: ClassVar[frozenset[str]] = frozenset(
        {"max_facilities", "active_from", "active_until"})


class PlanOptimize(_Step):
    """A routing's `optimize` block (routing_dsl.optimize.settings holds what each means)."""

    mode: Literal["report", "apply"] = "report"
    split_cost: float = 0.0
    late_cost: float = 0.0
    unfilled_penalty: float | None = None  # None: auto
    window: int = 1500
    facilities_per_line: int | None = FACILITIES_PER_LINE  # None: all
    work_limit: int = 20_000
    time_limit: float = 120.0
    source: SourceRef | None = None


class PlanRouting(_Step):
    name: str
    item_mode: bool
    filters: list[OrderCondition] = []
    sorts: list[OrderSort] = []
    rules: list[PlanRule]
    active_from: str | None = None
    active_until: str | None = None
    source: SourceRef | None = None
    optimize: PlanOptimize | None = None
    _absent_when_none: ClassVar[frozenset[str]] = frozenset(
        {"active_from", "active_until", "optimize"})


class PlanGroup(_Step):
    name: str
    product_store: str
    cron: str | None = None
    timezone: str | None = None
    paused: bool = False
    routings: list[PlanRouting]
    source: SourceRef | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        # the checker refuses an unknown zone (RT408); a plan file is held to the same rule
        if value is not None and not v.is_known_zone(value):
            raise ValueError(f"unknown time zone {value!r} (an IANA zone such as "
                             "'America/New_York')")
        return value


class Plan(_Step):
    """Only active routings and rules are in a plan; order is execution order."""

    # a plan names its format and version (the loader refuses one that does not): the
    # published schema requires them, though the model fills them in when building one
    model_config = ConfigDict(json_schema_extra=lambda schema: schema["required"].extend(
        ["format", "plan_version"]))

    format: Literal["routing-plan/1"] = PLAN_FORMAT
    plan_version: Literal[1] = PLAN_VERSION
    source: str
    # The rules' version label (the file's `version`, `--version-label` or the git commit):
    # recorded with every batch and decision, beside the plan's hash.
    version_label: str | None = Field(default=None, min_length=1, max_length=100)
    priority_order: list[str] = []
    groups: list[PlanGroup]

    @model_serializer(mode="wrap")
    def _unlabelled(self, handler):
        # a plan without a label is written as before labels existed: same bytes, same hash
        data = handler(self)
        if isinstance(data, dict) and data.get("version_label") is None:
            data.pop("version_label", None)
        return data

    def labelled(self, label: str | None) -> Plan:
        """This plan with ``label`` as its version label (itself when it has one)."""
        if self.version_label is not None or label is None:
            return self
        return self.model_copy(update={"version_label": label})

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


class PlanError(Exception):
    pass


def load_plan(text: str | bytes, name: str = "plan") -> Plan:
    """Validate a serialized plan. Raises PlanError with a clear message."""
    try:
        header = json.loads(text)
    except RecursionError:
        raise PlanError(f"{name}: JSON nested too deeply") from None
    except ValueError as error:
        raise PlanError(f"{name}: not valid JSON: {error}") from None
    if not isinstance(header, dict) or header.get("format") != PLAN_FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise PlanError(f"{name}: not a routing plan (format {found!r}, expected "
                        f"{PLAN_FORMAT!r})")
    if (where := not_unicode(header)) is not None:  # JSON's \ud800 escapes allow it
        raise PlanError(f"{name}: invalid plan at {where}: expected text, got a lone "
                        "UTF-16 surrogate")
    if header.get("plan_version") != PLAN_VERSION:
        raise PlanError(f"{name}: plan version {header.get('plan_version')!r} is not supported "
                        f"(this routing reads version {PLAN_VERSION}); recompile the .route file "
                        "with `routing compile`")
    try:
        plan = Plan.model_validate(header, strict=True)  # JSON types: "1" is not 1
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(p) for p in first["loc"])
        raise PlanError(f"{name}: invalid plan at {location}: {first['msg']}") from None
    problems = semantic_problems(plan)
    if problems:
        raise PlanError(f"{name}: invalid plan at {problems[0]}")
    return plan


def _optimize_problems(where: str, optimize: PlanOptimize, problems: list[str]) -> None:
    """Each number of an `optimize` block in its setting's range (as the checker holds it)."""
    from .optimize.settings import SETTINGS
    for name, spec in SETTINGS.items():
        value = getattr(optimize, name)
        if spec.measure is None or value is None:
            continue
        if not spec.low <= value <= spec.high:
            problems.append(f"{where}.{name}: {value!r} is out of range ({spec.low:,} to "
                            f"{spec.high:,})")


def semantic_problems(plan: Plan) -> list[str]:
    """What the checker guarantees for a compiled plan, checked again for a plan read from
    JSON: each operator fits its field, values have the kind and range the field takes."""
    problems: list[str] = []

    def condition(where: str, step, level: str) -> None:
        spec = v.field_spec(step.field, level)
        if spec is None or step.op not in spec.operators:
            ops = ", ".join(spec.operators) if spec else "none"
            problems.append(f"{where}: operator {step.op!r} does not fit {step.field!r} "
                            f"(it takes {ops})")
            return
        if step.op in ("is null", "is not null"):
            return
        if spec.value == "promise":
            if list(step.ids) != ["promise_date"]:
                problems.append(f"{where}: {step.field!r} compares with ['promise_date']")
            return
        if spec.value in v.ID_KINDS:
            if not step.ids or (step.op in ("==", "!=") and len(step.ids) != 1):
                problems.append(f"{where}: {step.op!r} on {step.field!r} needs "
                                f"{'one id' if step.op in ('==', '!=') else 'ids'}")
            return
        number = step.number if level == "inventory" else (
            step.count if spec.value == "times" else step.days)
        if number is None:
            problems.append(f"{where}: {step.field!r} needs a number")
            return
        measure(where, spec.value, number)

    def measure(where: str, kind: str, number: float, past: bool = True) -> None:
        limit = v.MEASURE_LIMITS[kind]
        # day offsets may look into the past (a promise date), unless they are a date to set
        lowest = -limit if kind == "days" and past else 1 if kind == "facilities" else 0
        if not lowest <= number <= limit:
            problems.append(f"{where}: {number!r} is out of range ({lowest:,} to {limit:,})")

    def window(where: str, step) -> None:
        from .checker import parse_moment
        bounds = [step.active_from, step.active_until]
        for name, bound in zip(("active_from", "active_until"), bounds, strict=True):
            if bound is not None and parse_moment(bound) is None:
                problems.append(f"{where}.{name}: {bound!r} is not a date and time")

    for g, group in enumerate(plan.groups):
        for r, routing in enumerate(group.routings):
            base = f"groups.{g}.routings.{r}"
            if routing.optimize is not None:
                _optimize_problems(f"{base}.optimize", routing.optimize, problems)
            window(base, routing)
            for i, step in enumerate(routing.filters):
                condition(f"{base}.filters.{i}", step, "order")
            for u, rule in enumerate(routing.rules):
                where = f"{base}.rules.{u}"
                window(where, rule)
                if rule.max_facilities is not None:
                    measure(f"{where}.max_facilities", "facilities", rule.max_facilities)
                for i, step in enumerate(rule.conditions):
                    condition(f"{where}.conditions.{i}", step, "inventory")
                if rule.shipment_threshold is not None:
                    measure(f"{where}.shipment_threshold", "money", rule.shipment_threshold)
                if rule.split_cost is not None:
                    measure(f"{where}.split_cost", "money" if rule.split_cost_unit == "money"
                            else "distance", rule.split_cost)
                if rule.actions.auto_cancel_days is not None:
                    measure(f"{where}.actions.auto_cancel_days", "days",
                            rule.actions.auto_cancel_days, past=False)
    return problems
