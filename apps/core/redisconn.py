"""The Redis client for Switchboard's own keys: wake flags, locks, rate windows, coalesced
jobs. One per process, rebuilt after a fork and when `REDIS_URL` changes.

Timeouts are short on purpose: these calls run after commit in web requests, and a Redis
that does not answer within half a second is treated as down (every caller has a fallback:
a sweeper, a fail-open limiter, a logged warning).
"""

from __future__ import annotations

import os

import redis as redis_lib
from django.conf import settings

_client: redis_lib.Redis | None = None
_client_for: tuple[int, str] | None = None


def redis_client() -> redis_lib.Redis:
    global _client, _client_for
    key = (os.getpid(), settings.REDIS_URL)
    if _client is None or _client_for != key:
        _client = redis_lib.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5
        )
        _client_for = key
    return _client
