"""Explanation: why each rule chose what it chose for a unit, and why every other facility
was not chosen, with the values compared (`routing explain`, `--explain`, the service's
explained quotes and the console's "Rules tried").

It owns the shape of an explanation and the order its reasons are checked in (group
conditions, the order limit, stock, the other conditions in their criteria's
``explain_rank`` order, `max_facilities`, `assign single`, the rule's checks, the ranking);
each condition's text and values come from its criterion's ``explain`` hook
(routing_dsl.criteria), reading what `Explaining` offers. The values are the allocator's own
(its facts and shipping figures), so an explanation cannot disagree with the decision.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..criteria.shipping import explain_package
from ..criteria.text import number
from ..plan import PlanRule
from .rules import Check, PreparedRule, group_reason
from .state import EPSILON, open_needs

if TYPE_CHECKING:
    from .allocation import ReferenceAllocator


class Explainer:
    """Explains what the reference allocator did for one unit, rule by rule: the chosen
    facilities with their sort keys, every other facility counted under the first condition
    that excluded it (`exclusion`), and full detail for the facilities asked about. What it
    computes once per (store, rule) is kept in the run's `Prepared` (``cache``)."""

    def __init__(self, allocator: ReferenceAllocator) -> None:
        self.allocator, self.run, self.ctx = allocator, allocator.run, allocator.ctx
        self.cache = self.run.prepared.explain

    def explain_rule(self, store, prepared, unit, open_items, measures, placements,
                     rejection) -> dict:
        """What one rule did for a unit: the chosen facilities with their sort keys, every
        other facility of the store counted under the first condition that excluded it (with a
        few examples), and full detail only for the facilities asked about. Facilities are
        examined in stages (group, order limit, stock, then the rest) so that the cost follows
        the facilities that hold the stock, as routing's own does, not the store's size."""
        rule = prepared.rule
        chosen = sorted({facility for _, facility, _ in placements}) if rejection is None else []
        needs = dict(sorted(open_needs(open_items).items()))  # reasons list products in order
        chosen_keys = {f: self._sort_keys(prepared, measures, f) for f in chosen}
        counts: dict[str, dict] = {}

        def note_all(facilities: list[str], reason: dict) -> None:
            """Count ``facilities`` (in order) under the reason's condition."""
            entry = counts.get(reason["condition"])
            if entry is None:
                entry = counts[reason["condition"]] = {"condition": reason["condition"],
                                                       "count": 0, "examples": []}
                if "source" in reason:
                    entry["source"] = reason["source"]
            entry["count"] += len(facilities)
            entry["examples"] += facilities[:3 - len(entry["examples"])]

        def note(facility: str, reason: dict) -> None:
            note_all([facility], reason)

        serving, failing_group, passing, limited = self._explain_facilities(store, prepared)
        # the group failures are the same for every unit: counted once per (store, rule)
        for reason, facilities in self._group_failures(store, prepared, failing_group):
            note_all(facilities, reason)
        at_limit = set()
        if not rule.ignore_facility_order_limit:
            for facility in limited:
                info = self.ctx.facilities[facility]
                if self.ctx.orders_today[facility] >= info.limit and facility not in chosen:
                    at_limit.add(facility)
                    note(facility, self._exclusion(prepared, info, unit, open_items, measures,
                                                   needs, rejection, chosen_keys, False))
        levels = [self.ctx.stock.get(p, {}) for p in needs]
        if len(passing) * len(levels) < sum(len(level) for level in levels):
            holding = {f for f in passing if _holds(levels, f)}  # fewer lookups than rows
        else:
            holding = {f for level in levels for f, q in level.items() if q > EPSILON}
        without_stock = [f for f in passing if f not in holding and f not in at_limit
                         and f not in chosen]
        if without_stock:
            note_all(without_stock, {"condition": NO_STOCK})
        # counted, not shown (the reasons' values are left out): one note per condition,
        # its facilities in id order, the conditions in the order of their first facility
        counted = [f for f in passing
                   if f in holding and f not in at_limit and f not in chosen]
        failed = self._failures(prepared, counted, unit, open_items, needs, rejection,
                                chosen_keys)
        reasons: dict = {}  # step -> its reason, without values
        by_condition: dict[str, tuple[dict, list[str]]] = {}
        for facility in counted:
            failure = failed[facility]
            reason = reasons.get(failure[0])
            if reason is None:
                reason = reasons[failure[0]] = self._shown(
                    prepared, self.ctx.facilities[facility], failure, measures, needs,
                    chosen_keys, False)
            found = by_condition.get(reason["condition"])
            if found is None:
                by_condition[reason["condition"]] = (reason, [facility])
            else:
                found[1].append(facility)
        for reason, facilities in by_condition.values():
            note_all(facilities, reason)
        outcome = "nothing"
        if rejection is None and placements:
            filled = sum(q for _, _, q in placements)
            outcome = "filled" if filled + EPSILON >= sum(i.open for i in open_items) \
                else "partly filled"
        result = {"rule": rule.name, "outcome": outcome,
                  "chosen": [{"facility": f, "sort_keys": chosen_keys[f]} for f in chosen],
                  "not_chosen": sorted(counts.values(),
                                       key=lambda e: (-e["count"], e["condition"]))}
        asked = sorted(self.run.explain_facilities.intersection(serving)) \
            if self.run.explain_facilities else ()
        if asked:
            result["facilities"] = [
                {"facility": f, "chosen": f in chosen_keys,
                 **({} if f in chosen_keys else {"excluded_by": self._exclusion(
                     prepared, self.ctx.facilities[f], unit, open_items, measures, needs,
                     rejection, chosen_keys)})}
                for f in asked]
        if rule.source:
            result["source"] = rule.source.label()
        if rejection:
            result["rejected"] = rejection
        return result

    def _group_failures(self, store: str, prepared: PreparedRule, failing: list):
        """The facilities a group condition excludes, grouped by that condition (in
        facility order), computed once per (store, rule)."""
        key = ("groups", store, id(prepared.rule))
        found = self.cache.get(key)
        if found is None:
            by_condition: dict[str, tuple[dict, list[str]]] = {}
            for facility, reason in failing:
                by_condition.setdefault(reason["condition"], (reason, []))[1].append(facility)
            found = self.cache[key] = list(by_condition.values())
        return found

    def _explain_facilities(self, store: str, prepared: PreparedRule):
        """Per (store, rule), computed once: the store's real facilities in id order, those a
        group condition excludes (with the reason), the others, and those of the others with
        an order limit."""
        key = (store, id(prepared.rule))
        found = self.cache.get(key)
        if found is None:
            serving = sorted(f.id for f in self.ctx.facilities.values()
                             if not f.virtual and store in f.stores)
            failing = []
            for facility in serving:
                info = self.ctx.facilities[facility]
                check = group_reason(prepared, info)
                if check is not None:
                    failing.append((facility, self._explained(check, info)))
            excluded = {f for f, _ in failing}
            passing = [f for f in serving if f not in excluded]
            limited = [f for f in passing if self.ctx.facilities[f].limit is not None]
            found = self.cache[key] = (serving, failing, passing, limited)
        return found

    def _sort_keys(self, prepared: PreparedRule, measures, facility: str) -> dict:
        """The values a facility was ranked by: the rule's sorts (each criterion's
        ``explain``), what one package of the unit's open items would cost from there and when
        it would arrive (when the unit has a rate card), then the items it fills in full."""
        measure = measures.get(facility) if measures else None
        if measure is None:
            return {}
        explaining = Explaining(self.allocator, prepared.rule)
        keys: dict = {}
        for criterion, _ in prepared.sorts:
            keys.update(criterion.explain(explaining, measure, facility))
        if self.allocator.shipping.card(self.allocator.unit) >= 0:
            keys.update(explain_package(explaining, facility))
        keys["items_in_full"] = measure.full
        return keys

    def _explained(self, check: Check, value, item=None, facility: str | None = None) -> dict:
        """The reason ``facility`` fails ``check`` (its criterion's ``explain``), with the
        value compared."""
        return check_reason(check, Explaining(self.allocator, check.rule, facility), value, item)

    def _exclusion(self, prepared, info, unit, open_items, measures, needs, rejection,
                   chosen_keys, detail: bool = True) -> dict:
        """The first condition that kept ``info`` from being chosen, with the values compared:
        the facility-stage conditions (groups), then the steps of `_failures`. ``needs`` is by
        product. Without ``detail`` the facility is only counted: it is known to pass the
        rule's group conditions, and the values are left out."""
        failed = group_reason(prepared, info) if detail else None
        if failed is not None:
            return self._explained(failed, info)
        failure = self._failures(prepared, [info.id], unit, open_items, needs, rejection,
                                 chosen_keys)[info.id]
        return self._shown(prepared, info, failure, measures, needs, chosen_keys, detail)

    def _failures(self, prepared, facilities: list[str], unit, open_items, needs, rejection,
                  chosen_keys) -> dict[str, tuple]:
        """Why each of ``facilities`` (each passing the rule's group conditions) was not
        chosen: the first step of the rule's procedure it fails, in this order: the order
        limit, stock, the rule's other conditions in their criteria's ``explain_rank`` order
        (with `excluded_facilities` among them), `max_facilities`, `assign single`, the rule's
        checks, and last the ranking. Each step is taken for all the facilities still left,
        so that a unit's many counted facilities cost a loop, not a call each. Facility ->
        (the step: a `Check` or a name, what it compared)."""
        rule, allocator, ctx = prepared.rule, self.allocator, self.ctx
        infos = ctx.facilities
        failed: dict[str, tuple] = {}

        def fails(facility: str, step, compared=None) -> bool:
            """Record that ``facility`` fails ``step``; False: it is not left for the next."""
            failed[facility] = (step, compared)
            return False
        left = facilities
        if not rule.ignore_facility_order_limit:
            orders_today = ctx.orders_today
            left = [f for f in left if infos[f].limit is None or orders_today[f] < infos[f].limit
                    or fails(f, "limit")]
        levels = [ctx.stock.get(p, {}) for p in needs]
        left = [f for f in left if _holds(levels, f) or fails(f, "stock")]
        excluding = [item for item in open_items if item.excluded]  # most exclude nothing
        exclusions_done = False
        for check in prepared.explained_checks():
            criterion = check.criterion
            if not exclusions_done and criterion.explain_rank > EXCLUSIONS_RANK:
                exclusions_done = True
                if excluding:
                    left = [f for f in left if _not_excluded(f, excluding, fails)]
            if criterion.stage == "candidate":
                fact, kept = criterion.fact, []
                for f in left:
                    value = allocator.candidate_fact(fact, unit, f, unit.km_to(infos[f]))
                    if check.passes(value):
                        kept.append(f)
                    else:
                        failed[f] = (check, (value,))
                left = kept
            elif criterion.stage == "placement":  # one package of the open items
                shipping, kept = allocator.shipping, []
                for f in left:
                    value = shipping.package_cost(unit, f, *shipping.weight(unit, open_items))
                    if check.passes(value):
                        kept.append(f)
                    else:
                        failed[f] = (check, (value,))
                left = kept
            else:
                kept = []
                for f in left:
                    for item in open_items:
                        available = allocator.available(f, item.product, {})
                        value, item_value = allocator.serve_facts(criterion, item, f, available)
                        if not check.passes(value, item_value):
                            failed[f] = (check, (value, item, f))
                            break
                    else:
                        kept.append(f)
                left = kept
        if excluding and not exclusions_done:
            left = [f for f in left if _not_excluded(f, excluding, fails)]
        cap = rule.max_facilities
        if cap is not None:
            shipping_from = list(self.run.used.get((unit.order.id, unit.ship_group.id), ()))
            shipping_from += [f for f in sorted(chosen_keys) if f not in shipping_from]
            if len(shipping_from) >= cap:
                left = [f for f in left if f in shipping_from or fails(f, "cap", shipping_from)]
        if rule.assign == "single":
            wanted = list(zip(levels, needs.values(), strict=True))
            left = [f for f in left if _fills(wanted, f) or fails(f, "single")]
        for f in left:
            failed[f] = ("rejected", rejection) if rejection else ("ranked", None)
        return failed

    def _shown(self, prepared, info, failure: tuple, measures, needs, chosen_keys,
               detail: bool) -> dict:
        """The reason a `_failures` entry gives, with the values compared (without
        ``detail``, those of the rule's conditions and of stock, `assign single` and the
        ranking are left out)."""
        step, compared = failure
        if isinstance(step, Check):
            return self._explained(step, *compared) if detail else step.named()
        if step == "limit":
            return limit_reason(self.ctx.orders_today[info.id], info.limit)
        stock = {p: self.ctx.stock.get(p, {}).get(info.id, 0.0) for p in needs}
        if step == "stock":
            return no_stock_reason(stock if detail else None)
        if step == "excluded":
            return excluded_reason(compared)
        if step == "cap":
            return cap_reason(prepared.rule.max_facilities, compared)
        if step == "single":
            return single_reason(needs, stock) if detail else reason_shown(SINGLE)
        if step == "rejected":
            return reason_shown(compared)
        if not detail:
            return reason_shown(RANKED)
        return ranked_reason(self._sort_keys(prepared, measures, info.id), chosen_keys)


