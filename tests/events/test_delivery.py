"""Delivery rounds in this process against a real HTTP receiver: wire format, outcomes,
retries, circuit breaker, pausing, disabling. (Worker processes: test_proofs.py.)"""

import json
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from standardwebhooks import Webhook

from apps.events import delivery, services, signing
from apps.events.models import Delivery, DeliveryAttempt, DeliveryStatus, EndpointStatus, Event
from tests.events.factories import emit_event, endpoint_for
from tests.support.http import Reply
from tests.support.services import wait_for

pytestmark = pytest.mark.django_db


def run_until_idle(max_rounds: int = 50) -> None:
    for _ in range(max_rounds):
        if not delivery.dispatch_round().busy:
            return
    raise AssertionError("dispatch never went idle")


def the_delivery(endpoint) -> Delivery:
    return Delivery.objects.get(endpoint=endpoint)


def test_delivers_the_envelope_signed_with_standard_webhooks(organization, receiver):
    endpoint = endpoint_for(organization, receiver.url + "/in", ["contact.*"])
    event = emit_event(organization, "contact.created", name="Ana")

    result = delivery.dispatch_round()

    assert (result.fanned_out, result.claimed) == (1, 1)
    (request,) = receiver.requests
    assert request.path == "/in"
    assert request.headers["content-type"] == "application/json"
    payload = Webhook(endpoint.secret).verify(request.body, request.headers)
    stored = Event.objects.select_related("organization").get(pk=event.pk)
    assert payload == stored.envelope()
    assert request.headers["webhook-id"] == str(event.id)
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    version, trace_id, span_id, flags = request.headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", event.trace_id, "01")
    assert len(span_id) == 16

    row = the_delivery(endpoint)
    assert (row.status, row.attempt_count, row.next_attempt_at) == ("succeeded", 1, None)
    assert row.delivered_at is not None
    attempt = row.attempts.get()
    assert attempt.succeeded and attempt.response_status == 200
    assert attempt.request_headers["webhook-id"] == str(event.id)
    assert Event.objects.get(pk=event.pk).dispatched_at is not None


def test_fan_out_follows_subscription_patterns(organization, other_organization, receiver):
    exact = endpoint_for(organization, receiver.url + "/exact", ["booking.no_show"])
    group = endpoint_for(organization, receiver.url + "/group", ["booking.*"])
    everything = endpoint_for(organization, receiver.url + "/all", ["*"])
    other_group = endpoint_for(organization, receiver.url + "/leads", ["lead.*"])
    foreign = endpoint_for(other_organization, receiver.url + "/foreign", ["*"])
    disabled = endpoint_for(organization, receiver.url + "/disabled", ["*"])
    services.webhook_endpoint_update(endpoint=disabled, status=EndpointStatus.DISABLED)

    emit_event(organization, "booking.no_show")
    emit_event(organization, "booking.scheduled")
    run_until_idle()

    counts = {
        e.url.rsplit("/", 1)[1]: Delivery.objects.filter(endpoint=e).count()
        for e in (exact, group, everything, other_group, foreign, disabled)
    }
    assert counts == {
        "exact": 1,
        "group": 2,
        "all": 2,
        "leads": 0,
        "foreign": 0,
        "disabled": 0,
    }
    assert len(receiver.requests) == 5


def test_one_event_many_endpoints_keeps_one_webhook_id(organization, receiver):
    endpoint_for(organization, receiver.url + "/a")
    endpoint_for(organization, receiver.url + "/b")
    event = emit_event(organization)
    run_until_idle()
    assert {r.headers["webhook-id"] for r in receiver.requests} == {str(event.id)}
    assert sorted(r.path for r in receiver.requests) == ["/a", "/b"]


