"""Emitting schedules exactly one after-commit wake-up per transaction."""

import uuid

import pytest
from django.db import connection, transaction

from apps.events import delivery
from apps.events.services import emit
from tests.events.factories import emit_event, endpoint_for

pytestmark = pytest.mark.django_db


def _emit(organization):
    contact_id = str(uuid.uuid4())
    return emit(
        organization=organization,
        type="contact.created",
        subject_type="contact",
        subject_id=contact_id,
        data={"contact_id": contact_id},
    )


def _ours(callbacks):
    return [c for c in callbacks if type(c).__name__ == "_CommitBatch"]


def test_one_callback_per_transaction_not_per_event(
    organization, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        for _ in range(5):
            _emit(organization)
    (batch,) = _ours(callbacks)
    assert batch.types == ["contact.created"] * 5


def test_emit_stays_one_query_with_the_hook(organization, django_assert_num_queries):
    with transaction.atomic():
        _emit(organization)
        with django_assert_num_queries(1):
            _emit(organization)


def test_a_rolled_back_savepoint_does_not_lose_the_wake_up(
    organization, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        try:
            with transaction.atomic():
                _emit(organization)  # registers the callback inside the savepoint...
                raise RuntimeError
        except RuntimeError:
            pass
        _emit(organization)  # ...which is gone: this one registers a new one
    (batch,) = _ours(callbacks)
    assert batch.types == ["contact.created"]


def test_the_callback_wakes_the_dispatcher_once(
    organization, django_capture_on_commit_callbacks, settings
):
    client = delivery.redis_client()
    client.delete(delivery.WAKE_KEY)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        _emit(organization)
    assert client.get(delivery.WAKE_KEY) == b"1"  # a dispatcher is queued
    queued = client.llen("events")
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        _emit(organization)
    assert client.llen("events") == queued  # one is already on its way: no second task
    client.delete(delivery.WAKE_KEY)
    client.delete("events")


def test_wake_never_raises_when_redis_is_down(organization, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # the client follows the setting
    delivery.wake()  # logged, not raised: the sweeper covers


def test_events_are_fanned_out_once(organization, receiver):
    endpoint_for(organization, receiver.url)
    emit_event(organization)
    assert delivery.dispatch_round().fanned_out == 1
    assert delivery.dispatch_round().fanned_out == 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM events_event WHERE dispatched_at IS NULL")
        assert cursor.fetchone()[0] == 0
