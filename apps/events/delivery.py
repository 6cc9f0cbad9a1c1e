"""Webhook delivery: fan-out, claim, send, record, in rounds run by Celery tasks.

State lives in PostgreSQL only; Redis merely wakes a dispatcher up. One round
(`dispatch_round`):

1. **Claim** (one transaction): fan out up to `WEBHOOK_FANOUT_BATCH` events that have not
   been fanned out (`FOR UPDATE SKIP LOCKED`, marked `dispatched_at`, one Delivery per
   matching endpoint, `ON CONFLICT DO NOTHING` on (event, endpoint)); then lock up to
   `WEBHOOK_DISPATCH_BATCH` due deliveries (`next_attempt_at <= now()`, `SKIP LOCKED`) and
   sort them: sendable ones become `delivering` with a lease (`next_attempt_at` = lease
   end, `attempt_count` + 1); those of a paused endpoint are held (`next_attempt_at`
   empty); those of an endpoint whose circuit is open wait for it; while an endpoint is
   half-open a single probe goes out.
2. **Send** (no transaction): per endpoint, up to `max_concurrency` connections across all
   workers (PostgreSQL advisory locks, released if the process dies), at most
   `WEBHOOK_LANES_PER_PROCESS` threads per process, keep-alive connections, an optional
   requests-per-second limit (Redis), and no request that could outlive the lease. When an
   endpoint reaches the circuit threshold mid-round its remaining deliveries are put back.
3. **Record** (one transaction): attempts inserted and deliveries updated in bulk (only
   rows whose lease this worker still holds), endpoint health updated (circuit breaker,
   410 and five-day disabling, which emits `webhook_endpoint.disabled`).

A worker that dies mid-round loses its lease; the rows become due again when it ends and
the lost attempt is recorded as such. Retries are `next_attempt_at` values, never Celery
ETAs, so a broker restart loses nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis as redis_lib
from django.db import connection, transaction
from django.db.utils import OperationalError
from django.utils import timezone

from apps.core import tracing
from apps.core.crypto import decrypt_text
from apps.core.redisconn import redis_client
from apps.events import conf, metrics, signing
from apps.events.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    EndpointStatus,
    Event,
    WebhookEndpoint,
)
from apps.events.transport import Response, transport
from apps.tenancy.models import Organization

logger = logging.getLogger(__name__)

_EVENT = Event._meta.db_table
_DELIVERY = Delivery._meta.db_table
_ATTEMPT = DeliveryAttempt._meta.db_table
_ENDPOINT = WebhookEndpoint._meta.db_table
_ORG = Organization._meta.db_table

LOST_ATTEMPT_ERROR = "no answer recorded: the worker was lost during this attempt (lease expired)"
_RELEASE_DELAY = timedelta(seconds=1)

# --- SQL ---------------------------------------------------------------------------------

# Subscription patterns are exact types, `group.*` or `*` (catalog.pattern_is_valid).
PATTERN_MATCH_SQL = """(
    {type} = ANY({patterns}) OR '*' = ANY({patterns})
    OR split_part({type}, '.', 1) || '.*' = ANY({patterns})
)"""

_FANOUT_SQL = f"""
WITH ev AS (
    SELECT id FROM {_EVENT}
    WHERE dispatched_at IS NULL
    ORDER BY created_at
    LIMIT %(limit)s
    -- NO KEY: foreign-key checks of concurrent delivery inserts (FOR KEY SHARE) go on.
    FOR NO KEY UPDATE SKIP LOCKED
), marked AS (
    UPDATE {_EVENT} e SET dispatched_at = %(now)s
    FROM ev WHERE e.id = ev.id
    RETURNING e.id, e.organization_id, e.type
), created AS (
    INSERT INTO {_DELIVERY}
        (id, organization_id, event_id, endpoint_id, status, attempt_count, next_attempt_at,
         last_error, replay_count, created_at, updated_at)
    SELECT events_uuid7(), m.organization_id, m.id, w.id, 'pending', 0,
           CASE WHEN w.status = 'paused' THEN NULL ELSE %(now)s END, '', 0, %(now)s, %(now)s
    FROM marked m
    JOIN {_ENDPOINT} w ON w.organization_id = m.organization_id
    WHERE w.status IN ('active', 'paused')
      AND {PATTERN_MATCH_SQL.format(type="m.type", patterns="w.event_types")}
    -- Every writer of deliveries inserts in (event, endpoint) order: no deadlocks.
    ORDER BY m.id, w.id
    ON CONFLICT (event_id, endpoint_id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM marked), (SELECT count(*) FROM created)
"""  # noqa: S608 - table names are our own models'

_CLAIM_SQL = f"""
SELECT d.id, d.status, d.attempt_count, d.last_attempt_at, d.organization_id,
       e.id, e.type, e.version, e.sequence, e.subject_type, e.subject_id, e.data::text,
       e.trace_id, e.created_at, o.slug,
       w.id, w.url, w.status, w.secret, w.previous_secret, w.previous_secret_expires_at,
       w.timeout_seconds, w.max_concurrency, w.rate_limit_per_second,
       w.consecutive_failures, w.circuit_open_until
FROM {_DELIVERY} d
JOIN {_EVENT} e ON e.id = d.event_id
JOIN {_ENDPOINT} w ON w.id = d.endpoint_id
JOIN {_ORG} o ON o.id = d.organization_id
WHERE d.status IN ('pending', 'delivering', 'failed') AND d.next_attempt_at <= %(now)s
ORDER BY d.next_attempt_at
LIMIT %(limit)s
FOR NO KEY UPDATE OF d SKIP LOCKED
"""  # noqa: S608

# Every change to delivery rows goes through this one bulk statement. With a `lease`, the
# row is only written while this worker still holds it (status delivering, same lease end).
_APPLY_SQL = f"""
UPDATE {_DELIVERY} d SET
    status = u.status,
    attempt_count = u.attempt_count,
    next_attempt_at = u.next_attempt_at,
    last_attempt_at = COALESCE(u.last_attempt_at, d.last_attempt_at),
    last_response_status = CASE WHEN u.has_result THEN u.last_response_status
                                ELSE d.last_response_status END,
    last_error = COALESCE(u.last_error, d.last_error),
    delivered_at = COALESCE(u.delivered_at, d.delivered_at),
    updated_at = now()
FROM unnest(%s::uuid[], %s::text[], %s::int[], %s::timestamptz[], %s::timestamptz[],
            %s::bool[], %s::int[], %s::text[], %s::timestamptz[], %s::timestamptz[])
    AS u(id, status, attempt_count, next_attempt_at, last_attempt_at,
         has_result, last_response_status, last_error, delivered_at, lease)
WHERE d.id = u.id
  AND (u.lease IS NULL OR (d.status = 'delivering' AND d.next_attempt_at = u.lease))
RETURNING d.id
"""  # noqa: S608

_ATTEMPTS_SQL = f"""
INSERT INTO {_ATTEMPT}
    (organization_id, delivery_id, endpoint_id, attempt_number, created_at, succeeded,
     duration_ms, request_headers, response_status, response_headers, response_body, error,
     retry_at)
SELECT u.organization_id, u.delivery_id, u.endpoint_id, u.attempt_number, u.created_at,
       u.succeeded, u.duration_ms, u.request_headers::jsonb, u.response_status,
       u.response_headers::jsonb, u.response_body, u.error, u.retry_at
FROM unnest(%s::uuid[], %s::uuid[], %s::uuid[], %s::int[], %s::timestamptz[], %s::bool[],
            %s::int[], %s::text[], %s::int[], %s::text[], %s::text[], %s::text[],
            %s::timestamptz[])
    AS u(organization_id, delivery_id, endpoint_id, attempt_number, created_at, succeeded,
         duration_ms, request_headers, response_status, response_headers, response_body,
         error, retry_at)
WHERE EXISTS (SELECT 1 FROM {_DELIVERY} d WHERE d.id = u.delivery_id)
"""  # noqa: S608

_ENDPOINT_RESULT_SQL = f"""
UPDATE {_ENDPOINT} SET
    consecutive_failures = CASE WHEN %(success)s THEN %(trailing)s
                                ELSE consecutive_failures + %(trailing)s END,
    failing_since = CASE WHEN %(trailing)s = 0 THEN NULL
                         WHEN %(success)s THEN %(first_failure)s
                         ELSE COALESCE(failing_since, %(first_failure)s) END,
    circuit_open_until = CASE WHEN %(success)s AND %(trailing)s = 0 THEN NULL
                              ELSE circuit_open_until END,
    last_success_at = COALESCE(%(last_success)s, last_success_at),
    last_failure_at = COALESCE(%(last_failure)s, last_failure_at),
    updated_at = now()
WHERE id = %(id)s
RETURNING consecutive_failures, failing_since, status
"""  # noqa: S608

_PROBE_SQL = f"""
UPDATE {_ENDPOINT} SET circuit_open_until = %(until)s
WHERE id = %(id)s AND (circuit_open_until IS NULL OR circuit_open_until <= %(now)s)
RETURNING id
"""  # noqa: S608

_SLOTS_SQL = """
SELECT s FROM generate_series(0, %(size)s - 1) AS s
WHERE pg_try_advisory_lock(%(key)s, s)
LIMIT %(want)s
"""
_UNSLOT_SQL = "SELECT pg_advisory_unlock(%(key)s, s) FROM unnest(%(slots)s::int[]) AS s"


# --- what a round works on ---------------------------------------------------------------


@dataclass
class EndpointView:
    """The endpoint columns a round needs (read with the claim, not refreshed)."""

    id: uuid.UUID
    url: str
    status: str
    secret: str
    previous_secret: str
    previous_secret_expires_at: datetime | None
    timeout: float
    max_concurrency: int
    rate_limit: int | None
    consecutive_failures: int
    circuit_open_until: datetime | None

    def signing_keys(self, now: datetime) -> list[bytes]:
        keys = [signing.secret_key(self.secret)]
        if self.previous_secret and (
            self.previous_secret_expires_at and self.previous_secret_expires_at > now
        ):
            keys.append(signing.secret_key(self.previous_secret))
        return keys

    @property
    def lock_key(self) -> int:
        return int.from_bytes(self.id.bytes[12:16], "big", signed=True)


@dataclass
class Claimed:
    id: uuid.UUID
    organization_id: uuid.UUID
    event: Event
    endpoint: EndpointView
    previous_status: str
    attempt_count: int  # after this claim
    last_attempt_at: datetime | None
    lease: datetime | None = None
    response: Response | None = None
    released_until: datetime | None = None
    final_status: str | None = None


@dataclass
class _Change:
    id: uuid.UUID
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None = None
    has_result: bool = False
    last_response_status: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    lease: datetime | None = None


@dataclass
class _AttemptRow:
    organization_id: uuid.UUID
    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    attempt_number: int
    created_at: datetime
    succeeded: bool = False
    duration_ms: int | None = None
    request_headers: dict = field(default_factory=dict)
    response_status: int | None = None
    response_headers: dict = field(default_factory=dict)
    response_body: str = ""
    error: str = ""
    retry_at: datetime | None = None


@dataclass
class RoundResult:
    fanned_out: int = 0
    claimed: int = 0
    moved: int = 0
    full: bool = False

    @property
    def busy(self) -> bool:
        return bool(self.fanned_out or self.claimed or self.moved)


def _clean(text: str, limit: int = 500) -> str:
    """PostgreSQL text cannot hold NUL; columns have limits."""
    return text.replace("\x00", "\ufffd")[:limit]


def _apply(changes: list[_Change]) -> set:
    if not changes:
        return set()
    columns = list(zip(*[
        (c.id, c.status, c.attempt_count, c.next_attempt_at, c.last_attempt_at, c.has_result,
         c.last_response_status, c.last_error, c.delivered_at, c.lease)
        for c in changes
    ], strict=True))  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_APPLY_SQL, [list(col) for col in columns])
        return {row[0] for row in cursor.fetchall()}


def _insert_attempts(rows: list[_AttemptRow]) -> None:
    if not rows:
        return
    columns = list(zip(*[
        (a.organization_id, a.delivery_id, a.endpoint_id, a.attempt_number, a.created_at,
         a.succeeded, a.duration_ms, json.dumps(a.request_headers),
         a.response_status, json.dumps(a.response_headers).replace("\\u0000", "\\ufffd"),
         _clean(a.response_body, 1_000_000), _clean(a.error), a.retry_at)
        for a in rows
    ], strict=True))  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_ATTEMPTS_SQL, [list(col) for col in columns])


# --- retry policy ------------------------------------------------------------------------


def retry_delay(attempt_count: int, retry_after: float | None = None) -> float | None:
    """Seconds until the next attempt after `attempt_count` failed ones; None: no more."""
    schedule = conf.retry_schedule()
    if attempt_count > len(schedule):
        return None
    jitter = float(conf.get("WEBHOOK_RETRY_JITTER"))
    delay = schedule[attempt_count - 1] * random.uniform(1 - jitter, 1 + jitter)
    if retry_after is not None:
        bound = float(conf.get("WEBHOOK_RETRY_AFTER_MAX_SECONDS"))
        delay = max(delay, min(retry_after, bound))
    return delay


def circuit_cooldown(consecutive_failures: int) -> float:
    base, cap = (float(v) for v in conf.get("WEBHOOK_CIRCUIT_COOLDOWN_SECONDS"))
    over = max(0, consecutive_failures - int(conf.get("WEBHOOK_CIRCUIT_THRESHOLD")))
    return min(cap, base * (2 ** min(over, 30)))


# --- 1. claim ----------------------------------------------------------------------------


def _fan_out(limit: int, now: datetime) -> int:
    with connection.cursor() as cursor:
        cursor.execute(_FANOUT_SQL, {"limit": limit, "now": now})
        marked, _created = cursor.fetchone()
    return marked


def _claimed_from_row(row, organizations: dict) -> Claimed:
    (d_id, d_status, d_attempts, d_last_attempt, org_id,
     e_id, e_type, e_version, e_sequence, e_subject_type, e_subject_id, e_data, e_trace,
     e_created, org_slug,
     w_id, w_url, w_status, w_secret, w_prev, w_prev_exp, w_timeout, w_conc, w_rate,
     w_failures, w_circuit) = row  # fmt: skip
    org = organizations.get(org_id)
    if org is None:
        org = organizations[org_id] = Organization(id=org_id, slug=org_slug)
    event = Event(
        id=e_id,
        organization=org,
        type=e_type,
        version=e_version,
        sequence=e_sequence,
        subject_type=e_subject_type,
        subject_id=e_subject_id,
        data=json.loads(e_data),
        trace_id=e_trace,
        created_at=e_created,
    )
    endpoint = EndpointView(
        id=w_id,
        url=w_url,
        status=w_status,
        secret=decrypt_text(w_secret),
        previous_secret=decrypt_text(w_prev) if w_prev else "",
        previous_secret_expires_at=w_prev_exp,
        timeout=float(w_timeout),
        max_concurrency=w_conc,
        rate_limit=w_rate,
        consecutive_failures=w_failures,
        circuit_open_until=w_circuit,
    )
    return Claimed(
        id=d_id,
        organization_id=org_id,
        event=event,
        endpoint=endpoint,
        previous_status=d_status,
        attempt_count=d_attempts,
        last_attempt_at=d_last_attempt,
    )


def _waiting_status(attempt_count: int) -> str:
    return DeliveryStatus.FAILED if attempt_count else DeliveryStatus.PENDING


def _claim(limit: int, now: datetime) -> tuple[list[Claimed], list[_Change], list[_AttemptRow]]:
    """Lock due deliveries and decide what happens to each (inside the claim transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, {"limit": limit, "now": now})
        rows = cursor.fetchall()
    organizations: dict = {}
    by_endpoint: dict[uuid.UUID, list[Claimed]] = {}
    for row in rows:
        item = _claimed_from_row(row, organizations)
        by_endpoint.setdefault(item.endpoint.id, []).append(item)

    lease_seconds = float(conf.get("WEBHOOK_DELIVERY_LEASE_SECONDS"))
    threshold = int(conf.get("WEBHOOK_CIRCUIT_THRESHOLD"))
    max_attempts = conf.max_attempts()
    sendable: list[Claimed] = []
    changes: list[_Change] = []
    lost: list[_AttemptRow] = []

    for endpoint_id, items in by_endpoint.items():
        endpoint = items[0].endpoint
        # Long enough for at least one request to time out and be recorded.
        lease = now + timedelta(seconds=max(lease_seconds, endpoint.timeout + 5))
        # A row still `delivering` was claimed by a worker whose lease ran out.
        for item in items:
            if item.previous_status == DeliveryStatus.DELIVERING:
                lost.append(
                    _AttemptRow(
                        organization_id=item.organization_id,
                        delivery_id=item.id,
                        endpoint_id=endpoint_id,
                        attempt_number=item.attempt_count,
                        created_at=item.last_attempt_at or now,
                        error=LOST_ATTEMPT_ERROR,
                    )
                )
        if endpoint.status == EndpointStatus.DISABLED:
            changes += [
                _Change(item.id, DeliveryStatus.DEAD, item.attempt_count, None,
                        last_error="endpoint disabled")
                for item in items
            ]  # fmt: skip
            continue
        if endpoint.status == EndpointStatus.PAUSED:
            changes += [
                _Change(item.id, _waiting_status(item.attempt_count), item.attempt_count, None)
                for item in items
            ]
            continue
        if endpoint.circuit_open_until and endpoint.circuit_open_until > now:
            changes += [
                _Change(item.id, _waiting_status(item.attempt_count), item.attempt_count,
                        endpoint.circuit_open_until)
                for item in items
            ]  # fmt: skip
            continue
        if endpoint.consecutive_failures >= threshold:
            # Half-open: one probe; the others wait for its verdict (a success brings
            # them forward at once, see _after_record).
            verdict = now + timedelta(seconds=endpoint.timeout + 2)
            with connection.cursor() as cursor:
                cursor.execute(_PROBE_SQL, {"id": endpoint_id, "until": verdict, "now": now})
                won = cursor.fetchone() is not None
            probe, rest = (items[0], items[1:]) if won else (None, items)
            changes += [
                _Change(item.id, _waiting_status(item.attempt_count), item.attempt_count, verdict)
                for item in rest
            ]
            items = [probe] if probe else []
        if endpoint.rate_limit and len(items) > endpoint.rate_limit:
            # No more than a second's worth per round: a throttled endpoint must not hold
            # up the round (and every other endpoint's deliveries in it).
            later = now + timedelta(seconds=1)
            changes += [
                _Change(item.id, _waiting_status(item.attempt_count), item.attempt_count, later)
                for item in items[endpoint.rate_limit :]
            ]
            items = items[: endpoint.rate_limit]
        for item in items:
            if item.attempt_count >= max_attempts:  # its last attempt was the lost one
                changes.append(
                    _Change(item.id, DeliveryStatus.DEAD, item.attempt_count, None,
                            last_error=LOST_ATTEMPT_ERROR)
                )  # fmt: skip
                continue
            item.attempt_count += 1
            item.lease = lease
            sendable.append(item)
            changes.append(
                _Change(item.id, DeliveryStatus.DELIVERING, item.attempt_count, lease,
                        last_attempt_at=now)
            )  # fmt: skip
    return sendable, changes, lost


# --- 2. send -----------------------------------------------------------------------------

_executor: ThreadPoolExecutor | None = None
_executor_pid: int | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor, _executor_pid
    if _executor is None or _executor_pid != os.getpid():
        lanes = int(conf.get("WEBHOOK_LANES_PER_PROCESS"))
        _executor = ThreadPoolExecutor(max_workers=lanes * 4, thread_name_prefix="webhook")
        _executor_pid = os.getpid()
    return _executor


def _rate_take(endpoint: EndpointView) -> float:
    """0 when a request may go now, else seconds until the next one-second window."""
    now = time.time()
    window = int(now)
    key = f"sb:events:rate:{endpoint.id}:{window}"
    try:
        pipe = redis_client().pipeline()
        pipe.incr(key)
        pipe.expire(key, 3)
        used, _ = pipe.execute()
    except redis_lib.RedisError:
        return 0.0  # a limiter that cannot count lets requests through
    return 0.0 if used <= endpoint.rate_limit else (window + 1) - now


def build_request(event: Event, endpoint: EndpointView, now: datetime) -> tuple[bytes, dict]:
    """The body (`Event.envelope()`) and the Standard Webhooks headers for one attempt."""
    body = json.dumps(event.envelope(), separators=(",", ":")).encode()
    timestamp = int(now.timestamp())
    msg_id = str(event.id)
    trace = event.trace_id if len(event.trace_id) == 32 else tracing.new_trace_id()
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature_header(
            endpoint.signing_keys(now), msg_id, timestamp, body
        ),
        "traceparent": f"00-{trace}-{tracing.new_span_id()}-01",
    }
    return body, headers


