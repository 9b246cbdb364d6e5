"""The HTTP server `routing serve --port` runs: uvicorn with httptools, and the limits uvicorn
leaves out, kept per connection by its protocol (uvicorn has no request-receipt timeout and
httptools no header-size cap; an ASGI middleware only runs once a request's headers are in):

- **header timeout**: a request's headers must be in within ``header_timeout`` seconds of its
  first byte (of the connection, for the first request), else the connection is closed (408
  when part of them came): a client trickling headers (slowloris) cannot hold it;
- **body timeout**: its body within ``body_timeout`` seconds of its headers (else 408, closed);
- **header size**: at most ``max_header_bytes`` of request line and headers (else 431, closed);
- **keep-alive**: a connection idle ``keep_alive_timeout`` seconds after a response is closed
  (uvicorn's own timer);
- **connection cap**: at most ``max_connections`` open connections (never more than the
  open-file limit allows): a new one beyond it closes the connection idle the longest, or, when
  none is idle, gets a 503 and is closed, so idle connections never starve a health check;
- the process's soft open-file limit is raised to its hard limit at start.

The body-size and lines-per-decision limits are the application's (`service.app`): they answer
problem documents through its handlers.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

RESERVED_FILES = 64  # descriptors kept for the run store's pool, source files, logs, threads


@dataclass(frozen=True)
class Limits:
    """What one request and the server may take (`routing serve` options of the same names)."""

    max_body_bytes: int = 1_048_576
    max_lines: int = 100
    max_connections: int = 1000
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    max_header_bytes: int = 65_536


@dataclass
class ConnectionStats:
    """Open connections and why connections were closed, for /metrics (event loop only)."""

    open: int = 0
    closed: Counter = field(default_factory=Counter)  # reason -> connections
    cap: int | None = None
    open_files: int | None = None


def raise_open_files_limit() -> int | None:
    """Raise the soft limit on open files to the hard limit (a default soft limit of 1,024
    would let a thousand idle connections starve everything else); returns the limit now."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        try:
            target = int(Path("/proc/sys/fs/nr_open").read_text())
        except (OSError, ValueError):
            target = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return None if soft == resource.RLIM_INFINITY else soft


def connection_cap(limits: Limits, open_files: int | None) -> int:
    """``max_connections``, lowered when the open-file limit could not hold that many."""
    if open_files is None:
        return limits.max_connections
    return max(1, min(limits.max_connections, open_files - RESERVED_FILES))


def _problem(status: int, title: str, detail: str) -> bytes:
    """A whole HTTP response carrying a problem document, closing the connection."""
    body = orjson.dumps({"type": "about:blank", "title": title, "status": status,
                         "detail": detail})
    return b"".join([STATUS_LINE[status], b"content-type: application/problem+json\r\n",
                     b"content-length: %d\r\n" % len(body), b"connection: close\r\n\r\n", body])


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the timeouts, header cap and connection cap above
    (a subclass per server, made by :func:`guarded_protocol`, carries its settings)."""

    limits: ClassVar[Limits] = Limits()
    stats: ClassVar[ConnectionStats] = ConnectionStats()
    cap: ClassVar[int] = Limits.max_connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.stats.open += 1
        self._head = True            # the bytes coming in belong to a request's head
        self._head_bytes = 0
        self._body_timer: asyncio.TimerHandle | None = None
        self._idle_since: float | None = self.loop.time()  # None while a request is under way
        # the first request's headers are due within the header timeout of the connection
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.limits.header_timeout, self._head_timeout)
        if len(self.connections) > self.cap and not self._evict_idle():
            self._refuse()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats.open -= 1
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._idle_since = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._idle_since = None
        if self._head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._head and self._head_bytes > self.limits.max_header_bytes \
                and not self.transport.is_closing():
            self._close("header_too_large", _problem(
                431, "request headers too large",
                f"request line and headers may take {self.limits.max_header_bytes} bytes"))

    # parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head = True
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout,
                                                    self._head_timeout)

    def on_headers_complete(self) -> None:
        self._head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = _Coalescing(self.transport, self.loop)
        self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_timeout)

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._head, self._head_bytes = True, 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # nothing more to answer: idle
            self._idle_since = self.loop.time()

    def timeout_keep_alive_handler(self) -> None:
        if not self.transport.is_closing():
            self._close("idle")

    # limits
    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            # a pipelined request's head, while the answer before it is still being made:
            # its clock starts once that answer is out
            self._head_timer = self.loop.call_later(self.limits.header_timeout,
                                                    self._head_timeout)
            return
        if self._head and not self.transport.is_closing():
            self._close("header_timeout", _problem(
                408, "request headers too slow",
                f"headers must arrive within {self.limits.header_timeout:g} s")
                if self._head_bytes else b"")

    def _body_timeout(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        answered = self.cycle is not None and self.cycle.response_started
        self._close("body_timeout", b"" if answered else _problem(
            408, "request body too slow",
            f"the body must arrive within {self.limits.body_timeout:g} s of the headers"))

    def _evict_idle(self) -> bool:
        """Close the connection idle the longest to make room; False when none is idle."""
        idle = [c for c in self.connections
                if c is not self and getattr(c, "_idle_since", None) is not None
                and not c.transport.is_closing()]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._idle_since)
        oldest._close("evicted")
        return True

    def _refuse(self) -> None:
        self._close("refused", _problem(
            503, "too many connections",
            f"this server keeps at most {self.cap} connections open; retry shortly"))

    def _close(self, reason: str, response: bytes = b"") -> None:
        self.stats.closed[reason] += 1
        self._idle_since = None
        if response:
            self.transport.write(response)
        self.transport.close()


class _Coalescing:
    """A response's transport: its head waits for the first part of its body (uvicorn writes
    them apart), so that both go out in one write, one system call and one segment, not two
    (about a tenth of a quote's CPU). A head with no body following in the same turn of the
    event loop goes out alone at its end."""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is None and data.startswith(b"HTTP/"):
            self._held = data
            self._loop.call_soon(self._flush)
            return
        if self._held is not None:
            data, self._held = self._held + data, None
        self._transport.write(data)

    def _flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


def guarded_protocol(limits: Limits, stats: ConnectionStats, cap: int) -> type:
    """A protocol class for one server: ``limits``, counting into ``stats``."""
    return type("RoutingHttpProtocol", (GuardedProtocol,),
                {"limits": limits, "stats": stats, "cap": cap})


def run(app, *, host: str, port: int, limits: Limits, stats: ConnectionStats,
        log=None, sock=None, stop=None) -> None:
    """Serve ``app`` until SIGTERM or SIGINT (the caller's handlers absorb uvicorn's re-raise
    of the signal, so this returns) or until ``stop`` (a threading.Event) is set (a signal
    that came while the service was still loading, before uvicorn took the signals over),
    on ``sock`` when given (a worker's socket, see service/workers.py), else on
    ``host``:``port``."""
    stats.open_files = raise_open_files_limit()
    stats.cap = connection_cap(limits, stats.open_files)
    if stats.cap < limits.max_connections and log is not None:
        log({"event": "connection_cap", "max_connections": stats.cap,
             "reason": f"the open-file limit is {stats.open_files}"})
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5,
        http=guarded_protocol(limits, stats, stats.cap), ws="none",
        timeout_keep_alive=limits.keep_alive_timeout)  # type: ignore[arg-type]
    served = uvicorn.Server(config)
    if stop is not None:
        def watch() -> None:
            stop.wait()
            served.should_exit = True
        threading.Thread(target=watch, daemon=True, name="stop watcher").start()
    served.run(sockets=None if sock is None else [sock])

