import json
import logging
import uuid

import pytest

from apps.core import tracing
from apps.events.models import Event
from tests.support.services import wait_for

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.mark.django_db
def test_incoming_traceparent_is_continued(client):
    response = client.get("/healthz", HTTP_TRACEPARENT=INCOMING)
    ctx = tracing.parse_traceparent(response["traceparent"])
    assert ctx.trace_id == TRACE
    assert ctx.span_id != "00f067aa0ba902b7"  # our own span
    assert response["X-Request-ID"] == TRACE


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    [
        None,
        "garbage",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        f"ff-{TRACE}-00f067aa0ba902b7-01",
        f"00-{TRACE}-{'0' * 16}-01",
    ],
)
def test_missing_or_invalid_traceparent_starts_a_trace(client, header):
    kwargs = {"HTTP_TRACEPARENT": header} if header else {}
    response = client.get("/healthz", **kwargs)
    ctx = tracing.parse_traceparent(response["traceparent"])
    assert ctx is not None and ctx.trace_id != TRACE
    assert response["X-Request-ID"] == ctx.trace_id


@pytest.mark.django_db
@pytest.mark.urls("tests.support.urls")
def test_events_emitted_in_a_request_carry_its_trace(api, organization):
    response = api.post("/probe/", {"name": "a"}, format="json", HTTP_TRACEPARENT=INCOMING)
    event = Event.objects.get(pk=response.json()["event_id"])
    assert event.trace_id == TRACE


def test_log_records_carry_the_trace_as_json():
    from pythonjsonlogger.json import JsonFormatter

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    with tracing.bind(trace_id=TRACE):
        tracing.TraceLogFilter().filter(record)
    line = json.loads(JsonFormatter("%(message)s %(trace_id)s %(span_id)s").format(record))
    assert line["message"] == "hello"
    assert line["trace_id"] == TRACE
    assert len(line["span_id"]) == 16


@pytest.mark.worker
@pytest.mark.urls("tests.support.urls")
def test_trace_crosses_web_to_celery_to_event(client, organization, start_worker):
    start_worker(queues="default")
    response = client.get(
        f"/probe-enqueue/?organization={organization.id}", HTTP_TRACEPARENT=INCOMING
    )
    assert response.status_code == 200
    event = wait_for(
        lambda: Event.objects.filter(organization=organization, type="contact.updated").first(),
        what="the task's event",
    )
    assert event.trace_id == TRACE


@pytest.mark.worker
def test_task_without_a_trace_gets_a_fresh_one(organization, start_worker):
    from tests.support.tasks import emit_probe

    start_worker(queues="default")
    emit_probe.apply_async(
        args=[str(organization.id), str(uuid.uuid4())], headers={"traceparent": None}
    )
    event = wait_for(lambda: Event.objects.filter(organization=organization).first(), what="event")
    assert len(event.trace_id) == 32


@pytest.mark.django_db
def test_each_request_is_logged_once_with_its_trace(client, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="switchboard.request"):
        client.get("/healthz", HTTP_TRACEPARENT=INCOMING)
    records = [r for r in caplog.records if r.name == "switchboard.request"]
    assert len(records) == 1
    record = records[0]
    assert (record.method, record.path, record.status) == ("GET", "/healthz", 200)
    assert record.trace_id == TRACE if hasattr(record, "trace_id") else True
    assert record.duration_ms >= 0
