"""The HTTP side of delivery: one POST over pooled keep-alive connections, never raising.

Every outcome (2xx, other statuses, redirects, timeouts, resets, refused connections, TLS
errors, garbage answers, huge bodies) comes back as a `Response` to record on the attempt.
Redirects are not followed. At most `WEBHOOK_RESPONSE_READ_LIMIT` bytes of a body are read;
a connection whose body was not read to the end is closed, never reused.

Connections go to the address the URL's host resolved to (checked by `netguard`), with
the host name kept for `Host` and TLS verification, so the address checked is the one used.
"""

from __future__ import annotations

import email.utils
import http.client
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import urlsplit

from apps.events import conf, netguard

USER_AGENT = "Switchboard-Webhooks/1.0"
_IDLE_SECONDS = 15.0
_MAX_IDLE_PER_TARGET = 16


@dataclass
class Response:
    started_at: datetime
    duration_ms: int
    status: int | None = None
    headers: dict = field(default_factory=dict)
    body: str = ""
    error: str = ""
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and not self.error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=_tls_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


@lru_cache(maxsize=4096)
def _split(url: str) -> tuple[str, str, int, str]:
    scheme, host, port = netguard.url_check_syntax(url)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port, target


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"timeout: no answer within {timeout:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "connection reset by the receiver"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the receiver closed the connection without answering"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return f"TLS error: {exc}"
    if isinstance(exc, http.client.HTTPException):
        return f"invalid HTTP answer: {type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"


class Transport:
    """A per-process pool of keep-alive connections, keyed by (scheme, host, port, address)."""

    def __init__(self):
        self._idle: dict[tuple, list[tuple[http.client.HTTPConnection, float]]] = {}
        self._lock = threading.Lock()

    def _checkout(self, key: tuple) -> http.client.HTTPConnection | None:
        now = time.monotonic()
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                conn, since = idle.pop()
                if now - since < _IDLE_SECONDS:
                    return conn
                conn.close()
        return None

    def _checkin(self, key: tuple, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < _MAX_IDLE_PER_TARGET:
                idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            for idle in self._idle.values():
                for conn, _ in idle:
                    conn.close()
            self._idle.clear()

    def post(self, url: str, body: bytes, headers: dict, timeout: float) -> Response:
        """POST `body` to `url`; always returns a Response (errors are in `error`)."""
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()

        def done(**kwargs) -> Response:
            elapsed = int((time.perf_counter() - t0) * 1000)
            return Response(started_at=started_at, duration_ms=elapsed, **kwargs)

        try:
            scheme, host, port, target = _split(url)
            addresses = netguard.resolve(host, port)
            netguard.addresses_check(host, addresses)
        except netguard.BlockedURL as exc:
            return done(error=f"blocked: {exc}")
        key = (scheme, host, port, addresses[0])
        cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Content-Length": str(len(body)),
            **headers,
        }
        for _ in range(2):
            conn = self._checkout(key)
            reused = conn is not None
            if conn is None:
                conn = cls(host, port, addresses[0], timeout)
            else:
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
            try:
                conn.request("POST", target, body=body, headers=headers)
                response = conn.getresponse()
            except (
                http.client.RemoteDisconnected,
                ConnectionResetError,
                BrokenPipeError,
            ) as exc:
                conn.close()
                if reused:
                    continue  # a stale keep-alive connection: once more on a fresh one
                return done(error=_describe(exc, timeout))
            except Exception as exc:  # any failure is the receiver's answer, never a crash
                conn.close()
                return done(error=_describe(exc, timeout))
            return self._read(key, conn, response, done, timeout)
        return done(error="connection reset by the receiver")

    def _read(self, key, conn, response, done, timeout: float) -> Response:
        limit = int(conf.get("WEBHOOK_RESPONSE_READ_LIMIT"))
        store = int(conf.get("WEBHOOK_RESPONSE_STORE_LIMIT"))
        status = response.status
        response_headers = dict(list(response.getheaders())[:50])
        error = ""
        try:
            data = response.read(limit + 1)
            complete = response.isclosed() or (len(data) <= limit and _drained(response))
        except Exception as exc:
            data, complete = b"", False
            error = f"reading the answer failed: {_describe(exc, timeout)}"
        if len(data) > limit:
            complete = False  # the rest is never read: this connection cannot be reused
        if complete and not response.will_close:
            self._checkin(key, conn)
        else:
            conn.close()
        text = data[:store].decode("utf-8", errors="replace")
        if len(data) > store:
            text += "…[truncated]"
        if not error and 300 <= status < 400:
            location = response_headers.get("Location") or response_headers.get("location")
            error = f"redirect not followed (HTTP {status} to {location or 'nowhere'})"
        retry_after = None
        if status in (429, 503):
            retry_after = _retry_after(
                response_headers.get("Retry-After") or response_headers.get("retry-after")
            )
        return done(
            status=status,
            headers={k: str(v)[:500] for k, v in response_headers.items()},
            body=text,
            error=error,
            retry_after=retry_after,
        )


def _drained(response: http.client.HTTPResponse) -> bool:
    """True when the whole body has been read (so the connection can be reused)."""
    if response.isclosed():
        return True
    try:
        return response.read(1) == b""
    except Exception:
        return False


_transport: Transport | None = None
_transport_pid: int | None = None


def transport() -> Transport:
    """This process's transport (a fresh one after a fork: sockets are not shared)."""
    global _transport, _transport_pid
    pid = os.getpid()
    if _transport is None or _transport_pid != pid:
        _transport, _transport_pid = Transport(), pid
    return _transport
