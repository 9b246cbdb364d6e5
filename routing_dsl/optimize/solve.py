"""One window's program through HiGHS (highspy): the rules' allocation as the starting
incumbent, a work limit that decides the answer, a wall-clock limit for safety.

Determinism: one thread, a fixed seed, and limits counted in work (branch-and-bound nodes and
simplex iterations), never in time, so the same program gives the same answer on any machine.
Only the safety `time_limit` depends on the clock; a solve it stops says so (`stopped`).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from .model import Model

ITERATIONS_PER_WORK = 1000  # simplex iterations a unit of work_limit allows
RELATIVE_GAP = 1e-4  # the solve ends when the incumbent is within 0.01% of the bound


@dataclass
class Solution:
    x: np.ndarray | None  # per candidate package: shipped or not; None when none found
    objective: float  # of x, the model's objective with its offset
    bound: float  # a lower bound on the model's objective
    status: str  # optimal | work_limit | time_limit | infeasible | error
    nodes: int
    iterations: int
    cpu_s: float = 0.0  # the solver's CPU time where it ran (a measure, never in a result)


_BANNER_SHOWN = False


def _highs():
    """A silent, single-threaded, seeded solver. HiGHS prints a banner on the C stdout when a
    process makes its first solver, even before options can be set: that one is made with the
    descriptor pointed at /dev/null, so `routing run -` keeps a clean stdout."""
    global _BANNER_SHOWN
    import highspy
    if _BANNER_SHOWN:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 1)
                h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _BANNER_SHOWN = True
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("parallel", "off")
    h.setOptionValue("random_seed", 0)
    return h, highspy


def solve(model: Model, work_limit: int, time_limit: float) -> Solution:
    started = time.process_time()
    if len(model.cost) == 0:
        # a window whose units no rule admits anywhere: nothing to choose, the rules' (empty)
        # allocation is the optimum (HiGHS calls an empty program an error)
        return Solution(np.zeros(0), model.offset, model.offset, "optimal", 0, 0,
                        time.process_time() - started)
    h, highspy = _highs()
    h.setOptionValue("mip_max_nodes", int(work_limit))
    h.setOptionValue("simplex_iteration_limit", int(work_limit) * ITERATIONS_PER_WORK)
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("mip_rel_gap", RELATIVE_GAP)
    lp = highspy.HighsLp()
    n_cols = len(model.cost)
    lp.num_col_ = n_cols
    lp.num_row_ = len(model.row_lower)
    lp.col_cost_ = model.cost
    lp.col_lower_ = model.lower
    lp.col_upper_ = np.where(np.isinf(model.upper), highspy.kHighsInf, model.upper)
    lp.row_lower_ = np.where(np.isinf(model.row_lower), -highspy.kHighsInf, model.row_lower)
    lp.row_upper_ = np.where(np.isinf(model.row_upper), highspy.kHighsInf, model.row_upper)
    lp.offset_ = model.offset
    matrix = model.matrix
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = matrix.data
    lp.integrality_ = [highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous
                       for flag in model.integral.tolist()]
    h.passModel(lp)
    # The rules' allocation bounds the search: only cheaper allocations are looked for. (It is
    # not passed as a starting solution: HiGHS 1.16 then returns, for columns its presolve
    # removed, the starting values instead of the optimum's.)
    incumbent = warm_objective(model)
    h.setOptionValue("objective_bound", incumbent + 1e-7 * max(1.0, abs(incumbent)))
    h.run()
    status = h.getModelStatus()
    info = h.getInfo()
    names = {highspy.HighsModelStatus.kOptimal: "optimal",
             highspy.HighsModelStatus.kTimeLimit: "time_limit",
             highspy.HighsModelStatus.kIterationLimit: "work_limit",
             highspy.HighsModelStatus.kSolutionLimit: "work_limit",
             highspy.HighsModelStatus.kInfeasible: "infeasible"}
    name = names.get(status, "error")
    if status == highspy.HighsModelStatus.kInterrupt:
        name = "work_limit"
    nodes = int(getattr(info, "mip_node_count", 0) or 0)
    iterations = int(getattr(info, "simplex_iteration_count", 0) or 0)
    has_solution = info.primal_solution_status == 2  # feasible
    x = None
    objective = float("inf")
    if has_solution:
        values = np.array(h.getSolution().col_value)
        x = values[:model.n_packages]
        objective = float(info.objective_function_value)
    bound = float(getattr(info, "mip_dual_bound", objective))
    if not np.isfinite(bound):
        bound = objective if name == "optimal" else -np.inf
    return Solution(x, objective, bound, name, nodes, iterations,
                    time.process_time() - started)


def warm_objective(model: Model) -> float:
    """The model's objective at its warm start (the rules' allocation)."""
    return float(model.cost @ model.warm + model.offset)


def warm_feasible(model: Model, tolerance: float = 1e-6) -> bool:
    """Whether the rules' allocation satisfies every row and bound of the model."""
    values = model.warm
    activity = model.matrix @ values
    return bool(np.all(activity >= model.row_lower - tolerance)
                and np.all(activity <= model.row_upper + tolerance)
                and np.all(values >= model.lower - tolerance)
                and np.all(values <= model.upper + tolerance))
