"""Facility groups: which facilities a rule may use (`facility_group`) and their sequence
within the groups it includes (`facility_sequence`).

Both are fixed per rule and facility, so both engines evaluate them once per rule when they
lower it (`member`, `sequence_of`): the reference keeps a set of allowed facilities, the
kernel a mask and a column of sequence numbers.
"""

from __future__ import annotations

from . import Criterion
from ._jit import jitable
from .orders import EQUALITY, MEMBERSHIP
from .text import ids_text

INCLUDES = ("==", "in")


def passes(condition, info) -> bool:
    """Whether the facility (its ``groups``) passes a `facility_group` condition: `==`/`in`
    keep members of a listed group, `!=`/`not in` facilities in none of them."""
    member = not info.groups.keys().isdisjoint(condition.ids)
    return member == (condition.op in INCLUDES)


def included(rule) -> frozenset[str]:
    """The groups a rule includes (its `==`/`in` group conditions)."""
    found: set[str] = set()
    for condition in rule.conditions:
        if condition.field == "facility_group" and condition.op in INCLUDES:
            found.update(condition.ids)
    return frozenset(found)


def sequence_of(include_ids, info) -> float | None:
    """The facility's sequence number: the smallest among the included groups it is in."""
    numbers = [info.groups[g] for g in include_ids if g in info.groups and
               info.groups[g] is not None]
    return min(numbers) if numbers else None


def _group_text(rule, condition) -> str:
    return f"facility_group {condition.op} {ids_text(condition.ids)}"


def _explain_group(ex, condition, value, item) -> tuple[str, dict]:
    return (_group_text(ex.rule, condition),
            {"facility_groups": sorted(value.groups)})


@jitable
def _sequence_key(view, r, f, n_products):
    return view.seq[r, f]


def _sequence_reference(rank, facility):
    return rank.measure.sequence


CRITERIA = [
    Criterion(
        "facility_group", "inventory_condition",
        "Facility groups: `==`/`in` keep members of a listed group, `!=`/`not in` keep "
        "facilities in none of them (facilities in no group pass).",
        value="facility_group", operators=EQUALITY + MEMBERSHIP,
        example="facility_group == WAREHOUSES", hotwax="facilityGroupId",
        samples=("facility_group == A", "facility_group in [A, B]", "facility_group != C"),
        stage="facility", reference=passes, kernel=passes, explain=_explain_group,
        explain_text=_group_text, explain_rank=0),
    Criterion(
        "facility_sequence", "inventory_sort",
        "The facility's sequence number in the facility groups the rule includes.",
        hotwax="facilitySequence", samples=("facility_sequence", "facility_sequence desc"),
        needs=frozenset({"sequence"}), reference=_sequence_reference, kernel=_sequence_key,
        explain=lambda ex, measure, facility: {"facility_sequence": measure.sequence}),
]
