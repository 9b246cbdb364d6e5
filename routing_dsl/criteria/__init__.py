"""The criteria registry: every order filter, order sort, inventory condition, inventory sort
and rule setting of the language, each declared once.

It owns what a criterion is and does: its name and level, the value it takes and its
operators, its documentation and the text an explanation prints, how each engine evaluates it
and how it is lowered into the engines' IR (`routing_dsl.engine.ir`). One module per family:

- `groups`: facility groups (the `facility_group` condition, the `facility_sequence` sort);
- `distance`: the `distance` condition and sort;
- `stock`: `brokering_safety_stock` and the `inventory_balance` sort;
- `shipping`: shipping cost, transit days and delivery dates;
- `velocity`: `sales_velocity` and `broken_style`;
- `orders`: the order filters and order sorts of a routing;
- `lifecycle`: rejections (`not rejected within`, the `rejections` filter), order tags and
  `max_facilities`;
- `settings`: the rule settings (flags and amounts).

Everything else reads these tables: the vocabulary (and through it the checker, the language
server's completion and hover, the reference tables of docs/language.md), the HotWax map, the
fuzz generators, both engines and the explainer. Dispatch is by table, never by a chain whose
last branch takes whatever is left: a criterion of an unknown level, or without a hook its
level requires, stops the import (`RegistryError`).

A criterion's evaluation is plain Python in the numba-compatible subset, marked `@jitable`:
the reference engine calls it as it is, and the compiled kernel compiles in the very same function
(`routing_dsl.engine.jit` registers them with numba when the kernel is imported; nothing here
imports numba, so `routing check` stays light).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# the evaluation functions both engines share (`@jitable`), which engine.jit compiles
from . import _jit as shared  # noqa: F401

# The levels, in the order the language documents them.
LEVELS = ("order_filter", "order_sort", "inventory_condition", "inventory_sort", "setting")

# The hooks each level must provide (an engine calls them for every criterion of the level).
REQUIRED: dict[str, tuple[str, ...]] = {
    # reference: predicate(condition, ctx) -> (unit -> bool); fast: the same predicate, or
    # mask(condition, ctx, heads, sgs) -> bool array over the units when it has columns
    "order_filter": ("predicate", "describe"),
    # value(unit, ctx, ranks) -> float | None; column(ctx, units, ranks) -> float array (NaN)
    "order_sort": ("value", "column"),
    # stage: where the engines apply it (STAGES). At the facility stage, reference and kernel
    # are check(condition, facility info) -> bool, applied when a rule is lowered; at the
    # others, check(op, number, value, item_value) -> bool over the ``fact`` (and at the
    # serve stage the ``item_fact``), with ``lower(condition, rule)`` giving the number it
    # compares with; explain(explainer, condition, value, item) -> (text, values), the text
    # being explain_text(rule, condition): how an explanation names the condition, whatever
    # the values (what the fast engine's explanations count facilities under)
    "inventory_condition": ("stage", "reference", "kernel", "explain", "explain_text"),
    # reference(rank, facility) -> float | None; kernel(view, r, f, n_products) -> float
    # (NaN: missing); explain(explainer, measures, facility) -> dict of shown keys
    "inventory_sort": ("reference", "kernel", "explain"),
    "setting": ("plan_field",),
}

# Where an inventory condition is applied, in the order the procedure applies (and an
# explanation reports) them: facility (fixed per rule and facility), candidate (per unit and
# facility, before ranking), placement (per facility for the items being placed, while
# ranking), serve (per item and facility, while allocating).
STAGES = ("facility", "candidate", "placement", "serve")

# What a criterion needs the engines to compute: "km" (each facility's distance to the
# ship-to address), "zone" (its zone under the unit's rate card), "placement" (per facility,
# for the items being placed: whether it opens a new package, the package's delivery day),
# "costs" (with the package's cost and what placing adds to it), "balance" (the unit's net
# stock there, when the rule starts), "sequence" (its sequence number in the rule's groups:
# criteria.groups.sequence_of).
NEEDS = ("km", "zone", "placement", "costs", "balance", "sequence")


# The facts an inventory condition compares, by stage (each engine computes them: the
# reference in runtime, the kernel in engine.kernel), and the item facts of the serve stage.
FACTS = {"facility": (), "candidate": ("km", "transit"), "placement": ("package_cost",),
         "serve": ("delivery", "available", "refused")}
ITEM_FACTS = ("promised", "open")


class RegistryError(Exception):
    """A criterion that cannot be dispatched: unknown level, missing hook, duplicate name."""


@dataclass(frozen=True)
class Criterion:
    """One criterion of the language. ``value`` is an id kind (vocabulary.ID_KINDS) or a
    measure (`distance`, `days`, `count`, `money`, `transit`, `promise`), empty for sorts and
    flags; ``nullable`` says whether a sort's value may be missing (it sorts last unless
    `nulls first`). ``hotwax`` is HotWax's name for it, when HotWax has it; ``samples`` are
    source texts the fuzz generators write; ``needs`` what the engines compute for it;
    ``explain_rank`` orders an explanation's reasons among the conditions of one stage."""

    name: str
    level: str
    doc: str
    value: str = ""
    operators: tuple[str, ...] = ()
    example: str = ""
    nullable: bool = False
    hotwax: str | None = None
    samples: tuple[str, ...] = ()
    needs: frozenset[str] = frozenset()
    stage: str | None = None
    excludes_missing: bool = False  # a sort that drops facilities without a value
    whole_lines: bool = False  # a condition under which a line goes whole to one facility
    fact: str | None = None
    item_fact: str | None = None
    explain_rank: int = 0
    predicate: Callable | None = None
    describe: Callable | None = None
    mask: Callable | None = None
    value_of: Callable | None = None
    column: Callable | None = None
    reference: Callable | None = None
    kernel: Callable | None = None
    explain: Callable | None = None
    explain_text: Callable | None = None
    lower: Callable | None = None
    plan_field: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def hook(self, name: str):
        return self.value_of if name == "value" else getattr(self, name)


