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

    def exchange(self, request: bytes) -> None:
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

    def _read(self) -> None:
        chunk = self.socket.recv(1 << 16)
        if not chunk:
            raise LoadError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.socket.close()


def drive(address: tuple[str, int], requests: list[bytes], clients: int = 1) -> Load:
    """Send ``requests`` from ``clients`` threads at once (each its own connection, taking the
    next unsent request when its previous one is answered); every answer must be a 200."""
    connections = [_Connection(address) for _ in range(clients)]
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