def _holds(levels: list[dict], facility: str) -> bool:
    """Whether ``facility`` holds some of the stock of any of ``levels``."""
    for level in levels:
        if level.get(facility, 0.0) > EPSILON:
            return True
    return False


def _fills(wanted: list[tuple[dict, float]], facility: str) -> bool:
    """Whether ``facility`` holds every quantity of ``wanted`` (stock level, quantity)."""
    for level, quantity in wanted:
        if level.get(facility, 0) + EPSILON < quantity:
            return False
    return True


def _not_excluded(facility: str, excluding, fails) -> bool:
    """Whether none of the open items ``excluding`` facilities excludes ``facility`` (else
    ``fails`` records the first that does)."""
    for item in excluding:
        if facility in item.excluded:
            return fails(facility, "excluded", item.item.id)
    return True


# `excluded_facilities` is explained after the conditions of lower rank (distance, transit)
# and before those of higher rank (delivery dates, costs, safety stock).
EXCLUSIONS_RANK = 25

# The reasons an explanation gives that are not conditions' (those are their criteria's
# ``explain_text``), shared with the fast engine's explanations (engine.explained).
LIMIT = "facility order limit"
NO_STOCK = "net stock > 0"
EXCLUDED = "excluded_facilities"
SINGLE = "assign single: one facility must fill every item"
RANKED = "ranked below the chosen facilities"
ONLY_ALL = "only_if_all_items_available: some items cannot be filled"


