"""The inbox and the decision API: a decision's escalate action reaches a person, and the
reply box shows the AI suggestion (the latest decision's reply, or a side-effect-free
simulation on demand)."""

import pytest

from apps.conversations import selectors, services
from apps.conversations.models import ConversationActivity
from apps.decisions.execution import decision_execute
from apps.decisions.models import Decision
from apps.events.models import Event
from tests.conversations import factories as cf
from tests.decisions import factories as df

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def rules_engine(settings):
    settings.DECISION_ENGINE = "rules"
    settings.LLM_API_BASE = ""


@pytest.fixture
def fitness(db):
    return df.organization("fitness")


def test_decision_escalation_goes_to_a_person(fitness):
    operator = cf.member(fitness)
    ana = df.contact(fitness)
    conversation = df.conversation(ana)
    decision = df.decide(fitness, ana, message="can I talk to a real person?")
    decision_execute(decision=decision)
    conversation.refresh_from_db()
    assert conversation.assignee_id == operator.pk and not conversation.agent_active
    assert ConversationActivity.objects.filter(conversation=conversation, kind="escalated").exists()
    escalated = Event.objects.get(type="conversation.escalated")
    assert escalated.data["escalated_by"] == "agent"
    assert Event.objects.get(type="conversation.assigned").data["assignee_id"] == str(operator.pk)
    # idempotent: escalating again changes nothing
    services.conversation_escalate(organization=fitness, conversation=conversation, reason="again")
    assert Event.objects.filter(type="conversation.escalated").count() == 1
    assert Event.objects.filter(type="conversation.assigned").count() == 1


def test_latest_decision_reply_is_the_ai_suggestion(fitness, make_staff_client):
    client = make_staff_client(fitness)
    ana = df.contact(fitness, name="Ana Lopez")
    df.conversation(ana)
    decision = df.decide(fitness, ana, message="Hi! do you have classes on Saturday?")
    body = next(a["body"] for a in decision.actions if a["type"] == "send_message")
    conversation = decision.conversation
    suggestion = selectors.ai_suggestion(organization=fitness, conversation=conversation)
    assert suggestion.text == body and suggestion.decision_id == decision.pk
    page = client.get(f"/admin/inbox/{conversation.pk}/")
    assert page.context["suggestion"].text == body
    assert "data-use-suggestion" in page.content.decode()


def test_stale_decision_is_not_suggested(fitness):
    ana = df.contact(fitness)
    df.conversation(ana)
    decision = df.decide(fitness, ana, message="hello")
    conversation = cf.inbound(fitness, ana, "a newer message", channel="sms")
    assert conversation.pk == decision.conversation_id
    assert selectors.ai_suggestion(organization=fitness, conversation=conversation) is None


def test_ask_the_ai_simulates_without_side_effects(fitness, make_staff_client):
    client = make_staff_client(fitness)
    ana = df.contact(fitness)
    conversation = cf.inbound(fitness, ana, "Hi! what are your prices?", channel="sms")
    before = (Decision.objects.count(), Event.objects.count())
    data = client.get(f"/admin/inbox/{conversation.pk}/suggest/").json()
    assert data["suggestion"]
    assert (Decision.objects.count(), Event.objects.count()) == before
