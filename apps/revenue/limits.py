"""The tier enforcer: plan limits checked at the point of use, and usage as admins see it.

`limit_check(organization=, limit=, adding=1)` is the one call other apps make, just before
they create what the limit counts:

| limit | counted | where it is checked |
|---|---|---|
| `operators` | memberships of the organization | `tenancy.services.operator_upsert` (new member) |
| `channels` | channel connections | `providers.services.channel_create` |
| `contacts` | live (unmerged) contacts | `crm.services.contact_create` (API, admin, imports) |
| `decisions_per_month` | decisions this month | decision creation (decisions app) |
| `outbound_messages_per_day` | outbound messages today | `conversations.services.message_send` |

A refusal is `LimitExceeded` (HTTP 403, code `limit_exceeded`) whose message names the
limit and whose `details` carry `{limit, value, usage, adding, plan, period}`.

How usage is counted (cheap by construction):
- totals (operators, channels, contacts) are one indexed COUNT bounded by the limit
  (`SELECT count(*) FROM (SELECT 1 ... LIMIT <limit>)`): its cost never grows past the limit,
  and an unlimited plan costs no query at all;
- per-period usage (decisions per month, messages per day; periods are calendar days and
  months in the organization's time zone) is a Redis counter per organization and period.
  A check reads it; the usage is added after the caller's transaction commits, so a
  rolled-back send is never counted. A missing counter (new period, Redis flushed) is seeded
  from PostgreSQL with an id-range COUNT (ids are UUIDv7, time-ordered). Concurrent checks
  can overshoot a per-period limit by at most the number of sends in flight. Totals are
  exact under concurrency: within `NEAR_LIMIT` of the limit, checks take an advisory lock
  per organization and limit until the caller commits. If Redis is
  unreachable the check lets the action through (logged): availability over metering.

Plans are read from a per-process cache (`PLAN_CACHE_SECONDS`); an organization whose
`plan` matches no Plan row gets the `free` plan's limits, and with no Plan rows at all
(a freshly flushed database) nothing is limited.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.core.errors import LimitExceeded, ValidationFailed

logger = logging.getLogger(__name__)

PLAN_CACHE_SECONDS = 30.0
FALLBACK_PLAN = "free"
NEAR_LIMIT = 20  # within this many of a total limit, checks are serialized per organization


@dataclass(frozen=True)
class LimitSpec:
    key: str
    field: str  # Plan field holding the value
    label: str  # "outbound messages per day"
    period: str | None  # None (a total), "day" or "month"


LIMITS: dict[str, LimitSpec] = {
    spec.key: spec
    for spec in (
        LimitSpec("operators", "max_operators", "operators", None),
        LimitSpec("channels", "max_channels", "channels", None),
        LimitSpec("contacts", "max_contacts", "contacts", None),
        LimitSpec("decisions_per_month", "max_decisions_per_month", "decisions per month", "month"),
        LimitSpec(
            "outbound_messages_per_day",
            "max_outbound_messages_per_day",
            "outbound messages per day",
            "day",
        ),
    )
}


@dataclass(frozen=True)
class LimitUsage:
    limit: str
    label: str
    value: int | None  # None: unlimited
    usage: int
    period: str | None
    period_label: str  # "2025-03-14", "2025-03" or ""

    @property
    def remaining(self) -> int | None:
        return None if self.value is None else max(self.value - self.usage, 0)

    @property
    def percent(self) -> float:
        if not self.value:
            return 0.0 if self.value is None else 100.0
        return min(100.0, round(100.0 * self.usage / self.value, 1))

    @property
    def exceeded(self) -> bool:
        return self.value is not None and self.usage >= self.value


# --- plans ------------------------------------------------------------------------------------

_plan_lock = threading.Lock()
_plan_cache: dict[str, object] = {}
_plan_cache_expires = 0.0


def plan_cache_clear() -> None:
    """Forget cached plans in this process (plan edits call it; tests too)."""
    global _plan_cache_expires
    with _plan_lock:
        _plan_cache.clear()
        _plan_cache_expires = 0.0


def _plans() -> dict:
    global _plan_cache_expires
    now = time.monotonic()
    with _plan_lock:
        if now < _plan_cache_expires:
            return _plan_cache
    from apps.revenue.models import Plan

    plans = {plan.key: plan for plan in Plan.objects.all()}
    with _plan_lock:
        _plan_cache.clear()
        _plan_cache.update(plans)
        _plan_cache_expires = now + PLAN_CACHE_SECONDS
        return _plan_cache


def plan_for(organization):
    """The organization's Plan (by `Organization.plan`), `free` when unknown, or None when
    no plan exists at all. Cached: usually no query."""
    plans = _plans()
    return plans.get(organization.plan) or plans.get(FALLBACK_PLAN)


def limit_value(organization, limit: str) -> int | None:
    spec = _spec(limit)
    plan = plan_for(organization)
    return None if plan is None else getattr(plan, spec.field)


def _spec(limit: str) -> LimitSpec:
    try:
        return LIMITS[limit]
    except KeyError:
        raise ValueError(f"unknown limit {limit!r} (one of {', '.join(LIMITS)})") from None


# --- periods ----------------------------------------------------------------------------------


def period_bounds(organization, period: str, now: datetime | None = None):
    """(label, start, end) of the current day or month in the organization's time zone."""
    local = (now or timezone.now()).astimezone(organization.tz)
    if period == "day":
        start_date = local.date()
        end_date = start_date + timedelta(days=1)
        label = start_date.isoformat()
    else:
        start_date = local.date().replace(day=1)
        end_date = (start_date + timedelta(days=32)).replace(day=1)
        label = start_date.strftime("%Y-%m")
    start = datetime.combine(start_date, datetime.min.time(), tzinfo=organization.tz)
    end = datetime.combine(end_date, datetime.min.time(), tzinfo=organization.tz)
    return label, start, end


