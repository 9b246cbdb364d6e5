"""Explanations on the fast path.

What an explanation shows, the kernel emits as it decides (`kernel._explain_rule`, into the
rows of ir.Explain) for the units a run explains: per rule the outcome, the rejection, the
chosen facilities with the values they were ranked by, and every other facility counted under
the first reason that kept it out. `FastExplainer.build` turns those rows into the reference
explainer's records (runtime.explanation), each condition named by its criterion's
``explain_text`` and each sort key by its criterion's ``explain`` (routing_dsl.criteria).

Full detail for the facilities a run asks about (``explain_facilities``: every value compared,
both facilities' sort keys) is still the reference explainer's, re-run per explained unit on
the state the kernel decided from, as follows.

The fast allocator routes a unit to be explained on its own (engine.fast.FastAllocator).
Before the kernel decides it, this module takes the run's state as the reference engine
holds it, for that unit only: its items (open quantities, queues, auto-cancel dates), the
net stock and sales velocity of its products and their styles' variants, the facilities'
daily counts and the facilities its ship group already ships from. On that view the
reference allocator routes the unit with explanations, into records of its own that nothing
keeps but the explanation. After the kernel has decided, its rows for the unit must be the
view's, field for field: the explanation then describes the decision made, and a
disagreement is an engine defect, raised as `ExplanationMismatch`, never a silently wrong
explanation.
"""

from __future__ import annotations

import copy
import gc
from collections import defaultdict
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from ..criteria.groups import sequence_of
from ..criteria.shipping import explain_package
from ..plan import PlanRouting, PlanRule
from ..runtime import ReferenceAllocator, explanation
from ..runtime.rules import Measure, PreparedRule, group_reason, prepare_rules
from ..runtime.state import ItemState, Unit
from ..shipping import RunTotals
from . import ir

if TYPE_CHECKING:
    from .fast import FastAllocator

# a new ship group's id is the run's to give: the view's are placeholders, not compared
_NOT_COMPARED = ("new_ship_group",)


class ExplanationMismatch(RuntimeError):
    """The kernel decided a unit otherwise than the reference engine on the same state."""


class ReferenceView:
    """What the reference allocator reads and writes of a run while it explains one unit:
    the run's plan, options and cache of prepared facts, its context seen through the view
    (``ctx``), and records of its own."""

    def __init__(self, run, ctx, used: dict[tuple[str, str], list[str]]) -> None:
        self.ctx, self.plan, self.prepared = ctx, run.plan, run.prepared
        self.explain, self.explain_orders = True, None
        self.explain_facilities = run.explain_facilities
        self.explanations: list[dict] = []
        self.allocations: list[dict] = []
        self.unfillable: list[dict] = []
        self.totals: dict = defaultdict(RunTotals)
        self.allocated_atp: dict = defaultdict(float)
        self.used = defaultdict(list, used)

    def new_ship_group(self, order_id: str, ship_group_id: str) -> str:
        return ""

    def warn_facility(self, facility: str) -> None:
        """The kernel warns for the run."""

    def warn_ship_to(self, order: str, ship_group: str) -> None:
        """The kernel warns for the run."""