def _acquire_slots(endpoint: EndpointView, want: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            _SLOTS_SQL, {"size": endpoint.max_concurrency, "key": endpoint.lock_key, "want": want}
        )
        return [row[0] for row in cursor.fetchall()]


def _release_slots(endpoint: EndpointView, slots: list[int]) -> None:
    if slots:
        with connection.cursor() as cursor:
            cursor.execute(_UNSLOT_SQL, {"key": endpoint.lock_key, "slots": slots})


class _Lanes:
    """Sends one endpoint's share of a round over a few connections (threads)."""

    def __init__(self, endpoint: EndpointView, items: list[Claimed], deadline: float):
        self.endpoint = endpoint
        self.queue = deque(items)
        self.deadline = deadline
        self.lock = threading.Lock()
        self.failures = endpoint.consecutive_failures
        self.threshold = int(conf.get("WEBHOOK_CIRCUIT_THRESHOLD"))
        self.tripped = False
        self.request_headers: dict[uuid.UUID, dict] = {}

    def _next(self) -> Claimed | None:
        with self.lock:
            if self.tripped or not self.queue:
                return None
            return self.queue.popleft()

    def run(self) -> None:
        endpoint = self.endpoint
        while (item := self._next()) is not None:
            if time.monotonic() + endpoint.timeout + 1 > self.deadline:
                with self.lock:
                    self.queue.appendleft(item)
                    self.tripped = True  # the lease would end mid-request: stop here
                return
            if endpoint.rate_limit:
                wait_for = _rate_take(endpoint)
                while wait_for:
                    if time.monotonic() + wait_for + endpoint.timeout + 1 > self.deadline:
                        with self.lock:
                            self.queue.appendleft(item)
                        return
                    time.sleep(wait_for)
                    wait_for = _rate_take(endpoint)
            now = timezone.now()
            try:
                body, headers = build_request(item.event, endpoint, now)
            except Exception as exc:  # e.g. a corrupt secret: a failed attempt, not a crash
                logger.exception("could not build webhook request for delivery %s", item.id)
                item.response = Response(
                    started_at=now, duration_ms=0, error=f"could not build the request: {exc}"
                )
            else:
                self.request_headers[item.id] = headers
                item.response = transport().post(endpoint.url, body, headers, endpoint.timeout)
            with self.lock:
                if item.response.ok:
                    self.failures = 0
                else:
                    self.failures += 1
                    if self.failures >= self.threshold or item.response.status == 410:
                        self.tripped = True

    def leftovers(self) -> list[Claimed]:
        return list(self.queue)