def cap_text(cap: int) -> str:
    return f"max_facilities {cap}"


# The reasons that are not conditions', with the values compared, as both engines' explanations
# show them (engine.explained makes the fast engine's from the kernel's values)

def check_reason(check: Check, explaining, value, item=None) -> dict:
    """The reason ``check`` fails on ``value`` (and ``item``): its criterion's ``explain``
    reading ``explaining`` (what `Explaining` offers)."""
    text, values = check.criterion.explain(explaining, check.condition, value, item)
    return reason_shown(text, check.condition.source, **values)


def limit_reason(orders_today: int, limit: int) -> dict:
    return reason_shown(LIMIT, orders_today=orders_today, max_orders_per_day=limit)


def no_stock_reason(net_stock: dict[str, float] | None) -> dict:
    """No stock of the needed products (by product, in order; None: counted, not shown)."""
    if net_stock is None:
        return reason_shown(NO_STOCK)
    return reason_shown(NO_STOCK, net_stock={p: number(q) for p, q in net_stock.items()})


def excluded_reason(item: str) -> dict:
    return reason_shown(EXCLUDED, item=item)


def cap_reason(cap: int, shipping_from: list[str]) -> dict:
    return reason_shown(cap_text(cap), shipping_from=shipping_from)


def single_reason(needed: dict[str, float], net_stock: dict[str, float]) -> dict:
    """`assign single`: the quantities needed and the facility's net stock, by product."""
    return reason_shown(SINGLE, needed={p: number(q) for p, q in needed.items()},
                        net_stock={p: number(q) for p, q in net_stock.items()})


