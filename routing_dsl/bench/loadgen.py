"""A load generator for `routing bench --service`: HTTP/1.1 POSTs, encoded before the clock
starts, sent over one keep-alive loopback connection per client thread.

Why not an HTTP client library: on this 2-core machine the generator shares the CPU with the
server it measures, and a general-purpose client (httpx) spends about as long building and
parsing a request as the server spends deciding it. This one does only what wrk does, a
send and a read up to the response's Content-Length, some tens of microseconds per request,
so the figures are the server's.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass


class LoadError(Exception):
    """The server answered something other than 200, or closed the connection."""


@dataclass
class Load:
    seconds: float            # wall time for all requests
    latencies: list[float]    # per request, seconds, in completion order per client

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def encode(host: str, path: str, bodies: list[bytes]) -> list[bytes]:
    """Each body as a complete POST request (JSON, keep-alive)."""
    return [(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
             f"Content-Length: {len(body)}\r\n\r\n").encode("ascii") + body for body in bodies]


class _Connection:
    def __init__(self, address: tuple[str, int]) -> None:
        self.socket = socket.create_connection(address, timeout=30)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def exchange(self, request: bytes) -> bytes:
        """Send ``request``, read its answer; the body (LoadError unless a 200)."""
        self.socket.sendall(request)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._read()
        head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
        status = head[9:12]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            self._read()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        if status != b"200":
            raise LoadError(f"HTTP {status.decode('ascii', 'replace')}: "
                            f"{body[:300].decode('utf-8', 'replace')}")
        return body

    def _read(self) -> None:
        chunk = self.socket.recv(1 << 16)
        if not chunk:
            raise LoadError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.socket.close()


def _worker(connection: _Connection) -> int:
    """Which worker of `routing serve --workers` holds the connection (its /healthz says)."""
    import orjson
    return orjson.loads(connection.exchange(
        b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")).get("worker", 0)


def connect(address: tuple[str, int], clients: int, workers: int = 1,
            wait: float = 120.0) -> list[_Connection]:
    """``clients`` connections, as many held by each of ``workers`` workers as can be (the
    kernel hands a new connection to a worker by a hash of its port: connections are opened
    until each worker has its share, so that the figures are the workers', not the hash's;
    a worker still loading takes none, so this waits up to ``wait`` seconds for it)."""
    if workers <= 1:
        return [_Connection(address) for _ in range(clients)]
    share = {k: clients // workers + (k < clients % workers) for k in range(workers)}
    kept: list[_Connection] = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        connection = _Connection(address)
        worker = _worker(connection)
        if share.get(worker, 0) > 0:
            share[worker] -= 1
            kept.append(connection)
            if len(kept) == clients:
                return kept
        else:
            connection.close()
            time.sleep(0.01)
    for connection in kept:
        connection.close()
    raise LoadError(f"could not spread {clients} connections over {workers} workers")


def drive(address: tuple[str, int], requests: list[bytes], clients: int = 1,
          workers: int = 1) -> Load:
    """Send ``requests`` from ``clients`` threads at once (each its own connection, taking the
    next unsent request when its previous one is answered, the connections spread evenly
    over ``workers``); every answer must be a 200."""
    connections = connect(address, clients, workers)
    latencies: list[float] = []
    errors: list[Exception] = []
    cursor = iter(range(len(requests)))
    take = threading.Lock()

    def client(connection: _Connection) -> None:
        mine = []
        try:
            while True:
                with take:
                    index = next(cursor, None)
                if index is None:
                    break
                started = time.perf_counter()
                connection.exchange(requests[index])
                mine.append(time.perf_counter() - started)
        except (OSError, LoadError) as error:
            errors.append(error)
        with take:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(c,)) for c in connections]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    for connection in connections:
        connection.close()
    if errors:
        raise LoadError(str(errors[0]))
    return Load(seconds, latencies)


def commit_bodies(orders: list[dict], count: int, explain: bool = True,
                  prefix: str = "bench") -> list[bytes]:
    """``count`` commit requests, each its own order (the given orders again under new ids)
    and its own idempotency key."""
    import orjson
    bodies = []
    for k in range(count):
        order = orders[k % len(orders)]
        bodies.append(orjson.dumps({"order": {**order, "id": f"{order['id']}-{prefix}{k}"},
                                    "commit": True, "explain": explain,
                                    "idempotency_key": f"{prefix}-{k}"}))
    return bodies
