"""The `optimize` block's settings, declared once.

The checker validates a block against this table, the compiler turns it into the plan's
`PlanOptimize`, the language server offers and explains its settings, docs/language.md's
table is generated from it, and the optimiser reads the plan fields named here. Nothing here
imports numpy or the solver: `routing check` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass


FACILITIES_PER_LINE = 3  # the default: see docs/performance.md, "Batch optimisation"


@dataclass(frozen=True, slots=True)
class OptimizeSetting:
    """One setting: ``name value``. ``words`` are the names it accepts (``mode report``);
    ``measure`` is the kind of number it accepts (None: words only); ``whole`` numbers only
    for counts; ``low``/``high`` the range; ``default`` as the plan holds it."""

    name: str
    words: tuple[str, ...]
    measure: str | None
    low: float
    high: float
    whole: bool
    default: object
    doc: str
    example: str


SETTINGS: dict[str, OptimizeSetting] = {s.name: s for s in [
    OptimizeSetting(
        "mode", ("report", "apply"), None, 0, 0, False, "report",
        "`report` keeps the rules' decisions and adds the `optimization` section to the "
        "result (what the optimum would cost, and which rules cost more); `apply` returns the "
        "optimised allocations, each naming a rule that admits it, and the same section.",
        "mode report"),
    OptimizeSetting(
        "split_cost", (), "money", 0, 1_000_000, False, 0.0,
        "What one more package of a ship group costs, on top of its shipping cost (an amount).",
        "split_cost 4.00"),
    OptimizeSetting(
        "late_cost", (), "money", 0, 1_000_000, False, 0.0,
        "What each unit costs per day it arrives after its promised date (an amount).",
        "late_cost 2.50"),
    OptimizeSetting(
        "unfilled_penalty", ("auto",), "money", 0, 1_000_000_000, False, None,
        "What each unit left unfilled costs: `auto` (the default) is more than any package, "
        "split and lateness of the batch could cost, so the optimum fills every unit it can. "
        "Whatever it is, the optimum never fills fewer units than the rules.",
        "unfilled_penalty auto"),
    OptimizeSetting(
        "window", (), "count", 1, 1_000_000, True, 1500,
        "The most order lines one solve takes: larger batches are cut into windows of whole "
        "orders, solved in parallel.",
        "window 1500"),
    OptimizeSetting(
        "facilities_per_line", ("all",), "count", 1, 1_000_000, True, FACILITIES_PER_LINE,
        "How many of the facilities the rules admit for a line the program considers: its "
        "cheapest ones for that line alone (shipping cost and lateness), plus every facility "
        "the rules shipped its unit from, so the optimum is never worse than the rules. The "
        "section's `lower_bound` bounds the allocations among those; `all` considers every "
        "admitted facility (a larger program, and a bound over every allocation the rules "
        "allow).",
        "facilities_per_line 3"),
    OptimizeSetting(
        "work_limit", (), "count", 1, 1_000_000_000, True, 20_000,
        "How much the solver may work on one window, in branch-and-bound nodes and thousands "
        "of simplex iterations: it decides the answer, so the same plan and snapshot give the "
        "same result on any machine.",
        "work_limit 20000"),
    OptimizeSetting(
        "time_limit", (), "count", 1, 86_400, False, 120.0,
        "A safety limit in seconds per window: a solve stopped by it keeps its best answer "
        "so far and the result says so (such a result may differ between machines).",
        "time_limit 120"),
]}

MODES = SETTINGS["mode"].words
UNSET_WORDS = ("auto", "all")
"""Words a plan holds as None: the setting's default reckoning (`unfilled_penalty auto`) or no
limit (`facilities_per_line all`)."""
