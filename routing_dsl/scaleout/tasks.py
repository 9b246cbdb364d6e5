"""Independent tasks on an executor: one function over a list of inputs, results in input
order whatever the executor, the number of workers or the order they finish in.

The optimiser solves its windows this way (routing_dsl.optimize.run). The process pool is the
partitions' (`partition._on_processes`): spawned workers, inputs and results as files, every
task submitted at once, and a broken pool's late workers killed, so a dead worker is an error,
never a hang. The function must be importable by name (a module-level function).
"""

from __future__ import annotations

import multiprocessing
import pickle
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .partition import ExecutorUnavailable

TASK_EXECUTORS = ("local", "process", "ray")


def map_tasks(function, inputs: list, *, executor: str = "local", jobs: int = 1) -> list:
    """``[function(*args) for args in inputs]`` on ``executor``."""
    if executor == "local" or jobs <= 1 and executor == "process" or len(inputs) <= 1:
        return [function(*args) for args in inputs]
    if executor == "process":
        return _on_processes(function, inputs, jobs)
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


def _on_processes(function, inputs: list, jobs: int) -> list:
    context = multiprocessing.get_context("spawn")
    before = set(multiprocessing.active_children())
    with tempfile.TemporaryDirectory(prefix="routing-tasks-") as folder:
        paths = []
        for number, args in enumerate(inputs):
            path = Path(folder) / f"task-{number}.pickle"
            with open(path, "wb") as file:
                pickle.dump(args, file, protocol=pickle.HIGHEST_PROTOCOL)
            paths.append(str(path))
        pool = ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=context)
        try:
            futures = [pool.submit(_run_file, function, path) for path in paths]
            outs = [future.result() for future in futures]
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
