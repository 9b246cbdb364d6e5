"""The language's vocabulary: fields, their types and operators, keywords and their docs.

One table serves the checker (what is valid), the language server (completion and hover) and
the reference documentation, so they can never disagree. Fields, sorts and settings are the
criteria registry's (routing_dsl.criteria), seen without their evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .criteria import REGISTRY
from .criteria.orders import EQUALITY, MEMBERSHIP, NULLS, ORDERING

ID_KINDS = ("queue", "sales_channel", "shipment_method", "priority", "facility_group", "category",
            "tag")

RECENCY = ("not within",)  # `not rejected within 7 days`
ALL_OPERATORS = EQUALITY + ORDERING + MEMBERSHIP + NULLS + RECENCY

DISTANCE_UNITS = ("mi", "km")
DAY_UNITS = ("days", "day")

# The largest value a measure may take: beyond these a rule means nothing on this planet (a
# distance past half the equator, a delay of more than ten years) and dates would overflow.
MEASURE_LIMITS = {"distance": 20_000, "days": 3_650, "count": 1_000_000_000,
                  "money": 1_000_000_000, "transit": 3_650, "age": 3_650, "times": 1_000_000,
                  "facilities": 1_000}


def is_known_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone. Looked up in the list of zones, never opened as a
    file, so no string can reach the file system."""
    return name in _zone_names()


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    from zoneinfo import available_timezones
    return frozenset(available_timezones())


