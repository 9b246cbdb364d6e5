"""Starting `routing serve` as a real process on a free loopback port and waiting until it
answers: for the benchmark's load generator and for tests that drive a real server."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx


@dataclass
class Served:
    base: str               # http://127.0.0.1:PORT
    process: subprocess.Popen
    stderr: str = ""        # what the server printed, once it has stopped


@contextmanager
def serving(arguments: list[str], *, cwd=None, env=None, timeout: float = 60.0,
            ready: Callable[[httpx.Response], bool] = lambda answer: answer.json()["status"]
            == "ok", preexec_fn=None) -> Iterator[Served]:
    """`routing serve ARGUMENTS --port P` until the block ends (then SIGTERM, and the process
    is waited for: `served.process.returncode` and `served.stderr` tell how it ended), once
    `/healthz` answers as ``ready`` wants (by default: `ok`). Raises RuntimeError, with the
    server's last words, when it does not come up."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "routing_dsl", "serve", *arguments, "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd, env=env,
        preexec_fn=preexec_fn)
    served = Served(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready(httpx.get(f"{served.base}/healthz")):
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                words = process.communicate()[1].decode("utf-8", "replace")[-500:]
                raise RuntimeError(f"routing serve did not start: {words}")
            time.sleep(0.1)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            served.stderr = process.communicate(timeout=30)[1].decode("utf-8", "replace")