def uuid7_floor(moment: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of a millisecond: ids created at or after `moment` sort above."""
    ms = int(moment.timestamp() * 1000)
    return uuid.UUID(int=(ms & ((1 << 48) - 1)) << 80)


# --- counting ---------------------------------------------------------------------------------


def _advisory_xact_lock(*parts) -> None:
    key = "|".join(str(p) for p in ("limit", *parts))
    value = int.from_bytes(
        hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [value])


def _total_queryset(organization, limit: str):
    if limit == "operators":
        from apps.tenancy.models import Membership

        return Membership.objects.filter(organization=organization)
    if limit == "channels":
        from apps.providers.models import ChannelConnection

        return ChannelConnection.objects.filter(organization=organization)
    from apps.crm.models import Contact

    return Contact.objects.filter(organization=organization, merged_into__isnull=True)


def _period_db_count(organization, limit: str, start: datetime, end: datetime) -> int:
    """Usage of a period from PostgreSQL: an id range scan (UUIDv7 ids are time-ordered)."""
    ids = {"id__gte": uuid7_floor(start), "id__lt": uuid7_floor(end)}
    if limit == "outbound_messages_per_day":
        from apps.conversations.models import Direction, Message

        return Message.objects.filter(
            organization=organization, direction=Direction.OUTBOUND, **ids
        ).count()
    from apps.decisions.models import Decision

    return Decision.objects.filter(organization=organization, **ids).count()


_SEED_TTL = {"day": 2 * 86400, "month": 62 * 86400}
_client: redis.Redis | None = None
_add_script = None
# INCRBY only an existing counter: a missing one is re-seeded from the database (which by
# then includes the committed rows), never started from zero.
_ADD_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
return -1
"""


def _redis() -> redis.Redis:
    global _client, _add_script
    if _client is None:
        _client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
        _add_script = _client.register_script(_ADD_IF_EXISTS)
    return _client


def usage_redis_reset() -> None:
    """Forget the Redis connection (it is re-opened from `settings.REDIS_URL` on next use)."""
    global _client, _add_script
    _client = _add_script = None


def _counter_key(organization, limit: str, label: str) -> str:
    return f"sb:usage:{organization.pk}:{limit}:{label}"


def _period_usage(organization, spec: LimitSpec, now: datetime | None = None) -> tuple[int, str]:
    """(usage so far, period label). Reads the Redis counter, seeding it when missing.
    Raises redis.RedisError when Redis is unreachable."""
    label, start, end = period_bounds(organization, spec.period, now)
    key = _counter_key(organization, spec.key, label)
    client = _redis()
    value = client.get(key)
    if value is None:
        seeded = _period_db_count(organization, spec.key, start, end)
        client.set(key, seeded, nx=True, ex=_SEED_TTL[spec.period])
        value = client.get(key) or seeded
    return int(value), label


def _period_add(organization, spec: LimitSpec, label: str, adding: int) -> None:
    try:
        _redis()
        _add_script(keys=[_counter_key(organization, spec.key, label)], args=[adding])
    except redis.RedisError:
        logger.warning("usage counter %s not updated (Redis unavailable)", spec.key)


def _refuse(organization, spec: LimitSpec, value: int, usage: int, adding: int, label: str):
    plan = plan_for(organization)
    where = (
        f" today ({label})"
        if spec.period == "day"
        else (f" this month ({label})" if spec.period == "month" else "")
    )
    raise LimitExceeded(
        f"Plan limit reached: {spec.label} — {usage} of {value} used{where} on the "
        f"{plan.name} plan. Upgrade the plan"
        + (" or wait for the next period." if spec.period else " or remove some first."),
        details={
            "limit": spec.key,
            "value": value,
            "usage": usage,
            "adding": adding,
            "plan": plan.key,
            "period": label or None,
        },
    )


def limit_check(
    *, organization, limit: str, adding: int = 1, enforce: bool = True
) -> LimitUsage | None:
    """Refuse (`LimitExceeded`) when adding `adding` would pass the organization's plan
    limit `limit`; otherwise let it through. Call it just before creating the thing.

    For per-period limits a passing check also counts `adding` as used once the caller's
    transaction commits (nothing is counted on rollback). `enforce=False` only counts (for
    sends that must never be refused, e.g. a HELP reply). Returns the usage before adding
    (None when nothing needed counting: unlimited total, or Redis unavailable).
    """
    spec = _spec(limit)
    if adding < 1:
        raise ValidationFailed("adding: must be at least 1.")
    value = limit_value(organization, limit)
    if spec.period is None:
        if value is None or not enforce:
            return None
        usage = _total_queryset(organization, limit)[:value].count()
        if value - usage <= NEAR_LIMIT and connection.in_atomic_block:
            # Near the limit, concurrent creations take turns (the lock lasts until the
            # caller commits), so the last ones see the earlier rows and are refused.
            _advisory_xact_lock(organization.pk, limit)
            usage = _total_queryset(organization, limit)[:value].count()
        if usage + adding > value:
            _refuse(organization, spec, value, usage, adding, "")
        return LimitUsage(limit, spec.label, value, usage, None, "")
    try:
        usage, label = _period_usage(organization, spec)
    except redis.RedisError:
        logger.warning("usage counter %s unavailable; not enforced", limit, exc_info=True)
        return None
    if enforce and value is not None and usage + adding > value:
        _refuse(organization, spec, value, usage, adding, label)
    transaction.on_commit(lambda: _period_add(organization, spec, label, adding))
    return LimitUsage(limit, spec.label, value, usage, spec.period, label)


def limit_remaining(*, organization, limit: str) -> int | None:
    """How many more the plan allows now (None: unlimited or not measurable). Reads only."""
    spec = _spec(limit)
    value = limit_value(organization, limit)
    if value is None:
        return None
    if spec.period is None:
        return max(value - _total_queryset(organization, limit)[:value].count(), 0)
    try:
        usage, _ = _period_usage(organization, spec)
    except redis.RedisError:
        return None
    return max(value - usage, 0)


def usage_summary(*, organization, now: datetime | None = None) -> list[LimitUsage]:
    """Every limit of the organization's plan with its current usage (exact counts), for
    the usage page and `GET /api/v1/usage/`. One COUNT per total, one Redis read per
    period counter (seeded when missing)."""
    rows = []
    for spec in LIMITS.values():
        value = limit_value(organization, spec.key)
        if spec.period is None:
            usage, label = _total_queryset(organization, spec.key).count(), ""
        else:
            try:
                usage, label = _period_usage(organization, spec, now)
            except redis.RedisError:
                label, start, end = period_bounds(organization, spec.period, now)
                usage = _period_db_count(organization, spec.key, start, end)
        rows.append(LimitUsage(spec.key, spec.label, value, usage, spec.period, label))
    return rows
