"""`routing bench --scenario optimize`: what the reference rules cost against the optimum.

The reference retailer (bench.scenarios, with rate cards, weights, promised dates) at a size
where stock is scarce: 2,000 orders over 100 facilities (5 warehouses, 95 stores) and 1,000
SKUs. The same batch is routed three ways, each in a fresh process:

- by the reference plan's rules (distance-ranked, as HotWax merchants run them today);
- by the same rules ranked by `shipping_cost` first (the best a greedy cascade does);
- by the reference rules with `optimize { mode apply }` on every routing.

`--json` prints one object; `--sizes` measures how the solve grows with the batch.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .scenarios import PLAN, Scenario, generate

OPTIMIZE_SCENARIO = Scenario(orders=2_000, facilities=100, skus=1_000, shipping=True)
SIZES = (500, 1_000, 2_000, 5_000, 10_000, 20_000)


def cost_ranked_plan() -> str:
    """The reference rules, every facility ranked by shipping cost first."""
    return PLAN.replace("sort by distance\n", "sort by shipping_cost, distance\n").replace(
        "sort by distance, inventory_balance desc",
        "sort by shipping_cost, distance, inventory_balance desc")


def optimized_plan() -> str:
    """The reference rules, each routing optimised and the optimum applied."""
    block = "    optimize {\n      mode apply\n    }\n"
    text = PLAN
    for sort in ("    sort by order_date\n", "    sort by priority, order_date\n"):
        text = text.replace(sort, sort + block)
    assert text.count("optimize {") == 3
    return text


OPTIMIZED_PLAN = optimized_plan()
COST_RANKED_PLAN = cost_ranked_plan()


def _route(path: str, plan_text: str, jobs: int, engine: str = "auto") -> dict:
    """One run in a fresh process on ``engine``: the routing's wall time and its figures."""
    from ..checker import Workspace
    from ..compiler import compile_program
    from ..engine import route
    from ..optimize.run import SOLVER_CPU, executing
    from ..snapshot import parse_snapshot
    snapshot = parse_snapshot(Path(path).read_bytes(), path)
    checked = Workspace().check_text(plan_text, name="bench.route")
    plan = compile_program(checked.program)
    SOLVER_CPU.clear()
    load = os.getloadavg()[0]
    started = time.perf_counter()
    cpu = time.process_time()
    with executing("process" if jobs > 1 else "local", jobs):
        result = route(plan, snapshot, engine=engine)
    seconds = time.perf_counter() - started
    main_cpu = time.process_time() - cpu
    # the solver's CPU (a batch of one window, or every batch when jobs is 1, is solved in
    # this process: its CPU is in main_cpu too), and what the run would take on an idle
    # machine: the main process's CPU less its solves, plus each batch's solves, its windows
    # spread over the workers (no less than its longest window)
    solver = sum(sum(w) for w in SOLVER_CPU)
    local = [w for w in SOLVER_CPU if jobs <= 1 or len(w) <= 1]
    idle = main_cpu - sum(sum(w) for w in local) + sum(
        sum(w) if jobs <= 1 or len(w) <= 1 else max(sum(w) / jobs, max(w))
        for w in SOLVER_CPU)
    totals = {"shipping_cost": 0.0, "packages": 0, "split_orders": 0, "late_items": 0}
    for batch in result["batches"]:
        for key in totals:
            totals[key] += batch["totals"][key]
    # units still open at the end of the run: an item several routings could not fill has an
    # unfillable record from each, so the records' sum counts it more than once
    ordered = sum(i.quantity for o in snapshot.orders for g in o.ship_groups for i in g.items)
    filled = sum(a["quantity"] for a in result["allocations"])
    unfilled = ordered - filled
    report = {"seconds": seconds, "cpu_seconds": main_cpu, "solver_cpu_seconds": solver,
              "idle_seconds": idle, "windows_cpu": [[round(c, 2) for c in w] for w in SOLVER_CPU],
              "load": [round(load, 2), round(os.getloadavg()[0], 2)],
              "unfilled": unfilled, "filled": filled,
              "unfillable_records": sum(u["quantity"] for u in result["unfillable"]),
              "warnings": [w for w in result["warnings"]
                                                  if "optimum was not applied" in w], **totals}
    if "optimization" in result:
        section = result["optimization"]
        report["optimization"] = {key: section[key] for key in
                                  ("rules_cost", "optimized_cost", "lower_bound", "gap",
                                   "status")}
        report["windows"] = sum(r["windows"] for r in section["routings"])
        report["nodes"] = sum(r["work"]["nodes"] for r in section["routings"])
    return report


