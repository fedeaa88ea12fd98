"""A fault-injecting HTTP proxy on loopback in front of the test cluster's kube-apiserver.

The operator talks plain HTTP/1.1 to the proxy (a kubeconfig from `write_kubeconfig` points it there and
carries the cluster's bearer token); the proxy speaks TLS to the real API server, verified against the
cluster's CA. Plain HTTP on the loopback leg keeps the proxy free of certificates of its own while the
client code paths (the engine's own transport, controller/transport.py; urllib3 for the official client's
watches; aiohttp for kopf) stay the ones used in production.

Eligible requests (method in `Faults.methods`, path matching `Faults.paths`, never a watch) get the added
latency and, with probability `Faults.fraction`, one fault from `Faults.kinds`:

- ``429``: answered at once with ``429 Too Many Requests`` and ``Retry-After``, as the API server's
  max-in-flight and API Priority and Fairness filters do; the API server never sees the request.
- ``500`` / ``503``: answered at once with a ``Status`` body; the API server never sees the request.
- ``reset``: the client's connection is reset (RST) before anything is forwarded.
- ``reset-after``: the request is forwarded and takes effect, then the client's connection is reset before
  the response reaches it: a retried create meets 409 AlreadyExists, a retried binding 409 Conflict.
- ``stall``: the request is held for `Faults.stall_seconds`, then the connection is reset: a client
  timeout, when the stall is longer than the client's.

Watches (``watch=true``/``1`` in the query) stream through untouched; `Faults.watch_reset` may reset a
fraction of them when they start, before anything is forwarded. Every request is recorded
(`FaultProxy.records`) and counted (`FaultProxy.stats`), so a test can assert that faults really happened
and what the client did about them.

Standard library only: asyncio on a thread of its own, so a synchronous test drives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import socket
import ssl
import struct
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KINDS = ("429", "500", "503", "reset", "reset-after", "stall")
_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
_HEAD_LIMIT = 1 << 20


@dataclass(frozen=True)
class Faults:
    """What to inject; replace it at any time with `FaultProxy.configure`."""

    fraction: float = 0.0
    """Probability that an eligible request gets a fault (0 to 1)."""
    kinds: tuple[str, ...] = ("429", "500", "503", "reset")
    """Faults drawn from, uniformly; see the module docstring for each."""
    methods: frozenset[str] = MUTATING
    """HTTP methods eligible for faults and latency; mutating verbs by default, so reads and lists pass."""
    paths: str = ""
    """A regular expression searched in the request path: only matching requests are eligible ('' = all)."""
    latency: tuple[float, float] = (0.0, 0.0)
    """Seconds added before forwarding an eligible request, drawn uniformly from (low, high)."""
    retry_after: int = 1
    """Seconds in the Retry-After header of a 429; the API server's own filters say 1."""
    stall_seconds: float = 35.0
    """How long a ``stall`` holds a request before resetting it; above the operator's 30 s timeout."""
    watch_reset: float = 0.0
    """Probability that a watch is reset when it starts (before it reaches the API server)."""
    seed: int | None = None
    """Seed for the draws, for a reproducible sequence of faults (given arrival order)."""

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"Faults.kinds: unknown {sorted(unknown)}; choose from {list(KINDS)}")
        if not 0 <= self.fraction <= 1 or not 0 <= self.watch_reset <= 1:
            raise ValueError("Faults.fraction and Faults.watch_reset are probabilities: give a value in [0, 1]")


@dataclass(frozen=True)
class Record:
    """One request the proxy saw."""

    at: float
    """time.time() when its head arrived."""
    method: str
    path: str
    """Path without the query."""
    watch: bool
    fault: str
    """The injected fault, or '' when forwarded untouched."""
    status: int
    """HTTP status the client got, or 0 when its connection was reset instead."""
    user_agent: str = ""

    @property
    def resource(self) -> str:
        """`pods`, `pods/binding`, `aitrainingjobs/status`, `leases` ... from the path, for counting."""
        parts = [p for p in self.path.split("/") if p]
        if "namespaces" in parts:
            i = parts.index("namespaces")
            rest = parts[i + 2 :]
            if not rest:  # /api/v1/namespaces/<name>
                return "namespaces"
        else:
            rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
        if not rest:
            return ""
        return rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")


@dataclass
class _Stats:
    requests: int = 0
    watches: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    forwarded: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


class _Reset(Exception):
    """The client connection is to be reset (RST), not closed politely."""


