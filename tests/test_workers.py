"""`routing serve --workers N`: N processes on one port, one run store. Real processes, real
databases: concurrent commits through both workers never sell a unit twice, every
acknowledged answer is the one recorded, a reload in one worker is done in all, and a worker
that dies is replaced while the others keep answering."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx

from routing_dsl.ops.store import RunStore
from routing_dsl.service.launch import serving

from .test_ledger import (assert_within_stock, commit_body, db_url, drive, order, prepare,
                          recorded_keys, world)

__all__ = ["db_url"]  # the SQLite and PostgreSQL run stores of test_ledger


def workers_seen(base: str, wanted: int, attempts: int = 200) -> set[int]:
    """The workers that answer /healthz on fresh connections (the kernel hands each new
    connection to one of them), until ``wanted`` of them have."""
    seen: set[int] = set()
    for _ in range(attempts):
        seen.add(httpx.get(f"{base}/healthz").json()["worker"])
        if len(seen) >= wanted:
            break
    return seen


def test_two_workers_on_one_store_sell_the_stock_exactly_once(tmp_path, db_url):
    """Orders of stores A and B compete for their shared warehouse, 8 clients at once through
    one port served by two workers: every commit is acknowledged and recorded with its
    answer, and no unit or daily order slot is sold twice."""
    document = world(stock=30, limit=25)
    arguments = prepare(tmp_path, db_url, document) + ["--workers", "2"]
    bodies = [commit_body(f"{'AB'[k % 2]}-{k}", "AB"[k % 2], quantity=1 + k % 2)
              for k in range(120)]
    with serving(arguments) as served:
        assert workers_seen(served.base, 2) == {0, 1}
        acknowledged = drive([served.base], bodies, threads=8)
    assert served.process.returncode == 0, served.stderr
    assert len(acknowledged) == len(bodies)
    store = RunStore(db_url)
    taken = assert_within_stock(store, document)
    assert taken[("WH", "P1")] > 0 and taken[("A_STORE", "P1")] == 5  # the stock was contested
    assert recorded_keys(store) == acknowledged
    lines = sum(len(a["lines"]) for a in acknowledged.values())
    assert lines == sum(b.allocations for b in store.batches(10_000))
    store.dispose()


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Until the killed process ``pid`` has ended (a zombie or reaped): SIGKILL is delivered
    asynchronously, and until then its listening socket still takes the connections the
    kernel hashes to it, which its death then resets."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not end {timeout:g} s after SIGKILL")


def quoted(base: str, quantity: int) -> set[int]:
    """Units a quote of ``quantity`` gets from each of the two workers (fresh connections:
    a client's requests go to the worker that accepted its connection)."""
    found: dict[int, int] = {}
    for _ in range(200):
        with httpx.Client() as client:
            worker = client.get(f"{base}/healthz").json()["worker"]
            answer = client.post(f"{base}/v1/decisions",
                                 json={"order": order("Q", "A", quantity)})
        found[worker] = sum(line["quantity"] for line in answer.json()["lines"])
        if len(found) == 2:
            return set(found.values())
    raise AssertionError(f"only workers {sorted(found)} answered")


def test_a_reload_is_done_in_every_worker_and_a_dead_worker_is_replaced(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    document = world(shared=False)
    arguments = prepare(tmp_path, db, document) + ["--workers", "2"]
    with serving(arguments) as served:
        assert quoted(served.base, 9) == {5}  # A's store holds 5
        document["inventory"][0]["atp"] = 8
        (tmp_path / "snapshot.json").write_text(json.dumps(document))
        assert httpx.post(f"{served.base}/v1/state/refresh").status_code == 200
        deadline = time.monotonic() + 20
        while quoted(served.base, 9) != {8}:  # the worker that did not answer reloads too
            assert time.monotonic() < deadline, "a worker never reloaded"
            time.sleep(0.2)
        first = children(served.process.pid)
        assert len(first) == 2
        os.kill(first[1], signal.SIGKILL)
        wait_gone(first[1])
        assert httpx.get(f"{served.base}/healthz").status_code == 200  # the other answers
        deadline = time.monotonic() + 60
        while len(set(children(served.process.pid)) - set(first)) < 1 or \
                workers_seen(served.base, 2, attempts=20) != {0, 1}:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.2)
        assert quoted(served.base, 9) == {8}  # the new worker loaded the source as it is now
    assert served.process.returncode == 0, served.stderr
    events = [json.loads(line)["event"] for line in served.stderr.splitlines()
              if line.startswith("{")]
    assert "worker_exited" in events and events.count("worker_started") == 3