def _check(criterion: Criterion) -> None:
    where = f"criterion {criterion.name!r} ({criterion.level})"
    if criterion.level not in REQUIRED:
        raise RegistryError(f"{where}: unknown level (known: {', '.join(LEVELS)})")
    missing = [h for h in REQUIRED[criterion.level] if criterion.hook(h) is None]
    if missing:
        raise RegistryError(f"{where}: no {', '.join(missing)}")
    if criterion.stage is not None and criterion.stage not in STAGES:
        raise RegistryError(f"{where}: unknown stage {criterion.stage!r}")
    unknown = set(criterion.needs) - set(NEEDS)
    if unknown:
        raise RegistryError(f"{where}: unknown needs {sorted(unknown)}")
    if criterion.level == "inventory_condition" and criterion.stage != "facility":
        if criterion.fact not in FACTS[criterion.stage]:
            raise RegistryError(f"{where}: the {criterion.stage} stage has no fact "
                                f"{criterion.fact!r} (it has {', '.join(FACTS[criterion.stage])})")
        if (criterion.item_fact is not None) != (criterion.stage == "serve") or \
                criterion.item_fact not in (None, *ITEM_FACTS):
            raise RegistryError(f"{where}: item fact {criterion.item_fact!r} does not fit")


class Registry:
    """The criteria by level and name, in declaration order; ``code`` is a criterion's index
    in its level (what the kernel dispatches on)."""

    def __init__(self, criteria: list[Criterion]):
        self.levels: dict[str, dict[str, Criterion]] = {level: {} for level in LEVELS}
        for criterion in criteria:
            _check(criterion)
            table = self.levels[criterion.level]
            if criterion.name in table:
                raise RegistryError(f"criterion {criterion.name!r} ({criterion.level}) is "
                                    "declared twice")
            table[criterion.name] = criterion

    def __call__(self, level: str) -> dict[str, Criterion]:
        return self.levels[level]

    def get(self, level: str, name: str) -> Criterion | None:
        return self.levels[level].get(name)

    def code(self, level: str, name: str) -> int:
        return list(self.levels[level]).index(name)

    def all(self) -> list[Criterion]:
        return [c for level in LEVELS for c in self.levels[level].values()]


def families() -> tuple:
    """The family modules, in the registry's order (docs/architecture.md lists them)."""
    from . import distance, groups, lifecycle, orders, settings, shipping, stock, velocity
    return orders, groups, distance, stock, shipping, velocity, settings, lifecycle


def _load() -> Registry:
    found: list[Criterion] = []
    for family in families():
        found += family.CRITERIA
    return Registry(found)


REGISTRY = _load()
