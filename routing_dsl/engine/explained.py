"""Explanations on the fast path.

What an explanation shows, the kernel emits as it decides (`kernel._explain_rule`, into the
rows of ir.Explain) for the units a run explains: per rule the outcome, the rejection, the
chosen facilities with the values they were ranked by, and every other facility counted under
the first reason that kept it out. `FastExplainer.build` turns those rows into the reference
explainer's records (runtime.explanation), each condition named by its criterion's
``explain_text`` and each sort key by its criterion's ``explain`` (routing_dsl.criteria).

Full detail for the facilities a run asks about (``explain_facilities``) comes from the same
rows: for each asked facility the kernel writes the reason that kept it out (the one it
counts it under) with the values that reason compared (the condition's fact and the item it
failed on, the orders taken today, the item that excludes it, its net stock of the unit's
needs) and what it would have been ranked by (ir.Explain's ``a_*`` and ``d_*``); the
facilities its ship group shipped from before the rule are the run's list of them cut at the
count the kernel saw. Each reason's text and values are then its criterion's ``explain``
hook, the one the reference explainer calls (`_Emitted` stands in for what it reads), so an
explanation describes the decision made, from the evaluation that made it. Only the
facility-stage conditions (facility groups), the same for every unit, are read from the
facility's static facts.
"""

from __future__ import annotations

import gc
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from ..criteria.groups import sequence_of
from ..criteria.shipping import explain_package
from ..plan import PlanRouting, PlanRule
from ..runtime import explanation
from ..runtime.explanation import (cap_reason, check_reason, excluded_reason, limit_reason,
                                   no_stock_reason, ranked_reason, reason_shown, single_reason)
from ..runtime.rules import Measure, PreparedRule, group_reason, prepare_rules
from . import ir

if TYPE_CHECKING:
    from .fast import FastAllocator