def _send(sendable: list[Claimed], started: float, claimed_at: datetime) -> dict[uuid.UUID, dict]:
    """Send every claimed delivery (or put it back); returns the request headers sent.

    `started` (monotonic) and `claimed_at` are the same instant: leases end, in monotonic
    time, at `started + (lease - claimed_at)`; no request starts that could outlive it.
    """
    by_endpoint: dict[uuid.UUID, list[Claimed]] = {}
    for item in sendable:
        by_endpoint.setdefault(item.endpoint.id, []).append(item)
    max_lanes = int(conf.get("WEBHOOK_LANES_PER_PROCESS"))
    groups: list[tuple[_Lanes, list[int]]] = []
    jobs = []
    request_headers: dict[uuid.UUID, dict] = {}
    transport()  # create this process's connection pool before the threads need it
    try:
        for items in by_endpoint.values():
            endpoint = items[0].endpoint
            slots = _acquire_slots(endpoint, min(len(items), max_lanes, endpoint.max_concurrency))
            deadline = started + (items[0].lease - claimed_at).total_seconds() - 1
            lanes = _Lanes(endpoint, items, deadline)
            groups.append((lanes, slots))
            if not slots:
                continue  # all of its connections are busy in other workers
            for _ in range(len(slots)):
                jobs.append(lanes.run)
        if len(jobs) == 1:
            jobs[0]()
        elif jobs:
            futures = [_pool().submit(job) for job in jobs]
            wait(futures)
            for future in futures:
                if future.exception() is not None:
                    logger.error("webhook lane crashed", exc_info=future.exception())
    finally:
        now = timezone.now()
        for lanes, slots in groups:
            _release_slots(lanes.endpoint, slots)
            request_headers.update(lanes.request_headers)
            # Without a connection slot: try again shortly. Stopped by the circuit breaker
            # or the lease: due now, and the next claim applies the endpoint's state.
            release_at = now if slots else now + _RELEASE_DELAY
            for item in lanes.leftovers():
                item.released_until = release_at
    return request_headers


