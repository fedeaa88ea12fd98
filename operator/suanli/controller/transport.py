"""HTTP/1.1 under the engine's API calls: kept-alive connections and as little work per request as the
protocol allows.

Why not urllib3 for every call: each of a gang's 2N creates and binds went through urllib3's pool manager,
http.client's request and response objects and the email package's header parser — ~550-670 us of the
operator's CPU per call against ~220-260 us for the same call written straight to a kept-alive socket
(bench/transport.py: the same API server, one thread and 32; docs/benchmarks.md issue 12's seventh round).
The API server is on the same two cores in the benchmark and on busy control planes in the field, so the
client's CPU is the scheduler's throughput.

`DirectTransport` speaks just what the API server answers: a status line, headers, and a body delimited by
Content-Length, chunked encoding or the connection's close. TLS is the Python ssl module's, set from the same
client configuration fields urllib3 reads (CA file or data, client certificate, verify_ssl, assert_hostname,
tls_server_name, socket options). A configured proxy (HTTP or SOCKS, unless no_proxy names the server) is
urllib3's job: `transport_for` returns `PoolTransport`, urllib3 as the typed client configures it.

Both call ``before_send`` right before a request's first byte goes out — after any wait for a connection —
so the leadership fence (see kubeapi) holds whichever transport runs.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import urllib3
from kubernetes import client
from kubernetes.client.rest import RESTClientObject, should_bypass_proxies
from kubernetes.utils.keepalive import tcp_keepalive_socket_options
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

BeforeSend = Callable[[], None]

MAX_HEADER_BYTES = 1 << 20
"""A response whose headers do not end within this many bytes is refused (a broken or hostile peer)."""
_READ_SIZE = 1 << 16


class TransportError(OSError):
    """The request got no usable answer: connection refused, reset or closed early, timed out, or a response
    that is not HTTP/1.x. The connection is discarded; the caller decides whether to try again."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer, its body read whole."""

    status: int
    reason: str
    headers: dict[str, str]
    """Lower-case names; a repeated header keeps its last value."""
    data: bytes


class Transport(Protocol):
    def send(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str], timeout: float,
             before_send: BeforeSend) -> Reply:
        """Send one request for `path` (under the configured host, query included); raises TransportError
        when no answer came back, and whatever `before_send` raises, without sending."""
        ...


def transport_for(config: client.Configuration) -> Transport:
    """`DirectTransport`, or `PoolTransport` when the configuration sends requests through a proxy."""
    if config.proxy and not should_bypass_proxies(str(config.host), config.no_proxy or ""):
        return PoolTransport(config)
    return DirectTransport(config)


# -- direct ------------------------------------------------------------------------------------------


def _ssl_context(config: client.Configuration) -> ssl.SSLContext:
    """The TLS settings of `config`; a CA or client certificate that cannot be read is a ValueError naming the
    kubeconfig setting and the file (the ssl module's own error names neither)."""
    cadata = getattr(config, "ca_cert_data", None)
    if isinstance(cadata, bytes):
        cadata = cadata.decode()
    try:
        ctx = ssl.create_default_context(cafile=config.ssl_ca_cert or None, cadata=cadata or None)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"the API server's CA (kubeconfig certificate-authority, here {config.ssl_ca_cert!r}) "
                         f"cannot be read: {exc}") from exc
    if not config.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif config.assert_hostname is False:
        ctx.check_hostname = False
    if config.cert_file:
        try:
            ctx.load_cert_chain(config.cert_file, config.key_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"the client certificate (kubeconfig client-certificate {config.cert_file!r}, "
                             f"client-key {config.key_file!r}) cannot be read: {exc}") from exc
    return ctx