class FastExplainer:
    """Explains the units a fast run is asked to explain (see the module's docstring)."""

    def __init__(self, allocator: FastAllocator) -> None:
        self.run, self.ctx = allocator.run, allocator.ctx
        self._lowered: dict[tuple[str, int], tuple[PlanRouting, list[_Rule]]] = {}
        # without facilities asked about, the kernel's rows say all an explanation shows
        self.emits = not self.run.explain_facilities

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
            int(np.count_nonzero(wanted)) * len(rules))

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
                while row < n_rows and row_units[row] == u:
                    trace.append(self._rule_entry(rules, row, [column[row] for column in rows],
                                                  reasons, chosen))
                    row += 1
                head = int(heads[u])
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
                    chosen: list[list]) -> dict:
        """One rule's explanation (as runtime.explanation.Explainer.explain_rule makes it)
        from row ``at`` of the kernel's output (``row``: its columns, ``reasons``: the
        counted reasons of all rows)."""
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
        result = {"rule": plan_rule.name, "outcome": OUTCOMES[outcome],
                  "chosen": [{"facility": fac_ids[chosen[0][k]],
                              "sort_keys": self._sort_keys(rule, card, chosen, k)}
                             for k in range(first, first + n_chosen)],
                  "not_chosen": sorted(entries.values(), key=_listed)}
        if plan_rule.source:
            result["source"] = plan_rule.source.label()
        if rejection:
            result["rejected"] = rejection
        return result

    def _sort_keys(self, rule: _Rule, card: int, chosen: list[list], k: int) -> dict:
        """What chosen facility ``k`` was ranked by (Explainer._sort_keys), from the
        kernel's values: each sort's criterion's ``explain``, one package of the open items
        (with a rate card), the items it fills in full."""
        fac, dist, balance, full, cost, day = (column[k] for column in chosen)
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

    def before(self, group_name: str, store: str, routing: PlanRouting,
               unit_set) -> ReferenceView:
        """The reference engine's decision and explanation of the one unit of ``unit_set`` on
        the run's state now, before the kernel decides it."""
        ctx = self.ctx
        states = []
        for k in unit_set.items.tolist():
            static = ctx.items[k]  # order, ship group, line, product facts: fixed in a run
            state = ItemState(static.order, static.ship_group, static.item,
                              (static.categories, static.style))
            left = float(ctx.it_open[k])
            if left != state.open:
                state.open = left
            state.queue = ctx.fac_ids[ctx.it_queue[k]]
            state.auto_cancel = ctx.it_auto_cancel[k]
            states.append(state)
        head = states[0]
        unit = Unit(head.order, head.ship_group, head.queue, states)
        key = (head.order.id, head.ship_group.id)
        view = ReferenceView(self.run, self._context(states), {key: list(self.run.used[key])})
        ReferenceAllocator(view).route_units(group_name, store, routing, [unit], None)
        return view

    def after(self, view: ReferenceView, allocations: int, unfillable: int) -> None:
        """Check the kernel's rows for the unit (the run's records from ``allocations`` and
        ``unfillable`` on) against the view's, then keep the explanation."""
        run = self.run
        for mine, theirs, what in ((run.allocations[allocations:], view.allocations,
                                    "allocations"),
                                   (run.unfillable[unfillable:], view.unfillable,
                                    "unfillable items")):
            if _compared(mine) != _compared(theirs):
                raise ExplanationMismatch(
                    f"the fast engine's {what} for order {view.explanations[0]['order']} "
                    f"differ from the reference engine's on the same state: "
                    f"{_difference(_compared(mine), _compared(theirs))}")
        run.explanations.extend(view.explanations)

    def _context(self, states: list[ItemState]):
        """The run's context as the reference engine holds it, for the products of
        ``states`` and their styles' variants (all a unit's routing reads)."""
        ctx = self.ctx
        view = copy.copy(ctx)
        products = {s.product for s in states}
        for style in {ctx.style.get(p) for p in products} - {None}:
            products.update(ctx.variants.get(style, ()))
        stock: dict[str, dict[str, float]] = defaultdict(dict)
        velocity: dict[tuple[str, str], float] = {}
        fac_ids, tables = ctx.fac_ids, ctx.sort_tables
        for product in sorted(products):
            code = ctx.prod_index.get(product)
            if code is None:
                continue
            low, high = int(ctx.p_ptr[code]), int(ctx.p_ptr[code + 1])
            if high > low:
                stock[product] = dict(zip(
                    [fac_ids[f] for f in ctx.s_fac[low:high].tolist()],
                    ctx.s_net[low:high].tolist(), strict=True))  # net of what was taken
            if code + 1 < len(tables.v_ptr):
                low, high = int(tables.v_ptr[code]), int(tables.v_ptr[code + 1])
                for f, value in zip(tables.v_fac[low:high].tolist(),
                                    tables.v_val[low:high].tolist(), strict=True):
                    velocity[(fac_ids[f], product)] = value
        view.stock, view.velocity, view.atp = stock, velocity, {}
        view.orders_today = {f: n for f, n in zip(fac_ids, ctx.orders_today_array.tolist(),
                                                  strict=True) if f in ctx.orders_today}
        return view


def _compared(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in _NOT_COMPARED} for row in rows]


def _difference(mine: list[dict], theirs: list[dict]) -> str:
    """The first row that differs, as the fields that differ (or the row counts)."""
    for k, (a, b) in enumerate(zip(mine, theirs, strict=False)):
        fields = {f: (a.get(f), b.get(f)) for f in a.keys() | b.keys() if a.get(f) != b.get(f)}
        if fields:
            return f"row {k}: " + ", ".join(f"{f} {x!r} != {y!r}" for f, (x, y) in
                                            sorted(fields.items()))
    return f"{len(mine)} rows != {len(theirs)}"


OUTCOMES = ("nothing", "filled", "partly filled")


class _Rule:
    """A rule as the kernel explains it (ir.Explain): its checks after the facility stage in
    explanation order, as (stage code, position in the stage), the check before which
    `excluded_facilities` is explained, and each reason column's text id; the texts (None:
    the row's rejection) and their sources."""

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


class _Emitted:
    """What a criterion's ``explain`` reads (runtime.explanation.Explaining), from the values
    the kernel emitted for one chosen facility."""

    def __init__(self, rule: PlanRule, zone, cost: float, day: float) -> None:
        self.rule, self.zone, self._cost, self._day = rule, zone, cost, day

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