def test_failure_schedules_the_next_attempt_from_the_schedule(organization, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [60, 120]
    settings.WEBHOOK_RETRY_JITTER = 0.2
    receiver.respond(Reply(status=500, body="boom"))
    endpoint = endpoint_for(organization, receiver.url)
    emit_event(organization)

    delivery.dispatch_round()

    row = the_delivery(endpoint)
    attempt = row.attempts.get()
    assert row.status == DeliveryStatus.FAILED
    assert (row.last_response_status, row.last_error) == (500, "HTTP 500")
    assert attempt.response_body == "boom" and not attempt.succeeded
    delay = (attempt.retry_at - attempt.created_at).total_seconds()
    assert 48 <= delay <= 72  # 60 s ± 20 %
    assert row.next_attempt_at == attempt.retry_at
    assert not delivery.dispatch_round().busy  # not due yet: nothing is sent


def test_last_failed_attempt_makes_the_delivery_dead(organization, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0.01]
    receiver.respond(Reply(status=503))
    endpoint = endpoint_for(organization, receiver.url)
    emit_event(organization)
    delivery.dispatch_round()
    time.sleep(0.05)
    delivery.dispatch_round()
    row = the_delivery(endpoint)
    assert (row.status, row.attempt_count, row.next_attempt_at) == ("dead", 2, None)
    assert [a.retry_at is None for a in row.attempts.order_by("id")] == [False, True]


def test_retry_after_is_honoured_within_bounds(organization, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [1]
    settings.WEBHOOK_RETRY_JITTER = 0
    settings.WEBHOOK_RETRY_AFTER_MAX_SECONDS = 600
    answers = iter([Reply(status=429, headers={"Retry-After": "120"})])
    receiver.respond(lambda req: next(answers, Reply(status=503, headers={"Retry-After": "99999"})))
    first = endpoint_for(organization, receiver.url + "/a")
    emit_event(organization)
    delivery.dispatch_round()
    attempt = the_delivery(first).attempts.get()
    assert (attempt.retry_at - attempt.created_at).total_seconds() == pytest.approx(120, abs=1)

    services.webhook_endpoint_update(endpoint=first, status=EndpointStatus.PAUSED)
    second = endpoint_for(organization, receiver.url + "/b")
    emit_event(organization)
    delivery.dispatch_round()
    attempt = the_delivery(second).attempts.get()
    assert (attempt.retry_at - attempt.created_at).total_seconds() == pytest.approx(600, abs=1)


def test_410_disables_the_endpoint_and_kills_what_waited(organization, receiver):
    receiver.respond(Reply(status=410))
    endpoint = endpoint_for(organization, receiver.url)
    emit_event(organization)
    with transaction.atomic():  # a second delivery, waiting with a retry later
        waiting = emit_event(organization)

    delivery.dispatch_round()

    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.DISABLED
    assert "410" in endpoint.disabled_reason
    assert set(Delivery.objects.filter(endpoint=endpoint).values_list("status", flat=True)) == {
        "dead"
    }
    notice = Event.objects.get(type="webhook_endpoint.disabled")
    assert notice.data == {
        "endpoint_id": str(endpoint.id),
        "url": endpoint.url,
        "reason": endpoint.disabled_reason,
    }
    assert waiting.pk != notice.pk


def test_five_days_of_failures_disable_the_endpoint(organization, receiver):
    receiver.respond(Reply(status=500))
    endpoint = endpoint_for(organization, receiver.url)
    endpoint.failing_since = timezone.now() - timedelta(days=5, minutes=1)
    endpoint.consecutive_failures = 1
    endpoint.save(update_fields=["failing_since", "consecutive_failures"])
    emit_event(organization)

    delivery.dispatch_round()

    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.DISABLED
    assert "failing continuously since" in endpoint.disabled_reason
    assert the_delivery(endpoint).status == DeliveryStatus.DEAD
    assert Event.objects.filter(
        type="webhook_endpoint.disabled", subject_id=str(endpoint.id)
    ).exists()


def test_a_success_resets_the_failure_streak(organization, receiver):
    endpoint = endpoint_for(organization, receiver.url)
    endpoint.failing_since = timezone.now() - timedelta(days=1)
    endpoint.consecutive_failures = 3
    endpoint.save(update_fields=["failing_since", "consecutive_failures"])
    emit_event(organization)
    delivery.dispatch_round()
    endpoint.refresh_from_db()
    assert (endpoint.consecutive_failures, endpoint.failing_since) == (0, None)
    assert endpoint.last_success_at is not None


def test_circuit_breaker_stops_hammering_then_probes(organization, receiver, settings):
    settings.WEBHOOK_CIRCUIT_THRESHOLD = 3
    settings.WEBHOOK_CIRCUIT_COOLDOWN_SECONDS = [0.3, 1]
    settings.WEBHOOK_RETRY_SCHEDULE = [30, 30]
    settings.WEBHOOK_LANES_PER_PROCESS = 1
    receiver.respond(Reply(status=500))
    endpoint = endpoint_for(organization, receiver.url)
    for _ in range(10):
        emit_event(organization)

    delivery.dispatch_round()

    # Three failures in a row trip the circuit: the other seven are not sent.
    assert len(receiver.requests) == 3
    endpoint.refresh_from_db()
    assert endpoint.circuit_open_until > timezone.now()
    statuses = list(Delivery.objects.filter(endpoint=endpoint).values_list("status", flat=True))
    assert statuses.count("failed") == 3 and statuses.count("pending") == 7
    assert set(
        Delivery.objects.filter(status="pending").values_list("attempt_count", flat=True)
    ) == {0}

    delivery.dispatch_round()  # the circuit is open: nothing goes out
    assert len(receiver.requests) == 3

    receiver.respond(Reply(status=200))
    wait_for(lambda: timezone.now() > endpoint.circuit_open_until, what="cool-down")
    delivery.dispatch_round()  # half-open: exactly one probe
    assert len(receiver.requests) == 4
    run_until_idle()  # the probe succeeded: the waiting ones go at once
    assert len(receiver.requests) == 10
    endpoint.refresh_from_db()
    assert (endpoint.consecutive_failures, endpoint.circuit_open_until) == (0, None)


def test_paused_endpoint_holds_deliveries_until_resumed(organization, receiver):
    endpoint = endpoint_for(organization, receiver.url)
    services.webhook_endpoint_update(endpoint=endpoint, status=EndpointStatus.PAUSED)
    emit_event(organization)
    run_until_idle()
    row = the_delivery(endpoint)
    assert (row.status, row.next_attempt_at) == ("pending", None)
    assert receiver.requests == []

    services.webhook_endpoint_update(endpoint=endpoint, status=EndpointStatus.ACTIVE)
    run_until_idle()
    assert the_delivery(endpoint).status == "succeeded"
    assert len(receiver.requests) == 1


def test_rotated_secret_signs_with_both_for_a_day(organization, receiver):
    endpoint = endpoint_for(organization, receiver.url)
    old_secret = endpoint.secret
    services.webhook_endpoint_rotate_secret(endpoint=endpoint)
    emit_event(organization)
    delivery.dispatch_round()
    (request,) = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(endpoint.secret).verify(request.body, request.headers)
    Webhook(old_secret).verify(request.body, request.headers)

    endpoint.previous_secret_expires_at = timezone.now() - timedelta(seconds=1)
    endpoint.save(update_fields=["previous_secret_expires_at"])
    emit_event(organization)
    delivery.dispatch_round()
    assert len(receiver.requests[-1].headers["webhook-signature"].split(" ")) == 1


def test_redirects_are_not_followed(organization, receiver):
    receiver.respond(Reply(status=302, headers={"Location": "http://example.com/"}))
    endpoint = endpoint_for(organization, receiver.url)
    emit_event(organization)
    delivery.dispatch_round()
    row = the_delivery(endpoint)
    assert row.status == "failed"
    assert row.last_error == "redirect not followed (HTTP 302 to http://example.com/)"
    assert len(receiver.requests) == 1


def test_expired_lease_is_reclaimed_and_the_lost_attempt_recorded(organization, receiver):
    endpoint = endpoint_for(organization, receiver.url)
    emit_event(organization)
    # A worker claimed it and died: status delivering, lease in the past.
    with transaction.atomic():
        delivery._fan_out(10, timezone.now())
    Delivery.objects.filter(endpoint=endpoint).update(
        status=DeliveryStatus.DELIVERING,
        attempt_count=1,
        last_attempt_at=timezone.now() - timedelta(minutes=2),
        next_attempt_at=timezone.now() - timedelta(minutes=1),
    )

    delivery.dispatch_round()

    row = the_delivery(endpoint)
    assert (row.status, row.attempt_count) == ("succeeded", 2)
    lost, sent = row.attempts.order_by("id")
    assert (lost.attempt_number, lost.error) == (1, delivery.LOST_ATTEMPT_ERROR)
    assert (sent.attempt_number, sent.succeeded) == (2, True)


def test_a_stale_worker_cannot_overwrite_a_reclaimed_delivery(organization, receiver):
    endpoint = endpoint_for(organization, receiver.url)
    emit_event(organization)
    with transaction.atomic():
        delivery._fan_out(10, timezone.now())
        sendable, changes, _lost = delivery._claim(10, timezone.now())
        delivery._apply(changes)
    (item,) = sendable
    # Meanwhile another worker took it over (new lease) and delivered it.
    Delivery.objects.filter(pk=item.id).update(
        status=DeliveryStatus.SUCCEEDED, next_attempt_at=None
    )
    item.response = delivery.Response(started_at=timezone.now(), duration_ms=5, status=500)
    delivery._record([item], {})
    assert the_delivery(endpoint).status == "succeeded"  # untouched
    assert DeliveryAttempt.objects.filter(delivery_id=item.id).count() == 1  # but recorded


def test_rate_limit_spreads_requests_over_seconds(organization, receiver):
    endpoint = endpoint_for(organization, receiver.url, rate_limit_per_second=2)
    for _ in range(5):
        emit_event(organization)
    result = delivery.dispatch_round()
    assert result.claimed == 2  # a second's worth; the rest wait a second
    wait_for(
        lambda: (
            delivery.dispatch_round()
            and Delivery.objects.filter(endpoint=endpoint, status="succeeded").count() == 5
        ),
        timeout=10,
        what="all five",
    )
    # The limiter counts per one-second window of the dispatcher's clock, and a request
    # taken at x.999 may arrive at x+1.001: bin by arrival and a window boundary can show
    # three. What must hold: two per window, so the 1st and 5th requests are taken in
    # windows at least two apart — more than a second between them (less a little
    # localhost latency jitter).
    arrivals = sorted(r.received_at for r in receiver.requests)
    assert len(arrivals) == 5
    assert arrivals[4] - arrivals[0] > 0.9


def test_concurrency_slots_are_shared_across_connections(organization, receiver):
    endpoint = endpoint_for(organization, receiver.url, max_concurrency=2)
    view = delivery.EndpointView(
        id=endpoint.id,
        url=endpoint.url,
        status="active",
        secret=endpoint.secret,
        previous_secret="",
        previous_secret_expires_at=None,
        timeout=5,
        max_concurrency=2,
        rate_limit=None,
        consecutive_failures=0,
        circuit_open_until=None,
    )
    from django.db import connections

    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, 0)", [view.lock_key])
            assert delivery._acquire_slots(view, 5) == [1]  # slot 0 is busy elsewhere
            delivery._release_slots(view, [1])
            cursor.execute("SELECT pg_advisory_lock(%s, 1)", [view.lock_key])
            assert delivery._acquire_slots(view, 5) == []  # both busy: none for us
    finally:
        other.close()  # the slots of a dead process's connection free themselves

    def both_free():
        slots = delivery._acquire_slots(view, 5)
        delivery._release_slots(view, slots)
        return slots == [0, 1]

    wait_for(both_free, what="the closed connection's slots")
    with connection.cursor() as cursor:
        cursor.execute(
            # Two-key advisory locks are delivery slots (objsubid 2); a one-key lock is some
            # service's transaction lock (e.g. a plan limit near its cap) and not a slot.
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2"
            " AND pid = pg_backend_pid()"
        )
        assert cursor.fetchone()[0] == 0


def test_body_is_compact_json_of_the_envelope(organization, receiver):
    endpoint_for(organization, receiver.url)
    emit_event(organization, name="Zoë")
    delivery.dispatch_round()
    body = receiver.requests[0].body
    assert json.loads(body)["data"]["name"] == "Zoë"
    assert b": " not in body


def test_corrupt_secret_is_a_failed_attempt_not_a_crash(organization, receiver):
    endpoint = endpoint_for(organization, receiver.url)
    endpoint.secret = "not-a-secret"
    endpoint.save(update_fields=["secret"])
    emit_event(organization)
    delivery.dispatch_round()
    row = the_delivery(endpoint)
    assert row.status == "failed"
    assert row.last_error.startswith("could not build the request")
    assert receiver.requests == []


def test_secret_validation():
    assert signing.secret_key(signing.secret_generate())
    for bad in ("", "whsec_", "whsec_!!!!", "abc", "whsec_" + "QUJD"):
        with pytest.raises(signing.InvalidSecret):
            signing.secret_key(bad)
