"""The lowered IR: a plan's routing and a snapshot as named tables of numbers.

The fast engine's kernel reads nothing else, and reads every table by name (numba takes
NamedTuples of arrays as arguments, so the kernel's entry point takes a dozen tables rather
than dozens of arrays, and a table can grow a column without moving the others). Ids are
integer codes: facilities and products in id order (ranking ties on the facility code),
items in order-line order, units as the routing's sorted units.

- `Units`, `Items`, `Facilities`, `Stock`: one routing run's units and the run's state
  (the kernel updates open quantities, queues, auto-cancel codes, stock and counts in place);
- `Rules`, `Conditions`, `Sorts`: the routing's rules, lowered once per routing run from the
  plan and the criteria registry (`lower_rules`);
- `Rates`: the snapshot's rate cards (`rate_tables`), padded to the largest card;
- `Used`: the run's (ship group, facility) pairs in use, for `max_facilities`;
- `Outputs`: the rows the kernel writes (allocations, unfillable items) and their counts.

The optimiser and the explainer can read the same tables.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..criteria import FACTS, ITEM_FACTS, REGISTRY
from ..criteria.groups import sequence_of
from ..runtime.rules import group_reason, prepare_rule

# inventory sort -> its code: the registry's order, which the kernel's dispatch follows
SORT_CODES = {name: code for code, name in enumerate(REGISTRY("inventory_sort"))}
SORT_EXCLUDES = np.array([c.excludes_missing for c in REGISTRY("inventory_sort").values()],
                         np.bool_)

# The inventory conditions the kernel evaluates (all but the facility stage, which lowering
# applies: Rules.static) -> code, the registry's order, which the kernel's dispatch follows;
# each stage's facts (criteria.FACTS) and the item facts -> their codes.
STAGED_CONDITIONS = [c for c in REGISTRY("inventory_condition").values()
                     if c.stage != "facility"]
CONDITION_CODES = {c.name: code for code, c in enumerate(STAGED_CONDITIONS)}
FACT_CODES = {stage: {fact: code for code, fact in enumerate(facts)}
              for stage, facts in FACTS.items()}
ITEM_FACT_CODES = {fact: code for code, fact in enumerate(ITEM_FACTS)}

# Outputs.counts: rows of allocations, rows of unfillable items, and a flag the kernel sets
# when the table of facilities in use must grow before the next unit
ALLOCATED, LEFT_OPEN, USED_FULL = 0, 1, 2


class Units(NamedTuple):
    """One routing run's units: unit u is items[ptr[u]:ptr[u + 1]]; ``order`` the units to
    route, in order. Per unit: its ship-to point in radians (``has``: it has one), rate card
    and zone chart column (-1: none), ship group key (for `max_facilities`), and whether it
    lacked coordinates a rule needed (``warn``, set by the kernel)."""

    order: np.ndarray
    ptr: np.ndarray
    items: np.ndarray
    has: np.ndarray
    phi: np.ndarray
    lam: np.ndarray
    cos: np.ndarray
    card: np.ndarray
    dest: np.ndarray
    ship_group: np.ndarray
    warn: np.ndarray


class Items(NamedTuple):
    """Per order line: product, open quantity, queue, auto-cancel code (kernel.AC_*), item
    group (-1: none), excluded facilities (rows excl_ptr[i]:excl_ptr[i + 1] of ``excl``),
    price, adjustments and quantity (for shipment thresholds), promised day (NO_DATE: none),
    rejections (rows rej_ptr[i]:rej_ptr[i + 1] of ``rej_fac``/``rej_day``, local day
    ordinals) and whether the routing run gave it stock (``brokered``)."""

    prod: np.ndarray
    open: np.ndarray
    queue: np.ndarray
    ac: np.ndarray
    group: np.ndarray
    excl_ptr: np.ndarray
    excl: np.ndarray
    price: np.ndarray
    adj: np.ndarray
    qty: np.ndarray
    promised: np.ndarray
    rej_ptr: np.ndarray
    rej_fac: np.ndarray
    rej_day: np.ndarray
    brokered: np.ndarray


class Facilities(NamedTuple):
    """Per facility: its point in radians (``has``: it has one), its order limit (-1: none),
    the orders it took today, and whether it lacked coordinates a rule needed (``warn``)."""

    has: np.ndarray
    phi: np.ndarray
    lam: np.ndarray
    cos: np.ndarray
    limit: np.ndarray
    orders_today: np.ndarray
    warn: np.ndarray


class Stock(NamedTuple):
    """Brokerable stock by product, then facility: product p's rows are p_ptr[p]:p_ptr[p + 1]
    of ``fac`` (sorted; 32-bit, engine.stockrows.INDEX), ``net`` (net stock left) and
    ``alloc`` (taken by the run)."""

    p_ptr: np.ndarray
    fac: np.ndarray
    net: np.ndarray
    alloc: np.ndarray


class Rules(NamedTuple):
    """Per rule: its settings, the facilities its facility-stage conditions and the store let
    it use (``static``, rule by facility) and their sequence numbers (``seq``, NaN: none),
    its actions (-1: none), `max_facilities` (``cap``, -1: none), whether a serve-stage
    condition makes it ship lines whole (``whole_lines``), the unit factor from km to
    its distance unit, `split_cost` as money or distance, and what its criteria need computed
    (criteria.NEEDS)."""

    single: np.ndarray
    ignore_limit: np.ndarray
    keep_groups: np.ndarray
    only_all: np.ndarray
    threshold: np.ndarray
    factor: np.ndarray
    miles: np.ndarray
    static: np.ndarray
    seq: np.ndarray
    clear_ac: np.ndarray
    ac_days: np.ndarray
    move: np.ndarray
    cap: np.ndarray
    whole_lines: np.ndarray
    split_money: np.ndarray
    split_distance: np.ndarray
    uses_distance: np.ndarray
    uses_zone: np.ndarray
    costs: np.ndarray
    ship_rank: np.ndarray
    balance: np.ndarray


class Stage(NamedTuple):
    """The rules' inventory conditions of one stage (criteria.STAGES): per rule how many
    (``n``) and which facts they compare (``needs``, rule by fact code); per rule and
    position the criterion's code (CONDITION_CODES), the fact it compares (FACT_CODES of the
    stage), the item fact it compares with (ITEM_FACT_CODES, -1: none), the operator code
    (criteria._jit.OPS) and the number (distances in km)."""

    n: np.ndarray
    needs: np.ndarray
    code: np.ndarray
    fact: np.ndarray
    item_fact: np.ndarray
    op: np.ndarray
    number: np.ndarray


class Conditions(NamedTuple):
    """The rules' inventory conditions after the facility stage, by stage, and today's day
    ordinal (what `not rejected within` counts from)."""

    candidate: Stage
    placement: Stage
    serve: Stage
    today: int


class SortTables(NamedTuple):
    """What the velocity and style sorts read: velocity by product (rows v_ptr[p]:v_ptr[p +
    1] of v_fac/v_val, by facility; v_fac 32-bit, engine.stockrows.INDEX), each product's style (-1: none), each style's variants
    (codes, -1 for a variant no row or line names) and how many it has; which sorts drop a
    facility without a value (``excludes``, by sort code)."""

    v_ptr: np.ndarray
    v_fac: np.ndarray
    v_val: np.ndarray
    style_of: np.ndarray
    style_ptr: np.ndarray
    style_var: np.ndarray
    style_size: np.ndarray
    excludes: np.ndarray


class Sorts(NamedTuple):
    """The rules' inventory sorts: per rule how many, and per rule and position the sort's
    code (SORT_CODES), descending, nulls first; and the tables some sorts read."""

    n: np.ndarray
    code: np.ndarray
    desc: np.ndarray
    nulls_first: np.ndarray
    tables: SortTables


class Rates(NamedTuple):
    """The rate cards, card by card (padded to the largest): distance bands and transit days
    by zone, prices by zone and weight bucket, bucket limits, counts of zones and buckets,
    the dimensional divisor (0: none), surcharge amounts and multiplier, whether bands are
    in miles; the zone chart (card c's is chart[chart_ptr[c]:chart_ptr[c + 1]], ``columns``
    wide, rows by the facility's ``origin`` row, -1: none); each product's weight (NaN:
    unknown) and volume in the card's units; per facility its handling cost and the day its
    packages leave."""

    band: np.ndarray
    transit: np.ndarray
    price: np.ndarray
    weights: np.ndarray
    n_zones: np.ndarray
    n_weights: np.ndarray
    divisor: np.ndarray
    amounts: np.ndarray
    multiplier: np.ndarray
    miles: np.ndarray
    origin: np.ndarray
    chart_ptr: np.ndarray
    columns: np.ndarray
    chart: np.ndarray
    pw: np.ndarray
    pv: np.ndarray
    handling: np.ndarray
    leaves: np.ndarray


class Used(NamedTuple):
    """The run's (ship group, facility) pairs in use as an open-addressing table (-1: empty;
    one slot: not kept), the count per ship group and in all (``count``, one element)."""

    keys: np.ndarray
    per_group: np.ndarray
    count: np.ndarray


class Outputs(NamedTuple):
    """What the kernel writes. Allocation rows: unit, item, facility, quantity, rule,
    distance (rule's unit, NaN: unknown), whether it opens a package, the package's first
    row, the package's cost (NaN: unknown), the row's weight, transit days and delivery day
    (-1: unknown). Unfillable rows: unit, item, open quantity, last rule (-1: none), action
    (kernel.ACTIONS). ``counts`` by ALLOCATED, LEFT_OPEN, USED_FULL."""

    a_unit: np.ndarray
    a_item: np.ndarray
    a_fac: np.ndarray
    a_qty: np.ndarray
    a_rule: np.ndarray
    a_dist: np.ndarray
    a_new: np.ndarray
    a_first: np.ndarray
    a_cost: np.ndarray
    a_weight: np.ndarray
    a_transit: np.ndarray
    a_delivery: np.ndarray
    x_unit: np.ndarray
    x_item: np.ndarray
    x_open: np.ndarray
    x_rule: np.ndarray
    x_action: np.ndarray
    counts: np.ndarray


ALLOCATION_COLUMNS = ("a_unit", "a_item", "a_fac", "a_qty", "a_rule", "a_dist", "a_new",
                      "a_first", "a_cost", "a_weight", "a_transit", "a_delivery")
_ALLOCATION_TYPES = (np.int64, np.int64, np.int64, np.float64, np.int64, np.float64, np.bool_,
                     np.int64, np.float64, np.float64, np.int64, np.int64)


def outputs(capacity: int, items: int) -> Outputs:
    """Empty outputs: ``capacity`` allocation rows, one unfillable row per item routed."""
    n = items or 1
    return Outputs(*(np.empty(capacity, kind) for kind in _ALLOCATION_TYPES),
                   x_unit=np.empty(n, np.int64), x_item=np.empty(n, np.int64),
                   x_open=np.empty(n), x_rule=np.empty(n, np.int64),
                   x_action=np.empty(n, np.int64), counts=np.zeros(3, np.int64))


def grown(out: Outputs, needed: int) -> Outputs:
    """``out`` with room for at least ``needed`` allocation rows (doubling), rows kept."""
    columns = {}
    for name, kind in zip(ALLOCATION_COLUMNS, _ALLOCATION_TYPES, strict=True):
        old = getattr(out, name)
        bigger = np.empty(max(needed, 2 * len(old)), kind)
        bigger[:len(old)] = old
        columns[name] = bigger
    return out._replace(**columns)



class Fixed(NamedTuple):
    """What an optimised batch (routing_dsl.optimize.run) asks of the kernel instead of its
    rules' choice.

    Fixed placements: unit u's rule r commits rows ptr[u * rules + r] to
    ptr[u * rules + r + 1] (item, facility, quantity), through its normal commit, and acts on
    what stays open as it would have; no rule's candidates, ranking or checks run. A table of
    one pointer fixes nothing (the kernel decides).

    With ``admit`` (one flag), the kernel commits and acts on nothing: each rule up to the
    first that moves what it leaves to a queue ranks the unit's open items as it would, and
    writes, as allocation rows (unit, rule, item, facility), every facility it admits for
    them (the reference allocator's `admitted`): for `assign single` and a kept item group,
    each ranked facility that may open and fills them all in full; otherwise each ranked
    facility that may serve the item."""

    ptr: np.ndarray
    item: np.ndarray
    fac: np.ndarray
    qty: np.ndarray
    admit: np.ndarray


def no_fixed(admit: bool = False) -> Fixed:
    """Fixed for a run whose rules decide (``admit``: that only say what they admit)."""
    return Fixed(np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64),
                 np.zeros(1), np.array([admit], np.bool_))

# ---- explanations ------------------------------------------------------------------------------

# Why a facility was not chosen, as the columns of Explain.reason before the rule's checks
# (column N_FIXED_REASONS + k: the rule's k-th check in explanation order); the explainer
# (engine.explained) gives each column its text.
(REASON_LIMIT, REASON_NO_STOCK, REASON_EXCLUDED, REASON_CAP, REASON_SINGLE, REASON_REJECTED,
 REASON_RANKED) = range(7)
N_FIXED_REASONS = 7
# Why a rule's placements were rejected (Explain.r_rejected)
NOT_REJECTED, REJECTED_ONLY_ALL, REJECTED_FACILITY, REJECTED_OPEN = range(4)
# Explain.counts: explained rules, chosen facilities, a flag the kernel sets when the rows
# must grow before the next unit, and rows of needs (d_*)
EXPLAINED, CHOSEN, EXPLAIN_FULL, NEEDS = 0, 1, 2, 3
# Explain.a_int's columns for a facility asked about: its reason column (ASKED_STATIC: not
# one of the kernel's, the facility was chosen or the rule's facility-stage conditions or
# the store keep it out), the
# item the reason names (-1: none), the items it fills in full and whether it was a
# candidate (its measures are then the rule's); a_val's: the value the reason compared (a
# condition's fact, the orders taken today), that item's open quantity, and what the
# facility would be ranked by: distance in the rule's unit (NaN: none), net stock of the
# unit's products, one package of the open items' cost and delivery day (NaN: unknown)
A_COLUMN, A_ITEM, A_FULL, A_CAND = range(4)
A_VALUE, A_OPEN, A_DIST, A_BAL, A_COST, A_DAY = range(6)
ASKED_STATIC = -1
# Explain.stage: a check's stage
STAGE_CODES = {"candidate": 0, "placement": 1, "serve": 2}


class Explain(NamedTuple):
    """What the kernel reads and writes to explain units (only those ``wanted``, by unit).

    Per rule (lowered by the explainer): its checks after the facility stage in explanation
    order (``n``; each one's stage, STAGE_CODES, and position in that Stage table), the
    check before which `excluded_facilities` is explained (``excl_at``; n: after all) and
    each reason's text id (``reason``, rule by reason column).

    Per explained rule of a unit (rows ``r_*``): unit, rule, rate card (-1: none), outcome
    (0 nothing, 1 filled, 2 partly filled), why it was rejected (NOT_REJECTED...; the
    facility and value a shipment threshold names), how many facilities each text id counts
    and the first three (facility codes), and its chosen facilities (rows r_chosen, n).
    Per chosen facility (rows ``c_*``, in facility order): facility, distance in the rule's
    unit (NaN: none), net stock of the unit's products, items it fills in full, what one
    package of the open items costs from there and the day it arrives (NaN: unknown).

    The facilities a run asks about (``explain_facilities``): ``asked`` by facility, its
    position among them (-1: not asked). Per explained rule and asked facility (``a_int``,
    ``a_val``; columns A_*): the first reason that kept it out and the values it compared.
    Per explained rule the facilities its ship group shipped from before it (``r_shipping``,
    for `max_facilities`) and its needs: rows r_need[row]:r_need[row] + r_n_need[row] of
    ``d_*``, the open quantity per product (in product order) and the net stock of each at
    each asked facility."""

    wanted: np.ndarray
    n: np.ndarray
    stage: np.ndarray
    pos: np.ndarray
    excl_at: np.ndarray
    reason: np.ndarray
    r_unit: np.ndarray
    r_rule: np.ndarray
    r_card: np.ndarray
    r_outcome: np.ndarray
    r_rejected: np.ndarray
    r_rej_fac: np.ndarray
    r_rej_value: np.ndarray
    r_count: np.ndarray
    r_examples: np.ndarray
    r_chosen: np.ndarray
    r_n_chosen: np.ndarray
    c_fac: np.ndarray
    c_dist: np.ndarray
    c_bal: np.ndarray
    c_full: np.ndarray
    c_cost: np.ndarray
    c_day: np.ndarray
    asked: np.ndarray
    a_int: np.ndarray
    a_val: np.ndarray
    r_shipping: np.ndarray
    r_need: np.ndarray
    r_n_need: np.ndarray
    d_prod: np.ndarray
    d_qty: np.ndarray
    d_net: np.ndarray
    counts: np.ndarray


_ROW_TYPES = {"r_unit": np.int64, "r_rule": np.int64, "r_card": np.int64,
              "r_outcome": np.int64, "r_rejected": np.int64, "r_rej_fac": np.int64,
              "r_rej_value": np.float64, "r_chosen": np.int64, "r_n_chosen": np.int64,
              "r_shipping": np.int64, "r_need": np.int64, "r_n_need": np.int64}
_CHOSEN_TYPES = {"c_fac": np.int64, "c_dist": np.float64, "c_bal": np.float64,
                 "c_full": np.int64, "c_cost": np.float64, "c_day": np.float64}


def explain_tables(wanted: np.ndarray, checks: list[list[tuple[int, int]]],
                   excl_at: list[int], reason: list[list[int]], n_texts: int,
                   rows: int, asked: np.ndarray | None = None) -> Explain:
    """Explain for units ``wanted`` (bool per unit) of a routing whose rules have ``checks``
    ((stage code, position) in explanation order), ``excl_at`` and ``reason`` columns (text
    ids, fewer than ``n_texts``), with room for ``rows`` explained rules; ``asked``: the
    facilities asked about, by facility (Explain.asked; None: none)."""
    n_rules = len(checks)
    width = max([len(c) for c in checks] + [1])
    stage, pos = np.zeros((max(1, n_rules), width), np.int64), np.zeros((max(1, n_rules), width),
                                                                        np.int64)
    table = np.zeros((max(1, n_rules), N_FIXED_REASONS + width), np.int64)
    for r, rule_checks in enumerate(checks):
        for k, (code, position) in enumerate(rule_checks):
            stage[r, k], pos[r, k] = code, position
        table[r, :len(reason[r])] = reason[r]
    rows = max(1, rows)
    texts = max(1, n_texts)
    n_asked = 0 if asked is None else int(np.count_nonzero(asked >= 0))
    needs = 4 * rows if n_asked else 1  # needs are written only for asked facilities
    return Explain(
        wanted=wanted if len(wanted) else np.zeros(1, np.bool_),
        n=np.array([len(c) for c in checks] or [0], np.int64), stage=stage, pos=pos,
        excl_at=np.array(excl_at or [0], np.int64), reason=table,
        **{name: np.zeros(rows, kind) for name, kind in _ROW_TYPES.items()},
        r_count=np.zeros((rows, texts), np.int64),
        r_examples=np.zeros((rows, texts, 3), np.int64),
        **{name: np.zeros(max(16, 2 * rows), kind) for name, kind in _CHOSEN_TYPES.items()},
        asked=asked if asked is not None else np.full(1, -1, np.int64),
        a_int=np.zeros((rows, n_asked, 4), np.int64), a_val=np.zeros((rows, n_asked, 6)),
        d_prod=np.zeros(needs, np.int64), d_qty=np.zeros(needs),
        d_net=np.zeros((needs, n_asked)), counts=np.zeros(4, np.int64))


def no_explain() -> Explain:
    """Explain for a run that explains none of its units."""
    return explain_tables(np.zeros(1, np.bool_), [], [], [], 1, 1)


def explain_grown(explain: Explain, needed: int) -> Explain:
    """``explain`` with room for at least ``needed`` more explained rules and chosen
    facilities (doubling; rows kept)."""
    def bigger(old: np.ndarray, size: int) -> np.ndarray:
        new = np.zeros((size, *old.shape[1:]), old.dtype)
        new[:len(old)] = old
        return new
    n_rows = 2 * len(explain.r_unit) + needed
    n_chosen = 2 * len(explain.c_fac) + needed
    grown = {}
    if explain.a_int.shape[1]:
        n_needs = 2 * len(explain.d_prod) + needed
        grown = {name: bigger(getattr(explain, name), n_needs)
                 for name in ("d_prod", "d_qty", "d_net")}
    return explain._replace(
        **{name: bigger(getattr(explain, name), n_rows)
           for name in (*_ROW_TYPES, "r_count", "r_examples", "a_int", "a_val")},
        **{name: bigger(getattr(explain, name), n_chosen) for name in _CHOSEN_TYPES}, **grown)


# ---- lowering ----------------------------------------------------------------------------------

def lower_stage(checks_by_rule: list[list], stage: str) -> Stage:
    """One stage's lowered conditions (interpreter._Check, per rule) as a Stage table."""
    n = len(checks_by_rule)
    width = max([len(c) for c in checks_by_rule] + [1])
    facts = FACT_CODES[stage]
    needs = np.zeros((n, max(1, len(facts))), np.bool_)
    code, fact, item_fact, op = (np.zeros((n, width), np.int64) for _ in range(4))
    number = np.zeros((n, width))
    for r, checks in enumerate(checks_by_rule):
        for k, check in enumerate(checks):
            criterion = check.criterion
            code[r, k] = CONDITION_CODES[criterion.name]
            fact[r, k] = facts[criterion.fact]
            item_fact[r, k] = ITEM_FACT_CODES.get(criterion.item_fact, -1)
            op[r, k], number[r, k] = check.op, check.number
            needs[r, fact[r, k]] = True
    return Stage(np.array([len(c) for c in checks_by_rule], np.int64), needs, code, fact,
                 item_fact, op, number)


def lower_rules(routing, store: str, ctx, tables: SortTables) -> tuple[Rules, Conditions,
                                                                        Sorts]:
    """A routing's rules as the kernel's tables, for ``store``'s units; ``ctx`` is the fast
    engine's context (facility codes, today)."""
    rules = routing.rules
    n_rules, n_fac = len(rules), len(ctx.fac_ids)
    prepared = [prepare_rule(rule, index) for index, rule in enumerate(rules)]
    width_s = max([len(rule.sorts) for rule in rules] + [1])
    sort_code = np.zeros((n_rules, width_s), np.int64)
    sort_desc = np.zeros((n_rules, width_s), np.bool_)
    sort_nf = np.zeros((n_rules, width_s), np.bool_)
    static = np.zeros((n_rules, n_fac), np.bool_)
    seq = np.full((n_rules, n_fac), np.nan)
    infos = [ctx.facilities[f] for f in ctx.fac_ids]
    serving = [not info.virtual and store in info.stores for info in infos]
    for r, (rule, prep) in enumerate(zip(rules, prepared, strict=True)):
        for k, sort in enumerate(rule.sorts):
            sort_code[r, k] = SORT_CODES[sort.field]
            sort_desc[r, k] = sort.descending
            sort_nf[r, k] = sort.nulls_first
        for f, info in enumerate(infos):
            static[r, f] = serving[f] and group_reason(prep, info) is None
            number = sequence_of(prep.include_ids, info)
            if number is not None:
                seq[r, f] = number
    actions = [rule.actions for rule in rules]
    lowered = Rules(
        single=np.array([rule.assign == "single" for rule in rules], np.bool_),
        ignore_limit=np.array([rule.ignore_facility_order_limit for rule in rules], np.bool_),
        keep_groups=np.array([rule.keep_item_groups_together for rule in rules], np.bool_),
        only_all=np.array([rule.only_if_all_items_available for rule in rules], np.bool_),
        threshold=np.array([rule.shipment_threshold or 0.0 for rule in rules], np.float64),
        factor=np.array([p.unit_factor for p in prepared], np.float64),
        miles=np.array([rule.distance_unit != "km" for rule in rules], np.bool_),
        static=static, seq=seq,
        clear_ac=np.array([a.clear_auto_cancel for a in actions], np.bool_),
        ac_days=np.array([-1 if a.auto_cancel_days is None else a.auto_cancel_days
                          for a in actions], np.int64),
        move=np.array([-1 if a.move_to_queue is None else ctx.fac_index[a.move_to_queue]
                       for a in actions], np.int64),
        cap=np.array([-1 if rule.max_facilities is None else rule.max_facilities
                      for rule in rules] or [-1], np.int64),
        whole_lines=np.array([p.whole_lines for p in prepared], np.bool_),
        split_money=np.array([p.split_money for p in prepared], np.float64),
        split_distance=np.array([p.split_distance for p in prepared], np.float64),
        uses_distance=np.array([p.uses_distance for p in prepared], np.bool_),
        uses_zone=np.array([p.uses_zone for p in prepared], np.bool_),
        costs=np.array(["costs" in p.needs for p in prepared], np.bool_),
        # ranking reads the shipping keys: a sort needs them, or a new package's split cost
        ship_rank=np.array(["placement" in p.needs or p.split_distance != 0.0
                            for p in prepared], np.bool_),
        balance=np.array(["balance" in p.needs for p in prepared], np.bool_))
    conditions = Conditions(
        lower_stage([p.candidate_checks for p in prepared], "candidate"),
        lower_stage([p.placement_checks for p in prepared], "placement"),
        lower_stage([p.serve_checks for p in prepared], "serve"),
        ctx.now.date().toordinal())
    sorts = Sorts(np.array([len(rule.sorts) for rule in rules], np.int64), sort_code,
                  sort_desc, sort_nf, tables)
    return lowered, conditions, sorts


def rate_tables(model, product_ids: list[str]) -> Rates:
    """The rate model (shipping.RateModel) as the kernel's tables."""
    prepared = model.prepared
    n_cards = max(1, len(prepared))
    n_zones = max([len(c.transit) for c in prepared] + [1])
    n_weights = max([len(c.weights) for c in prepared] + [1])
    n_fac = len(model.facility_ids)
    band = np.full((n_cards, n_zones), np.inf)
    transit = np.zeros((n_cards, n_zones), np.int64)
    price = np.zeros((n_cards, n_zones, n_weights))
    weights = np.full((n_cards, n_weights), np.inf)
    zones, buckets = np.zeros(n_cards, np.int64), np.zeros(n_cards, np.int64)
    divisor, amounts, multiplier = np.zeros(n_cards), np.zeros(n_cards), np.zeros(n_cards)
    miles = np.zeros(n_cards, np.bool_)
    origin = np.full((n_cards, max(1, n_fac)), -1, np.int64)
    chart_ptr = np.zeros(n_cards + 1, np.int64)
    columns = np.zeros(n_cards, np.int64)
    charts = []
    for c, card in enumerate(prepared):
        band[c, :len(card.bands)] = card.bands
        transit[c, :len(card.transit)] = card.transit
        for z, row in enumerate(card.prices):
            price[c, z, :len(row)] = row
        weights[c, :len(card.weights)] = card.weights
        zones[c], buckets[c] = len(card.transit), len(card.weights)
        divisor[c], amounts[c], multiplier[c] = card.divisor, card.amounts, card.multiplier
        miles[c] = card.miles
        origin[c, :n_fac] = card.origin
        columns[c] = card.chart.shape[1]
        charts.append(card.chart.ravel())
        chart_ptr[c + 1] = chart_ptr[c] + card.chart.size
    pw, pv = product_rate_columns(model, product_ids)
    chart = np.concatenate(charts) if charts else np.zeros(1, np.int64)
    return Rates(band, transit, price, weights, zones, buckets, divisor, amounts, multiplier,
                 miles, origin, chart_ptr, columns,
                 chart.astype(np.int64) if chart.size else np.zeros(1, np.int64), pw, pv,
                 np.array(model.handling or [0.0], np.float64),
                 np.array(model.leaves or [0], np.int64))


def product_rate_columns(model, product_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """`Rates.pw` and `Rates.pv`: each product's weight (NaN: unknown) and volume in each
    card's units (the rest of the rate tables does not depend on the products)."""
    n_cards, n_prod = max(1, len(model.prepared)), len(product_ids)
    pw = np.full((n_cards, max(1, n_prod)), np.nan)
    pv = np.zeros((n_cards, max(1, n_prod)))
    if model.prepared:
        pw[:, :n_prod], pv[:, :n_prod] = model.product_columns(product_ids)
    return pw, pv