class FastExplainer:
    """Explains the units a fast run is asked to explain (see the module's docstring)."""

    def __init__(self, allocator: FastAllocator) -> None:
        self.run, self.ctx = allocator.run, allocator.ctx
        self._lowered: dict[tuple[str, int], tuple[PlanRouting, list[_Rule]]] = {}
        self._asked: dict[str, tuple[list[int], np.ndarray | None]] = {}

    def tables(self, store: str, routing: PlanRouting, units) -> ir.Explain | None:
        """The kernel's explanation tables for the units of ``units`` the run explains (None:
        none of them)."""
        wanted = np.array(self.wanted(units), np.bool_)
        if not wanted.any():
            return None
        rules = self._rules(store, routing)
        return ir.explain_tables(
            wanted, [rule.checks for rule in rules], [rule.excl_at for rule in rules],
            [rule.reason for rule in rules], max(len(rule.texts) for rule in rules),
            int(np.count_nonzero(wanted)) * len(rules), self._asked_in(store)[1])

    def _asked_in(self, store: str) -> tuple[list[int], np.ndarray | None]:
        """The facilities asked about that serve ``store`` (real ones), as codes in id order,
        and by facility their position among them (ir.Explain.asked; None: none)."""
        found = self._asked.get(store)
        if found is None:
            ctx, asked = self.ctx, self.run.explain_facilities
            codes = [f for f, facility in enumerate(ctx.fac_ids) if facility in asked
                     and not ctx.facilities[facility].virtual
                     and store in ctx.facilities[facility].stores]
            by_facility = None
            if codes:
                by_facility = np.full(len(ctx.fac_ids), -1, np.int64)
                by_facility[codes] = np.arange(len(codes))
            found = self._asked[store] = (codes, by_facility)
        return found

    def build(self, store: str, routing: PlanRouting, units, explain: ir.Explain) -> None:
        """The run's explanations of the units ``explain`` wanted, from the kernel's rows."""
        ctx, rules = self.ctx, self._rules(store, routing)
        n_rows, n_chosen = int(explain.counts[ir.EXPLAINED]), int(explain.counts[ir.CHOSEN])
        rows = [getattr(explain, name)[:n_rows].tolist() for name in (
            "r_rule", "r_card", "r_outcome", "r_rejected", "r_rej_fac", "r_rej_value",
            "r_chosen", "r_n_chosen")]
        # the reasons that count some facility, row by row (flat lists: no list per row)
        counted = explain.r_count[:n_rows]
        at_row, text = np.nonzero(counted)
        examples = self._names[explain.r_examples[at_row, text]].ravel().tolist()
        reasons = (np.searchsorted(at_row, np.arange(n_rows + 1)).tolist(), text.tolist(),
                   counted[at_row, text].tolist(), examples)
        chosen = [getattr(explain, name)[:n_chosen].tolist()
                  for name in ("c_fac", "c_dist", "c_bal", "c_full", "c_cost", "c_day")]
        asked = self._asked_in(store)[0]
        detail = _Detail(explain, n_rows, asked) if asked else None
        heads = units.heads()
        row_units = explain.r_unit[:n_rows].tolist()
        row = 0
        append = self.run.explanations.append
        # explanations are many small dicts, none in a cycle: the cyclic collector's passes
        # over all of them would cost more than building them
        collecting = gc.isenabled()
        gc.disable()
        try:
            for u in np.nonzero(explain.wanted[:len(units)])[0].tolist():
                trace = []
                head = int(heads[u])
                if detail is not None:
                    detail.unit = head
                while row < n_rows and row_units[row] == u:
                    trace.append(self._rule_entry(rules, row, [column[row] for column in rows],
                                                  reasons, chosen, detail))
                    row += 1
                entry = {"order": ctx.it_order_id[head], "ship_group": ctx.it_sg_id[head],
                         "routing": routing.name, "rules": trace}
                if routing.item_mode:
                    entry["item"] = ctx.it_item_id[head]
                append(entry)
        finally:
            if collecting:
                gc.enable()

    @cached_property
    def _names(self) -> np.ndarray:
        """Facility ids by code, as an array to index with codes."""
        return np.array(self.ctx.fac_ids or [""], dtype=object)

    def _rule_entry(self, rules: list[_Rule], at: int, row: list, reasons: tuple,
                    chosen: list[list], detail: _Detail | None) -> dict:
        """One rule's explanation (as runtime.explanation.Explainer.explain_rule makes it)
        from row ``at`` of the kernel's output (``row``: its columns, ``reasons``: the
        counted reasons of all rows, ``detail``: the asked facilities' rows)."""
        fac_ids = self.ctx.fac_ids
        r, card, outcome, rejected, rej_fac, rej_value, first, n_chosen = row
        rule = rules[r]
        plan_rule = rule.prepared.rule
        rejection = None
        if rejected == ir.REJECTED_ONLY_ALL:
            rejection = explanation.ONLY_ALL
        elif rejected != ir.NOT_REJECTED:
            rejection = explanation.threshold_text(
                plan_rule.shipment_threshold,
                fac_ids[rej_fac] if rejected == ir.REJECTED_FACILITY else None, rej_value)
        entries: dict[str, dict] = {}
        for text, source, facilities in self._group_failures(rule):
            _note(entries, text, source, len(facilities), facilities)
        ptr, texts, counts, examples = reasons
        for k in range(ptr[at], ptr[at + 1]):
            t, count = texts[k], counts[k]
            _note(entries, rule.texts[t] or rejection, rule.sources[t], count,
                  examples[3 * k:3 * k + min(count, 3)])
        chosen_keys = {fac_ids[chosen[0][k]]: self._sort_keys(
            rule, card, *(column[k] for column in chosen)) for k in range(first, first + n_chosen)}
        result = {"rule": plan_rule.name, "outcome": OUTCOMES[outcome],
                  "chosen": [{"facility": f, "sort_keys": keys}
                             for f, keys in chosen_keys.items()],
                  "not_chosen": sorted(entries.values(), key=_listed)}
        if detail is not None:
            result["facilities"] = [
                {"facility": fac_ids[f], "chosen": fac_ids[f] in chosen_keys,
                 **({} if fac_ids[f] in chosen_keys else {"excluded_by": self._excluded_by(
                     rule, at, a, f, card, rejection, chosen_keys, detail)})}
                for a, f in enumerate(detail.asked)]
        if plan_rule.source:
            result["source"] = plan_rule.source.label()
        if rejection:
            result["rejected"] = rejection
        return result

    def _sort_keys(self, rule: _Rule, card: int, fac: int, dist: float, balance: float,
                   full: int, cost: float, day: float) -> dict:
        """What candidate ``fac`` was (or would have been) ranked by (Explainer._sort_keys),
        from the kernel's values: each sort's criterion's ``explain``, one package of the
        open items (with a rate card), the items it fills in full."""
        prepared = rule.prepared
        facility = self.ctx.fac_ids[fac]
        sequence = sequence_of(prepared.include_ids, self.ctx.facilities[facility]) \
            if "sequence" in prepared.needs else None
        measure = Measure(None if dist != dist else dist, balance, sequence, full)
        emitted = _Emitted(prepared.rule, self.ctx.zone, cost, day)
        keys: dict = {}
        for criterion, _ in prepared.sorts:
            keys.update(criterion.explain(emitted, measure, facility))
        if card >= 0:
            keys.update(explain_package(emitted, facility))
        keys["items_in_full"] = measure.full
        return keys

    def _excluded_by(self, rule: _Rule, row: int, a: int, f: int, card: int,
                     rejection: str | None, chosen_keys: dict, detail: _Detail) -> dict:
        """The first reason that kept facility ``f`` (the ``a``-th asked about) from being
        chosen in row ``row``, with the values it compared (Explainer._exclusion), from the
        kernel's values; each condition's by its criterion's ``explain``."""
        ctx = self.ctx
        facility = ctx.fac_ids[f]
        info = ctx.facilities[facility]
        prepared = rule.prepared
        column, item, full, candidate = detail.ints[row][a]
        value, item_open, dist, balance, cost, day = detail.values[row][a]
        if column == ir.ASKED_STATIC:  # a facility-stage condition (it serves the store)
            return check_reason(group_reason(prepared, info), _Emitted(prepared.rule, ctx.zone),
                                info)
        if column >= ir.N_FIXED_REASONS:
            check = rule.explained[column - ir.N_FIXED_REASONS]
            if check.criterion.stage != "serve":
                return check_reason(check, _Emitted(prepared.rule, ctx.zone), value)
            return check_reason(check, _Emitted(prepared.rule, ctx.zone, facility=facility),
                                value, _ItemAt(ctx.items[item], item_open))
        if column == ir.REASON_LIMIT:
            return limit_reason(int(value), info.limit)
        if column == ir.REASON_EXCLUDED:
            return excluded_reason(ctx.it_item_id[item])
        if column == ir.REASON_CAP:
            head = detail.unit
            shipping_from = self.run.used.get((ctx.it_order_id[head], ctx.it_sg_id[head]),
                                              [])[:detail.shipping[row]]
            shipping_from += [f for f in chosen_keys if f not in shipping_from]
            return cap_reason(prepared.rule.max_facilities, shipping_from)
        if column == ir.REASON_REJECTED:
            return reason_shown(rejection)
        if column == ir.REASON_RANKED:
            keys = self._sort_keys(rule, card, f, dist, balance, full, cost, day) \
                if candidate else {}
            return ranked_reason(keys, chosen_keys)
        needs = detail.needs(row, a, self.ctx.prod_ids)  # no stock, `assign single`
        net_stock = {p: net for p, _, net in needs}
        if column == ir.REASON_NO_STOCK:
            return no_stock_reason(net_stock)
        return single_reason({p: q for p, q, _ in needs}, net_stock)

    def _group_failures(self, rule: _Rule) -> list:
        """The store's facilities the rule's facility-stage conditions exclude, as (text,
        source, facilities in id order) per condition text: the same for every unit."""
        if rule.group_failures is None:
            found: dict[str, tuple] = {}
            for facility in self.ctx.fac_ids:
                info = self.ctx.facilities[facility]
                if info.virtual or rule.store not in info.stores:
                    continue
                check = group_reason(rule.prepared, info)
                if check is not None:
                    text = check.criterion.explain_text(rule.prepared.rule, check.condition)
                    found.setdefault(text, (text, _label(check), []))[2].append(facility)
            rule.group_failures = list(found.values())
        return rule.group_failures

    def _rules(self, store: str, routing: PlanRouting) -> list[_Rule]:
        """The routing's rules as explanations read them, lowered once per store."""
        key = (store, id(routing))
        found = self._lowered.get(key)
        if found is None or found[0] is not routing:  # (an id may be reused)
            found = self._lowered[key] = (routing, [_Rule.lower(store, p)
                                                    for p in prepare_rules(routing)])
        return found[1]

    def wanted(self, units) -> list[bool]:
        """Which of ``units`` the run explains."""
        orders, ids = self.run.explain_orders, self.ctx.it_order_id
        return [orders is None or ids[head] in orders for head in units.heads().tolist()]


