"""`/metrics`: emitted events, delivery outcomes and latency, dead letters, outbox lag."""

import re

import pytest
from django.db import transaction
from prometheus_client import REGISTRY

from apps.events import delivery
from apps.events.models import Delivery, DeliveryStatus
from tests.events.factories import emit_event, endpoint_for
from tests.events.processes import worker_env
from tests.support.services import wait_for


def _sample(name, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _metric(body: str, line_start: str) -> float:
    match = re.search(rf"^{re.escape(line_start)} (\S+)$", body, re.MULTILINE)
    assert match, f"{line_start} not in /metrics"
    return float(match.group(1))


@pytest.mark.django_db
def test_emitted_events_are_counted_once_committed(
    organization, django_capture_on_commit_callbacks
):
    before = _sample("switchboard_events_emitted_total", type="lead.created")
    with django_capture_on_commit_callbacks(execute=True):
        emit_event(organization, "lead.created")
        emit_event(organization, "lead.created")
    assert _sample("switchboard_events_emitted_total", type="lead.created") == before + 2


@pytest.mark.django_db
def test_deliveries_and_latency_are_observed(organization, receiver):
    endpoint_for(organization, receiver.url)
    succeeded = _sample("switchboard_webhook_deliveries_total", outcome="succeeded")
    observed = _sample("switchboard_webhook_delivery_latency_seconds_count")
    emit_event(organization)
    delivery.dispatch_round()
    assert _sample("switchboard_webhook_deliveries_total", outcome="succeeded") == succeeded + 1
    assert _sample("switchboard_webhook_delivery_latency_seconds_count") == observed + 1


@pytest.mark.django_db
def test_dead_letters_and_outbox_lag_are_read_at_scrape_time(client, organization, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = []
    endpoint_for(organization, "http://127.0.0.1:9/closed")
    emit_event(organization)
    delivery.dispatch_round()  # connection refused, no retries left: dead
    assert Delivery.objects.get().status == DeliveryStatus.DEAD
    body = client.get("/metrics").content.decode()
    assert _metric(body, "switchboard_webhook_dead_letters") == 1
    assert _metric(body, "switchboard_events_outbox_lag_seconds") == 0

    with transaction.atomic():
        emit_event(organization)  # not fanned out yet
    body = client.get("/metrics").content.decode()
    assert _metric(body, "switchboard_events_outbox_lag_seconds") > 0
    assert "django_http_requests_total" in body


@pytest.mark.worker
def test_worker_metrics_reach_the_web_metrics_in_multiprocess_mode(
    client, organization, receiver, start_worker, tmp_path, monkeypatch
):
    endpoint_for(organization, receiver.url)
    start_worker(queues="events", extra_env=worker_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path)))
    emit_event(organization)
    wait_for(
        lambda: Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).exists(),
        what="the delivery",
    )
    wait_for(lambda: list(tmp_path.glob("*.db")), what="the worker's metric files")

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    body = client.get("/metrics").content.decode()
    assert _metric(body, 'switchboard_webhook_deliveries_total{outcome="succeeded"}') == 1
    assert _metric(body, "switchboard_webhook_delivery_latency_seconds_count") == 1
    assert _metric(body, "switchboard_webhook_dead_letters") == 0  # the scrape-time collector
