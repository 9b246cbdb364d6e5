"""Independent tasks on an executor: one function over a list of inputs, results in input
order whatever the executor, the number of workers or the order they finish in.

The optimiser solves its windows this way (routing_dsl.optimize.run), and the process and
Ray executors route their partitions this way (routing_dsl.scaleout.partition). The process
pool: spawned workers, inputs and results as files, and a broken pool's workers killed, so a
dead worker is an error, never a hang. Each input is written and submitted in turn, the
heaviest first when weights are given: the first submit starts a worker, which imports the
engine and begins the first task while this process writes the next input (a pool that
waited for every input to be written idled its workers for as long). The function must be
importable by name (a module-level function).
"""

from __future__ import annotations

import multiprocessing
import pickle
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .partition import ExecutorUnavailable

TASK_EXECUTORS = ("local", "process", "ray")


def map_tasks(function, inputs: Sequence, *, executor: str = "local", jobs: int = 1,
              weights: Sequence[float] | None = None) -> list:
    """``[function(*args) for args in inputs]`` on ``executor``. ``inputs`` may make each
    input when it is indexed (a part is made only when its turn comes); ``weights``, one an
    input, say which to start first on a pool (the heaviest: the longest task must not be
    the last one started)."""
    if executor == "local" or jobs <= 1 and executor == "process" or len(inputs) <= 1:
        return [function(*args) for args in inputs]
    if executor == "process":
        order = sorted(range(len(inputs)), key=lambda k: -weights[k]) if weights else None
        return _on_processes(function, inputs, jobs, order)
    if executor == "ray":
        return _on_ray(function, inputs)
    raise ValueError(f"unknown executor {executor!r} (known: {', '.join(TASK_EXECUTORS)})")


def _run_file(function, path: str) -> str:
    with open(path, "rb") as file:
        args = pickle.load(file)
    out = path + ".out"
    with open(out, "wb") as file:
        pickle.dump(function(*args), file, protocol=pickle.HIGHEST_PROTOCOL)
    return out


def _on_processes(function, inputs: Sequence, jobs: int, order: list[int] | None) -> list:
    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    before = set(multiprocessing.active_children())
    with tempfile.TemporaryDirectory(prefix="routing-tasks-") as folder:
        pool = ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=context)
        try:
            futures = {}
            for number in order or range(len(inputs)):
                path = Path(folder) / f"task-{number}.pickle"
                with open(path, "wb") as file:
                    pickle.dump(tuple(inputs[number]), file, protocol=pickle.HIGHEST_PROTOCOL)
                futures[number] = pool.submit(_run_file, function, str(path))
            outs = [futures[number].result() for number in range(len(inputs))]
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            for child in set(multiprocessing.active_children()) - before:
                child.kill()
            raise
        pool.shutdown()
        results = []
        for out in outs:
            with open(out, "rb") as file:
                results.append(pickle.load(file))
        return results


def _on_ray(function, inputs: list) -> list:
    try:
        import ray
    except ImportError:
        raise ExecutorUnavailable("the ray executor needs Ray: pip install 'routing-dsl[ray]' "
                                  "(or pip install ray)") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        task = ray.remote(function)
        return ray.get([task.remote(*args) for args in inputs])
    finally:
        if started_here:
            ray.shutdown()
