"""Coalesced after-commit jobs (apps.core.coalesce) on the real Redis, and the ingress's
follow-up work (rescore, auto-assign) carried out through them by a real worker."""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError, transaction

from apps.conversations.models import Conversation
from apps.core import coalesce
from apps.crm.models import Lead
from tests.conversations import factories as f
from tests.crm import factories as crm_f
from tests.support.services import free_port, wait_for

KIND = "test.record"
ran: list[tuple[str, ...]] = []


def record(*parts):
    ran.append(parts)
    if parts[0] == "boom":
        raise ValueError("this job is broken")
    if parts[0] == "db-gone":
        raise OperationalError("the server closed the connection unexpectedly")
    if parts[0] == "add-more":
        coalesce.enqueue_on_commit(KIND, "added-while-draining")
        assert coalesce.drain(KIND) == 0  # the lock is held: the holder will run it


@pytest.fixture
def kind(monkeypatch):
    monkeypatch.setitem(coalesce.KINDS, KIND, "tests.core.test_coalesce.record")
    client = coalesce.redis_client()
    client.delete(*coalesce.keys(KIND))
    ran.clear()
    yield KIND
    client.delete(*coalesce.keys(KIND))


@pytest.fixture
def no_publish(monkeypatch):
    """Count drain publishes instead of queueing tasks no worker here would consume."""
    published = []
    monkeypatch.setattr(coalesce, "_publish", lambda kind, **kw: published.append(kind))
    return published


def test_jobs_wait_for_the_commit_and_the_same_job_runs_once(
    kind, no_publish, db, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        coalesce.enqueue_on_commit(kind, "a", "1")
        coalesce.enqueue_on_commit(kind, "a", "1")
        coalesce.enqueue_on_commit(kind, "b", "2")
        assert coalesce.pending(kind) == 0  # nothing before the commit
    assert coalesce.pending(kind) == 2
    assert no_publish == [kind]  # one drain for the transaction
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        coalesce.enqueue_on_commit(kind, "c", "3")
    assert no_publish == [kind]  # a drain is already on its way: no second publish
    assert coalesce.drain(kind) == 3
    assert sorted(ran) == [("a", "1"), ("b", "2"), ("c", "3")]
    assert coalesce.pending(kind) == 0
    assert not coalesce.redis_client().exists(coalesce.keys(kind)[1])  # the next job wakes


def test_a_rolled_back_transaction_queues_nothing(kind, no_publish, db):
    def add_then_fail():
        with transaction.atomic():
            coalesce.enqueue_on_commit(kind, "x")
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        add_then_fail()
    assert coalesce.pending(kind) == 0 and no_publish == []


def test_bad_jobs_are_refused_at_the_call(kind):
    with pytest.raises(ValueError, match="unknown"):
        coalesce.enqueue_on_commit("no.such.kind", "x")
    with pytest.raises(ValueError, match="free of ':'"):
        coalesce.enqueue_on_commit(kind, "a:b")
    with pytest.raises(ValueError, match="non-empty"):
        coalesce.enqueue_on_commit(kind, "")


def test_a_failing_job_is_logged_and_dropped_and_the_rest_still_run(kind, no_publish, caplog):
    for parts in (("ok", "1"), ("boom",), ("ok", "2")):
        coalesce.enqueue_on_commit(kind, *parts)  # outside a transaction: queued at once
    with caplog.at_level(logging.ERROR, logger="apps.core.coalesce"):
        assert coalesce.drain(kind) == 3
    assert sorted(ran) == [("boom",), ("ok", "1"), ("ok", "2")]
    assert "test.record(boom) failed; dropped" in caplog.text
    assert coalesce.pending(kind) == 0


def test_a_lost_database_stops_the_drain_and_keeps_the_job(kind, no_publish):
    coalesce.enqueue_on_commit(kind, "db-gone")
    with pytest.raises(OperationalError):
        coalesce.drain(kind)
    assert coalesce.pending(kind) == 1  # the next drain or the sweep runs it again
    assert not coalesce.redis_client().exists(coalesce.keys(kind)[2])  # the lock is released


def test_one_drain_at_a_time_and_nothing_is_stranded(kind, no_publish):
    client = coalesce.redis_client()
    coalesce.enqueue_on_commit(kind, "first")
    client.set(coalesce.keys(kind)[2], "someone-else")
    assert coalesce.drain(kind) == 0 and coalesce.pending(kind) == 1  # the holder's work
    client.delete(coalesce.keys(kind)[2])
    # A job added while a drain holds the lock (and a drain that lost the race for it) are
    # run by the holder ...
    coalesce.enqueue_on_commit(kind, "add-more")
    assert coalesce.drain(kind) == 3
    assert sorted(ran) == [("add-more",), ("added-while-draining",), ("first",)]
    # ... which leaves the wake flag clear: the next job publishes a drain at once.
    no_publish.clear()
    coalesce.enqueue_on_commit(kind, "after")
    assert no_publish == [kind]


def test_a_drain_out_of_time_hands_over_to_a_fresh_task(kind, no_publish):
    coalesce.enqueue_on_commit(kind, "late")
    no_publish.clear()
    assert coalesce.drain(kind, budget=0) == 0
    assert no_publish == [kind] and coalesce.pending(kind) == 1


def test_the_sweep_drains_what_nobody_woke_for(kind, no_publish):
    coalesce.redis_client().sadd(coalesce.keys(kind)[0], "left-behind")
    assert coalesce.sweep() == {kind: 1}
    assert ran == [("left-behind",)]


def test_redis_down_when_queueing_is_logged_not_raised(kind, settings, caplog):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # the client follows the setting
    with caplog.at_level(logging.WARNING, logger="apps.core.coalesce"):
        coalesce.enqueue_on_commit(kind, "x")
    assert "Redis is unreachable" in caplog.text


@pytest.mark.worker
def test_a_burst_of_inbound_messages_is_rescored_and_assigned_by_a_worker(
    api, organization, start_worker
):
    crm_f.rule(
        organization,
        key="urgent-burst",
        kind="keyword",
        condition={"keywords": ["asap"]},
        points=15,
    )
    operator = f.member(organization, email="ops@example.com", capacity=5)
    for n in range(5):
        body = {
            "channel": "api",
            "message_id": f"burst-{n}",
            "from": {"external_id": "ext-burst", "name": "Kim"},
            "text": "Can I start asap?" if n == 4 else f"hello {n}",
        }
        response = api.post("/api/v1/messages/inbound/", body, format="json")
        assert response.status_code in (200, 201, 202), response.content
    start_worker(queues="default")  # the jobs waited in Redis for a worker
    lead = wait_for(
        lambda: Lead.objects.filter(organization=organization, score__gte=15).first(),
        what="the lead to be rescored",
    )
    assert any(r["rule"] == "urgent-burst" for r in lead.score_reasons)
    conversation = wait_for(
        lambda: Conversation.objects.filter(organization=organization, assignee=operator).first(),
        what="the conversation to be auto-assigned",
    )
    assert conversation.contact_id == lead.contact_id
    wait_for(
        lambda: (
            coalesce.pending("crm.leads_rescore") == 0
            and coalesce.pending("conversations.auto_assign") == 0
        ),
        what="the coalesced jobs to drain",
    )
