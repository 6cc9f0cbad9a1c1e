"""W3C trace context: one trace id follows a request through logs, Celery, events and webhooks.

- `TraceMiddleware` accepts an incoming `traceparent` (or starts a trace), binds it for the
  request, and returns it as `traceparent` and `X-Request-ID`.
- `TraceLogFilter` puts `trace_id`/`span_id` on every log record.
- Celery: the publisher adds a `traceparent` header to every task message; the worker binds
  it around the task, so events emitted by a task carry the trace of the request that queued it.
"""

from __future__ import annotations

import contextvars
import logging
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    span_id: str
    flags: str = "01"

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> TraceContext:
        """A new span in the same trace (for an outgoing call or a queued task)."""
        return TraceContext(self.trace_id, new_span_id(), self.flags)


_current: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "switchboard_trace", default=None
)


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


def parse_traceparent(value: str | None) -> TraceContext | None:
    """Parse a W3C `traceparent` header; None when absent or invalid (all-zero ids are invalid)."""
    if not value:
        return None
    match = _TRACEPARENT_RE.match(value.strip().lower())
    if not match:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return TraceContext(trace_id, span_id, flags)


def current() -> TraceContext | None:
    return _current.get()


def current_trace_id() -> str:
    """The bound trace id, or a fresh one (so every event has a trace even from a shell)."""
    ctx = _current.get()
    return ctx.trace_id if ctx else new_trace_id()


def outgoing_traceparent() -> str:
    """`traceparent` for an outgoing HTTP call or task: the current trace, a new span."""
    ctx = _current.get() or TraceContext(new_trace_id(), new_span_id())
    return ctx.child().traceparent


@contextmanager
def bind(ctx: TraceContext | None = None, *, trace_id: str | None = None) -> Iterator[TraceContext]:
    """Bind a trace for the duration of the block (a new one when nothing is given)."""
    if ctx is None:
        ctx = TraceContext(trace_id or new_trace_id(), new_span_id())
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


request_logger = logging.getLogger("switchboard.request")


class TraceMiddleware:
    """Bind the request's trace (from `traceparent` or new), echo it on the response, and
    log one line per request (method, path, status, duration) carrying the trace id."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = parse_traceparent(request.headers.get("traceparent"))
        ctx = incoming.child() if incoming else TraceContext(new_trace_id(), new_span_id())
        request.trace = ctx
        started = time.perf_counter()
        with bind(ctx):
            response = self.get_response(request)
            if request_logger.isEnabledFor(logging.INFO):
                request_logger.info(
                    "%s %s %s",
                    request.method,
                    request.path,
                    response.status_code,
                    extra={
                        "method": request.method,
                        "path": request.path,
                        "status": response.status_code,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
        response["traceparent"] = ctx.traceparent
        response["X-Request-ID"] = ctx.trace_id
        return response


class TraceLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _current.get()
        record.trace_id = ctx.trace_id if ctx else "-"
        record.span_id = ctx.span_id if ctx else "-"
        return True


# --- Celery -------------------------------------------------------------------------------

_task_tokens: dict[str, contextvars.Token] = {}


def _before_publish(headers=None, **_kwargs) -> None:
    if headers is not None and "traceparent" not in headers:
        headers["traceparent"] = outgoing_traceparent()


def _task_prerun(task_id=None, task=None, **_kwargs) -> None:
    value = getattr(task.request, "traceparent", None) if task else None
    if value is None and task is not None:
        value = (getattr(task.request, "headers", None) or {}).get("traceparent")
    parent = parse_traceparent(value)
    ctx = parent.child() if parent else TraceContext(new_trace_id(), new_span_id())
    _task_tokens[task_id] = _current.set(ctx)


def _task_postrun(task_id=None, **_kwargs) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        _current.reset(token)


def connect_celery_signals() -> None:
    from celery import signals

    signals.before_task_publish.connect(_before_publish, weak=False)
    signals.task_prerun.connect(_task_prerun, weak=False)
    signals.task_postrun.connect(_task_postrun, weak=False)
