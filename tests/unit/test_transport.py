"""The engine's HTTP/1.1 transport against scripted peers: what the API server (Go's net/http) answers, and what
a broken network, proxy or peer does instead — every framing, a connection closed while idle or mid-answer, a
peer that never answers, garbage, and many threads at once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from suanli.controller.transport import (
    MAX_HEADER_BYTES,
    DirectTransport,
    PoolTransport,
    TransportError,
    transport_for,
)

Handler = Callable[[socket.socket, int], None]


def read_request(conn: socket.socket) -> tuple[str, dict[str, str], bytes] | None:
    """One request off `conn` (None at its close): the request line, headers, and the body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    line, *lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += conn.recv(65536)
    return line, headers, rest[:length]


class Peer:
    """A TCP server running `handler(connection, connection_index)` on a thread per accepted connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.accepted = 0
        self.requests: list[str] = []
        self.closed = threading.Semaphore(0)
        """Released each time the server has closed a connection."""
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            thread = threading.Thread(target=self._serve, args=(conn, self.accepted - 1), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        try:
            self.handler(conn, index)
        except OSError:
            pass
        finally:
            conn.close()
            self.closed.release()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def peer() -> Iterator[Callable[[Handler], Peer]]:
    made: list[Peer] = []

    def make(handler: Handler) -> Peer:
        made.append(Peer(handler))
        return made[-1]

    yield make
    for p in made:
        p.close()


def direct(url: str, **settings: object) -> DirectTransport:
    cfg = client.Configuration(host=url)
    for name, value in settings.items():
        setattr(cfg, name, value)
    return DirectTransport(cfg)


def _nothing() -> None:
    return None


def send(t: DirectTransport, path: str = "/x", body: bytes | None = None, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    return t.send("POST" if body is not None else "GET", path, body, {"Accept": "application/json"}, timeout,
                  _nothing)


def keep_alive_server(answer: Callable[[str, bytes], bytes]) -> Handler:
    """Answers every request on the connection with `answer(request_line, body)` (raw response bytes)."""
    def handler(conn: socket.socket, _: int) -> None:
        while (req := read_request(conn)) is not None:
            conn.sendall(answer(req[0], req[2]))
    return handler


def ok(body: bytes, *extra: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in extra)
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), head.encode()) + body


def test_one_kept_alive_connection_serves_request_after_request(peer: Callable[[Handler], Peer]) -> None:
    p = peer(keep_alive_server(lambda line, body: ok(line.encode() + b"|" + body)))
    t = direct(p.url)
    for i in range(20):
        reply = send(t, f"/r/{i}", body=b'{"i":%d}' % i)
        assert reply.status == 200 and reply.data == b'POST /r/%d HTTP/1.1|{"i":%d}' % (i, i)
    assert p.accepted == 1


def test_a_server_path_prefix_and_the_host_header(peer: Callable[[Handler], Peer]) -> None:
    seen: list[tuple[str, dict[str, str]]] = []

    def handler(conn: socket.socket, _: int) -> None:
        req = read_request(conn)
        assert req is not None
        seen.append((req[0], req[1]))
        conn.sendall(ok(b"{}"))
    p = peer(handler)
    t = direct(p.url + "/k8s/clusters/c-1/")
    assert send(t, "/api/v1/pods?limit=1").status == 200
    assert seen[0][0] == "GET /k8s/clusters/c-1/api/v1/pods?limit=1 HTTP/1.1"
    assert seen[0][1]["host"] == p.url.removeprefix("http://")


def test_chunked_bodies_with_extensions_and_trailers(peer: Callable[[Handler], Peer]) -> None:
    answer = (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n"
              b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n")
    p = peer(keep_alive_server(lambda *_: answer))
    t = direct(p.url)
    for _ in range(3):
        reply = send(t)
        assert (reply.status, reply.reason, reply.data) == (201, "Created", b"hello world")
        assert reply.headers["retry-after"] == "3", "header names are lower-cased"
    assert p.accepted == 1, "the connection is reused after a chunked body"


def test_a_body_that_runs_to_the_close_and_connections_the_server_ends(peer: Callable[[Handler], Peer]) -> None:
    answers = [b"HTTP/1.1 200 OK\r\n\r\nuntil close",
               b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
               b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nhttp",  # 1.0 without keep-alive: closed after
               b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 4\r\n\r\nkept"]

    def handler(conn: socket.socket, index: int) -> None:
        while read_request(conn) is not None:
            conn.sendall(answers[min(index, 3)])
            if index < 3:
                return
    p = peer(handler)
    t = direct(p.url)
    assert [send(t).data for _ in range(5)] == [b"until close", b"ok", b"http", b"kept", b"kept"]
    assert p.accepted == 4, "a new connection after each one that ends, the last one kept"


def test_no_content_and_interim_answers(peer: Callable[[Handler], Peer]) -> None:
    answers = iter([b"HTTP/1.1 204 No Content\r\n\r\n",
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"])
    p = peer(keep_alive_server(lambda *_: next(answers)))
    t = direct(p.url)
    assert (send(t).status, send(t).data) == (204, b"x")  # 204 has no body, then 100 is skipped for the 200
    assert p.accepted == 1


def test_a_connection_the_server_closed_while_idle_is_not_reused(peer: Callable[[Handler], Peer]) -> None:
    """Go's server ends idle kept-alive connections (the API server after its idle timeout): the next request
    must go on a new connection, not fail on the dead one."""
    def handler(conn: socket.socket, _: int) -> None:
        if read_request(conn) is not None:
            conn.sendall(ok(b"1"))  # HTTP/1.1, no Connection: close — and then the server closes it anyway
    p = peer(handler)
    t = direct(p.url)
    assert send(t).data == b"1"
    assert p.closed.acquire(timeout=10), "the server closed its end"
    assert send(t).data == b"1", "a fresh connection, no error"
    assert p.accepted == 2


def test_a_reset_mid_answer_is_an_error_and_the_connection_is_dropped(peer: Callable[[Handler], Peer]) -> None:
    def handler(conn: socket.socket, index: int) -> None:
        while read_request(conn) is not None:
            if index == 0:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return  # closed with a reset, 93 bytes short
            conn.sendall(ok(b"fine"))
    p = peer(handler)
    t = direct(p.url)
    with pytest.raises(TransportError):
        send(t)
    assert send(t).data == b"fine" and p.accepted == 2


@pytest.mark.parametrize("answer", [
    b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    b"HTTP/1.1 abc OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
])
def test_garbage_is_refused_not_misread(peer: Callable[[Handler], Peer], answer: bytes) -> None:
    p = peer(keep_alive_server(lambda *_: answer))
    with pytest.raises(TransportError):
        send(direct(p.url), timeout=2)


def test_endless_headers_are_refused_without_reading_forever(peer: Callable[[Handler], Peer]) -> None:
    def handler(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        line = b"X-Filler: " + b"a" * 8000 + b"\r\n"
        for _ in range(MAX_HEADER_BYTES // len(line) + 10):
            conn.sendall(line)
    p = peer(handler)
    with pytest.raises(TransportError, match="longer than the client accepts"):
        send(direct(p.url), timeout=20)


def test_a_peer_that_never_answers_times_out(peer: Callable[[Handler], Peer]) -> None:
    def handler(conn: socket.socket, _: int) -> None:
        read_request(conn)
        time.sleep(3)
    p = peer(handler)
    start = time.monotonic()
    with pytest.raises(TransportError):
        send(direct(p.url), timeout=0.3)
    assert time.monotonic() - start < 2


def test_a_refused_connection_is_a_transport_error() -> None:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(TransportError, match="cannot connect"):
        send(direct(f"http://127.0.0.1:{port}"), timeout=2)


def test_a_header_with_a_line_break_is_refused_before_sending(peer: Callable[[Handler], Peer]) -> None:
    p = peer(keep_alive_server(lambda *_: ok(b"")))
    t = direct(p.url)
    with pytest.raises(ValueError, match="line break"):
        t.send("GET", "/x", None, {"Authorization": "Bearer t\r\nX-Admin: yes"}, 5, _nothing)
    assert p.accepted == 0


def test_a_path_that_would_split_the_request_line_is_refused(peer: Callable[[Handler], Peer]) -> None:
    p = peer(keep_alive_server(lambda *_: ok(b"")))
    t = direct(p.url)
    for path in ("/x HTTP/1.1\r\nX-Admin: yes\r\n\r\nGET /y", "/a b", "/a\nb"):
        with pytest.raises(ValueError, match="refused"):
            t.send("GET", path, None, {}, 5, _nothing)
    assert p.accepted == 0


def test_credentials_in_the_address_stay_out_of_the_host_header(peer: Callable[[Handler], Peer]) -> None:
    hosts: list[str] = []

    def handler(conn: socket.socket, _: int) -> None:
        req = read_request(conn)
        assert req is not None
        hosts.append(req[1]["host"])
        conn.sendall(ok(b""))
    p = peer(handler)
    send(direct(p.url.replace("http://", "http://user:secret@")))
    assert hosts == [p.url.removeprefix("http://")]


def test_the_hook_runs_before_the_first_byte_and_can_stop_the_request(peer: Callable[[Handler], Peer]) -> None:
    p = peer(keep_alive_server(lambda line, _: (p.requests.append(line), ok(b"{}"))[1]))
    t = direct(p.url)
    send(t)

    def refuse() -> None:
        raise RuntimeError("leadership lapsed")
    with pytest.raises(RuntimeError):
        t.send("POST", "/y", b"{}", {}, 5, refuse)
    send(t)
    assert p.requests == ["GET /x HTTP/1.1", "GET /x HTTP/1.1"], "the refused request never went out"
    assert p.accepted == 1, "and its connection served the next one"


def test_many_threads_each_get_their_own_answers(peer: Callable[[Handler], Peer]) -> None:
    def answer(line: str, body: bytes) -> bytes:
        time.sleep(0.001)
        return ok(line.split()[1].encode() + body)
    p = peer(keep_alive_server(answer))
    t = direct(p.url)
    wrong: list[str] = []

    def worker(w: int) -> None:
        for i in range(30):
            reply = send(t, f"/w{w}/{i}", body=b"-%d" % i)
            if reply.data != b"/w%d/%d-%d" % (w, i, i):
                wrong.append(reply.data.decode())
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert wrong == [] and 1 <= p.accepted <= 16


def test_a_proxy_is_used_unless_no_proxy_names_the_server(peer: Callable[[Handler], Peer]) -> None:
    proxy = peer(keep_alive_server(lambda line, _: (proxy.requests.append(line), ok(b"via proxy"))[1]))
    cfg = client.Configuration(host="http://api.example:6443")
    cfg.proxy = proxy.url
    through = transport_for(cfg)
    assert isinstance(through, PoolTransport)
    reply = through.send("GET", "/api/v1/pods", None, {}, 5, _nothing)
    assert reply.data == b"via proxy" and proxy.requests == ["GET http://api.example:6443/api/v1/pods HTTP/1.1"]
    cfg.no_proxy = "api.example"
    assert isinstance(transport_for(cfg), DirectTransport)


def test_the_proxy_path_runs_the_hook_too(peer: Callable[[Handler], Peer]) -> None:
    proxy = peer(keep_alive_server(lambda line, _: (proxy.requests.append(line), ok(b"{}"))[1]))
    cfg = client.Configuration(host="http://api.example:6443")
    cfg.proxy = proxy.url

    def refuse() -> None:
        raise RuntimeError("leadership lapsed")
    with pytest.raises(RuntimeError):
        transport_for(cfg).send("POST", "/api/v1/pods", b"{}", {}, 5, refuse)
    assert proxy.requests == []


def test_an_address_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        DirectTransport(client.Configuration(host="ftp://api.example"))


def test_connections_are_reused_with_more_than_1024_descriptors_open(peer: Callable[[Handler], Peer]) -> None:
    """select() refuses descriptors above 1,023; an operator with many open must still reuse connections."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1100), hard))
    held = [socket.socket() for _ in range(1030)]
    try:
        p = peer(keep_alive_server(lambda *_: ok(b"1")))
        t = direct(p.url)
        assert [send(t).data for _ in range(3)] == [b"1"] * 3
        assert p.accepted == 1
    finally:
        for s in held:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_ca_or_client_certificate_that_cannot_be_read_names_the_setting(tmp_path: Path) -> None:
    """Found when the engine's client is built (the operator's start), not on the first write."""
    url = "https://api.example:6443"
    with pytest.raises(ValueError, match=r"certificate-authority.*missing-ca\.crt"):
        direct(url, ssl_ca_cert=str(tmp_path / "missing-ca.crt"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ValueError, match=r"certificate-authority.*garbage\.pem"):
        direct(url, ssl_ca_cert=str(garbage))
    with pytest.raises(ValueError, match=r"client-certificate.*garbage\.pem"):
        direct(url, cert_file=str(garbage), key_file=str(garbage))
