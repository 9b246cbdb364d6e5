"""Rules, lowered for the reference allocator: each inventory condition with its criterion
and the number it compares with (`Check`), grouped by the stage that applies it
(`PreparedRule`), and what ranking knows of a candidate when a rule starts (`Measure`).

The criteria registry (`routing_dsl.criteria`) says what each condition and sort means; this
module only arranges them the way the procedure of docs/semantics.md applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..criteria import REGISTRY
from ..criteria.groups import included
from ..plan import InventoryCondition, PlanRouting, PlanRule
from .geometry import KM_PER_MILE
from .state import FacilityInfo

class Check:
    """One inventory condition of a rule, lowered: its criterion, the operator code and the
    number it compares with (distances in km)."""

    __slots__ = ("criterion", "condition", "rule", "op", "number", "check", "_named")

    def __init__(self, criterion, condition: InventoryCondition, rule: PlanRule):
        self.criterion, self.condition, self.rule = criterion, condition, rule
        self.check = criterion.reference
        if criterion.lower is not None:
            self.op, self.number = criterion.lower(condition, rule)
        self._named: dict | None = None

    def named(self) -> dict:
        """How an explanation counts a facility that fails this condition: its text
        (``explain_text``, whatever the value) and where it is written; made once."""
        if self._named is None:
            named = {"condition": self.criterion.explain_text(self.rule, self.condition)}
            if self.condition.source is not None:
                named["source"] = self.condition.source.label()
            self._named = named
        return self._named

    def passes(self, value, item_value=0.0) -> bool:
        """Whether ``value`` (and the item's ``item_value``, at the serve stage) passes."""
        return self.check(self.op, self.number, value, item_value)


class Measure:
    """What ranking knows of a candidate when the rule starts: its distance (in the rule's
    unit, None without coordinates), the unit's net stock there, its sequence number and how
    many open items it fills in full."""

    __slots__ = ("distance", "balance", "sequence", "full")

    def __init__(self, distance, balance, sequence, full):
        self.distance, self.balance, self.sequence, self.full = distance, balance, sequence, full


@dataclass
class PreparedRule:
    """A rule with its conditions lowered by stage (criteria.STAGES) and its sorts with their
    criteria; ``needs`` is what its criteria need computed."""

    rule: PlanRule
    index: int
    include_ids: frozenset[str]
    facility_checks: list[Check]
    candidate_checks: list[Check]
    placement_checks: list[Check]
    serve_checks: list[Check]
    sorts: list[tuple]  # (criterion, sort)
    needs: frozenset[str]
    whole_lines: bool
    # what a new package adds to the shipping_cost or the distance sort
    split_money: float = 0.0
    split_distance: float = 0.0
    # the conditions after the facility stage, in the order explanations report them
    explained: list[Check] = field(default_factory=list)

    @property
    def uses_distance(self) -> bool:
        return "km" in self.needs

    @property
    def uses_zone(self) -> bool:
        return "zone" in self.needs

    @property
    def unit_factor(self) -> float:
        return 1.0 if self.rule.distance_unit == "km" else 1.0 / KM_PER_MILE

    def explained_checks(self) -> list[Check]:
        """The conditions after the facility stage, in the order explanations report them."""
        return self.explained


def prepare_rule(rule: PlanRule, index: int) -> PreparedRule:
    """``rule`` (the ``index``-th of its routing) lowered: its conditions by stage, in rank
    order, its sorts with their criteria, what they need, its split cost in its units."""
    conditions = REGISTRY("inventory_condition")
    stages: dict[str, list[Check]] = {"facility": [], "candidate": [], "placement": [],
                                       "serve": []}
    needs: set[str] = set()
    for condition in rule.conditions:
        criterion = conditions[condition.field]
        stages[criterion.stage].append(Check(criterion, condition, rule))
        needs |= criterion.needs
    for checks in stages.values():  # applied (and explained) in rank order, stably
        checks.sort(key=lambda check: check.criterion.explain_rank)
    sorts = [(REGISTRY("inventory_sort")[sort.field], sort) for sort in rule.sorts]
    for criterion, _ in sorts:
        needs |= criterion.needs
    prepared = PreparedRule(
        rule, index, included(rule), stages["facility"], stages["candidate"],
        stages["placement"], stages["serve"], sorts, frozenset(needs),
        any(check.criterion.whole_lines for check in stages["serve"]),
        explained=sorted(stages["candidate"] + stages["placement"] + stages["serve"],
                         key=lambda check: check.criterion.explain_rank))
    if rule.split_cost is not None and rule.assign == "partial":
        if rule.split_cost_unit == "money":
            prepared.split_money = rule.split_cost
        elif rule.split_cost_unit == rule.distance_unit:
            prepared.split_distance = rule.split_cost
        else:
            prepared.split_distance = rule.split_cost * KM_PER_MILE \
                if rule.split_cost_unit == "mi" else rule.split_cost / KM_PER_MILE
    return prepared


def group_reason(prepared: PreparedRule, info: FacilityInfo) -> Check | None:
    """The first facility-stage condition the facility fails, if any."""
    for check in prepared.facility_checks:
        if not check.check(check.condition, info):
            return check
    return None


def prepare_rules(routing: PlanRouting) -> list[PreparedRule]:
    """The routing's rules, lowered, in their order."""
    return [prepare_rule(rule, index) for index, rule in enumerate(routing.rules)]


def shared_rules(shared, routing: PlanRouting) -> list[PreparedRule]:
    """`prepare_rules(routing)`, lowered once for every run sharing ``shared`` (a
    `state.Prepared`: a service lowers a routing once per load, not once per decision). Kept
    by the rules themselves, not the routing: a routing with rules outside their windows is a
    new copy at every run (`units.in_force`), with the same rules (kept with their lowered
    form, so that their ids are not reused meanwhile)."""
    key = tuple(map(id, routing.rules))
    found = shared.rules.get(key)
    if found is None:
        found = shared.rules[key] = (tuple(routing.rules), prepare_rules(routing))
    return found[1]

