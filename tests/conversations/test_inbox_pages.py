"""The inbox pages: list (tabs, filters, keyset pages, bounded queries), the conversation page
(timeline, contact panel, reply box, read state), actions, polling, and tenant scoping."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.conversations import selectors, services
from apps.conversations.models import Conversation, Message
from apps.crm.services import contact_set_consent
from tests.conversations import factories as f
from tests.providers import factories as pf

pytestmark = pytest.mark.django_db

INBOX = "/admin/inbox/"


def page_url(conversation, suffix=""):
    return f"/admin/inbox/{conversation.pk}/{suffix}"


@pytest.fixture
def operator_client(organization, make_staff_client):
    return make_staff_client(organization, role="operator")


@pytest.fixture
def whatsapp(organization):
    return pf.whatsapp_channel(organization)


def post(client, conversation, **data):
    return client.post(page_url(conversation, "act/"), data)


def flash(response) -> list[str]:
    return [str(m) for m in response.wsgi_request._messages]


# --- the list -----------------------------------------------------------------------------------


def test_inbox_lists_newest_activity_first_with_unread_badges(organization, operator_client):
    now = timezone.now()
    older = f.conversation(organization, "older one", name="Olga", now=now - timedelta(hours=2))
    newer = f.conversation(organization, "newer one", name="Nina", now=now - timedelta(minutes=1))
    services.conversation_mark_read(conversation=older, user=operator_client.user)
    response = operator_client.get(INBOX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("Nina") < html.index("Olga")
    assert page_url(newer) in html and page_url(older) in html
    rows = {r.pk: r for r in response.context["page"].rows}
    assert rows[newer.pk].unread and rows[newer.pk].unread_count == 1
    assert not rows[older.pk].unread
    assert "newer one" in html  # last message preview
    assert 'class="sb-icon whatsapp"' in html


def test_tabs_and_filters(organization, operator_client):
    me = operator_client.user
    other = f.member(organization)
    mine = f.conversation(organization, name="Mine", tags=["vip"])
    theirs = f.conversation(organization, name="Theirs")
    nobody = f.conversation(organization, name="Nobody", channel="sms")
    resolved = f.conversation(organization, name="Done")
    services.conversation_assign(organization=organization, conversation=mine, assignee=me)
    services.conversation_assign(organization=organization, conversation=theirs, assignee=other)
    services.conversation_set_status(
        organization=organization, conversation=resolved, status="resolved"
    )
    services.conversation_mark_read(conversation=theirs, user=me)

    def listed(**query):
        response = operator_client.get(INBOX, query)
        assert response.status_code == 200
        return {r.pk for r in response.context["page"].rows}

    assert listed() == {mine.pk, theirs.pk, nobody.pk}  # open by default
    assert listed(tab="mine") == {mine.pk}
    assert listed(tab="unassigned") == {nobody.pk}
    assert listed(status="resolved") == {resolved.pk}
    assert listed(status="") == {mine.pk, theirs.pk, nobody.pk, resolved.pk}
    assert listed(channel="sms") == {nobody.pk}
    assert listed(tag="vip") == {mine.pk}
    assert listed(unread="1") == {mine.pk, nobody.pk}


def test_keyset_pages(organization, operator_client):
    now = timezone.now()
    made = [f.conversation(organization, now=now - timedelta(minutes=n)) for n in range(5)]
    seen = []
    url, query = INBOX, {"per_page": 2}
    while True:
        response = operator_client.get(url, query)
        seen += [r.pk for r in response.context["page"].rows]
        if not response.context["next_url"]:
            break
        url, query = INBOX + response.context["next_url"], {}
    assert seen == [c.pk for c in made]


@pytest.mark.parametrize(
    "query",
    [
        {"tab": "everything"},
        {"status": "closed"},
        {"channel": "pigeon"},
        {"per_page": "0"},
        {"per_page": "many"},
        {"after": "not-a-cursor"},
        {"tag": "x" * 51},
    ],
)
def test_bad_filters_are_a_clear_400(organization, operator_client, query):
    response = operator_client.get(INBOX, query)
    assert response.status_code == 400
    assert "errornote" in response.content.decode()


def test_list_queries_do_not_grow_with_page_size(
    organization, operator_client, django_assert_num_queries
):
    other = f.member(organization)
    for n in range(30):
        conversation = f.conversation(organization, f"message {n}", tags=["t"])
        if n % 2:
            services.conversation_assign(
                organization=organization, conversation=conversation, assignee=other
            )
    operator_client.get(INBOX)  # warm-up: session, caches
    with CaptureQueriesContext(connection) as small:
        assert operator_client.get(INBOX, {"per_page": 3}).status_code == 200
    with django_assert_num_queries(len(small.captured_queries)):
        response = operator_client.get(INBOX, {"per_page": 30})
    assert len(response.context["page"].rows) == 30
    assert len(small.captured_queries) <= 12
    assert not any(
        "COUNT(" in q["sql"].upper()
        and "conversations_conversation" in q["sql"]
        and "LIMIT" not in q["sql"].upper()
        for q in small.captured_queries
    )


def test_organization_switch_is_scoped(organization, other_organization, operator_client):
    f.conversation(other_organization, name="Foreign")
    assert operator_client.get(INBOX, {"organization": other_organization.pk}).status_code == 404
    assert "Foreign" not in operator_client.get(INBOX).content.decode()


# --- the conversation page ----------------------------------------------------------------------


def _full_story(organization, whatsapp, operator):
    """A contact with inbound and outbound messages, a note, an assignment, a deal moved to
    another stage and a booking."""
    from apps.bookings.services import booking_create
    from apps.crm import services as crm
    from apps.crm.models import Stage
    from tests.bookings.factories import at, make_resource, make_type, next_local_day

    person = f.contact(organization, name="Ana Lima", tags=["vip"])
    conversation = f.inbound(
        organization, person, "Do you have yoga on Saturday?", connection=whatsapp
    )
    services.conversation_reply(
        organization=organization, conversation=conversation, user=operator, text="Yes, at 10!"
    )
    services.conversation_note_add(
        organization=organization, conversation=conversation, user=operator, text="Wants a trial"
    )
    crm.pipeline_ensure_default(organization=organization)
    deal = crm.deal_create(organization=organization, title="Trial membership", contact=person)
    next_stage = (
        Stage.objects.filter(pipeline=deal.pipeline, order__gt=deal.stage.order)
        .order_by("order")
        .first()
    )
    crm.deal_move_stage(organization=organization, deal=deal, stage=next_stage, changed_by=operator)
    kind = make_type(organization, name="Trial class", slug="trial")
    make_resource(organization, kind, name="Coach Kim")
    day = next_local_day(organization, weekday=3)
    booking_create(
        organization=organization,
        contact=person,
        appointment_type=kind,
        start=at(organization, day, "10:00"),
    )
    conversation.refresh_from_db()
    return conversation


def test_conversation_page_shows_everything(organization, whatsapp, operator_client):
    conversation = _full_story(organization, whatsapp, operator_client.user)
    response = operator_client.get(page_url(conversation))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Do you have yoga on Saturday?" in html
    assert "Yes, at 10!" in html and 'data-status="queued"' in html
    assert "Internal note" in html and "Wants a trial" in html
    assert "Assigned to" in html and "A person took over from the AI agent" in html
    assert "Deal moved: Trial membership" in html
    assert "Booking:" in html
    assert "Ana Lima" in html and "vip" in html
    assert "WhatsApp 24-hour window open" in html
    assert "AI suggestion" in html
    assert "Canned reply" in html and "Objections" in html
    assert "Upcoming bookings" in html and "Open deals" in html
    panel = response.context["panel"]
    assert panel["deals"] and panel["bookings"]


def test_opening_marks_read_for_that_operator_only(organization, operator_client):
    colleague = f.member(organization)
    conversation = f.conversation(organization)
    assert selectors.conversation_is_unread(conversation=conversation, user=operator_client.user)
    operator_client.get(page_url(conversation))
    assert not selectors.conversation_is_unread(
        conversation=conversation, user=operator_client.user
    )
    assert selectors.conversation_is_unread(conversation=conversation, user=colleague)


def test_conversation_page_queries_do_not_grow_with_messages(
    organization, whatsapp, operator_client, django_assert_num_queries
):
    small = f.conversation(organization, connection=whatsapp)
    person = f.contact(organization)
    big = f.inbound(organization, person, "first", connection=whatsapp)
    for n in range(40):
        f.inbound(organization, person, f"message {n}", connection=whatsapp)
        services.conversation_note_add(
            organization=organization, conversation=big, user=operator_client.user, text=f"note {n}"
        )
    operator_client.get(page_url(small))  # warm-up: niche context cache, session
    with CaptureQueriesContext(connection) as baseline:
        assert operator_client.get(page_url(small)).status_code == 200
    with django_assert_num_queries(len(baseline.captured_queries)):
        response = operator_client.get(page_url(big))
    assert len([i for i in response.context["items"] if i.kind in ("message", "note")]) == 81


def test_older_messages_link(organization, operator_client, settings):
    from apps.conversations import selectors as sel

    person = f.contact(organization)
    for n in range(sel.TIMELINE_MESSAGES + 5):
        conversation = f.inbound(organization, person, f"m{n}")
    response = operator_client.get(page_url(conversation))
    assert response.context["has_older"]
    older = operator_client.get(page_url(conversation) + response.context["older_url"])
    texts = [i.obj.text for i in older.context["items"] if i.kind == "message"]
    assert texts == [f"m{n}" for n in range(5)]
    assert operator_client.get(page_url(conversation), {"before": "yesterday"}).status_code == 400


# --- actions ------------------------------------------------------------------------------------


def test_reply_from_the_page(organization, whatsapp, operator_client):
    conversation = f.conversation(organization, connection=whatsapp)
    response = post(operator_client, conversation, action="reply", text="Hello from the inbox")
    assert response.status_code == 302 and response["Location"] == page_url(conversation)
    message = Message.objects.get(direction="out")
    assert (message.text, message.sender_user_id, message.status) == (
        "Hello from the inbox",
        operator_client.user.pk,
        "queued",
    )
    page = operator_client.get(page_url(conversation))
    assert "Reply queued on WhatsApp." in page.content.decode()


def test_reply_refusals_are_messages_not_errors(organization, whatsapp, operator_client):
    person = f.contact(organization)
    conversation = f.inbound(
        organization, person, "hi", connection=whatsapp, now=timezone.now() - timedelta(days=2)
    )
    response = post(operator_client, conversation, action="reply", text="Too late?")
    assert response.status_code == 302
    assert any("24-hour window is closed" in m for m in flash(response))
    contact_set_consent(
        organization=organization, contact=person, channel="whatsapp", opted_in=False, reason="STOP"
    )
    response = post(operator_client, conversation, action="reply", text="Hi")
    assert any("opted out" in m for m in flash(response))
    response = post(operator_client, conversation, action="reply", text="   ")
    assert any("blank" in m for m in flash(response))
    response = post(operator_client, conversation, action="reply", text="Hi", channel="pigeon:x")
    assert any("Unknown channel" in m for m in flash(response))
    response = post(
        operator_client, conversation, action="reply", text="Hi", channel=f"sms:{whatsapp.pk}"
    )
    assert response.status_code == 302
    assert Message.objects.filter(direction="out").count() == 0
    conversation.refresh_from_db()
    assert conversation.agent_active and conversation.assignee_id is None


def test_every_action_from_the_page(organization, operator_client):
    colleague = f.member(organization, name="Cole")
    conversation = f.conversation(organization)
    assert post(operator_client, conversation, action="note", text="remember").status_code == 302
    post(operator_client, conversation, action="assign", assignee=str(colleague.pk))
    conversation.refresh_from_db()
    assert conversation.assignee_id == colleague.pk
    post(operator_client, conversation, action="status", status="pending")
    conversation.refresh_from_db()
    assert conversation.status == "pending"
    until = (timezone.now() + timedelta(hours=3)).isoformat()
    post(operator_client, conversation, action="snooze", until=until)
    conversation.refresh_from_db()
    assert conversation.status == "snoozed"
    local = (timezone.localtime(timezone.now(), organization.tz) + timedelta(days=1)).strftime(
        "%Y-%m-%dT%H:%M"
    )
    post(operator_client, conversation, action="snooze", until=local)  # datetime-local input
    conversation.refresh_from_db()
    assert conversation.snoozed_until > timezone.now() + timedelta(hours=23)
    post(operator_client, conversation, action="take_over")
    conversation.refresh_from_db()
    assert not conversation.agent_active and conversation.assignee_id == operator_client.user.pk
    post(operator_client, conversation, action="hand_back")
    conversation.refresh_from_db()
    assert conversation.agent_active
    post(operator_client, conversation, action="escalate", reason="angry customer")
    conversation.refresh_from_db()
    assert conversation.escalated_at and conversation.status == "open"
    response = post(operator_client, conversation, action="mark_unread")
    assert response["Location"].startswith(reverse("admin:inbox"))
    assert selectors.conversation_is_unread(conversation=conversation, user=operator_client.user)
    post(operator_client, conversation, action="assign", assignee="")
    conversation.refresh_from_db()
    assert conversation.assignee_id is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"action": "assign", "assignee": "nobody"}, "Choose a member"),
        ({"action": "assign", "assignee": "00000000-0000-0000-0000-000000000000"}, "not a member"),
        ({"action": "status", "status": "deleted"}, "status: must be one of"),
        ({"action": "snooze", "until": "soon"}, "Choose when"),
        ({"action": "snooze", "until": "2001-01-01T10:00:00+00:00"}, "must be in the future"),
        ({"action": "note", "text": ""}, "the note is empty"),
    ],
)
def test_bad_action_input_is_a_clear_message(organization, operator_client, data, expected):
    conversation = f.conversation(organization)
    before = Conversation.objects.values().get(pk=conversation.pk)
    response = post(operator_client, conversation, **data)
    assert response.status_code == 302
    assert any(expected in m for m in flash(response)), flash(response)
    assert Conversation.objects.values().get(pk=conversation.pk) == before


def test_unknown_action_and_wrong_method(organization, operator_client):
    conversation = f.conversation(organization)
    assert post(operator_client, conversation, action="delete").status_code == 400
    assert operator_client.get(page_url(conversation, "act/")).status_code == 405


def test_csrf_is_enforced(organization):
    from django.test import Client

    from tests.factories import staff_user

    user = staff_user(organization)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    conversation = f.conversation(organization)
    assert client.post(page_url(conversation, "act/"), {"action": "mark_unread"}).status_code == 403


def test_read_only_role_sees_but_cannot_act(organization, make_staff_client):
    viewer = make_staff_client(organization, role="user")
    conversation = f.conversation(organization)
    page = viewer.get(page_url(conversation))
    assert page.status_code == 200 and "but not answer it" in page.content.decode()
    assert post(viewer, conversation, action="take_over").status_code == 403
    assert viewer.get(page_url(conversation, "suggest/")).status_code == 403


# --- polling ------------------------------------------------------------------------------------


def test_poll_returns_new_messages_and_status_changes(organization, whatsapp, operator_client):
    person = f.contact(organization)
    conversation = f.inbound(organization, person, "first", connection=whatsapp)
    operator_client.get(page_url(conversation))
    since = timezone.now()
    message = services.conversation_reply(
        organization=organization,
        conversation=conversation,
        user=operator_client.user,
        text="answer",
    )
    f.inbound(organization, person, "second", connection=whatsapp)
    data = operator_client.get(
        page_url(conversation, "poll/"), {"since": since.isoformat(), "visible": "1"}
    ).json()
    ids = [m["id"] for m in data["messages"]]
    assert f"m-{message.pk}" in ids  # (the poll overlaps the previous one by a few seconds)
    assert any("second" in m["html"] for m in data["messages"])
    assert any("agent_paused" in a["html"] for a in data["activities"])
    assert not selectors.conversation_is_unread(
        conversation=conversation, user=operator_client.user
    )
    services.message_apply_status(organization=organization, message_id=message.pk, status="sent")
    data = operator_client.get(page_url(conversation, "poll/"), {"since": data["now"]}).json()
    assert {m["id"]: m["status"] for m in data["messages"]}[f"m-{message.pk}"] == "sent"
    assert (
        operator_client.get(page_url(conversation, "poll/"), {"since": "noon"}).status_code == 400
    )


def test_poll_does_not_mark_read_when_hidden(organization, operator_client):
    person = f.contact(organization)
    conversation = f.inbound(organization, person, "first")
    operator_client.get(page_url(conversation))
    since = timezone.now()
    f.inbound(organization, person, "second")
    operator_client.get(
        page_url(conversation, "poll/"), {"since": since.isoformat(), "visible": "0"}
    )
    conversation.refresh_from_db()
    assert selectors.conversation_is_unread(conversation=conversation, user=operator_client.user)


# --- scoping ------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "poll/", "suggest/", "?before=2020-01-01T00:00:00%2B00:00"])
def test_foreign_conversation_pages_are_404(
    organization, other_organization, make_staff_client, suffix
):
    foreign = f.conversation(other_organization)
    admin_client = make_staff_client(organization, role="admin")
    assert admin_client.get(page_url(foreign, suffix)).status_code == 404
    assert (
        admin_client.get(f"/admin/inbox/00000000-0000-0000-0000-000000000000/{suffix}").status_code
        == 404
    )


@pytest.mark.parametrize(
    "action",
    [
        "reply",
        "note",
        "assign",
        "status",
        "snooze",
        "mark_unread",
        "take_over",
        "hand_back",
        "escalate",
        "bogus",
    ],
)
def test_foreign_conversation_actions_are_404(
    organization, other_organization, make_staff_client, action
):
    foreign = f.conversation(other_organization)
    before = Conversation.objects.values().get(pk=foreign.pk)
    admin_client = make_staff_client(organization, role="admin")
    response = post(
        admin_client,
        foreign,
        action=action,
        text="x",
        status="resolved",
        until="2099-01-01T00:00:00+00:00",
    )
    assert response.status_code == 404
    assert Conversation.objects.values().get(pk=foreign.pk) == before
    assert Message.objects.filter(conversation=foreign).count() == 1


def test_anonymous_is_sent_to_login(organization, client):
    conversation = f.conversation(organization)
    for url in (INBOX, page_url(conversation), page_url(conversation, "poll/")):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_superuser_sees_every_organization(organization, other_organization, client):
    from apps.tenancy.models import User

    root = User.objects.create_superuser(email="root@example.com", password="pw-Secret-123")
    client.force_login(root)
    foreign = f.conversation(other_organization)
    assert client.get(page_url(foreign)).status_code == 200
    assert client.get(INBOX, {"organization": other_organization.pk}).status_code == 200