def run_optimize(scenario: Scenario = OPTIMIZE_SCENARIO, folder=None, jobs: int | None = None,
                 engine: str = "auto") -> dict:
    """The three runs of ``scenario`` on ``engine`` and the figures `--json` prints."""
    import tempfile
    jobs = jobs or min(2, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="routing-bench-") as temporary:
        path = Path(folder or temporary) / "optimize-snapshot.json"
        path.write_text(json.dumps(generate(scenario)))
        context = multiprocessing.get_context("spawn")
        runs = {}
        for name, text in (("rules", PLAN), ("cost_ranked", COST_RANKED_PLAN),
                           ("optimized", OPTIMIZED_PLAN)):
            # a process pool's worker, not a multiprocessing.Pool's: those are daemons, which
            # may not start the workers that solve the windows
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                runs[name] = pool.submit(_route, str(path), text, jobs, engine).result()
    rules, ranked, optimized = runs["rules"], runs["cost_ranked"], runs["optimized"]
    section = optimized["optimization"]
    saving = 1 - optimized["shipping_cost"] / rules["shipping_cost"] \
        if rules["shipping_cost"] else 0.0
    return {
        "orders": scenario.orders, "facilities": scenario.facilities, "skus": scenario.skus,
        "seed": scenario.seed, "jobs": jobs, "engine": engine,
        "rules_cost": round(rules["shipping_cost"], 2),
        "cost_ranked_rules_cost": round(ranked["shipping_cost"], 2),
        "optimized_cost": round(optimized["shipping_cost"], 2),
        "lower_bound": section["lower_bound"], "gap": section["gap"],
        "status": section["status"], "saving": round(saving, 4),
        "solve_s": round(optimized["seconds"], 2),
        "solve_cpu_s": round(optimized["cpu_seconds"], 2),
        "solver_cpu_s": round(optimized["solver_cpu_seconds"], 2),
        "windows_cpu_s": optimized["windows_cpu"],
        "solve_idle_estimate_s": round(optimized["idle_seconds"], 2),
        "load_average": optimized["load"], "rules_cpu_s": round(rules["cpu_seconds"], 2),
        "not_applied": optimized["warnings"],
        "rules_s": round(rules["seconds"], 2),
        "windows": optimized["windows"], "nodes": optimized["nodes"],
        "splits_rules": rules["split_orders"], "splits_optimized": optimized["split_orders"],
        "late_rules": rules["late_items"], "late_optimized": optimized["late_items"],
        "unfilled_rules": rules["unfilled"], "unfilled_optimized": optimized["unfilled"],
        "unfilled_cost_ranked": ranked["unfilled"],
        "filled_rules": rules["filled"], "filled_optimized": optimized["filled"],
        "unfillable_records_rules": rules["unfillable_records"],
        "unfillable_records_optimized": optimized["unfillable_records"],
    }


def optimize_text(report: dict) -> str:
    bound = report["lower_bound"]
    return "\n".join([
        f"optimize: {report['orders']:,} orders, {report['facilities']} facilities, "
        f"{report['skus']:,} SKUs (seed {report['seed']}), {report['jobs']} workers",
        f"  rules (distance-ranked)   {report['rules_cost']:>12,.2f}  "
        f"{report['splits_rules']} split orders, {report['unfilled_rules']:g} units unfilled",
        f"  rules ranked by cost      {report['cost_ranked_rules_cost']:>12,.2f}",
        f"  optimised under the rules {report['optimized_cost']:>12,.2f}  "
        f"{report['splits_optimized']} split orders, "
        f"{report['unfilled_optimized']:g} units unfilled",
        f"  lower bound               {bound:>12,.2f}  gap {report['gap']:.4%}"
        if bound is not None else "  lower bound               unknown",
        f"  saving against the rules  {report['saving']:.1%}; solved in {report['solve_s']:.1f} s "
        f"({report['solve_cpu_s']:.1f} s CPU in the main process, {report['solver_cpu_s']:.1f} s "
        f"in the solver, {report['windows']} windows, status {report['status']})",
        f"  on an idle machine about  {report['solve_idle_estimate_s']:.1f} s (load average "
        f"{report['load_average'][0]:.1f} at the start, {report['load_average'][1]:.1f} at the "
        "end)",
    ])