OUTCOMES = ("nothing", "filled", "partly filled")


class _Rule:
    """A rule as the kernel explains it (ir.Explain): its checks after the facility stage in
    explanation order, as (stage code, position in the stage) and as themselves
    (``explained``), the check before which `excluded_facilities` is explained, and each
    reason column's text id; the texts (None: the row's rejection) and their sources."""

    def __init__(self, store: str, prepared: PreparedRule) -> None:
        self.store, self.prepared = store, prepared
        self.checks: list[tuple[int, int]] = []
        self.texts: list[str | None] = []
        self.sources: list[str | None] = []
        self.group_failures: list | None = None

    @classmethod
    def lower(cls, store: str, prepared: PreparedRule) -> _Rule:
        found = cls(store, prepared)
        rule = prepared.rule
        stages = {"candidate": prepared.candidate_checks,
                  "placement": prepared.placement_checks, "serve": prepared.serve_checks}
        explained = prepared.explained_checks()
        for check in explained:
            stage = check.criterion.stage
            found.checks.append((ir.STAGE_CODES[stage],
                                 next(k for k, c in enumerate(stages[stage]) if c is check)))
        found.explained = explained
        found.excl_at = next((k for k, check in enumerate(explained)
                              if check.criterion.explain_rank > explanation.EXCLUSIONS_RANK),
                             len(explained))
        fixed = {ir.REASON_LIMIT: explanation.LIMIT, ir.REASON_NO_STOCK: explanation.NO_STOCK,
                 ir.REASON_EXCLUDED: explanation.EXCLUDED,
                 ir.REASON_CAP: explanation.cap_text(rule.max_facilities),
                 ir.REASON_SINGLE: explanation.SINGLE, ir.REASON_REJECTED: None,
                 ir.REASON_RANKED: explanation.RANKED}
        columns = [(fixed[column], None) for column in range(ir.N_FIXED_REASONS)]
        columns += [(check.criterion.explain_text(rule, check.condition), _label(check))
                    for check in explained]
        ids: dict[str, int] = {}
        found.reason = []
        for text, source in columns:
            if text is None or text not in ids:  # the rejection's text is the row's own
                if text is not None:
                    ids[text] = len(found.texts)
                found.reason.append(len(found.texts))
                found.texts.append(text)
                found.sources.append(source)
            else:
                found.reason.append(ids[text])
        return found


