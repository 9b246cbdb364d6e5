"""The order's lifecycle: facilities that rejected an item (`not rejected within N days`, the
`rejections` filter), order tags (`tags`) and how many facilities a unit may ship from
(`max_facilities`).

A rejection is on the item in the snapshot (`rejections: [{facility, at, reason}]`). The fact
`not rejected within` compares is, per item and facility, how many days before today (the
snapshot's `now`, in its time zone) the facility last rejected the item: 0 today, 1 yesterday,
negative for a rejection dated after today, NaN when it never did. Calendar days, so "within
7 days" reaches back to the midnight starting the day seven days before today.

`max_facilities` is a rule setting the allocation procedure of both engines reads (see
docs/semantics.md): it counts the facilities earlier rules of the run chose for the unit's
ship group.
"""

from __future__ import annotations

import math

from . import Criterion
from ._jit import jitable
from .orders import COMPARE_OPS, EQUALITY, MEMBERSHIP, NULLS, ORDERING, describe


@jitable
def not_refused_within(op, days, since, item_value):
    """A facility passes `not rejected within N days` (``days``) for an item unless it last
    rejected it ``since`` days before today with ``since`` at most N (a rejection dated
    after today counts too); one that never did (NaN) passes."""
    return since != since or since > days


@jitable
def days_since_refusal(today, ptr, facilities, days, i, f):
    """The fact above from the items' rejections as columns: item ``i``'s are rows
    ptr[i]:ptr[i + 1] of ``facilities`` and ``days`` (local day ordinals)."""
    latest = -1
    for k in range(ptr[i], ptr[i + 1]):
        if facilities[k] == f and days[k] > latest:
            latest = days[k]
    return math.nan if latest < 0 else float(today - latest)


def _lower(condition, rule) -> tuple[int, float]:
    return 0, condition.number


def _refused_text(rule, condition) -> str:
    return f"not rejected within {int(condition.number)} days"


def _explain_refused(ex, condition, since, item) -> tuple[str, dict]:
    rejection = item.rejected[ex.facility][1]
    day = rejection.at.astimezone(ex.zone).date().isoformat()
    return (_refused_text(ex.rule, condition),
            {"item": item.item.id,
             "rejected": f"rejected {day}" + (f", {rejection.reason}" if rejection.reason
                                              else "")})


def _rejections_predicate(condition, ctx):
    # a ship group counts its most rejected item (an item unit, its own)
    compare, count = COMPARE_OPS.get(condition.op) or _EQUAL[condition.op], condition.count or 0
    return lambda u: compare(max(len(i.item.rejections) for i in u.items), count)


_EQUAL = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def _describe_count(condition) -> str:
    return f"{condition.field} {condition.op} {condition.count}"


def _tags_predicate(condition, ctx):
    wanted, op = frozenset(condition.ids), condition.op
    if op == "in":
        return lambda u: not wanted.isdisjoint(u.order.tags)
    if op == "not in":
        return lambda u: wanted.isdisjoint(u.order.tags)
    if op == "is null":
        return lambda u: not u.order.tags
    return lambda u: bool(u.order.tags)


CRITERIA = [
    Criterion(
        "rejections", "order_filter",
        "How many times facilities rejected the item (its `rejections` in the snapshot, "
        "however old); a ship group counts its most rejected item. `rejections >= 3` picks "
        "the items that need a person.", value="times", operators=EQUALITY + ORDERING,
        example="rejections >= 3", samples=("rejections >= 1", "rejections < 2"),
        predicate=_rejections_predicate, describe=_describe_count,
        extra={"reads_rejections": True, "hotwax_note": "HotWax has no `rejections` filter: its brokering query does "
                              "not count an item's rejections (park repeat rejections with a "
                              "queue filter instead)"}),
    Criterion(
        "tags", "order_filter",
        "The order's tags: `in` matches an order with any of the listed tags, `not in` one "
        "with none of them, `is null` one without tags.", value="tag",
        operators=MEMBERSHIP + NULLS, example="tags in [VIP, GIFT]",
        samples=("tags in [VIP]", "tags not in [VIP, GIFT]", "tags is null"),
        predicate=_tags_predicate, describe=describe,
        extra={"hotwax_note": "HotWax has no `tags` filter: order tags are shown in its UI, "
                              "but its brokering query (EligibleOrdersQuery) does not read "
                              "them"}),
    Criterion(
        "rejected", "inventory_condition",
        "`not rejected within N days`: a facility that rejected the item being placed on one "
        "of the last N days (today, in the snapshot's time zone, and the N days before it: a "
        "rejection at or after midnight starting the day `now - N days`, or dated later) "
        "never ships it; `within 0 days` means today. Under `assign single` or with "
        "`keep_item_groups_together`, a facility that rejected any item placed together "
        "fails them all.", value="age", operators=("not within",),
        example="not rejected within 7 days",
        samples=("not rejected within 7 days", "not rejected within 1 days",
                 "not rejected within 0 days"),
        stage="serve", fact="refused", item_fact="open", reference=not_refused_within,
        kernel=not_refused_within, lower=_lower, explain=_explain_refused,
        explain_text=_refused_text, explain_rank=26,
        extra={"reads_rejections": True, "hotwax_note": "HotWax has no `rejected` condition: it keeps a rejecting "
                              "facility from an item for the duration given when the item is "
                              "rejected (EXCLUDED_ORDER_FACILITY, "
                              "excludeOrderFacilityDuration), not per rule"}),
    Criterion(
        "max_facilities", "setting",
        "The unit ships from at most N facilities in all: those earlier rules of the run "
        "already chose for its ship group count, and once N are in use only they may take "
        "more; what cannot be placed within N stays open for the next rule. Example: "
        "`max_facilities 2`.", value="facilities",
        samples=("max_facilities 1", "max_facilities 2"), plan_field="max_facilities",
        extra={"hotwax_note": "HotWax has no `max_facilities` setting: it does not cap the "
                              "facilities an order ships from"}),
]
