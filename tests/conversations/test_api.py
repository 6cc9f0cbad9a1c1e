import pytest

from apps.conversations.models import Conversation
from apps.events.models import Event
from tests.conversations import factories as cf

pytestmark = pytest.mark.django_db


def test_get_and_escalate(api, organization):
    operator = cf.member(organization)
    conversation = cf.conversation(organization)
    assert api.get(f"/api/v1/conversations/{conversation.pk}/").json()["agent_active"] is True
    response = api.post(
        f"/api/v1/conversations/{conversation.pk}/escalate/",
        {"reason": "wants a human"},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["agent_active"] is False and body["priority"] == "high"
    assert body["assignee_id"] == str(operator.pk)
    assert Event.objects.filter(type="conversation.escalated").count() == 1
    again = api.post(
        f"/api/v1/conversations/{conversation.pk}/escalate/", {"reason": "again"}, format="json"
    )
    assert again.status_code == 200
    assert Event.objects.filter(type="conversation.escalated").count() == 1


@pytest.mark.parametrize(
    ("body", "field"), [({}, "reason"), ({"reason": "x", "priority": "apocalyptic"}, "priority")]
)
def test_bad_input_names_the_field_and_changes_nothing(api, organization, body, field):
    conversation = cf.conversation(organization)
    response = api.post(f"/api/v1/conversations/{conversation.pk}/escalate/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert Conversation.objects.get(pk=conversation.pk).agent_active is True


def test_foreign_conversation_is_404(api, other_organization):
    theirs = cf.conversation(other_organization)
    assert api.get(f"/api/v1/conversations/{theirs.pk}/").status_code == 404
    response = api.post(
        f"/api/v1/conversations/{theirs.pk}/escalate/", {"reason": "x"}, format="json"
    )
    assert response.status_code == 404
    assert Conversation.objects.get(pk=theirs.pk).agent_active is True