class FaultProxy:
    """The proxy: `start()` it, point a client at `url` (or `write_kubeconfig`), read `stats()`."""

    def __init__(self, upstream: str, ca_file: Path, faults: Faults | None = None, port: int = 0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "https" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream {upstream!r}: give the API server as https://HOST:PORT")
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self._tls = ssl.create_default_context(cafile=str(ca_file))
        self._faults = faults or Faults()
        self._random = random.Random(self._faults.seed)
        self._lock = threading.Lock()
        self._stats = _Stats()
        self._records: deque[Record] = deque(maxlen=200_000)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._port = port

    # ---- control, from any thread -------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        fut.result(10)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def configure(self, faults: Faults | None = None, **changes: Any) -> Faults:
        """Replace the faults (or change some fields); applies to requests that arrive from now on."""
        with self._lock:
            self._faults = replace(faults or self._faults, **changes)
            if faults is not None or "seed" in changes:
                self._random = random.Random(self._faults.seed)
            return self._faults

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def stats(self) -> dict[str, Any]:
        """Counts so far: requests, watches, injected faults by kind, forwarded requests by `METHOD resource`,
        and `errors`: connections that ended other than by an injected fault (the client or the API server
        closed one mid-request, say) by exception, so a test can tell those from the faults it asked for."""
        with self._lock:
            return {
                "requests": self._stats.requests,
                "watches": self._stats.watches,
                "injected": dict(self._stats.injected),
                "injected_total": sum(self._stats.injected.values()),
                "forwarded": dict(self._stats.forwarded),
                "errors": dict(self._stats.errors),
            }

    def records(self) -> list[Record]:
        with self._lock:
            return list(self._records)

    def write_kubeconfig(self, source: Path, dest: Path) -> Path:
        """A copy of the cluster's kubeconfig (JSON, as hack/devcluster.py writes it) whose every cluster
        points at this proxy; the user credentials (bearer token) are kept and pass through."""
        try:
            config = json.loads(source.read_text())
        except ValueError as exc:
            raise ValueError(f"{source}: expected the JSON kubeconfig hack/devcluster.py writes ({exc})") from exc
        for entry in config.get("clusters", []):
            entry["cluster"] = {"server": self.url}
        dest.write_text(json.dumps(config, indent=2))
        return dest

    # ---- the event loop's side ----------------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._port, limit=_HEAD_LIMIT)
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        if self._server:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        link = _Upstream()
        try:
            while await self._one_request(reader, writer, link):
                pass
        except _Reset:
            _reset(writer)
        except asyncio.CancelledError:
            writer.transport.abort()
        except Exception as exc:  # any other end of a connection is counted, not injected
            with self._lock:
                self._stats.errors[f"{type(exc).__name__}: {exc}"[:200]] += 1
            writer.transport.abort()
        finally:
            link.close()
            writer.transport.abort()
            self._connections.discard(task)

    def _draw(self, method: str, path: str, watch: bool) -> tuple[str, float]:
        """(fault, added latency) for one request, under the lock so the draws follow arrival order."""
        with self._lock:
            f = self._faults
            if watch:
                return ("reset" if f.watch_reset and self._random.random() < f.watch_reset else ""), 0.0
            if method not in f.methods or (f.paths and not re.search(f.paths, path)):
                return "", 0.0
            delay = self._random.uniform(*f.latency) if f.latency[1] > 0 else 0.0
            fault = self._random.choice(f.kinds) if f.kinds and self._random.random() < f.fraction else ""
            return fault, delay

    def _record(self, record: Record) -> None:
        with self._lock:
            self._records.append(record)
            if record.fault:
                self._stats.injected[record.fault] += 1
            else:
                self._stats.forwarded[f"{record.method} {record.resource}"] += 1

    async def _one_request(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Upstream,
    ) -> bool:
        """Serve one request of a kept-alive client connection; False when that connection is done."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed between requests
        arrived = time.time()
        request_line, headers = _parse_head(head)
        method, target, _version = request_line.split(" ", 2)
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        watch = query.get("watch", ["false"])[0].lower() in ("true", "1")
        body = await _read_body(reader, headers, request=True, method=method)
        fault, delay = self._draw(method, parts.path, watch)
        agent = _header(headers, "user-agent") or ""
        with self._lock:
            self._stats.requests += 1
            self._stats.watches += watch

        def record(status: int, fault: str = fault) -> None:
            self._record(Record(arrived, method, parts.path, watch, fault, status, agent))

        if fault in ("429", "500", "503"):
            record(int(fault))
            writer.write(_status_response(int(fault), self.faults.retry_after))
            await writer.drain()
            return True
        if fault == "reset":
            record(0)
            raise _Reset
        if fault == "stall":
            record(0)
            await asyncio.sleep(self.faults.stall_seconds)
            raise _Reset
        if delay:
            await asyncio.sleep(delay)
        up_reader, up_writer = await link.open(self.upstream_host, self.upstream_port, self._tls)
        up_writer.write(head + body)
        await up_writer.drain()
        response_head = await up_reader.readuntil(b"\r\n\r\n")
        status_line, response_headers = _parse_head(response_head)
        status = int(status_line.split(" ", 2)[1])
        if fault == "reset-after":
            # Let the API server finish the request before the client loses the answer.
            await _read_body(up_reader, response_headers, request=False, method=method, status=status)
            record(0)
            up_writer.transport.abort()
            raise _Reset
        record(status)  # before the client can see the answer, so a test that saw it sees the count
        writer.write(response_head)
        await writer.drain()
        if watch:
            await self._stream_watch(reader, writer, up_reader, response_headers, method, status)
            return False
        until_close = await _relay_body(up_reader, writer, response_headers, method, status)
        return not (until_close or _wants_close(headers) or _wants_close(response_headers))

    async def _stream_watch(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        response_headers: list[tuple[str, str]],
        method: str,
        status: int,
    ) -> None:
        """Relay a watch as it streams; end it when the client goes (a client never reuses a watch's
        connection, so a read that returns means it closed)."""
        relay = asyncio.ensure_future(_relay_body(up_reader, writer, response_headers, method, status))
        gone = asyncio.ensure_future(reader.read(1))
        try:
            await asyncio.wait({relay, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (relay, gone):
                task.cancel()
            await asyncio.gather(relay, gone, return_exceptions=True)


class _Upstream:
    """A client connection's own TLS connection to the API server, opened on its first forwarded request
    and kept alive with it, so the API server sees one connection per client connection, as without us."""

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(
        self, host: str, port: int, tls: ssl.SSLContext
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        # An idle connection the API server has closed meanwhile is replaced, not written to.
        if self.reader is None or self.writer is None or self.writer.is_closing() or self.reader.at_eof():
            self.reader, self.writer = await asyncio.open_connection(host, port, ssl=tls, limit=_HEAD_LIMIT)
        return self.reader, self.writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return lines[0], headers


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _wants_close(headers: list[tuple[str, str]]) -> bool:
    return (_header(headers, "connection") or "").lower() == "close"


def _chunked(headers: list[tuple[str, str]]) -> bool:
    return "chunked" in (_header(headers, "transfer-encoding") or "").lower()


def _no_body(method: str, status: int) -> bool:
    return method == "HEAD" or status in (204, 304) or 100 <= status < 200


async def _read_body(
    reader: asyncio.StreamReader, headers: list[tuple[str, str]], *, request: bool, method: str, status: int = 0
) -> bytes:
    """The whole body as it came on the wire (chunk framing kept), for forwarding unchanged."""
    if not request and _no_body(method, status):
        return b""
    if _chunked(headers):
        out = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            out += size_line
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the blank line
                    line = await reader.readuntil(b"\r\n")
                    out += line
                    if line == b"\r\n":
                        return bytes(out)
            out += await reader.readexactly(size + 2)
    length = _header(headers, "content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    if request:
        return b""
    return await reader.read()  # until the server closes


async def _relay_body(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    headers: list[tuple[str, str]],
    method: str,
    status: int,
) -> bool:
    """Copy a response body to the client as it arrives (a chunk at a time, so watches stream).
    True when the body ends only with the connection."""
    if _no_body(method, status):
        return False
    if _chunked(headers):
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            writer.write(size_line)
            if size == 0:
                while True:
                    line = await reader.readuntil(b"\r\n")
                    writer.write(line)
                    if line == b"\r\n":
                        await writer.drain()
                        return False
            writer.write(await reader.readexactly(size + 2))
            await writer.drain()
    length = _header(headers, "content-length")
    if length is not None:
        remaining = int(length)
        while remaining:
            data = await reader.read(min(remaining, 1 << 16))
            if not data:
                raise ConnectionError("the API server closed mid-response")
            writer.write(data)
            remaining -= len(data)
            await writer.drain()
        return False
    while data := await reader.read(1 << 16):
        writer.write(data)
        await writer.drain()
    return True


def _status_response(code: int, retry_after: int) -> bytes:
    """What the API server itself answers when it sheds load or fails: a metav1.Status."""
    reason = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}[code]
    body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"injected by the fault proxy: {_REASONS[code].lower()}",
            "reason": reason,
            "details": {"retryAfterSeconds": retry_after},
            "code": code,
        }
    ).encode()
    lines = [
        f"HTTP/1.1 {code} {_REASONS[code]}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if code in (429, 503):
        lines.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a dropped connection or a dying load balancer does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
