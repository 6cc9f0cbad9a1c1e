"""The operator console for events and webhooks: scoping, secrets, health, replay."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.events import delivery, services
from apps.events.models import Delivery, DeliveryStatus, EndpointStatus, WebhookEndpoint
from tests.events.factories import emit_event, endpoint_for
from tests.support.http import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(organization, other_organization, make_staff_client, receiver, settings):
    """Each organization: one endpoint with one delivered and one dead delivery."""
    settings.WEBHOOK_RETRY_SCHEDULE = []
    endpoints = {}
    for org in (organization, other_organization):
        endpoints[org.slug] = endpoint_for(org, f"{receiver.url}/{org.slug}")
    emit_event(organization)
    emit_event(other_organization)
    delivery.dispatch_round()
    receiver.respond(Reply(status=500, body="down"))
    emit_event(organization, name="dead-mine")
    emit_event(other_organization, name="dead-theirs")
    delivery.dispatch_round()
    receiver.respond(Reply(status=200))
    return {
        "admin": make_staff_client(organization, role="admin"),
        "moderator": make_staff_client(organization, role="moderator"),
        "operator": make_staff_client(organization, role="operator"),
        "mine": endpoints["pulse"],
        "theirs": endpoints["harbor"],
    }


def _dead(endpoint):
    return Delivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.DEAD)


def test_endpoint_list_is_scoped_to_my_organization(world):
    body = world["admin"].get("/admin/events/webhookendpoint/").content.decode()
    assert world["mine"].url in body and world["theirs"].url not in body


def test_endpoint_page_masks_the_secret_and_charts_health(world):
    response = world["admin"].get(f"/admin/events/webhookendpoint/{world['mine'].pk}/change/")
    body = response.content.decode()
    assert response.status_code == 200
    assert world["mine"].secret not in body
    assert world["mine"].secret[:10] + "…" in body
    assert "<svg" in body and "success over the last 24 h" in body
    assert "50.0%" in body  # one delivered, one failed


def test_foreign_endpoint_cannot_be_opened(world):
    response = world["admin"].get(
        f"/admin/events/webhookendpoint/{world['theirs'].pk}/change/", follow=True
    )
    assert world["theirs"].url not in response.content.decode()


def test_only_organization_admins_manage_endpoints(world):
    assert world["operator"].get("/admin/events/webhookendpoint/").status_code == 403
    assert world["moderator"].get("/admin/events/webhookendpoint/").status_code == 403


def test_add_endpoint_through_the_service_shows_the_secret_once(world, organization):
    response = world["admin"].post(
        "/admin/events/webhookendpoint/add/",
        {
            "organization": str(organization.pk),
            "url": "http://n8n:5678/webhook/switchboard-deal-won",
            "event_types": "deal.won,booking.*",
            "description": "",
            "timeout_seconds": "10",
            "max_concurrency": "10",
            "rate_limit_per_second": "",
            "new_secret": "",
        },
        follow=True,
    )
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get(url="http://n8n:5678/webhook/switchboard-deal-won")
    assert endpoint.event_types == ["deal.won", "booking.*"]
    messages = [str(m) for m in response.context["messages"]]
    assert any(endpoint.secret in m for m in messages)


def test_add_endpoint_rejects_bad_input(world, organization):
    response = world["admin"].post(
        "/admin/events/webhookendpoint/add/",
        {
            "organization": str(organization.pk),
            "url": "ftp://example.com/",
            "event_types": "lead.nope",
            "timeout_seconds": "10",
            "max_concurrency": "10",
            "new_secret": "whsec_x",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"url", "event_types", "new_secret"}
    assert WebhookEndpoint.objects.count() == 2


def test_pause_resume_rotate_and_replay_actions(world):
    admin, mine, theirs = world["admin"], world["mine"], world["theirs"]
    url = "/admin/events/webhookendpoint/"

    def act(action, *endpoints):
        return admin.post(
            url,
            {"action": action, "_selected_action": [str(e.pk) for e in endpoints]},
            follow=True,
        )

    act("pause", mine, theirs)
    assert WebhookEndpoint.objects.get(pk=mine.pk).status == EndpointStatus.PAUSED
    assert WebhookEndpoint.objects.get(pk=theirs.pk).status == EndpointStatus.ACTIVE
    act("resume", mine)
    assert WebhookEndpoint.objects.get(pk=mine.pk).status == EndpointStatus.ACTIVE

    response = act("rotate_secret", mine)
    rotated = WebhookEndpoint.objects.get(pk=mine.pk)
    assert rotated.previous_secret == mine.secret
    assert any(rotated.secret in str(m) for m in response.context["messages"])

    act("replay_dead", mine, theirs)
    assert not _dead(mine).exists()
    assert _dead(theirs).count() == 1


def test_disabled_endpoint_shows_a_notice(world):
    services.webhook_endpoint_auto_disable(
        endpoint=world["mine"], reason="the endpoint answered 410 Gone"
    )
    response = world["admin"].get("/admin/events/webhookendpoint/")
    messages = [str(m) for m in response.context["messages"]]
    assert any("was disabled" in m and "410 Gone" in m for m in messages)


def test_event_page_shows_deliveries_and_attempts(world, organization):
    event = Delivery.objects.filter(endpoint=world["mine"]).first().event
    response = world["operator"].get(f"/admin/events/event/{event.pk}/change/")
    body = response.content.decode()
    assert response.status_code == 200
    assert world["mine"].url in body
    assert "#1 " in body  # attempt summary


def test_event_log_searchable_by_trace_id(world):
    event = Delivery.objects.filter(endpoint=world["mine"]).first().event
    response = world["operator"].get(f"/admin/events/event/?q={event.trace_id}")
    assert [e.pk for e in response.context["cl"].result_list] == [event.pk]


def test_redeliver_action_needs_a_supervisor(world):
    event = _dead(world["mine"]).get().event
    body = {"action": "redeliver", "_selected_action": [str(event.pk)]}
    world["operator"].post("/admin/events/event/", body)
    assert _dead(world["mine"]).exists()
    world["moderator"].post("/admin/events/event/", body)
    assert not _dead(world["mine"]).exists()


def test_delivery_admin_scoped_with_attempts_and_replay(world):
    mine = _dead(world["mine"]).get()
    theirs = _dead(world["theirs"]).get()
    moderator = world["moderator"]
    listing = moderator.get("/admin/events/delivery/?status=dead")
    assert [d.pk for d in listing.context["cl"].result_list] == [mine.pk]
    page = moderator.get(f"/admin/events/delivery/{mine.pk}/change/").content.decode()
    assert "webhook-signature" in page and "down" in page  # request headers, response body
    moderator.post(
        "/admin/events/delivery/",
        {"action": "replay", "_selected_action": [str(mine.pk), str(theirs.pk)]},
    )
    assert Delivery.objects.get(pk=mine.pk).status == DeliveryStatus.PENDING
    assert Delivery.objects.get(pk=theirs.pk).status == DeliveryStatus.DEAD
    assert world["operator"].get("/admin/events/delivery/").status_code == 403


def test_dead_letters_page_is_scoped(world, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        response = world["moderator"].get("/admin/dead-letters/")
    assert response.status_code == 200
    body = response.content.decode()
    assert world["mine"].url in body and world["theirs"].url not in body
    assert [d.pk for d in response.context["page"]] == [_dead(world["mine"]).get().pk]
    assert world["operator"].get("/admin/dead-letters/").status_code == 403


def test_dead_letters_bulk_replay_touches_only_mine(world):
    theirs = _dead(world["theirs"]).get()
    response = world["moderator"].post(
        "/admin/dead-letters/",
        {"all": "0", "delivery": [str(_dead(world["mine"]).get().pk), str(theirs.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    assert not _dead(world["mine"]).exists()
    assert Delivery.objects.get(pk=theirs.pk).status == DeliveryStatus.DEAD


def test_dead_letters_replay_all_of_an_endpoint(world):
    world["moderator"].post(
        f"/admin/dead-letters/?endpoint={world['mine'].pk}",
        {"all": "1", "endpoint": str(world["mine"].pk)},
    )
    assert not _dead(world["mine"]).exists()
    assert _dead(world["theirs"]).exists()
    delivery.dispatch_round()
    assert Delivery.objects.filter(endpoint=world["mine"], status="succeeded").count() == 2


def test_superuser_sees_every_dead_letter(world):
    root = get_user_model().objects.create_superuser(email="root@example.com", password="x")
    client = Client()
    client.force_login(root)
    assert len(client.get("/admin/dead-letters/").context["page"]) == 2


@pytest.mark.parametrize("bad", ["not-a-uuid", "", "1; DROP TABLE", "0" * 40])
def test_dead_letters_replay_with_a_malformed_id_is_400_and_replays_nothing(world, bad):
    mine = _dead(world["mine"]).get()
    response = world["moderator"].post(
        "/admin/dead-letters/", {"all": "0", "delivery": [str(mine.pk), bad]}
    )
    assert response.status_code == 400
    assert b"not a valid id" in response.content
    assert Delivery.objects.get(pk=mine.pk).status == DeliveryStatus.DEAD


def test_malformed_delivery_ids_in_the_admin_are_not_found_never_500(world):
    for url in (
        "/admin/events/delivery/not-a-uuid/change/",
        "/admin/events/webhookendpoint/not-a-uuid/change/",
        "/admin/events/webhookendpoint/not-a-uuid/delete/",
    ):
        response = world["admin"].get(url)
        assert response.status_code in (302, 404), (url, response.status_code)