# --- 3. record ---------------------------------------------------------------------------


@dataclass
class _EndpointTally:
    success: bool = False
    trailing: int = 0
    first_failure: datetime | None = None
    last_success: datetime | None = None
    last_failure: datetime | None = None
    gone: bool = False


def _record(sendable: list[Claimed], request_headers: dict) -> None:
    now = timezone.now()
    tallies: dict[uuid.UUID, _EndpointTally] = {}
    endpoints: dict[uuid.UUID, EndpointView] = {}
    for item in sorted(
        (i for i in sendable if i.response is not None), key=lambda i: i.response.started_at
    ):
        tally = tallies.setdefault(item.endpoint.id, _EndpointTally())
        endpoints[item.endpoint.id] = item.endpoint
        at = item.response.started_at
        if item.response.ok:
            tally.success, tally.trailing, tally.first_failure = True, 0, None
            tally.last_success = at
        else:
            tally.trailing += 1
            tally.first_failure = tally.first_failure or at
            tally.last_failure = at
            tally.gone = tally.gone or item.response.status == 410

    for attempt in range(3):
        try:
            with transaction.atomic():
                state = _record_endpoints(tallies, endpoints, now)
                _record_deliveries(sendable, request_headers, state, now)
            break
        except OperationalError:  # a deadlock with a concurrent disable: try again
            if attempt == 2:
                raise
            logger.warning("recording webhook results failed; retrying", exc_info=True)
    _after_record(tallies, endpoints, state)
    metrics.record_round(sendable)


