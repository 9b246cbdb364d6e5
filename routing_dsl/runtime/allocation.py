"""Allocation: the reference allocator, which routes a routing's units through its rules.

It owns the procedure of docs/semantics.md from the units on: per rule, the candidates
(facility-stage and candidate-stage conditions, order limits, stock), their ranking (the
rule's sorts, each criterion's ``reference`` hook, with what ranking reads of a candidate in
`Rank`), `assign single` or `partial` placement with the serve-stage conditions, the rule's
checks (`only_if_all_items_available`, `shipment_threshold`), the commit (stock, counts, new
ship groups, the packages' costs and dates) and the `when unfilled` actions. It also answers
what batch optimisation asks of a rule (`admitted`); the shipping facts it ranks and prices
by are `runtime.packages`.

The fast engine (routing_dsl.engine.fast) implements the same protocol with a compiled loop;
the differential tests hold the two to the same bytes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import timedelta
from typing import TYPE_CHECKING, NamedTuple

from ..criteria import FACTS, ITEM_FACTS, RegistryError
from ..criteria.groups import sequence_of
from ..criteria.text import number
from ..plan import PlanRouting, PlanRule
from .explanation import ONLY_ALL, Explainer, threshold_text
from .geometry import KM_PER_MILE
from .packages import ShippingFacts
from .rules import Measure, PreparedRule, group_reason, shared_rules
from .state import EPSILON, FacilityInfo, ItemState, Unit, open_needs
from .units import select_units

if TYPE_CHECKING:
    from .run import Run


class Rank:
    """What an inventory sort reads of one candidate while a step's items are ranked
    (criteria, ``reference`` hooks): its measure, whether placing here opens a new package,
    what it adds to the package's cost (NaN: unknown), the placed products (in id order)."""

    __slots__ = ("allocator", "ctx", "unit", "products", "split_distance", "split_money", "measure",
                 "new_package", "added")

    def __init__(self, allocator, prepared: PreparedRule, products: list[str]):
        self.allocator, self.ctx, self.unit = allocator, allocator.ctx, allocator.unit
        self.products = products
        self.split_distance, self.split_money = prepared.split_distance, prepared.split_money
        self.measure, self.new_package, self.added = None, False, math.nan

    def delivery(self, facility: str) -> float:
        """The day (ordinal) a package from ``facility`` would arrive; NaN: unknown."""
        day = self.allocator.shipping.delivery(self.unit, facility)
        return math.nan if day is None else day

    def available(self, facility: str, product: str) -> float:
        """Net stock of ``product`` left at ``facility``."""
        return self.allocator.available(facility, product, {})


class SavedState(NamedTuple):
    """The reference allocator's state saved (`ReferenceAllocator.save`)."""

    stock: dict[str, dict[str, float]]
    orders_today: dict[str, int]
    items: list[tuple]
    units: list[tuple]