def ranked_reason(sort_keys: dict, chosen: dict) -> dict:
    """Ranked below the chosen: the facility's sort keys and the chosen facilities'."""
    return reason_shown(RANKED, sort_keys=sort_keys, chosen=chosen)


def threshold_text(threshold: float, facility: str | None, value: float) -> str:
    """Why a shipment threshold rejects a rule's placements: ``facility`` would ship too
    little (None: what stays open is worth too little)."""
    if facility is None:
        return f"shipment_threshold {threshold:.2f}: what stays open is worth {value:.2f}"
    return f"shipment_threshold {threshold:.2f}: {facility} would ship {value:.2f}"


class Explaining:
    """What a criterion's ``explain`` reads: the rule, the snapshot's time zone, and (for the
    unit being explained) one package of its open items from a facility: its cost and its
    delivery day (NaN: unknown)."""

    def __init__(self, allocator: ReferenceAllocator, rule: PlanRule,
                 facility: str | None = None):
        self.allocator, self.rule, self.zone = allocator, rule, allocator.ctx.zone
        self.facility = facility  # the facility whose failing condition is explained

    def package_cost(self, facility: str) -> float:
        """What one package of the unit's open items would cost from ``facility``."""
        unit, shipping = self.allocator.unit, self.allocator.shipping
        return shipping.package_cost(unit, facility, *shipping.weight(
            unit, [i for i in unit.items if i.open > EPSILON]))

    def delivery(self, facility: str) -> float:
        """The day (ordinal) a package from ``facility`` would arrive; NaN: unknown."""
        day = self.allocator.shipping.delivery(self.allocator.unit, facility)
        return math.nan if day is None else day


def reason_shown(condition: str, source=None, **values) -> dict:
    """A reason as an explanation shows it: the condition's text, the values compared, and
    where the condition is written (the fast engine's explanations make theirs here too:
    engine.explained)."""
    reason = {"condition": condition, "values": values}
    if source is not None:
        reason["source"] = source.label()
    return reason