def _record_endpoints(tallies, endpoints, now) -> dict[uuid.UUID, str]:
    """Update health per endpoint; returns endpoint id → 'active' | 'paused' | 'disabled: …'."""
    from apps.events import services

    threshold = int(conf.get("WEBHOOK_CIRCUIT_THRESHOLD"))
    disable_after = timedelta(seconds=float(conf.get("WEBHOOK_DISABLE_AFTER_SECONDS")))
    state: dict[uuid.UUID, str] = {}
    for endpoint_id in sorted(tallies):  # a fixed order: no deadlocks between recorders
        tally = tallies[endpoint_id]
        with connection.cursor() as cursor:
            cursor.execute(
                _ENDPOINT_RESULT_SQL,
                {
                    "id": endpoint_id,
                    "success": tally.success,
                    "trailing": tally.trailing,
                    "first_failure": tally.first_failure,
                    "last_success": tally.last_success,
                    "last_failure": tally.last_failure,
                },
            )
            row = cursor.fetchone()
        if row is None:  # deleted meanwhile
            continue
        failures, failing_since, status = row
        state[endpoint_id] = status
        reason = None
        if tally.gone:
            reason = "the endpoint answered 410 Gone"
        elif failing_since and now - failing_since >= disable_after:
            reason = f"failing continuously since {failing_since:%Y-%m-%d %H:%M} UTC"
        if reason and status != EndpointStatus.DISABLED:
            endpoint = WebhookEndpoint.objects.select_related(None).get(pk=endpoint_id)
            services.webhook_endpoint_auto_disable(endpoint=endpoint, reason=reason)
            state[endpoint_id] = f"disabled: {reason}"
        elif failures >= threshold and tally.trailing:
            until = now + timedelta(seconds=circuit_cooldown(failures))
            WebhookEndpoint.objects.filter(pk=endpoint_id).update(circuit_open_until=until)
    return state