class ReferenceAllocator:
    """The reference engine's allocator (`runtime.protocol.Allocator`): the procedure of
    docs/semantics.md, unit by unit and rule by rule, in plain Python over the run's context.
    It writes what it decides into its run's records (allocations, unfillable items,
    explanations, totals, warnings) and takes stock and daily counts from the context."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.ctx = run.ctx
        self.shipping = ShippingFacts(run.ctx)
        self.unit: Unit | None = None  # the unit being routed (or asked about)
        self._packages: dict[str, list[float]] = {}  # facility -> weight, volume placed
        self.explainer = Explainer(self)

    # ---- the protocol ----
    def select_units(self, store: str, routing: PlanRouting) -> list[Unit]:
        """The routing's units, eligible, filtered and sorted (runtime.units)."""
        return select_units(self.ctx, store, routing, self.run.plan.priority_order)

    def count_items(self, units: list[Unit]) -> int:
        """How many items ``units`` hold."""
        return sum(len(u.items) for u in units)

    def route_units(self, group_name: str, store: str, routing: PlanRouting,
                    units: list[Unit], progress, fixed: dict | None = None) -> int:
        """Route the sorted, eligible units through the routing's rules; returns how many
        items got stock. With ``fixed`` (unit index -> rule index -> placements), each rule
        commits the placements given for it instead of choosing (an optimised batch, see
        routing_dsl.optimize.run); everything else, actions included, is the same."""
        rules = shared_rules(self.run.prepared, routing)
        brokered: set[int] = set()
        for index, unit in enumerate(units):
            self._unit(group_name, store, routing, rules, unit, brokered,
                       None if fixed is None else fixed.get(index, {}))
            if progress is not None:
                progress(1)
        return len(brokered)

    # ---- what an optimised routing asks (routing_dsl.optimize.run) ----
    def save(self, units: list[Unit]) -> SavedState:
        """The state routing ``units`` may change (`Run.checkpoint`): their products' stock,
        the daily counts, their items and packages."""
        ctx = self.ctx
        products = {i.product for u in units for i in u.items}
        return SavedState(
            {p: dict(ctx.stock[p]) for p in products if p in ctx.stock}, dict(ctx.orders_today),
            [(i, i.open, i.queue, i.auto_cancel, i.last_action, i.last_rule)
             for u in units for i in u.items],
            [(u, u.packages) for u in units])

    def restore(self, saved: SavedState) -> None:
        """Put back what `save` saved."""
        for product, level in saved.stock.items():
            self.ctx.stock[product] = dict(level)
        self.ctx.orders_today = dict(saved.orders_today)
        for item, *state in saved.items:
            item.open, item.queue, item.auto_cancel, item.last_action, item.last_rule = state
        for unit, packages in saved.units:
            unit.packages = packages

    def orders_of(self, units: list[Unit]) -> set[str]:
        """The ids of the orders of ``units``."""
        return {u.order.id for u in units}

    def admitting(self, store: str, routing: PlanRouting,
                  units: list[Unit]) -> tuple[Run, list[Unit]]:
        """The run and units `optimize.candidates.collect` asks what ``routing``'s rules
        admit (`admitted`): the run's own."""
        return self.run, units

    # ---- one unit through the rules ----
    def _unit(self, group_name: str, store: str, routing: PlanRouting,
              rules: list[PreparedRule], unit: Unit, brokered: set[int],
              fixed: dict | None = None) -> None:
        run = self.run
        explaining = run.explain and (run.explain_orders is None
                                      or unit.order.id in run.explain_orders)
        trace = [] if explaining else None
        self.unit = unit
        for prepared in rules:
            open_items = [i for i in unit.items if i.open > EPSILON]
            if not open_items:
                break
            for item in open_items:
                item.last_rule = prepared.rule.name
            moved = self._rule(group_name, store, routing, prepared, unit, open_items, brokered,
                               trace, None if fixed is None else fixed.get(prepared.index, ()))
            if moved:
                break
        for item in unit.items:
            if item.open > EPSILON:
                self.run.unfillable.append({
                    "order": unit.order.id, "ship_group": unit.ship_group.id,
                    "item": item.item.id, "product": item.product,
                    "quantity": number(item.open), "routing": routing.name,
                    "rule": item.last_rule, "action": item.last_action or "left",
                    "queue": item.queue,
                    "auto_cancel_date": item.auto_cancel.isoformat() if item.auto_cancel else None,
                })
            item.last_action = None
            item.last_rule = None
        if trace is not None:
            entry = {"order": unit.order.id, "ship_group": unit.ship_group.id,
                     "routing": routing.name, "rules": trace}
            if routing.item_mode:
                entry["item"] = unit.items[0].item.id
            self.run.explanations.append(entry)

    def _candidates(self, store: str, prepared: PreparedRule, unit: Unit,
                    open_items: list[ItemState]) -> dict[str, float | None]:
        """Facilities that pass every facility-level condition and hold some stock the unit
        needs, with their distance in the rule's unit (None without coordinates)."""
        static = self.run.prepared.static.get((store, id(prepared.rule)))
        if static is None:
            static = self.run.prepared.static[(store, id(prepared.rule))] = frozenset(
                info.id for info in self.ctx.facilities.values()
                if not info.virtual and store in info.stores
                and group_reason(prepared, info) is None)
        stock = self.ctx.stock
        if prepared.rule.assign == "single":
            # only a facility holding every product in full can take a single unit;
            # start from the product stocked in the fewest places
            needs = open_needs(open_items)
            holders: set[str] | None = None
            for product, need in sorted(needs.items(), key=lambda pn: len(stock.get(pn[0], ()))):
                level = stock.get(product, {})
                if holders is None:  # from the rule's facilities or the stock, the fewer
                    holders = {f for f, q in level.items() if q + EPSILON >= need
                               and f in static} if len(level) <= len(static) else {
                        f for f in static if level.get(f, -math.inf) + EPSILON >= need}
                else:
                    holders = {f for f in holders if level.get(f, 0.0) + EPSILON >= need}
                if not holders:
                    break
            holders = holders or set()
        else:
            holders = set()
            for item in open_items:
                level = stock.get(item.product, {})
                if len(level) <= len(static):
                    holders.update(f for f, q in level.items() if q > EPSILON and f in static)
                else:
                    holders.update(f for f in static if level.get(f, 0.0) > EPSILON)
        check_limit = not prepared.rule.ignore_facility_order_limit
        uses_distance, checks = prepared.uses_distance, prepared.candidate_checks
        factor = prepared.unit_factor
        facilities, orders_today = self.ctx.facilities, self.ctx.orders_today
        result: dict[str, float | None] = {}
        # holders' order does not matter: ranking ends with the facility id
        for facility_id in holders:
            info = facilities[facility_id]
            if check_limit and info.limit is not None and orders_today[facility_id] >= info.limit:
                continue
            distance = unit.km_to(info) if uses_distance else None
            if uses_distance and distance is None:
                self._missing_coordinates(info, unit)
            for check in checks:
                if not check.passes(self.candidate_fact(check.criterion.fact, unit, facility_id,
                                                        distance)):
                    break
            else:
                result[facility_id] = None if distance is None else distance * factor
        return result

    def candidate_fact(self, fact: str, unit: Unit, facility: str,
                       distance: float | None) -> float:
        """A candidate-stage fact (criteria.FACTS) of ``facility`` for the unit: its
        distance in km, its transit days; NaN when unknown."""
        if fact == "km":
            return math.nan if distance is None else distance
        transit = self.shipping.transit(unit, facility)
        return math.nan if transit is None else transit

    def _missing_coordinates(self, info: FacilityInfo, unit: Unit) -> None:
        if info.lat is None or info.lon is None:
            self.run.warn_facility(info.id)
        ship_to = unit.ship_group.ship_to
        if ship_to is None or ship_to.lat is None or ship_to.lon is None:
            self.run.warn_ship_to(unit.order.id, unit.ship_group.id)

    def available(self, facility: str, product: str, pending: dict) -> float:
        """Net stock of ``product`` left at ``facility``, less what is ``pending`` there in
        the rule being placed ((facility, product) -> quantity)."""
        return self.ctx.stock.get(product, {}).get(facility, 0.0) - pending.get(
            (facility, product), 0.0)

    def _can_serve(self, prepared: PreparedRule, item: ItemState, facility: str,
                   pending: dict, need: float | None = None) -> bool:
        """Whether ``facility`` may give stock for ``item`` (all of ``need`` if given)."""
        if facility in item.excluded:
            return False
        available = self.available(facility, item.product, pending)
        if available <= EPSILON:
            return False
        for check in prepared.serve_checks:
            if not check.passes(*self.serve_facts(check.criterion, item, facility, available)):
                return False
        return need is None or available + EPSILON >= need

    def serve_facts(self, criterion, item: ItemState, facility: str,
                    available: float) -> tuple[float, float]:
        """A serve-stage fact of ``facility`` and the item fact it is compared with
        (criteria.FACTS, ITEM_FACTS; dispatched by SERVE_FACTS and ITEM_FACT_VALUES)."""
        value = SERVE_FACTS[criterion.fact](self, item, facility, available)
        return value, ITEM_FACT_VALUES[criterion.item_fact](self, item)

    def _fact_available(self, item: ItemState, facility: str, available: float) -> float:
        return available  # its net stock left

    def _fact_refused(self, item: ItemState, facility: str, available: float) -> float:
        # how many days before today the facility last rejected the item (NaN: never)
        latest = item.rejected.get(facility)
        return math.nan if latest is None else float(
            self.ctx.now.date().toordinal()
            - latest[1].at.astimezone(self.ctx.zone).date().toordinal())

    def _fact_delivery(self, item: ItemState, facility: str, available: float) -> float:
        delivery = self.shipping.delivery(self.unit, facility)  # its delivery day (NaN: none)
        return math.nan if delivery is None else delivery

    def _item_open(self, item: ItemState) -> float:
        return item.open

    def _item_promised(self, item: ItemState) -> float:
        return self.ctx.rates.promised(item.item.promised_date)

    def _measure(self, prepared: PreparedRule, candidates: dict[str, float | None],
                 open_items: list[ItemState]) -> dict[str, Measure]:
        """Sort values of each candidate that do not depend on what is placed, measured once
        when the rule starts (Measure)."""
        stock = self.ctx.stock
        balance = dict.fromkeys(candidates, 0.0)
        if "balance" in prepared.needs:
            for product in dict.fromkeys(i.product for i in open_items):
                for facility, quantity in stock.get(product, {}).items():
                    if facility in balance and quantity > 0:
                        balance[facility] += quantity
        if prepared.rule.assign == "single":
            full = dict.fromkeys(candidates, len(open_items))  # every candidate fills all
        else:
            full = dict.fromkeys(candidates, 0)
            for item in open_items:
                need, excluded = item.open, item.excluded
                for facility, quantity in stock.get(item.product, {}).items():
                    if facility not in full or quantity + EPSILON < need:
                        continue
                    if not prepared.serve_checks and facility not in excluded or \
                            self._can_serve(prepared, item, facility, {}, need):
                        full[facility] += 1
        measures = {}
        sequences = "sequence" in prepared.needs
        for facility in candidates:
            sequence = sequence_of(prepared.include_ids, self.ctx.facilities[facility]) \
                if sequences else None
            measures[facility] = Measure(candidates[facility], balance[facility], sequence,
                                          full[facility])
        return measures

    def _ranking(self, prepared: PreparedRule, measures: dict[str, Measure],
                 placed: list[ItemState]) -> list[str]:
        """Candidate facilities in rank order for placing ``placed``: the rule's sorts, then
        more items in full, then (one item placed) its availability there, then facility id.
        With costs, a facility whose package after placing fails a placement condition (the
        rule's `shipping_cost` limits) is left out; so is one a sort with ``excludes_missing``
        (broken_style) has no value for."""
        placed_products = sorted({i.product for i in placed})
        levels = [self.ctx.stock.get(p, {}) for p in placed_products]
        single_item = placed[0] if len(placed) == 1 else None
        keys = {}
        if len(levels) == 1:  # only facilities that hold the placed product
            holding = [f for f, q in levels[0].items() if q > EPSILON and f in measures]
        else:
            holding = [f for f in measures if _holds_each(levels, f)]
        costs = "costs" in prepared.needs
        packages = self._packages
        opened = len(packages) + self.unit.packages  # packages the unit has so far
        if costs:
            weight, volume = self.shipping.weight(self.unit, placed)
        rank = Rank(self, prepared, placed_products)
        for facility in holding:
            measure = measures[facility]
            rank.measure = measure
            rank.new_package = opened > 0 and facility not in packages
            if costs:
                # the package there after placing: its cost must pass the rule's limits, and
                # the shipping_cost sort ranks by what placing adds
                before = packages.get(facility)
                total = self.shipping.package_cost(self.unit, facility,
                                           (before[0] if before else 0.0) + weight,
                                           (before[1] if before else 0.0) + volume)
                if not all(check.passes(total) for check in prepared.placement_checks):
                    continue
                rank.added = total - (self.shipping.package_cost(self.unit, facility, *before)
                                      if before else 0.0)
            key = []
            for criterion, sort in prepared.sorts:
                value = criterion.reference(rank, facility)
                if value is None:
                    if criterion.excludes_missing:
                        break
                    key.append((-1 if sort.nulls_first else 1, 0))
                else:
                    key.append((0, -value if sort.descending else value))
            else:
                key.append((-measure.full,))
                if single_item is not None and single_item.open:
                    available = levels[0].get(facility, 0.0)
                    key.append((-(available / single_item.open),))
                key.append((facility,))
                keys[facility] = tuple(key)
        return sorted(keys, key=keys.__getitem__)

    def _rule(self, group_name: str, store: str, routing: PlanRouting, prepared: PreparedRule,
              unit: Unit, open_items: list[ItemState], brokered: set[int],
              trace: list | None, fixed=None) -> bool:
        """Try one rule on the unit's open items. Returns True when the unit was moved to a
        queue (no later rule runs). With ``fixed``, the rule commits those placements (item,
        facility, quantity) and then acts on what stays open, as it would have."""
        rule = prepared.rule
        if fixed is not None:
            self._packages = {}
            placements = [p for p in fixed if p[2] > EPSILON]
            if placements:
                self._commit(group_name, routing, prepared, unit, placements, brokered)
            return self._actions(rule, open_items)
        candidates = self._candidates(store, prepared, unit, open_items)
        measures = self._measure(prepared, candidates, open_items)
        before = dict(measures) if trace is not None else None
        pending: dict[tuple[str, str], float] = {}
        placements: list[tuple[ItemState, str, float]] = []
        self._packages: dict[str, list[float]] = {}  # facility -> weight, volume placed
        if rule.assign == "single":
            self._assign_single(prepared, measures, open_items, pending, placements)
        else:
            self._assign_partial(prepared, measures, open_items, pending, placements)
        rejection = self._post_checks(rule, open_items, placements)
        if trace is not None:
            trace.append(self.explainer.explain_rule(store, prepared, unit, open_items, before,
                                            placements, rejection))
        if rejection is None and placements:
            self._commit(group_name, routing, prepared, unit, placements, brokered)
        return self._actions(rule, open_items)

    def _actions(self, rule: PlanRule, open_items: list[ItemState]) -> bool:
        """The rule's `when unfilled` actions on the items still open; True when they were
        moved to a queue."""
        left = [i for i in open_items if i.open > EPSILON]
        if not left:
            return False
        actions = rule.actions
        if actions.clear_auto_cancel:
            for item in left:
                item.auto_cancel = None
                item.last_action = "auto_cancel_cleared"
        elif actions.auto_cancel_days is not None:
            date = self.ctx.now + timedelta(days=actions.auto_cancel_days)
            for item in left:
                item.auto_cancel = date
                item.last_action = "auto_cancel_set"
        if actions.move_to_queue:
            for item in left:
                item.queue = actions.move_to_queue
                item.last_action = "moved"
            return True
        return False

    # ---- what batch optimisation asks (routing_dsl.optimize.candidates) ----
    def admitted(self, store: str, prepared: PreparedRule, unit: Unit) -> dict[str, list]:
        """Which open items of ``unit`` the rule admits at each facility, at the run's
        current state and with nothing allocated: facility -> the open items it may give
        stock to. It is the rule's own procedure with the choice left out: the candidates,
        each step's ranking (which drops a facility a placement condition or a filtering sort
        excludes) and the serve checks of `_assign_single` and `_assign_partial`, for every
        ranked facility rather than the first. An `assign single` rule admits a facility
        only for every open item, in full; with `keep_item_groups_together`, a group's items
        only all together, in full."""
        self.unit = unit
        open_items = [i for i in unit.items if i.open > EPSILON]
        if not open_items:
            return {}
        rule = prepared.rule
        measures = self._measure(prepared, self._candidates(store, prepared, unit, open_items),
                                 open_items)
        self._packages = {}
        found: dict[str, list] = defaultdict(list)
        if rule.assign == "single":
            for facility in self._ranking(prepared, measures, open_items):
                if self._first_filling(prepared, [facility], open_items, {}) is not None:
                    found[facility] = list(open_items)
            return dict(found)
        for step in placement_steps(open_items, rule.keep_item_groups_together):
            together = rule.keep_item_groups_together and step[0].item.item_group is not None
            for facility in self._ranking(prepared, measures, step):
                if together:
                    if self._first_filling(prepared, [facility], step, {}) is not None:
                        found[facility].extend(step)
                elif self._can_serve(prepared, step[0], facility, {}):
                    found[facility].append(step[0])
        return {f: found[f] for f in sorted(found)}

    def _first_filling(self, prepared, ranking: list[str], items: list[ItemState],
                       pending: dict) -> str | None:
        """The first facility in ``ranking`` that can fill every one of ``items`` in full
        (quantities of lines with the same product summed)."""
        needs = open_needs(items)
        for facility in ranking:
            if not self._may_open(prepared, facility):
                continue
            if all(self._can_serve(prepared, item, facility, pending, needs[item.product])
                   for item in items):
                return facility
        return None

    def _may_open(self, prepared: PreparedRule, facility: str) -> bool:
        """`max_facilities N`: a facility already shipping for the unit's ship group (in
        this run, or in this rule's placements so far) may take more; another only while
        fewer than N do."""
        cap = prepared.rule.max_facilities
        if cap is None:
            return True
        used = self.run.used.get((self.unit.order.id, self.unit.ship_group.id), ())
        if facility in used or facility in self._packages:
            return True
        return len(used) + sum(1 for f in self._packages if f not in used) < cap

    def _assign_single(self, prepared, measures, open_items, pending, placements) -> None:
        facility = self._first_filling(prepared, self._ranking(prepared, measures, open_items),
                                       open_items, pending)
        if facility is not None:
            placements.extend((item, facility, item.open) for item in open_items)

    def _assign_partial(self, prepared, measures, open_items, pending, placements) -> None:
        for step in placement_steps(open_items, prepared.rule.keep_item_groups_together):
            ranking = self._ranking(prepared, measures, step)
            if prepared.rule.keep_item_groups_together and step[0].item.item_group is not None:
                facility = self._first_filling(prepared, ranking, step, pending)
                if facility is not None:
                    for item in step:
                        placements.append((item, facility, item.open))
                        key = (facility, item.product)
                        pending[key] = pending.get(key, 0.0) + item.open
                        self._pack(facility, item, item.open)
                continue
            item = step[0]
            remaining = item.open
            for facility in ranking:
                if not self._may_open(prepared, facility) or \
                        not self._can_serve(prepared, item, facility, pending):
                    continue
                available = self.available(facility, item.product, pending)
                if prepared.whole_lines:  # a line goes whole to one facility
                    if available + EPSILON < remaining:
                        continue
                    take = remaining
                else:
                    take = min(available, remaining)
                placements.append((item, facility, take))
                key = (facility, item.product)
                pending[key] = pending.get(key, 0.0) + take
                self._pack(facility, item, take)
                remaining -= take
                if remaining <= EPSILON:
                    break

    def _pack(self, facility: str, item: ItemState, quantity: float) -> None:
        """Add ``quantity`` of ``item`` to the rule's package at ``facility``."""
        card = self.shipping.card(self.unit)
        w, v = self.ctx.rates.weight(card, item.product) if card >= 0 else (math.nan, 0.0)
        package = self._packages.get(facility)
        if package is None:
            package = self._packages[facility] = [0.0, 0.0]
        package[0] += w * quantity
        package[1] += v * quantity

    def _post_checks(self, rule: PlanRule, open_items, placements) -> str | None:
        """Why the rule's allocation is rejected, or None when it stands."""
        if not placements:
            return None
        filled: dict[int, float] = defaultdict(float)
        per_facility: dict[str, float] = defaultdict(float)
        for item, facility, quantity in placements:
            filled[id(item)] += quantity
            per_facility[facility] += item.value(quantity)
        complete = all(filled[id(i)] + EPSILON >= i.open for i in open_items)
        if rule.only_if_all_items_available and not complete:
            return ONLY_ALL
        threshold = rule.shipment_threshold
        if threshold and not (len(per_facility) == 1 and complete):
            for facility in sorted(per_facility):
                if per_facility[facility] + EPSILON < threshold:
                    return threshold_text(threshold, facility, per_facility[facility])
            open_value = sum(i.value(i.open - filled[id(i)]) for i in open_items
                             if i.open - filled[id(i)] > EPSILON)
            if not complete and open_value + EPSILON < threshold:
                return threshold_text(threshold, None, open_value)
        return None

    def _commit(self, group_name, routing, prepared, unit, placements, brokered) -> None:
        rule = prepared.rule
        new_groups: dict[str, str] = {}
        distance_cache: dict[str, float | None] = {}
        packages: dict[str, list] = {}  # facility -> its rows, items and quantities
        for item, facility, quantity in placements:
            if facility not in new_groups:
                unit.packages += 1
                new_groups[facility] = self.run.new_ship_group(unit.order.id, unit.ship_group.id)
                used = self.run.used[(unit.order.id, unit.ship_group.id)]
                if facility not in used:
                    used.append(facility)
                self.ctx.orders_today[facility] += 1
                distance_cache[facility] = self._distance(facility, unit, rule.distance_unit)
            self.ctx.stock[item.product][facility] -= quantity
            self.run.allocated_atp[(facility, item.product)] += quantity
            item.open -= quantity
            item.auto_cancel = None
            brokered.add(id(item))
            distance = distance_cache[facility]
            self.run.allocations.append({
                "order": unit.order.id, "ship_group": unit.ship_group.id, "item": item.item.id,
                "product": item.product, "facility": facility, "quantity": number(quantity),
                "new_ship_group": new_groups[facility], "group": group_name,
                "routing": routing.name, "rule": rule.name,
                "distance": None if distance is None else round(distance, 2),
                "distance_unit": rule.distance_unit,
                "shipping_cost": None, "transit_days": None, "delivery_date": None,
            })
            packages.setdefault(facility, []).append((self.run.allocations[-1], item, quantity))
        self.shipping.price(unit, packages, self.run.totals[(group_name, routing.name)])

    def _distance(self, facility: str, unit: Unit, unit_name: str) -> float | None:
        km = unit.km_to(self.ctx.facilities[facility])
        if km is None:
            return None
        return km if unit_name == "km" else km / KM_PER_MILE

    def inventory_after(self) -> list[dict]:
        """The ATP of each (facility, product) the run took from."""
        # Only the rows the run changed: a large snapshot has millions of inventory rows, and
        # applying these to the snapshot chains runs just the same.
        return [{"facility": facility, "product": product,
                 "atp": number(self.ctx.atp[(facility, product)] - consumed)}
                for (facility, product), consumed in sorted(self.run.allocated_atp.items())
                if consumed]



