"""`routing serve --port P --workers N`: N processes answering one port, sharing the run store.

One process is one core for Python (the GIL); quotes and commits are CPU work, so a service
that must use every core runs several processes. The parent checks that the port is free
and forks the workers; each listens on the port with SO_REUSEPORT, and the kernel hands
each new connection to one of them, spread by a hash of the client's address and port
(a worker's connections stay with it: keep-alive clients are spread, not requests). One
socket shared by all would not spread them: a worker woken for new connections takes every
one waiting (16 connections opened at once all went to one worker in a third of the trials),
where the hash gave 6 to 10 of them to each in 94%. Nothing is shared between workers but
the run store: each loads the source into its own live state,
and a commit is decided under its partition's lock with every decision before it read from
the ledger (ops/locks.py, ops/ledger.py), whichever worker made it: two workers are two
`routing serve` processes on one store, which issue 20 made exact.

- **The scheduler runs in worker 0 only** (a slot is run once, not once per worker).
- **Reloads are shared**: when a worker rereads the source (a scheduled round, or
  `POST /v1/state/refresh`), it tells the parent through a pipe, and the parent tells every
  other worker (SIGUSR1), which rereads it too.
- **A worker that dies is started again** (after 1 s, doubling up to 30 s while it keeps
  dying), with the same index: worker 0 brings the scheduler back with it. The connections
  it had not accepted yet are reset, as its open ones are closed; the others' are untouched.
- **SIGTERM or SIGINT** to the parent stops every worker (each finishes what it is doing,
  as one `routing serve` does) and then the parent.

The parent forks before it has started a thread or holds a database connection (forking a
process with threads can copy a lock some thread held); it listens to nothing and serves
nothing itself.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

RESPAWN_FIRST = 1.0   # seconds before a dead worker is started again; doubled while it dies
RESPAWN_MAX = 30.0
STOP_WAIT = 30.0      # seconds the workers get to finish after SIGTERM, then SIGKILL
REFRESH_SIGNAL = signal.SIGUSR1


def bind(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A worker's listening socket on ``host``:``port``, shared with the other workers'
    (SO_REUSEPORT); raises OSError when the port is taken by another program."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


class Peers:
    """A worker's side of the reload channel: ``announce`` after its own reload; ``follow``
    runs ``reload(failures)`` on a thread whenever another worker has reloaded (and again,
    after the seconds it returns, until it returns None: it worked)."""

    def __init__(self, index: int, announce_fd: int) -> None:
        self.index = index
        self._fd = announce_fd
        self._wanted = threading.Event()

    def announce(self) -> None:
        try:
            os.write(self._fd, b"%d\n" % self.index)
        except OSError:
            pass  # the parent is gone: nobody to tell

    def follow(self, reload: Callable[[int], float | None],
               stop: threading.Event) -> threading.Thread:
        signal.signal(REFRESH_SIGNAL, lambda *_: self._wanted.set())

        def loop() -> None:
            failures, retry_at = 0, None
            while not stop.is_set():
                wanted = self._wanted.wait(0.5)
                if not wanted and (retry_at is None or time.monotonic() < retry_at):
                    continue
                self._wanted.clear()
                again = reload(failures)
                failures, retry_at = (0, None) if again is None else (
                    failures + 1, time.monotonic() + again)
        thread = threading.Thread(target=loop, daemon=True, name="reload follower")
        thread.start()
        return thread


def supervise(count: int, work: Callable[[int, Peers], int],
              log: Callable[[dict], None]) -> int:
    """Fork ``count`` workers, each running ``work(index, peers)`` and exiting with what it
    returns; start again any that dies; relay reloads; on SIGTERM/SIGINT stop them all.
    Returns once every worker has ended (0, or 1 when a worker could not be stopped)."""
    if threading.active_count() > 1:  # forking would copy another thread's locks
        raise RuntimeError("routing serve --workers must fork before any thread starts")
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    stopping = threading.Event()
    workers: dict[int, int] = {}            # index -> pid
    started: dict[int, float] = {}          # index -> monotonic start
    delays: dict[int, float] = {}           # index -> next respawn delay
    due: dict[int, float] = {}              # index -> when to start it again
    previous = {s: signal.signal(s, lambda *_: stopping.set())
                for s in (signal.SIGTERM, signal.SIGINT)}

    def start(index: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(read_fd)
                for s, handler in previous.items():
                    signal.signal(s, handler)
                code = work(index, Peers(index, write_fd))
            except BaseException as error:  # noqa: BLE001 - said, then the worker ends
                log({"at": _now(), "event": "worker_failed", "worker": index,
                     "error": f"{type(error).__name__}: {error}"})
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code if isinstance(code, int) else 0)
        workers[index], started[index] = pid, time.monotonic()
        log({"at": _now(), "event": "worker_started", "worker": index, "pid": pid})

    try:
        for index in range(count):
            start(index)
        buffer = b""
        while not stopping.is_set():
            try:
                ready, _, _ = select.select([read_fd], [], [], 0.2)
            except InterruptedError:
                ready = []
            if ready:
                buffer += _drain(read_fd)
                *lines, buffer = buffer.split(b"\n")
                for sender in {int(line) for line in lines if line.strip().isdigit()}:
                    for index, pid in workers.items():
                        if index != sender:
                            _signal(pid, REFRESH_SIGNAL)
            for index, status in _reap(workers):
                lived = time.monotonic() - started.pop(index)
                delay = RESPAWN_FIRST if lived > 60 else min(
                    RESPAWN_MAX, delays.get(index, RESPAWN_FIRST / 2) * 2)
                delays[index] = delay
                due[index] = time.monotonic() + delay
                log({"at": _now(), "event": "worker_exited", "worker": index,
                     "status": status, "restart_in": delay})
            for index, when in list(due.items()):
                if when <= time.monotonic() and not stopping.is_set():
                    del due[index]
                    start(index)
        return _stop_all(workers, log)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        os.close(read_fd)
        os.close(write_fd)


def _stop_all(workers: dict[int, int], log) -> int:
    for pid in workers.values():
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT
    while workers and time.monotonic() < deadline:
        for index, status in _reap(workers):
            log({"at": _now(), "event": "worker_stopped", "worker": index, "status": status})
        time.sleep(0.05)
    for index, pid in list(workers.items()):
        _signal(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        log({"at": _now(), "event": "worker_killed", "worker": index,
             "reason": f"still running {STOP_WAIT:g} s after SIGTERM"})
    return 1 if workers else 0


def _reap(workers: dict[int, int]) -> list[tuple[int, str]]:
    """The workers that have ended (removed from ``workers``), with how."""
    ended = []
    for index, pid in list(workers.items()):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done:
            del workers[index]
            ended.append((index, _how(status)))
    return ended


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else str(status)


def _drain(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                break
            raise
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _now() -> str:
    return datetime.now(UTC).isoformat()
