"""Token buckets in Redis, checked together (provider sends per channel and organization;
API calls per key).

One Lua script refills every bucket from Redis' own clock, and takes a token from each only
when all have one; otherwise it returns how long to wait. Waiting is not failing: the send
is re-scheduled for then; an API call gets 429 with Retry-After.
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
local tokens = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local level = tonumber(state[1]) or burst
  local ts = tonumber(state[2]) or now
  level = math.min(burst, level + math.max(0, now - ts) * rate / 1000)
  tokens[i] = level
  if level < 1 then
    local w = math.ceil((1 - level) * 1000 / rate)
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  redis.call('HSET', key, 'tokens', tokens[i] - 1, 'ts', now)
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
end
return 0
"""

_client: redis.Redis | None = None
_script = None


def _redis():
    global _client, _script
    if _client is None:
        _client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=2
        )
        _script = _client.register_script(_SCRIPT)
    return _script


def acquire(buckets: list[tuple[str, float, float]]) -> float:
    """Take one token from every `(key, rate_per_second, burst)` bucket, or none.

    Returns 0 when taken, else the seconds to wait before trying again. If Redis cannot be
    reached the call goes ahead (fail open: a provider's own limit answers 429, which is
    retried; the API stays available).
    """
    keys = [f"sb:ratelimit:{key}" for key, _, _ in buckets]
    args: list[float] = []
    for _, rate, burst in buckets:
        args += [max(rate, 0.001), max(burst, 1.0)]
    try:
        wait_ms = int(_redis()(keys=keys, args=args))
    except redis.RedisError:
        logger.warning("rate limiter unavailable; going ahead without it", exc_info=True)
        return 0.0
    return wait_ms / 1000.0