def _holds_each(levels: list[dict], facility: str) -> bool:
    """Whether ``facility`` holds some stock of each of ``levels``."""
    for level in levels:
        if level.get(facility, 0.0) <= EPSILON:
            return False
    return True


def placement_steps(open_items: list[ItemState], keep_groups: bool) -> list[list[ItemState]]:
    """The items in item-id order, one step each, except that with
    `keep_item_groups_together` the items of one item group are one step (placed together),
    at the place of the group's first item."""
    steps: list[list[ItemState]] = []
    grouped: dict[str, list[ItemState]] = {}
    for item in open_items:
        group = item.item.item_group if keep_groups else None
        if group is None:
            steps.append([item])
        elif group in grouped:
            grouped[group].append(item)
        else:
            grouped[group] = [item]
            steps.append(grouped[group])
    return steps

# The serve-stage facts by the name the criteria registry gives them (criteria.FACTS): a fact
# declared there and missing here stops the import, as in the kernel.
SERVE_FACTS = {"available": ReferenceAllocator._fact_available,
               "refused": ReferenceAllocator._fact_refused,
               "delivery": ReferenceAllocator._fact_delivery}
ITEM_FACT_VALUES = {"open": ReferenceAllocator._item_open,
                    "promised": ReferenceAllocator._item_promised}
if set(SERVE_FACTS) != set(FACTS["serve"]) or set(ITEM_FACT_VALUES) != set(ITEM_FACTS):
    raise RegistryError("the reference engine's serve facts differ from the registry's "
                        f"(criteria.FACTS): {sorted(SERVE_FACTS)} / {sorted(ITEM_FACT_VALUES)}")