def _record_deliveries(sendable, request_headers, state, now) -> None:
    changes: list[_Change] = []
    attempts: list[_AttemptRow] = []
    for item in sendable:
        response = item.response
        endpoint_state = state.get(item.endpoint.id, item.endpoint.status)
        if response is None:  # put back unsent
            changes.append(
                _Change(
                    item.id,
                    _waiting_status(item.attempt_count - 1),
                    item.attempt_count - 1,
                    item.released_until or now,
                    lease=item.lease,
                )
            )
            continue
        retry_at = None
        if response.ok:
            status, next_at, error = DeliveryStatus.SUCCEEDED, None, ""
        else:
            error = response.error or f"HTTP {response.status}"
            delay = retry_delay(item.attempt_count, response.retry_after)
            if endpoint_state.startswith("disabled") or delay is None:
                status, next_at = DeliveryStatus.DEAD, None
            else:
                status = DeliveryStatus.FAILED
                retry_at = response.started_at + timedelta(seconds=delay)
                next_at = None if endpoint_state == EndpointStatus.PAUSED else retry_at
        item.final_status = status
        changes.append(
            _Change(
                item.id,
                status,
                item.attempt_count,
                next_at,
                last_attempt_at=response.started_at,
                has_result=True,
                last_response_status=response.status,
                last_error=_clean(error),
                delivered_at=now if response.ok else None,
                lease=item.lease,
            )
        )
        attempts.append(
            _AttemptRow(
                organization_id=item.organization_id,
                delivery_id=item.id,
                endpoint_id=item.endpoint.id,
                attempt_number=item.attempt_count,
                created_at=response.started_at,
                succeeded=response.ok,
                duration_ms=response.duration_ms,
                request_headers=request_headers.get(item.id, {}),
                response_status=response.status,
                response_headers=response.headers,
                response_body=response.body,
                error=error,
                retry_at=retry_at,
            )
        )
    _apply(changes)
    _insert_attempts(attempts)