def zone_names() -> list[str]:
    return sorted(_zone_names())


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A field that a condition or a sort can name.

    ``value`` is an id kind (see ID_KINDS) or a measure: ``distance`` (number with mi/km),
    ``days`` (whole number with `days`), ``count`` (plain number), ``money`` (plain number),
    ``transit`` (whole number, `days` optional), ``promise`` (the word `promise_date`),
    ``age`` (whole number of `days`, not negative), ``times`` (whole number, not negative).
    """

    name: str
    level: str  # "order" | "inventory"
    value: str
    operators: tuple[str, ...]
    doc: str
    example: str


@dataclass(frozen=True, slots=True)
class SortSpec:
    name: str
    level: str
    nullable: bool
    doc: str


def _fields(level: str, where: str) -> dict[str, FieldSpec]:
    return {c.name: FieldSpec(c.name, where, c.value, c.operators, c.doc, c.example)
            for c in REGISTRY(level).values()}


def _sorts(level: str, where: str) -> dict[str, SortSpec]:
    return {c.name: SortSpec(c.name, where, c.nullable, c.doc) for c in REGISTRY(level).values()}


# The criteria, as the checker, the language server and the docs see them: read from the
# registry (routing_dsl.criteria), where each is declared once.
ORDER_FIELDS = _fields("order_filter", "order")
INVENTORY_FIELDS = _fields("inventory_condition", "inventory")
FLAGS = {c.name: c.doc for c in REGISTRY("setting").values()}
ORDER_SORTS = _sorts("order_sort", "order")
INVENTORY_SORTS = _sorts("inventory_sort", "inventory")

KEYWORDS = {
    "use": "Imports a module: `use std.hotwax` (stdlib) or `use \"shared.route\"` (a file). "
           "Brings its declarations, constants and templates into scope.",
    "let": "Names a constant: `let EXPRESS = [NEXT_DAY, SECOND_DAY]`, `let RADIUS = 300 mi`.",
    "declare": "Declares catalog ids of one kind: `declare facility_group WAREHOUSES \"Warehouses\"`. "
               "Kinds: " + ", ".join(ID_KINDS) + ".",
    "template": "A reusable rule body: `template closest { assign single sort by distance }`; "
                "rules use it with `extends`.",
    "group": "A routing group (HotWax brokering run): `group \"Name\" for store STORE { ... }`. "
             "Runs its active routings in order.",
    "schedule": "When the group runs: `schedule \"0 */15 * * * ?\" in \"America/New_York\"`, "
                "optionally `paused`.",
    "routing": "Selects and sorts orders, then tries its rules on each: "
               "`routing \"Name\" [draft|archived] { filter {...} sort by ... rule ... }`.",
    "filter": "Order filters of a routing; all must hold.",
    "sort": "`sort by field [asc|desc] [nulls first|last], ...`.",
    "rule": "An inventory rule: `rule \"Name\" [draft|archived] [extends T] { ... }`. Tried in "
            "order until the unit is filled or moved.",
    "extends": "Starts a rule from a template; the rule's own clauses add conditions and replace "
               "assign, sort and when unfilled.",
    "assign": "`assign single` (one facility ships everything) or `assign partial` (split "
              "across facilities, items may stay open).",
    "inventory": "Facility conditions and settings of a rule; all must hold.",
    "when": "`when unfilled { ... }`: actions for items the rule left open.",
    "unfilled": "`when unfilled { ... }`: actions for items the rule left open.",
    "next": "`next rule`: let the next rule try the open items (the default).",
    "move": "`move to queue Q`: park the open items in queue Q; later rules do not run.",
    "auto_cancel": "`auto_cancel after N days` sets the open items' auto-cancel date to now + N "
                   "days; `clear auto_cancel` clears it (clearing wins).",
    "clear": "`clear auto_cancel`: clear the open items' auto-cancel date.",
    "active": "Status: runs (the default); `active from \"...\" until \"...\"` runs only "
              "between those times.",
    "draft": "Status: kept but not run.",
    "archived": "Status: retired, not run.",
    "within": "`promise_date within N days`: promised by the end of the day N days from now; "
              "`not rejected within N days`: not rejected by the facility on the last N days.",
    "from": "`active from \"2026-11-27T00:00\"`: the routing or rule runs from then on (read "
            "in the group's time zone, against the snapshot's `now`).",
    "until": "`active until \"2026-12-01T00:00\"`: the routing or rule runs until then (not "
             "at that moment); outside its window it is skipped as if draft.",
    "in": "Membership: `field in [A, B]`.",
    "not": "`not in [A, B]`, `is not null`, `not rejected within N days`.",
    "is": "`is null`, `is not null`.",
    "asc": "Ascending (the default).",
    "desc": "Descending.",
    "nulls": "`nulls first` or `nulls last` (the default).",
    "mi": "Miles (imperial measurement system).",
    "km": "Kilometres (metric measurement system).",
    "days": "Days.",
    "version": "The rules' version label: `version \"2026-11-bf\"`. Every batch and decision "
               "these rules make records it beside the plan's hash (without it: "
               "`--version-label`, else the git commit).",
}
KEYWORDS.update(FLAGS)
KEYWORDS["optimize"] = (
    "`optimize { mode report  split_cost 4.00 ... }`: optimise the routing's batch under its "
    "rules (HiGHS) and report, or apply, what the optimum saves. Settings: "
    "docs/language.md, \"Optimisation\".")

OPERATOR_DOCS = {
    "==": "equals", "!=": "not equals (a missing value is not equal)",
    "<": "less than", "<=": "less than or equal", ">": "greater than",
    ">=": "greater than or equal", "in": "member of the list", "not in": "not in the list",
    "is null": "has no value", "is not null": "has a value",
    "not within": "not within the last N days",
}


def field_spec(name: str, level: str) -> FieldSpec | None:
    return (ORDER_FIELDS if level == "order" else INVENTORY_FIELDS).get(name)


def sort_spec(name: str, level: str) -> SortSpec | None:
    return (ORDER_SORTS if level == "order" else INVENTORY_SORTS).get(name)


# ---- the reference tables of docs/language.md, generated from this module ------------------

_VALUE_TEXT = {"distance": "number with `mi` or `km`", "days": "whole number of `days`",
               "count": "number", "money": "amount", "transit": "whole number (`days` optional)",
               "promise": "`promise_date`", "age": "whole number of `days` (0 or more)",
               "times": "whole number (0 or more)"}


# words that write an operator another way (`promise_date within 2 days` is `<= 2 days`)
_SUGAR = {name: c.extra["sugar"] for name, c in REGISTRY("order_filter").items()
          if "sugar" in c.extra}


def _field_rows(fields: dict[str, FieldSpec]) -> list[str]:
    rows = ["| field | value | operators | meaning |", "|---|---|---|---|"]
    for spec in fields.values():
        value = _VALUE_TEXT.get(spec.value, f"{spec.value.replace('_', ' ')} id")
        operators = " ".join(f"`{op}`" for op in spec.operators + _SUGAR.get(spec.name, ()))
        rows.append(f"| `{spec.name}` | {value} | {operators} | {spec.doc} |")
    return rows


def _sort_rows(sorts: dict[str, SortSpec]) -> list[str]:
    rows = ["| sort | may be missing | meaning |", "|---|---|---|"]
    for spec in sorts.values():
        rows.append(f"| `{spec.name}` | {'yes' if spec.nullable else 'no'} | {spec.doc} |")
    return rows


GENERATED_SECTIONS = {
    "order-fields": lambda: _field_rows(ORDER_FIELDS),
    "order-sorts": lambda: _sort_rows(ORDER_SORTS),
    "inventory-fields": lambda: _field_rows(INVENTORY_FIELDS),
    "inventory-settings": lambda: [f"- `{name}`: {doc}" for name, doc in FLAGS.items()],
    "inventory-sorts": lambda: _sort_rows(INVENTORY_SORTS),
    "optimize-settings": lambda: _optimize_rows(),
    "criteria-modules": lambda: _criteria_module_rows(),
}

# how docs/architecture.md names a level's criteria: one, several
_LEVEL_WORDS = {"order_filter": ("filter", "filters"), "order_sort": ("order sort", "order sorts"),
                "inventory_condition": ("condition", "conditions"),
                "inventory_sort": ("sort", "sorts"), "setting": ("setting", "settings")}


def _criteria_module_rows() -> list[str]:
    """docs/architecture.md's table of where each criterion is declared, by family module."""
    from . import criteria
    rows = ["| Module | Criteria |", "|---|---|"]
    for family in criteria.families():
        parts = []
        for level in criteria.LEVELS:
            names = [f"`{c.name}`" for c in family.CRITERIA if c.level == level]
            if names:
                parts.append(f"{_LEVEL_WORDS[level][len(names) > 1]} {', '.join(names)}")
        module = family.__name__.rsplit(".", 1)[1]
        rows.append(f"| `criteria/{module}.py` | {'; '.join(parts)} |")
    return rows


def _optimize_rows() -> list[str]:
    from .optimize.settings import SETTINGS
    rows = ["| setting | value | default | meaning |", "|---|---|---|---|"]
    for spec in SETTINGS.values():
        kinds = [f"`{w}`" for w in spec.words]
        if spec.measure is not None:
            kinds.insert(0, "whole number" if spec.whole else _VALUE_TEXT[spec.measure])
        default = "`auto`" if spec.default is None else f"`{spec.default}`"
        rows.append(f"| `{spec.name}` | {' or '.join(kinds)} | {default} | {spec.doc} |")
    return rows


def render_generated(text: str) -> str:
    """``text`` with every ``<!-- generated: NAME -->`` ... ``<!-- end -->`` section rebuilt."""
    import re

    def replace(match) -> str:
        body = "\n".join(GENERATED_SECTIONS[match.group(1)]())
        return f"<!-- generated: {match.group(1)} -->\n{body}\n<!-- end -->"
    return re.sub(r"<!-- generated: ([a-z-]+) -->.*?<!-- end -->", replace, text, flags=re.S)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    for name in sys.argv[1:]:
        path = Path(name)
        path.write_text(render_generated(path.read_text(encoding="utf-8")), encoding="utf-8")
