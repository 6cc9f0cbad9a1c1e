"""Delivery settings with their production defaults.

Each value can be overridden in Django settings (tests use a compressed retry schedule);
read them through these functions, never at import time, so overrides apply.
"""

from __future__ import annotations

from django.conf import settings

DEFAULTS: dict[str, object] = {
    # Delays (seconds) after the first attempt: attempt now, then ~5 s, 30 s, 2 min, 10 min,
    # 30 min, 1 h, 3 h, 6 h, 12 h, 24 h. After the last one the delivery is dead.
    "WEBHOOK_RETRY_SCHEDULE": (5, 30, 120, 600, 1800, 3600, 10800, 21600, 43200, 86400),
    # Each delay is multiplied by a random factor in [1 - jitter, 1 + jitter].
    "WEBHOOK_RETRY_JITTER": 0.2,
    # Retry-After (429/503) is honoured up to this many seconds.
    "WEBHOOK_RETRY_AFTER_MAX_SECONDS": 3600,
    # An endpoint failing continuously this long is disabled.
    "WEBHOOK_DISABLE_AFTER_SECONDS": 5 * 24 * 3600,
    # Circuit breaker: open after this many consecutive failed attempts; while open no
    # request is sent; when the cool-down ends one probe is sent. Cool-downs double from
    # the first value up to the second.
    "WEBHOOK_CIRCUIT_THRESHOLD": 5,
    "WEBHOOK_CIRCUIT_COOLDOWN_SECONDS": (5, 300),
    # A claimed delivery belongs to its worker this long; after that (the worker died or
    # stalled) any worker may take it again. Must exceed the longest endpoint timeout.
    "WEBHOOK_DELIVERY_LEASE_SECONDS": 60,
    # Work per dispatch round and how long one dispatch task keeps looping.
    "WEBHOOK_DISPATCH_BATCH": 200,
    "WEBHOOK_FANOUT_BATCH": 500,
    "WEBHOOK_DISPATCH_BUDGET_SECONDS": 20,
    # Extra dispatch tasks a busy dispatcher may call in (parallel rounds across processes).
    "WEBHOOK_DISPATCH_HELPERS": 1,
    # HTTP connections one worker process opens per endpoint at most (threads).
    "WEBHOOK_LANES_PER_PROCESS": 8,
    # Response bodies: read at most this much, store at most the second figure.
    "WEBHOOK_RESPONSE_READ_LIMIT": 64 * 1024,
    "WEBHOOK_RESPONSE_STORE_LIMIT": 4 * 1024,
    # How long the previous secret keeps signing after a rotation.
    "WEBHOOK_SECRET_OVERLAP_SECONDS": 24 * 3600,
    # A single replay/backfill request may requeue at most this many events.
    "WEBHOOK_REPLAY_MAX_EVENTS": 10_000,
    # Resolved addresses of endpoint hosts are reused this long within a worker process.
    "WEBHOOK_DNS_CACHE_SECONDS": 30,
}


def get(name: str):
    return getattr(settings, name, DEFAULTS[name])


def retry_schedule() -> tuple[float, ...]:
    return tuple(float(s) for s in get("WEBHOOK_RETRY_SCHEDULE"))


def max_attempts() -> int:
    return 1 + len(retry_schedule())


def allow_private_urls() -> bool:
    return bool(getattr(settings, "WEBHOOKS_ALLOW_PRIVATE_URLS", False))
