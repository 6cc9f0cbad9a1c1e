"""Outbound HTTP to providers: one pooled keep-alive session per process, traced, bounded."""

from __future__ import annotations

import json
from dataclasses import dataclass

import requests

from apps.core.tracing import outgoing_traceparent

CONNECT_TIMEOUT = 5.0
DEFAULT_TIMEOUT = 15.0
USER_AGENT = "Switchboard/1.0"

_session: requests.Session | None = None


def session() -> requests.Session:
    global _session
    if _session is None:
        _session = requests.Session()
        _session.headers["User-Agent"] = USER_AGENT
    return _session


@dataclass
class HttpReply:
    status: int
    body: dict | None
    text: str
    headers: dict

    def retry_after(self) -> float | None:
        value = self.headers.get("Retry-After")
        try:
            return max(0.0, float(value)) if value is not None else None
        except ValueError:
            return None


class TransportError(Exception):
    """No answer (timeout, refused connection, broken TLS): always worth a retry."""


def timeout_of(config: dict) -> tuple[float, float]:
    try:
        read = float(config.get("timeout") or DEFAULT_TIMEOUT)
    except (TypeError, ValueError):
        read = DEFAULT_TIMEOUT
    return (min(CONNECT_TIMEOUT, read), read)


def post(url: str, *, config: dict, **kwargs) -> HttpReply:
    headers = {"traceparent": outgoing_traceparent(), **kwargs.pop("headers", {})}
    try:
        response = session().post(url, headers=headers, timeout=timeout_of(config), **kwargs)
    except requests.RequestException as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}"[:300]) from exc
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        body = None
    return HttpReply(
        response.status_code,
        body if isinstance(body, dict) else None,
        response.text[:2000],
        dict(response.headers),
    )