def _after_record(tallies, endpoints: dict[uuid.UUID, EndpointView], state) -> None:
    """Bulk follow-ups, each in its own statement after the record committed."""
    from apps.events import services

    threshold = int(conf.get("WEBHOOK_CIRCUIT_THRESHOLD"))
    for endpoint_id, endpoint_state in state.items():
        if endpoint_state.startswith("disabled:"):
            services.deliveries_kill_open(
                endpoint_id=endpoint_id, reason=endpoint_state.split(": ", 1)[1]
            )
        elif tallies[endpoint_id].success and (
            endpoints[endpoint_id].consecutive_failures >= threshold
        ):
            # The probe got through: what waited for its verdict goes now.
            Delivery.objects.filter(
                endpoint_id=endpoint_id,
                status__in=(DeliveryStatus.PENDING, DeliveryStatus.FAILED),
                next_attempt_at__gt=timezone.now(),
                next_attempt_at__lte=timezone.now()
                + timedelta(seconds=endpoints[endpoint_id].timeout + 2),
            ).update(next_attempt_at=timezone.now())


# --- rounds and dispatchers --------------------------------------------------------------


def dispatch_round() -> RoundResult:
    """Fan out, claim, send, record once. Idempotent; safe to run in many processes."""
    result = RoundResult()
    limit = int(conf.get("WEBHOOK_DISPATCH_BATCH"))
    with transaction.atomic():
        # Times are passed in rather than taken from now() (the transaction's start), so
        # claims see the clock, and the planner can bound index scans with them.
        result.fanned_out = _fan_out(int(conf.get("WEBHOOK_FANOUT_BATCH")), timezone.now())
        started = time.monotonic()
        now = timezone.now()
        sendable, changes, lost = _claim(limit, now)
        _apply(changes)
        _insert_attempts(lost)
    result.claimed = len(sendable)
    result.moved = len(changes) - len(sendable)
    result.full = len(changes) >= limit
    if sendable:
        _record(sendable, _send(sendable, started, now))
    return result


