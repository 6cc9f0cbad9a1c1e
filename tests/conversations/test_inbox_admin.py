"""The inbox's model admins: scoped to the operator's organizations, settings saved through
the service, look-ups read-only."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations import services
from apps.conversations.models import InboxSettings, SlaBreach
from tests.conversations import factories as f

pytestmark = pytest.mark.django_db


def test_changelists_are_scoped(organization, other_organization, make_staff_client):
    admin_client = make_staff_client(organization, role="admin")
    mine = f.conversation(organization, name="Mine Person")
    theirs = f.conversation(other_organization, name="Their Person")
    for org, conversation in ((organization, mine), (other_organization, theirs)):
        InboxSettings.objects.create(organization=org)
        now = timezone.now()
        breach = services.sla_due_breaches(now=now + timedelta(hours=1))
        for due in breach:
            if due.conversation_id == conversation.pk:
                services.conversation_sla_breach(organization=org, breach=due, now=now)
    assert SlaBreach.objects.count() == 2
    body = admin_client.get("/admin/conversations/conversation/").content.decode()
    assert "Mine Person" in body and "Their Person" not in body
    body = admin_client.get("/admin/conversations/slabreach/").content.decode()
    assert "Mine Person" in body and "Their Person" not in body
    body = admin_client.get("/admin/conversations/inboxsettings/").content.decode()
    assert "Pulse Fitness" in body and "Harbor Realty" not in body
    foreign = InboxSettings.objects.get(organization=other_organization)
    assert admin_client.get(
        f"/admin/conversations/inboxsettings/{foreign.pk}/change/"
    ).status_code in (
        302,
        404,
    )
    assert admin_client.get(
        f"/admin/conversations/conversation/{theirs.pk}/change/"
    ).status_code in (
        302,
        404,
    )


def test_settings_saved_through_the_service(organization, make_staff_client):
    admin_client = make_staff_client(organization, role="admin")
    moderator = f.member(organization, role="moderator")
    operator = f.member(organization)
    response = admin_client.post(
        "/admin/conversations/inboxsettings/add/",
        {
            "organization": str(organization.pk),
            "auto_assign": "handed_over",
            "first_response_minutes": "5",
            "next_response_minutes": "",
            "reassign_on_breach": "on",
            "escalate_to": "user",
            "escalation_user": str(moderator.pk),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    saved = InboxSettings.objects.get(organization=organization)
    assert (saved.auto_assign, saved.first_response_minutes, saved.next_response_minutes) == (
        "handed_over",
        5,
        None,
    )
    assert saved.escalation_user_id == moderator.pk
    response = admin_client.post(
        f"/admin/conversations/inboxsettings/{saved.pk}/change/",
        {
            "auto_assign": "all",
            "first_response_minutes": "5",
            "next_response_minutes": "30",
            "escalate_to": "user",
            "escalation_user": str(operator.pk),
        },
        follow=True,
    )
    assert "Must be a moderator or admin" in response.content.decode()
    saved.refresh_from_db()
    assert saved.escalation_user_id == moderator.pk and saved.next_response_minutes is None


def test_operators_cannot_change_settings(organization, make_staff_client):
    operator_client = make_staff_client(organization, role="operator")
    assert operator_client.get("/admin/conversations/inboxsettings/add/").status_code == 403