def run_sizes(sizes=SIZES, jobs: int | None = None, engine: str = "auto") -> list[dict]:
    """How the optimisation grows with the batch: the optimize scenario at each size, its
    facilities and SKUs growing with the orders (so that stock stays as scarce)."""
    reports = []
    for orders in sizes:
        scale = orders / OPTIMIZE_SCENARIO.orders
        scenario = Scenario(orders=orders,
                            facilities=max(20, round(OPTIMIZE_SCENARIO.facilities * scale)),
                            skus=max(100, round(OPTIMIZE_SCENARIO.skus * scale)), shipping=True)
        reports.append(run_optimize(scenario, jobs=jobs, engine=engine))
    return reports


def sizes_table(reports: list[dict]) -> str:
    rows = ["| orders | facilities | SKUs | windows | rules | cost-ranked | optimised | saving "
            "| gap | wall | CPU main / solver | idle | load |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        load = r["load_average"]
        rows.append(f"| {r['orders']:,} | {r['facilities']} | {r['skus']:,} | {r['windows']} | "
                    f"{r['rules_cost']:,.2f} | {r['cost_ranked_rules_cost']:,.2f} | "
                    f"{r['optimized_cost']:,.2f} | {r['saving']:.1%} | "
                    f"{'-' if r['gap'] is None else format(r['gap'], '.3%')} | "
                    f"{r['solve_s']:.1f} s | {r['solve_cpu_s']:.1f} / {r['solver_cpu_s']:.1f} s | "
                    f"{r['solve_idle_estimate_s']:.1f} s | {load[0]:.1f}-{load[1]:.1f} |")
    return "\n".join(rows)


def sizes_svg(reports: list[dict]) -> str:
    """Two panels against the batch's orders: the optimised run's time (seconds: its wall
    time on the machine as it was, solid, and the estimate for an idle machine, dashed), and
    the saving against the rules (percent). Plain SVG, as `routing bench --scaling` draws."""
    width, height, pad = 320, 200, 44
    panels = [("optimised run: wall, idle estimate (s)", [r["solve_s"] for r in reports],
               "{:.1f}", [r["solve_idle_estimate_s"] for r in reports]),
              ("saving against the rules (%)", [100 * r["saving"] for r in reports], "{:.1f}",
               None)]
    orders = [r["orders"] for r in reports]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * width}" height="{height}" '
             'font-family="sans-serif" font-size="11">',
             f'<rect width="{2 * width}" height="{height}" fill="white"/>']
    low, high = min(orders), max(orders)
    for panel, (title, values, label, second) in enumerate(panels):
        left = panel * width + pad
        inner_w, inner_h = width - pad - 30, height - 2 * pad
        top = max(max(values + (second or [])) * 1.25, 1e-9)

        def px(x, left=left, inner_w=inner_w):
            return left + (x - low) / ((high - low) or 1) * inner_w

        def py(y, inner_h=inner_h, top=top):
            return pad + inner_h - max(y, 0.0) / top * inner_h
        parts.append(f'<line x1="{left}" y1="{pad + inner_h}" x2="{left + inner_w}" '
                     f'y2="{pad + inner_h}" stroke="black"/>')
        parts.append(f'<line x1="{left}" y1="{pad}" x2="{left}" y2="{pad + inner_h}" '
                     'stroke="black"/>')
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(orders, values,
                                                                     strict=True))
        parts.append(f'<polyline points="{points}" fill="none" stroke="#1f6feb" '
                     'stroke-width="2"/>')
        if second is not None:
            dashed = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(orders, second,
                                                                         strict=True))
            parts.append(f'<polyline points="{dashed}" fill="none" stroke="#1f6feb" '
                         'stroke-width="2" stroke-dasharray="5,4"/>')
            for x, y in zip(orders, second, strict=True):
                parts.append(f'<text x="{px(x) + 4:.1f}" y="{py(y) + 12:.1f}" '
                             f'fill="#555">{label.format(y)}</text>')
        for x, y in zip(orders, values, strict=True):
            parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="#1f6feb"/>')
            parts.append(f'<text x="{px(x):.1f}" y="{py(y) - 6:.1f}" '
                         f'text-anchor="middle">{label.format(y)}</text>')
        parts.append(f'<text x="{left}" y="{pad + inner_h + 14}">{low:,}</text>')
        parts.append(f'<text x="{left + inner_w}" y="{pad + inner_h + 14}" '
                     f'text-anchor="end">{high:,}</text>')
        parts.append(f'<text x="{left + inner_w / 2}" y="{height - 8}" '
                     'text-anchor="middle">orders in the batch</text>')
        parts.append(f'<text x="{left}" y="{pad - 14}">{title}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
