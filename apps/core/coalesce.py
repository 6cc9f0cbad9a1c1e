"""Coalesced after-commit jobs: idempotent follow-up work that one drain runs for many requests.

Each inbound message used to publish two Celery tasks after its commit (rescore the
contact's leads; auto-assign the conversation). A Celery publish costs about as much CPU in
the web process as the rest of the webhook's Python, so the ingress spent a third of its
time publishing. Here a job is a member of a Redis set per kind, added after commit in one
pipelined round trip together with a wake flag; a Celery task (`coalesce_drain`) is
published only when the flag was not already set, so under load one publish and one drain
serve hundreds of requests, and the same job queued twice (a contact sending three messages
in a burst) runs once.

Only idempotent jobs that may run late belong here; each kind is registered in `KINDS` as
the dotted path of a function taking the job's string parts.

Guarantees, and what they are not:
- A job leaves the set only after its function returned or raised (a raise is logged with
  the job and the job is dropped, so one bad job cannot wedge its kind). A worker killed
  mid-drain leaves its jobs in the set for the next drain: at least once while Redis keeps
  them.
- One drain per kind at a time (a lock); when it ends it looks at the set once more, so a
  job added while it was finishing is not stranded. A beat sweep (`coalesce_sweep`, every
  minute) drains whatever a lost task or an expired lock left behind.
- Redis unreachable when a job is added: logged and dropped, exactly like the Celery
  publish it replaces; the durable nets are the database's beat jobs (the backlog sweep
  assigns every unassigned conversation; a lead is rescored on its next change).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import secrets
import time
from collections.abc import Callable

import redis as redis_lib
from django.db import transaction

from apps.core.redisconn import redis_client

logger = logging.getLogger(__name__)

KINDS: dict[str, str] = {
    "crm.leads_rescore": "apps.crm.tasks.rescore_contact",
    "conversations.auto_assign": "apps.conversations.tasks.auto_assign",
}

BATCH = 200
BUDGET_SECONDS = 30.0  # then hand over to a fresh task: well inside the soft time limit
LOCK_SECONDS = 120
WAKE_SECONDS = 60  # a drain task lost in the queue is replaced by the next job after this

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def keys(kind: str) -> tuple[str, str, str]:
    """(the set of jobs, the wake flag, the drain lock) of a kind."""
    base = f"sb:coalesce:{kind}"
    return base, f"{base}:wake", f"{base}:lock"


def job_key(*parts) -> str:
    parts = [str(part) for part in parts]
    if any(":" in part or not part for part in parts):
        raise ValueError(f"job parts must be non-empty and free of ':': {parts!r}")
    return ":".join(parts)


def enqueue_on_commit(kind: str, *parts) -> None:
    """Add the job `kind(*parts)` after the current transaction commits (at once outside a
    transaction). All the jobs of one transaction go to Redis in one pipelined round trip.
    Never raises once the transaction has committed.

    A job added inside a savepoint that later rolls back may still be queued: jobs are
    idempotent and load their rows by id, so a vanished row makes them a no-op."""
    if kind not in KINDS:
        raise ValueError(f"unknown coalesced job kind {kind!r}")
    member = job_key(*parts)
    conn = transaction.get_connection()
    if not conn.in_atomic_block:
        _add({kind: {member}})
        return
    batch = getattr(conn, "_sb_coalesce_batch", None)
    if batch is None or not batch.registered():
        batch = _CommitBatch(conn)
        conn._sb_coalesce_batch = batch
        transaction.on_commit(batch, robust=True)
    batch.jobs.setdefault(kind, set()).add(member)


class _CommitBatch:
    """One on-commit callback per transaction, for every job it added."""

    def __init__(self, conn):
        self.conn = conn
        self.jobs: dict[str, set[str]] = {}

    def registered(self) -> bool:
        # Gone from the list when the (savepoint of the) transaction that registered it
        # rolled back: then a new batch is needed.
        return any(func is self for _sids, func, _robust in self.conn.run_on_commit)

    def __call__(self) -> None:
        if getattr(self.conn, "_sb_coalesce_batch", None) is self:
            self.conn._sb_coalesce_batch = None
        _add(self.jobs)


def _add(jobs: dict[str, set[str]]) -> None:
    kinds = list(jobs)
    try:
        pipe = redis_client().pipeline(transaction=False)
        for kind in kinds:
            queued, wake, _lock = keys(kind)
            pipe.sadd(queued, *jobs[kind])
            pipe.set(wake, "1", nx=True, ex=WAKE_SECONDS)
        replies = pipe.execute()
    except redis_lib.RedisError:
        logger.warning("could not queue jobs %s; Redis is unreachable", jobs, exc_info=True)
        return
    for kind, woke in zip(kinds, replies[1::2], strict=True):
        if woke:
            _publish(kind, clear_wake_on_failure=True)


def _publish(kind: str, *, clear_wake_on_failure: bool = False) -> None:
    from apps.core.tasks import coalesce_drain

    try:
        coalesce_drain.apply_async(args=[kind])
    except Exception:  # broker down: the next job or the beat sweep tries again
        logger.warning("could not publish the %s drain; the sweep will run it", kind)
        if clear_wake_on_failure:
            with contextlib.suppress(redis_lib.RedisError):
                redis_client().delete(keys(kind)[1])


def _function(kind: str) -> Callable[..., object]:
    module, _, name = KINDS[kind].rpartition(".")
    return getattr(importlib.import_module(module), name)


def pending(kind: str) -> int:
    return int(redis_client().scard(keys(kind)[0]))


def drain(kind: str, *, budget: float = BUDGET_SECONDS) -> int:
    """Run the queued jobs of `kind`; returns how many ran. Safe to call at any time from any
    number of processes: a call that finds the lock taken returns 0 and leaves the work to
    the holder.

    The holder clears the wake flag only after releasing the lock, then looks at the set
    once more: a job added before that look is run by this loop, a job added after it finds
    the flag clear and publishes a new drain. (Clearing it while holding the lock would let
    a drain that lost the race for the lock leave the flag set behind it, and jobs added
    after the holder's last look would wait for the flag to expire.)"""
    function = _function(kind)
    client = redis_client()
    jobs, wake, lock = keys(kind)
    started = time.monotonic()
    done = 0
    while True:
        token = secrets.token_hex(8)
        if not client.set(lock, token, nx=True, ex=LOCK_SECONDS):
            return done
        try:
            while time.monotonic() - started < budget:
                members = client.srandmember(jobs, BATCH)
                if not members:
                    break
                ran = []
                try:
                    for member in members:
                        _run(kind, function, member.decode())
                        ran.append(member)
                finally:  # the database went away: what did not run stays queued
                    if ran:
                        client.srem(jobs, *ran)
                    done += len(ran)
        finally:
            client.eval(_RELEASE, 1, lock, token)
            client.delete(wake)  # jobs added from now on publish a new drain
        if not client.scard(jobs):
            return done
        if time.monotonic() - started >= budget:
            _publish(kind)  # more to do: a fresh task, so no single task runs for long
            return done


def _run(kind: str, function, member: str) -> None:
    from django.db import InterfaceError, OperationalError

    try:
        function(*member.split(":"))
    except (OperationalError, InterfaceError):
        raise  # not this job's fault: stop, keep it queued, let the task fail loudly
    except Exception:
        logger.exception("coalesced job %s(%s) failed; dropped", kind, member)


def sweep() -> dict[str, int]:
    """Drain every kind that has jobs waiting (the beat safety net)."""
    ran = {}
    for kind in KINDS:
        if pending(kind):
            ran[kind] = drain(kind)
    return ran
