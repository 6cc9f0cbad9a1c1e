"""REST hooks and the event log through the real API (`/api/v1/`)."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.events import catalog, delivery, signing
from apps.events.models import Delivery, DeliveryStatus, EndpointStatus, WebhookEndpoint
from tests.events.factories import emit_event, endpoint_for

pytestmark = pytest.mark.django_db

HOOK = "http://127.0.0.1:5678/webhook/switchboard-lead-created"


def create(api, **body):
    return api.post(
        "/api/v1/webhooks/", {"url": HOOK, "event_types": ["lead.*"], **body}, format="json"
    )


def assert_error(response, status, field=None, code=None):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    if field:
        assert field in error["details"], error
        assert error["message"].startswith(f"{field}:"), error
    if code:
        assert error["code"] == code
    return error


# --- subscribe ---------------------------------------------------------------------------


def test_subscribe_returns_the_endpoint_and_its_secret(api, organization):
    response = create(api, event_types=["booking.*", "lead.created"], description="n8n")
    assert response.status_code == 201
    body = response.json()
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert endpoint.organization == organization
    assert body["secret"] == endpoint.secret and body["secret"].startswith("whsec_")
    signing.secret_key(body["secret"])
    assert body["event_types"] == ["booking.*", "lead.created"]
    assert body["status"] == "active"
    assert (body["timeout_seconds"], body["max_concurrency"]) == (10, 10)
    assert body["secret_hint"] == endpoint.secret[:10] + "…"


def test_a_given_secret_is_used_as_is(api):
    secret = signing.secret_generate()
    first = create(api, secret=secret).json()
    second = create(api, secret=secret, url=HOOK + "-2").json()
    assert first["secret"] == second["secret"] == secret


def test_wildcard_and_limits(api):
    response = create(api, event_types=["*"], timeout_seconds=3, max_concurrency=2,
                      rate_limit_per_second=5)  # fmt: skip
    assert response.status_code == 201
    assert response.json()["rate_limit_per_second"] == 5


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"event_types": ["lead.teleported"]}, "event_types", "unknown_event_type"),
        ({"event_types": ["nosuchgroup.*"]}, "event_types", "unknown_event_type"),
        ({"event_types": []}, "event_types", None),
        ({"event_types": "lead.created"}, "event_types", None),
        ({"url": "ftp://example.com/hook"}, "url", "invalid_url"),
        ({"url": "javascript:alert(1)"}, "url", "invalid_url"),
        ({"url": "http://user:pw@example.com/"}, "url", "invalid_url"),
        ({"url": ""}, "url", None),
        ({"secret": "s3cret"}, "secret", "invalid_secret"),
        ({"secret": "whsec_c2hvcnQ="}, "secret", "invalid_secret"),
        ({"timeout_seconds": 0}, "timeout_seconds", None),
        ({"max_concurrency": 500}, "max_concurrency", None),
    ],
)
def test_bad_subscriptions_are_400_naming_the_field(api, body, field, code):
    assert_error(create(api, **body), 400, field=field, code=code)
    assert not WebhookEndpoint.objects.exists()


def test_private_addresses_refused_unless_allowed(api, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    for url in (
        "http://127.0.0.1:5678/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:192.168.0.1]/hook",
        "http://no-such-host.invalid/hook",
    ):
        assert_error(create(api, url=url), 400, field="url", code="invalid_url")
    assert create(api, url="https://93.184.215.14/hook").status_code == 201
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    assert create(api, url="http://n8n:5678/webhook/x").status_code == 201


def test_delivery_time_check_blocks_a_host_that_now_resolves_privately(
    organization, receiver, settings
):
    endpoint = endpoint_for(organization, receiver.url)  # accepted while allowed
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    emit_event(organization)
    delivery.dispatch_round()
    row = Delivery.objects.get(endpoint=endpoint)
    assert row.status == DeliveryStatus.FAILED
    assert row.last_error.startswith("blocked: 127.0.0.1 resolves to a non-public address")
    assert receiver.requests == []


def test_idempotency_key_replays_the_subscription(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "sub-1"}
    body = {"url": HOOK, "event_types": ["lead.*"]}
    first = api.post("/api/v1/webhooks/", body, format="json", **headers)
    again = api.post("/api/v1/webhooks/", body, format="json", **headers)
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert first.json()["secret"] == again.json()["secret"]
    assert WebhookEndpoint.objects.count() == 1


# --- read, edit, unsubscribe ---------------------------------------------------------------


def test_list_is_paginated_and_scoped(api, other_api, organization, other_organization):
    for n in range(3):
        endpoint_for(organization, f"{HOOK}-{n}")
    endpoint_for(other_organization, HOOK)
    body = api.get("/api/v1/webhooks/?page_size=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    assert "secret" not in body["results"][0]
    assert other_api.get("/api/v1/webhooks/").json()["count"] == 1


def test_get_patch_delete(api, organization):
    endpoint = endpoint_for(organization, HOOK)
    url = f"/api/v1/webhooks/{endpoint.id}/"
    assert api.get(url).json()["url"] == HOOK

    response = api.patch(url, {"event_types": ["deal.won"], "description": "onboarding"},
                         format="json")  # fmt: skip
    assert response.status_code == 200
    assert response.json()["event_types"] == ["deal.won"]
    assert api.patch(url, {"status": "paused"}, format="json").json()["status"] == "paused"
    assert api.patch(url, {"status": "active"}, format="json").json()["status"] == "active"
    assert_error(api.patch(url, {"event_types": ["nope.*"]}, format="json"), 400, "event_types")
    assert_error(api.patch(url, {"status": "gone"}, format="json"), 400, "status")
    endpoint.refresh_from_db()
    assert endpoint.event_types == ["deal.won"]

    assert api.delete(url).status_code == 204
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
    assert api.get(url).status_code == 404


def test_pausing_holds_and_resuming_releases(api, organization, receiver):
    endpoint = endpoint_for(organization, receiver.url)
    url = f"/api/v1/webhooks/{endpoint.id}/"
    api.patch(url, {"status": "paused"}, format="json")
    emit_event(organization)
    delivery.dispatch_round()
    assert receiver.requests == []
    api.patch(url, {"status": "active"}, format="json")
    delivery.dispatch_round()
    assert len(receiver.requests) == 1


def test_disabling_moves_waiting_deliveries_to_dead_letters(api, organization, receiver):
    endpoint = endpoint_for(organization, receiver.url)
    services_paused = api.patch(f"/api/v1/webhooks/{endpoint.id}/", {"status": "paused"},
                                format="json")  # fmt: skip
    assert services_paused.status_code == 200
    emit_event(organization)
    delivery.dispatch_round()
    response = api.patch(f"/api/v1/webhooks/{endpoint.id}/", {"status": "disabled"}, format="json")
    assert response.json()["status"] == "disabled"
    assert Delivery.objects.get(endpoint=endpoint).status == DeliveryStatus.DEAD
    response = api.post(f"/api/v1/webhooks/{endpoint.id}/replay/", {"scope": "dead"}, format="json")
    assert_error(response, 409, code="endpoint_disabled")


def test_rotate_secret(api, organization):
    endpoint = endpoint_for(organization, HOOK)
    old = endpoint.secret
    response = api.post(f"/api/v1/webhooks/{endpoint.id}/rotate-secret/", {}, format="json")
    assert response.status_code == 200
    body = response.json()
    endpoint.refresh_from_db()
    assert body["secret"] == endpoint.secret != old
    assert endpoint.previous_secret == old
    expires = endpoint.previous_secret_expires_at - timezone.now()
    assert timedelta(hours=23, minutes=59) < expires <= timedelta(hours=24)
    mine = signing.secret_generate()
    response = api.post(f"/api/v1/webhooks/{endpoint.id}/rotate-secret/", {"secret": mine},
                        format="json")  # fmt: skip
    assert response.json()["secret"] == mine
    bad = api.post(f"/api/v1/webhooks/{endpoint.id}/rotate-secret/", {"secret": "x"}, format="json")
    assert_error(bad, 400, "secret")


def test_foreign_ids_are_404(api, other_organization):
    foreign = endpoint_for(other_organization, HOOK)
    event = emit_event(other_organization)
    for method, path, body in (
        ("get", f"/api/v1/webhooks/{foreign.id}/", None),
        ("patch", f"/api/v1/webhooks/{foreign.id}/", {"status": "paused"}),
        ("delete", f"/api/v1/webhooks/{foreign.id}/", None),
        ("post", f"/api/v1/webhooks/{foreign.id}/rotate-secret/", {}),
        ("post", f"/api/v1/webhooks/{foreign.id}/replay/", {"scope": "dead"}),
        ("get", f"/api/v1/events/{event.id}/", None),
        ("post", f"/api/v1/events/{event.id}/redeliver/", {}),
        ("get", f"/api/v1/webhooks/{uuid.uuid4()}/", None),
    ):
        response = getattr(api, method)(path, body, format="json")
        assert_error(response, 404, code="not_found")
    foreign.refresh_from_db()
    assert foreign.status == EndpointStatus.ACTIVE


def test_redeliver_to_a_foreign_endpoint_is_404(api, organization, other_organization):
    event = emit_event(organization)
    foreign = endpoint_for(other_organization, HOOK)
    response = api.post(f"/api/v1/events/{event.id}/redeliver/", {"endpoint_id": str(foreign.id)},
                        format="json")  # fmt: skip
    assert_error(response, 404)
    assert not Delivery.objects.exists()


# --- replay ------------------------------------------------------------------------------


def _dead(endpoint):
    return Delivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.DEAD)


def test_replay_dead_deliveries_keeps_the_webhook_id(api, organization, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = []
    from tests.support.http import Reply

    receiver.respond(Reply(status=500))
    endpoint = endpoint_for(organization, receiver.url)
    event = emit_event(organization)
    delivery.dispatch_round()
    assert _dead(endpoint).count() == 1

    receiver.respond(Reply(status=200))
    response = api.post(f"/api/v1/webhooks/{endpoint.id}/replay/", {"scope": "dead"}, format="json")
    assert response.status_code == 202
    assert response.json() == {"scope": "dead", "requeued": 1}
    delivery.dispatch_round()
    row = Delivery.objects.get(endpoint=endpoint)
    assert (row.status, row.replay_count, row.attempt_count) == ("succeeded", 1, 1)
    assert [r.headers["webhook-id"] for r in receiver.requests] == [str(event.id)] * 2


def test_backfill_a_new_subscriber_by_type_and_time(api, organization, receiver):
    old = emit_event(organization, "booking.scheduled")
    emit_event(organization, "lead.created")
    recent = emit_event(organization, "booking.cancelled")
    delivery.dispatch_round()  # nobody was subscribed
    endpoint = endpoint_for(organization, receiver.url, ["booking.*", "lead.*"])

    response = api.post(
        f"/api/v1/webhooks/{endpoint.id}/replay/",
        {"scope": "events", "since": (old.created_at - timedelta(seconds=1)).isoformat(),
         "event_types": ["booking.*"]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 202 and response.json()["requeued"] == 2
    delivery.dispatch_round()
    assert {r.headers["webhook-id"] for r in receiver.requests} == {str(old.id), str(recent.id)}

    again = api.post(
        f"/api/v1/webhooks/{endpoint.id}/replay/",
        {"scope": "events", "since": (old.created_at - timedelta(seconds=1)).isoformat()},
        format="json",
    )
    assert again.json()["requeued"] == 3  # the endpoint's own patterns; resent, not doubled
    assert Delivery.objects.filter(endpoint=endpoint).count() == 3


def test_backfill_bad_input(api, organization, settings):
    endpoint = endpoint_for(organization, HOOK)
    url = f"/api/v1/webhooks/{endpoint.id}/replay/"
    assert_error(api.post(url, {"scope": "events"}, format="json"), 400, "since")
    assert_error(api.post(url, {"scope": "everything"}, format="json"), 400, "scope")
    assert_error(
        api.post(url, {"scope": "events", "since": timezone.now().isoformat(),
                       "event_types": ["x.*"]}, format="json"),
        400, "event_types",
    )  # fmt: skip
    now = timezone.now()
    assert_error(
        api.post(url, {"scope": "events", "since": now.isoformat(),
                       "until": (now - timedelta(hours=1)).isoformat()}, format="json"),
        400, "until",
    )  # fmt: skip
    settings.WEBHOOK_REPLAY_MAX_EVENTS = 2
    for _ in range(3):
        emit_event(organization)
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    error = assert_error(
        api.post(url, {"scope": "events", "since": since, "event_types": ["*"]}, format="json"),
        400,
        code="too_many_events",
    )
    assert "narrow" in error["message"]
    assert not Delivery.objects.exists()


# --- event log ---------------------------------------------------------------------------


def test_event_log_filters_and_cursor_pages(api, other_api, organization, other_organization):
    for _ in range(3):
        emit_event(organization, "booking.scheduled")
    lead = emit_event(organization, "lead.created")
    emit_event(other_organization, "lead.created")

    body = api.get("/api/v1/events/?type=lead.created").json()
    assert [e["id"] for e in body["results"]] == [str(lead.id)]
    item = body["results"][0]
    assert {"id", "type", "sequence", "trace_id", "data", "created_at"} <= set(item)
    assert item["sequence"] == lead.sequence and item["trace_id"] == lead.trace_id

    assert len(api.get("/api/v1/events/?type=booking.*").json()["results"]) == 3
    first = api.get("/api/v1/events/?page_size=2").json()
    assert len(first["results"]) == 2 and first["next"]
    second = api.get(first["next"]).json()
    ids = [e["id"] for e in first["results"] + second["results"]]
    assert len(ids) == len(set(ids)) == 4
    assert "count" not in first  # cursor pagination: no COUNT(*)
    assert len(other_api.get("/api/v1/events/").json()["results"]) == 1
    by_subject = api.get(f"/api/v1/events/?subject_id={lead.subject_id}").json()["results"]
    assert [e["id"] for e in by_subject] == [str(lead.id)]
    by_trace = api.get(f"/api/v1/events/?trace_id={lead.trace_id}").json()["results"]
    assert str(lead.id) in [e["id"] for e in by_trace]
    assert_error(api.get("/api/v1/events/?type=lead.teleported"), 400, "type")


def test_event_log_query_count(api, organization, django_assert_max_num_queries):
    for _ in range(20):
        emit_event(organization)
    with django_assert_max_num_queries(3):  # api key, page
        assert len(api.get("/api/v1/events/").json()["results"]) == 20


def test_event_detail_shows_deliveries_and_attempts(
    api, organization, receiver, django_assert_max_num_queries
):
    endpoint = endpoint_for(organization, receiver.url)
    event = emit_event(organization)
    delivery.dispatch_round()
    with django_assert_max_num_queries(5):
        body = api.get(f"/api/v1/events/{event.id}/").json()
    (item,) = body["deliveries"]
    assert item["endpoint_id"] == str(endpoint.id) and item["status"] == "succeeded"
    assert item["attempts"][0]["response_status"] == 200


def test_redeliver_an_event(api, organization, receiver):
    first = endpoint_for(organization, receiver.url + "/a")
    event = emit_event(organization)
    delivery.dispatch_round()
    late = endpoint_for(organization, receiver.url + "/b")

    response = api.post(f"/api/v1/events/{event.id}/redeliver/", {}, format="json")
    assert response.status_code == 202 and response.json() == {"requeued": 1}
    response = api.post(f"/api/v1/events/{event.id}/redeliver/", {"endpoint_id": str(late.id)},
                        format="json")  # fmt: skip
    assert response.json() == {"requeued": 1}
    delivery.dispatch_round()
    assert sorted(r.path for r in receiver.requests) == ["/a", "/a", "/b"]
    assert Delivery.objects.get(endpoint=first).replay_count == 1


def test_event_types_are_the_catalog(api):
    body = api.get("/api/v1/event-types/?page_size=200").json()
    names = [t["name"] for t in body["results"]]
    assert names == [t.name for t in catalog.all_types()]
    assert "webhook_endpoint.disabled" in names
    booking = next(t for t in body["results"] if t["name"] == "booking.no_show")
    assert booking["version"] == 1 and booking["group"] == "booking"
    assert "booking_id" in booking["data_schema"]["required"]


def test_requires_an_api_key(client):
    for path in ("/api/v1/webhooks/", "/api/v1/events/", "/api/v1/event-types/"):
        assert client.get(path).status_code == 401


def test_schema_documents_the_webhook_api(client):
    schema = client.get("/api/schema/?format=json").json()
    for path in (
        "/api/v1/webhooks/",
        "/api/v1/webhooks/{id}/rotate-secret/",
        "/api/v1/webhooks/{id}/replay/",
        "/api/v1/events/",
        "/api/v1/events/{id}/redeliver/",
        "/api/v1/event-types/",
    ):
        assert path in schema["paths"], path
    create_op = schema["paths"]["/api/v1/webhooks/"]["post"]
    assert create_op["requestBody"]["content"]["application/json"]["examples"]
