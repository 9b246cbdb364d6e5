"""`routing bench --service`, the engines part: what one decision costs on each engine, by
the size of the order, in process (no HTTP), on the bench retailer's live state. It is what
`engine.live.SMALL_LINES` (the size below which `auto` decides on the reference engine)
rests on.

Each quote is timed as CPU time (a loaded machine changes it less than wall time), the two
engines in turns on the same orders, the best of a few rounds."""

from __future__ import annotations

import random
import time

from .scenarios import PLAN, Scenario, generate

SIZES = (3, 10, 20, 50, 100)


def decision_costs(facilities: int = 1000, sizes: tuple[int, ...] = SIZES,
                   rounds: int = 3) -> list[dict]:
    """Per size and explain: CPU milliseconds a quote on each engine."""
    from ..checker import Workspace
    from ..compiler import compile_program
    from ..service.state import LiveState
    from ..snapshot import Order, parse_snapshot

    document = generate(Scenario(orders=2000, facilities=facilities, skus=2000))
    plan = compile_program(Workspace().check_text(PLAN, name="bench.route").program)
    snapshot = parse_snapshot(document)
    states = {}
    for engine in ("reference", "fast"):
        states[engine] = LiveState([plan], lambda: snapshot, engine=engine)
        states[engine].refresh()
    template = document["orders"][0]
    products = [p["id"] for p in document["products"]]
    rng = random.Random(7)
    rows = []
    for size in sizes:
        orders = []
        for k in range(max(10, 300 // size)):
            group = dict(template["ship_groups"][0])
            group["ship_to"] = document["orders"][k]["ship_groups"][0]["ship_to"]
            group["items"] = [{"id": f"{n:05d}", "product": p, "quantity": 1}
                              for n, p in enumerate(rng.sample(products, size))]
            orders.append(Order.model_validate({**template, "id": f"SIZE-{size}-{k}",
                                                "ship_groups": [group]}))
        for explain in (False, True):
            best = {engine: float("inf") for engine in states}
            for state in states.values():  # warm: the kernel, the prepared facts
                for order in orders[:3]:
                    state.quote(order, explain)
            for _ in range(rounds):
                for engine, state in states.items():
                    started = time.process_time()
                    for order in orders:
                        state.quote(order, explain)
                    spent = (time.process_time() - started) / len(orders) * 1000
                    best[engine] = min(best[engine], spent)
            rows.append({"lines": size, "explain": explain, **best})
    return rows


def decision_costs_text(facilities: int = 1000) -> str:
    """`decision_costs` as the bench prints it."""
    with open("/proc/loadavg", encoding="ascii") as load:
        average = load.read().split()[0]
    lines = [f"decisions in process, CPU a quote by engine (load average {average}):"]
    for row in decision_costs(facilities):
        lines.append(f"  {row['lines']:3d} lines{', explained' if row['explain'] else ''}: "
                     f"reference {row['reference']:.2f} ms, fast {row['fast']:.2f} ms "
                     f"({row['fast'] / row['reference']:.2f}x)")
    return "\n".join(lines)