WAKE_KEY = "sb:events:dispatch:wake"
HELPER_KEY = "sb:events:dispatch:helper:{}"
_WAKE_TTL = 60


def wake() -> None:
    """Make sure a dispatcher will look at the outbox soon. Never raises.

    Called after a commit that recorded events or requeued deliveries. The Redis key is set
    while a dispatcher is queued or running; it clears the key before its last look, so
    every commit is seen by some dispatcher. If Redis is down nothing is published and the
    beat sweeper finds the work within seconds.
    """
    from apps.events import tasks

    try:
        if not redis_client().set(WAKE_KEY, "1", nx=True, ex=_WAKE_TTL):
            return
    except redis_lib.RedisError:
        logger.warning("could not wake the webhook dispatcher; the sweeper will", exc_info=True)
        return
    try:
        tasks.dispatch.apply_async(kwargs={"role": "primary"})
    except Exception:  # broker down: the sweeper takes over
        logger.warning("could not publish the webhook dispatcher; the sweeper will")
        with contextlib.suppress(redis_lib.RedisError):
            redis_client().delete(WAKE_KEY)


def _call_helper() -> None:
    from apps.events import tasks

    for slot in range(int(conf.get("WEBHOOK_DISPATCH_HELPERS"))):
        key = HELPER_KEY.format(slot)
        try:
            if redis_client().set(key, "1", nx=True, ex=_WAKE_TTL):
                tasks.dispatch.apply_async(kwargs={"role": f"helper:{slot}"})
                return
        except Exception:
            logger.warning("could not call a dispatch helper", exc_info=True)
            return


def _forget(key: str) -> None:
    with contextlib.suppress(redis_lib.RedisError):
        redis_client().delete(key)


def _role_key(role: str) -> str | None:
    if role == "primary":
        return WAKE_KEY
    if role.startswith("helper:"):
        return HELPER_KEY.format(role.split(":", 1)[1])
    return None


def dispatch_loop(role: str = "primary") -> int:
    """Run rounds until there is nothing to do or the time budget is spent.

    `primary` holds the wake key, `helper:<n>` a helper key, `sweeper` (beat) none. Returns
    the number of deliveries sent. At the end of the budget with work left, a primary
    dispatcher hands over to a fresh task.
    """
    from apps.events import tasks

    budget = float(conf.get("WEBHOOK_DISPATCH_BUDGET_SECONDS"))
    deadline = time.monotonic() + budget
    key = _role_key(role)
    sent = 0
    while True:
        try:
            result = dispatch_round()
        except Exception:
            if key:  # let the next commit wake a fresh dispatcher
                _forget(key)
            raise
        sent += result.claimed
        if result.full and not role.startswith("helper:"):
            _call_helper()
        if result.busy:
            if time.monotonic() < deadline:
                continue
            if role == "primary":
                try:
                    redis_client().expire(WAKE_KEY, _WAKE_TTL)  # the successor holds it
                    tasks.dispatch.apply_async(kwargs={"role": "primary"})
                    return sent
                except Exception:
                    logger.warning("could not hand over the dispatcher", exc_info=True)
            if key:
                _forget(key)
            return sent
        if key is None:
            return sent
        # Nothing found: clear the key, then look once more, so that an event committed
        # after our look but whose wake-up found the key still set is not left behind.
        _forget(key)
        key = None
        result = dispatch_round()
        sent += result.claimed
        if not result.busy:
            return sent
        # More arrived: carry on without a key (publishers will start a primary again).
        role = "sweeper"
