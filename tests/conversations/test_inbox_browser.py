"""The inbox in a real headless Chromium (Debian's, driven by Playwright): an operator logs in
with email and password, sees an unread WhatsApp conversation, opens it and replies; the
reply goes through a real Celery worker to a fake WhatsApp Cloud API on 127.0.0.1, the page
shows it sent (polling, no reload), and the conversation is no longer unread."""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest

from apps.conversations import selectors
from apps.conversations.models import Conversation, Message
from apps.conversations.services import message_record_inbound
from apps.crm.services import contact_upsert
from tests.factories import OrganizationFactory, staff_user
from tests.providers import factories as pf
from tests.support.http import Reply

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "pw-Browser-123"


@contextmanager
def chromium_page():
    """A page of Debian's headless Chromium. No ORM call may run inside this block: the
    Playwright sync API runs an event loop here, and Django would give such a call a
    connection of its own that nobody closes."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure_chromium.sh (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


def test_operator_reads_and_replies_in_the_browser(
    live_server, receiver, start_worker, niches_loaded
):
    organization = OrganizationFactory(name="Pulse Fitness", slug="pulse")
    operator = staff_user(organization, email="olivia@pulse.example", password=PASSWORD)
    channel = pf.whatsapp_channel(organization, api_base=receiver.url)
    receiver.respond(Reply(status=200, body=pf.sample_json("whatsapp_send_response.json")))
    contact = contact_upsert(
        organization=organization,
        name="Maya Lopez",
        phone="+16505551234",
        identities=[("whatsapp_id", "16505551234")],
    ).contact
    message_record_inbound(
        organization=organization,
        contact_id=contact.pk,
        channel="whatsapp",
        channel_connection_id=channel.pk,
        provider_message_id="wamid.inbound-1",
        text="Hi! Do you have beginner classes on Saturday?",
    )
    conversation = Conversation.objects.get(contact=contact)
    start_worker(queues="sends")
    base = live_server.url

    with chromium_page() as page:
        page.goto(f"{base}/admin/login/?next=/admin/inbox/")
        page.fill("#id_username", "olivia@pulse.example")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(f"{base}/admin/inbox/")

        row = page.locator(f"tr.sb-row[data-conversation='{conversation.pk}']")
        assert "unread" in row.get_attribute("class")
        assert "Maya Lopez" in row.inner_text()
        assert "beginner classes" in row.inner_text()
        assert row.locator(".sb-badge.unread").inner_text() == "1"

        row.locator(".sb-contact a").click()
        page.wait_for_url(f"{base}/admin/inbox/{conversation.pk}/")
        assert "Do you have beginner classes on Saturday?" in page.locator("#timeline").inner_text()
        assert "window open" in page.locator("#whatsapp-window").inner_text()

        page.fill("#reply-text", "Yes! Beginner yoga at 10:00 on Saturday.")
        page.click("#send-reply")
        page.wait_for_url(f"{base}/admin/inbox/{conversation.pk}/")
        assert "Reply queued on WhatsApp." in page.content()
        delivery = page.locator("li.sb-message.outbound .sb-delivery")
        # the worker sends it; the page learns it by polling, without a reload
        page.locator("li.sb-message.outbound .sb-delivery[data-status=sent]").wait_for(
            timeout=45_000
        )
        assert delivery.inner_text() == "Sent"

        page.goto(f"{base}/admin/inbox/")
        row = page.locator(f"tr.sb-row[data-conversation='{conversation.pk}']")
        assert "unread" not in row.get_attribute("class")
        assert "Yes! Beginner yoga" in row.inner_text()  # the last message preview

    [sent] = receiver.requests
    assert sent.path.endswith("/1122334455667/messages")
    assert sent.json()["text"]["body"] == "Yes! Beginner yoga at 10:00 on Saturday."
    assert sent.json()["to"] == "16505551234"
    reply = Message.objects.get(direction="out")
    assert (reply.status, reply.sender_user_id) == ("sent", operator.pk)
    assert not selectors.conversation_is_unread(
        conversation=Conversation.objects.get(pk=conversation.pk), user=operator
    )