class _Detail:
    """The kernel's rows for the facilities asked about (ir.Explain's ``a_*``, ``d_*``), as
    lists: per explained row and asked facility its ints and values (ir.A_*), per row the
    facilities its ship group shipped from before and its needs; ``unit``: the head item of
    the unit whose rows are being read."""

    def __init__(self, explain: ir.Explain, n_rows: int, asked: list[int]) -> None:
        self.asked = asked
        self.ints = explain.a_int[:n_rows].tolist()
        self.values = explain.a_val[:n_rows].tolist()
        self.shipping = explain.r_shipping[:n_rows].tolist()
        self._first = explain.r_need[:n_rows].tolist()
        self._count = explain.r_n_need[:n_rows].tolist()
        n_needs = int(explain.counts[ir.NEEDS])
        self._prod = explain.d_prod[:n_needs].tolist()
        self._qty = explain.d_qty[:n_needs].tolist()
        self._net = explain.d_net[:n_needs]
        self.unit = -1

    def needs(self, row: int, a: int, prod_ids: list[str]) -> list[tuple[str, float, float]]:
        """Row ``row``'s needs in product order: product, open quantity, net stock at the
        ``a``-th asked facility."""
        first = self._first[row]
        span = range(first, first + self._count[row])
        return sorted((prod_ids[self._prod[k]], self._qty[k], float(self._net[k, a]))
                      for k in span)


class _ItemAt:
    """What a serve-stage criterion's ``explain`` reads of an item (runtime.state.ItemState):
    the line, its product, its rejections and its open quantity when the rule decided."""

    def __init__(self, state, open_quantity: float) -> None:
        self.item, self.product, self.rejected = state.item, state.product, state.rejected
        self.open = open_quantity


class _Emitted:
    """What a criterion's ``explain`` reads (runtime.explanation.Explaining), from the values
    the kernel emitted for one facility (``facility``: the one whose failing condition is
    explained)."""

    def __init__(self, rule: PlanRule, zone, cost: float = float("nan"),
                 day: float = float("nan"), facility: str | None = None) -> None:
        self.rule, self.zone, self._cost, self._day = rule, zone, cost, day
        self.facility = facility

    def package_cost(self, facility: str) -> float:
        return self._cost

    def delivery(self, facility: str) -> float:
        return self._day


def _label(check) -> str | None:
    source = check.condition.source
    return None if source is None else source.label()


def _listed(entry: dict) -> tuple:
    """Reasons are listed most facilities first, then by condition."""
    return -entry["count"], entry["condition"]


def _note(entries: dict, text: str, source: str | None, count: int, examples: list) -> None:
    """Count ``count`` facilities (the first ``examples``) under ``text``, as the reference
    explainer's note_all does."""
    entry = entries.get(text)
    if entry is None:
        entry = entries[text] = {"condition": text, "count": 0, "examples": []}
        if source is not None:
            entry["source"] = source
    entry["count"] += count
    entry["examples"] += examples[:3 - len(entry["examples"])]
