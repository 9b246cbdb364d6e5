"""Stock: `brokering_safety_stock` (a per-rule threshold on net stock) and the
`inventory_balance` sort.

Net stock is `atp - minimum_stock` of brokerable rows at real facilities, less what the run
has taken. `brokering_safety_stock` is a threshold, not a reserve: a facility qualifies for a
line when its net stock passes the comparison and covers the line's whole open quantity, and
then ships the whole line (``whole_lines``).
"""

from __future__ import annotations

from . import Criterion
from ._jit import EPS, OPS, compare, jitable
from .text import fmt, number


@jitable
def safety_passes(op, threshold, available, open_quantity):
    """Net stock passes the threshold and covers the line."""
    return compare(op, available, threshold) and not available + EPS < open_quantity


def _lower(condition, rule) -> tuple[int, float]:
    return OPS[condition.op], condition.number


def _text(rule, condition) -> str:
    return f"brokering_safety_stock {condition.op} {fmt(condition.number)}"


def _explain(ex, condition, value, item) -> tuple[str, dict]:
    return (_text(ex.rule, condition),
            {"product": item.product, "net_stock": number(value),
             "quantity": number(item.open)})


@jitable
def _balance_key(view, r, f, n_products):
    return view.bal[f]


CRITERIA = [
    Criterion(
        "brokering_safety_stock", "inventory_condition",
        "A per-rule threshold, not a reserve: a facility qualifies when its net stock "
        "(`atp - minimum_stock`) of each item passes the comparison and covers the item's "
        "whole open quantity, and then ships the whole quantity. With atp 3 and `> 2` it "
        "ships 2 and keeps 1; to hold stock back, set `minimum_stock` in the snapshot.",
        value="count", operators=(">", ">="), example="brokering_safety_stock > 2",
        hotwax="brokeringSafetyStock",
        samples=("brokering_safety_stock > 1", "brokering_safety_stock >= 2"),
        stage="serve", fact="available", item_fact="open", whole_lines=True,
        reference=safety_passes, kernel=safety_passes, lower=_lower, explain=_explain,
        explain_text=_text, explain_rank=50),
    Criterion(
        "inventory_balance", "inventory_sort",
        "Net stock of the unit's products at the facility (use `desc` for most first).",
        hotwax="inventoryForAllocation",
        samples=("inventory_balance desc", "inventory_balance"), needs=frozenset({"balance"}),
        reference=lambda rank, facility: rank.measure.balance, kernel=_balance_key,
        explain=lambda ex, measure, facility: {"inventory_balance": number(measure.balance)}),
]
