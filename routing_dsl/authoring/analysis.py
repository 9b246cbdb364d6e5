"""Static analysis beyond the checker: findings about what rules will do, proved from the rules
alone (no snapshot), reported as warnings with the checker's diagnostics.

- RT501: a rule that can never allocate because an earlier rule of the routing always takes
  first what it could take (the earlier rule splits freely over a superset of its facilities).
- RT502: a routing whose filter conditions no order can satisfy together.
- RT503: an active rule with no inventory condition at all: it takes any facility of the
  store.

Each finding is sound: when it is reported, it holds for every snapshot. What cannot be proved
from the rules (a rule that never fires on *this* data) is what `routing test --coverage`
shows.
"""

from __future__ import annotations

from ..checked import CheckedCondition, CheckedProgram, CheckedRule, CheckedRouting
from ..diagnostics import Diagnostic

KM_PER_MILE = 1.609344
SINGLE_VALUED = ("queue", "shipment_method", "sales_channel", "priority")
SET_VALUED = ("origin_facility_group", "product_category")  # "in" means "any of theirs"


def analyze(program: CheckedProgram) -> list[Diagnostic]:
    findings: list[Diagnostic] = []
    for group in program.groups:
        for routing in group.routings:
            if routing.status != "active":
                continue
            findings += _filters(routing)
            active = [r for r in routing.rules if r.status == "active"]
            for index, rule in enumerate(active):
                if not rule.conditions:
                    findings.append(_finding(
                        "RT503", f"rule {rule.name!r} of routing {routing.name!r} has no "
                        "inventory condition: it takes any facility of the store, wherever it "
                        "is", rule,
                        "add a facility_group or distance condition, or say so in a comment"))
                for earlier in active[:index]:
                    if _shadows(earlier, rule):
                        findings.append(_finding(
                            "RT501", f"rule {rule.name!r} of routing {routing.name!r} can never "
                            f"allocate: rule {earlier.name!r} before it splits freely over "
                            "every facility it could use, so nothing is left for it", rule,
                            f"narrow or reorder {earlier.name!r}, or remove {rule.name!r}"))
                        break
    return sorted(findings, key=Diagnostic.sort_key)


def _finding(code: str, message: str, at, hint: str) -> Diagnostic:
    return Diagnostic(code, message, at.where.source, at.where.span, hint)


# ---- RT501: shadowed rules --------------------------------------------------------------------

def _shadows(earlier: CheckedRule, later: CheckedRule) -> bool:
    """Whether ``earlier`` always leaves ``later`` nothing: it allocates partially without
    anything that could make it hold back (safety stock, thresholds, all-or-nothing, kits, a
    move, `max_facilities`, an active window, the `broken_style` sort, which skips facilities,
    a condition later does not imply, such as `not rejected within`), reaches at least the order limits
    ``later`` reaches, and every facility ``later`` admits, it admits too."""
    if earlier.assign != "partial" or earlier.shipment_threshold or \
            earlier.only_if_all_items_available or earlier.keep_item_groups_together or \
            earlier.move_to_queue:
        return False
    # a cap on facilities holds back, and a rule with an active window may not run at all
    if earlier.max_facilities is not None or earlier.active_from or earlier.active_until:
        return False
    if any(c.field == "brokering_safety_stock" for c in earlier.conditions):
        return False
    if any(key.field == "broken_style" for key in earlier.sorts):  # a filter as well
        return False
    if later.ignore_facility_order_limit and not earlier.ignore_facility_order_limit:
        return False
    return all(_implied(condition, later) for condition in earlier.conditions)


def _implied(condition: CheckedCondition, rule: CheckedRule) -> bool:
    """Whether every facility ``rule`` admits passes ``condition`` (of the earlier rule)."""
    wanted = set(condition.ids)
    if condition.field == "facility_group":
        if condition.op in ("==", "in"):  # later includes only within these groups
            return any(c.field == "facility_group" and c.op in ("==", "in")
                       and set(c.ids) <= wanted for c in rule.conditions)
        return any(c.field == "facility_group" and c.op in ("!=", "not in")
                   and set(c.ids) >= wanted for c in rule.conditions)
    if condition.field == "distance":
        limit = _km(condition)
        for c in rule.conditions:
            if c.field != "distance":
                continue
            if condition.op in ("<", "<=") and c.op in ("<", "<="):
                if _km(c) < limit or (_km(c) == limit and (condition.op == "<=" or c.op == "<")):
                    return True
            if condition.op in (">", ">=") and c.op in (">", ">="):
                if _km(c) > limit or (_km(c) == limit and (condition.op == ">=" or c.op == ">")):
                    return True
        return False
    return False


def _km(condition: CheckedCondition) -> float:
    return condition.number * (KM_PER_MILE if condition.unit == "mi" else 1.0)


# ---- RT502: filters no order can match --------------------------------------------------------

def _filters(routing: CheckedRouting) -> list[Diagnostic]:
    by_field: dict[str, list[CheckedCondition]] = {}
    for condition in routing.filters:
        by_field.setdefault(condition.field, []).append(condition)
    findings = []
    for field_name, conditions in by_field.items():
        reason = None
        if field_name in SINGLE_VALUED:
            reason = _single_valued(conditions)
        elif field_name in SET_VALUED:
            reason = _set_valued(conditions)
        elif field_name == "promise_date":
            reason = _promise_dates(conditions)
        if reason:
            findings.append(Diagnostic(
                "RT502", f"routing {routing.name!r} takes no order: its {field_name} "
                f"conditions {reason}", conditions[-1].where.source, conditions[-1].where.span,
                "remove or correct one of the conditions"))
    return findings


def _single_valued(conditions: list[CheckedCondition]) -> str | None:
    allowed: set[str] | None = None
    excluded: set[str] = set()
    null = not_null = False
    for c in conditions:
        if c.op in ("==", "in"):
            allowed = set(c.ids) if allowed is None else allowed & set(c.ids)
            not_null = True
        elif c.op in ("!=", "not in"):
            excluded |= set(c.ids)
        elif c.op == "is null":
            null = True
        elif c.op == "is not null":
            not_null = True
    if null and not_null:
        return "ask for a value and for none"
    if allowed is not None and not allowed - excluded:
        return "leave no value an order could have"
    return None


def _set_valued(conditions: list[CheckedCondition]) -> str | None:
    includes = [set(c.ids) for c in conditions if c.op in ("==", "in")]
    excluded = set().union(*[set(c.ids) for c in conditions if c.op in ("!=", "not in")])
    if any(include <= excluded for include in includes):
        return "require one of the values they also exclude"
    if any(c.op == "is null" for c in conditions) and (includes or any(
            c.op == "is not null" for c in conditions)):
        return "ask for a value and for none"
    return None


def _promise_dates(conditions: list[CheckedCondition]) -> str | None:
    if any(c.op == "is null" for c in conditions) and any(c.op != "is null"
                                                          for c in conditions):
        return "ask for a promised date and for none"
    upper = lower = None  # (days, closed)
    for c in conditions:
        if c.number is None:
            continue
        days = c.number
        if c.op in ("<", "<="):
            bound = (days, c.op == "<=")
            upper = bound if upper is None or bound < upper else upper
        elif c.op in (">", ">="):
            bound = (days, c.op == ">=")
            if lower is None or (bound[0], not bound[1]) > (lower[0], not lower[1]):
                lower = bound
    if upper is None or lower is None:
        return None
    if lower[0] > upper[0] or (lower[0] == upper[0] and not (lower[1] and upper[1])):
        return "leave no promised date between them"
    return None