def _header_block(headers: Mapping[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        line = f"{name}: {value}\r\n"
        if "\r" in line[:-2] or "\n" in line[:-2]:
            raise ValueError(f"header {name!r} holds a line break: refused (it would split the request)")
        lines.append(line)
    return "".join(lines).encode("latin-1")


class _Connection:
    """One kept-alive socket and the bytes read from it past the last response."""

    __slots__ = ("buf", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def stale(self) -> bool:
        """True when the peer closed (or sent something unasked) while the connection sat idle: reusing it
        would lose the next request to a reset."""
        if self.buf:
            return True
        try:  # poll, not select: a process with 1,024 descriptors open must still reuse its connections
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _fill(self, deadline: float, eof_ok: bool = False) -> bool:
        """Read what arrives next into the buffer; False at the peer's close when `eof_ok`."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransportError("timed out waiting for the API server's answer")
        self.sock.settimeout(remaining)
        data = self.sock.recv(_READ_SIZE)
        if not data:
            if eof_ok:
                return False
            raise TransportError("the API server closed the connection before answering")
        self.buf += data
        return True

    def _line(self, deadline: float) -> bytes:
        start = 0
        while True:
            end = self.buf.find(b"\r\n", start)
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[: end + 2]
                return line
            if len(self.buf) > MAX_HEADER_BYTES:
                raise TransportError("a response line longer than the client accepts")
            start = max(0, len(self.buf) - 1)
            self._fill(deadline)

    def _exactly(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self._fill(deadline)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_reply(self, method: str, deadline: float) -> tuple[Reply, bool]:
        """The next response on this connection, and whether the connection may serve another request."""
        while True:
            version, status, reason, headers = self._head(deadline)
            if not 100 <= status < 200:
                break  # 1xx: an interim answer (100 Continue, 103 Early Hints); the final one follows
        connection = headers.get("connection", "").lower()
        # HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 closes it unless told otherwise.
        keep = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        if method == "HEAD" or status in (204, 304):
            return Reply(status, reason, headers, b""), keep
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return Reply(status, reason, headers, self._chunked(deadline)), keep
        length = headers.get("content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                raise TransportError(f"a Content-Length that is not a number: {length!r}") from None
            if size < 0:
                raise TransportError(f"a negative Content-Length: {length!r}")
            return Reply(status, reason, headers, self._exactly(size, deadline)), keep
        # Neither length nor chunks: the body runs to the connection's close.
        while self._fill(deadline, eof_ok=True):
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return Reply(status, reason, headers, data), False

    def _head(self, deadline: float) -> tuple[str, int, str, dict[str, str]]:
        start = 0
        while True:
            end = self.buf.find(b"\r\n\r\n", start)
            if end >= 0:
                break
            if len(self.buf) > MAX_HEADER_BYTES:
                raise TransportError("response headers longer than the client accepts")
            start = max(0, len(self.buf) - 3)
            self._fill(deadline)
        block = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[: end + 4]
        status_line, *lines = block.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise TransportError(f"not an HTTP/1.x response: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise TransportError(f"a malformed response header: {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers

    def _chunked(self, deadline: float) -> bytes:
        out = bytearray()
        while True:
            size_line = self._line(deadline).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise TransportError(f"a malformed chunk size: {size_line[:20]!r}") from None
            if size == 0:
                while self._line(deadline):  # trailers, up to the empty line
                    pass
                return bytes(out)
            out += self._exactly(size, deadline)
            if self._exactly(2, deadline) != b"\r\n":
                raise TransportError("a chunk not followed by CRLF")


class DirectTransport:
    """Kept-alive HTTP/1.1 connections to one API server, reused most recently used first."""

    def __init__(self, config: client.Configuration, max_idle: int | None = None) -> None:
        url = urlsplit(str(config.host))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"the API server's address must be http(s)://host[:port][/path], not {config.host!r}")
        self._tls = url.scheme == "https"
        self._address = (url.hostname, url.port or (443 if self._tls else 80))
        self._prefix = url.path.rstrip("/")
        self._host_header = f"Host: {url.netloc.rpartition('@')[2]}\r\n".encode("latin-1")  # no user:password@
        self._ctx = _ssl_context(config) if self._tls else None
        self._server_name = config.tls_server_name or (
            config.assert_hostname if isinstance(config.assert_hostname, str) else url.hostname)
        self._unverified = self._tls and not config.verify_ssl
        if config.socket_options is not None:
            self._socket_options = list(config.socket_options)
        elif getattr(config, "keep_alive", False):
            self._socket_options = list(tcp_keepalive_socket_options())
        else:
            self._socket_options = []
        self._max_idle = max_idle or config.connection_pool_maxsize or 32
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def _connect(self, timeout: float) -> _Connection:
        sock = socket.create_connection(self._address, timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for option in self._socket_options:
                sock.setsockopt(*option)
            if self._ctx is not None:
                if self._unverified:
                    warnings.warn(
                        f"Unverified HTTPS request is being made to host '{self._address[0]}' (verify_ssl is off)",
                        urllib3.exceptions.InsecureRequestWarning, stacklevel=4)
                sock = self._ctx.wrap_socket(sock, server_hostname=self._server_name)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _take(self, timeout: float) -> _Connection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect(timeout)
            if not conn.stale():
                return conn
            conn.close()

    def _give_back(self, conn: _Connection) -> None:
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def send(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str], timeout: float,
             before_send: BeforeSend) -> Reply:
        if any(c in path for c in " \r\n"):
            raise ValueError(f"a request path with a space or line break is refused: {path[:80]!r}")
        head = f"{method} {self._prefix}{path} HTTP/1.1\r\n".encode("latin-1") + self._host_header \
            + _header_block(headers)
        if body is not None:
            head += b"Content-Length: %d\r\n" % len(body)
        message = head + b"\r\n" + (body or b"")
        deadline = time.monotonic() + timeout
        try:
            conn = self._take(timeout)
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(f"cannot connect to the API server: {type(exc).__name__}: {exc}") from exc
        try:
            before_send()
        except BaseException:
            self._give_back(conn)  # nothing was sent on it
            raise
        try:
            conn.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            conn.sock.sendall(message)
            reply, keep = conn.read_reply(method, deadline)
        except TransportError:
            conn.close()
            raise
        except (OSError, ssl.SSLError) as exc:
            conn.close()
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        if keep:
            self._give_back(conn)
        else:
            conn.close()
        return reply


# -- through urllib3 (proxies) ------------------------------------------------------------------------

_before_send = threading.local()
"""The hook of the request this thread is sending (the connection classes below call it)."""


def _call_before_send() -> None:
    hook = getattr(_before_send, "hook", None)
    if hook is not None:
        hook()


class _HookedHTTPConnection(HTTPConnection):
    def send(self, data: Any) -> None:
        _call_before_send()
        super().send(data)


class _HookedHTTPSConnection(HTTPSConnection):
    def send(self, data: Any) -> None:
        _call_before_send()
        super().send(data)


class _HookedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HookedHTTPConnection


class _HookedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HookedHTTPSConnection


class PoolTransport:
    """urllib3's pool manager (proxy included) as the typed client builds it from the same configuration."""

    def __init__(self, config: client.Configuration) -> None:
        self._pool = RESTClientObject(config).pool_manager
        self._pool.pool_classes_by_scheme = {"http": _HookedHTTPConnectionPool, "https": _HookedHTTPSConnectionPool}
        self._host = str(config.host).rstrip("/")

    def send(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str], timeout: float,
             before_send: BeforeSend) -> Reply:
        _before_send.hook = before_send
        try:
            resp = self._pool.request(method, self._host + path, body=body, headers=dict(headers),
                                      timeout=urllib3.Timeout(total=timeout), retries=False, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            _before_send.hook = None
        return Reply(resp.status, resp.reason or "", {k.lower(): v for k, v in resp.headers.items()}, resp.data)


