"""Attachment downloads follow redirects only to public addresses (unless private URLs are
allowed), checked at every hop, with a real HTTP server on 127.0.0.1."""

import pytest

from apps.conversations.models import Attachment
from apps.providers import services
from tests.providers import factories as f
from tests.support.http import Reply

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 64


def _twilio_attachment(client, twilio, url: str) -> Attachment:
    body = f.twilio_form(
        MessageSid="MMredirect",
        From="+14155550100",
        Body="",
        NumMedia="1",
        MediaUrl0=url,
        MediaContentType0="image/png",
    )
    assert f.post_twilio(client, twilio, body).status_code == 200
    return Attachment.objects.get()


def _redirecting(receiver, target: str) -> None:
    def answer(request):
        if request.path == "/media":
            return Reply(status=302, headers={"Location": target})
        return Reply(status=200, body=PNG, headers={"Content-Type": "image/png"})

    receiver.respond(answer)


# Loopback by address and by name, cloud metadata (link-local), carrier-grade NAT (not
# "private" to Python, not public either), IPv6 loopback.
@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "169.254.169.254", "100.64.0.1", "[::1]"]
)
def test_a_redirect_to_a_private_address_is_not_followed(client, twilio, receiver, settings, host):
    _redirecting(receiver, f"http://{host}:{receiver.port}/secret")
    attachment = _twilio_attachment(client, twilio, receiver.url + "/media")
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False

    assert services.attachment_download(attachment_id=attachment.id) == "failed"
    assert [r.path for r in receiver.requests] == ["/media"]  # the secret was never asked for
    attachment.refresh_from_db()
    assert "private network" in attachment.error


def test_a_relative_redirect_is_checked_too(client, twilio, receiver, settings):
    _redirecting(receiver, "/secret")
    attachment = _twilio_attachment(client, twilio, receiver.url + "/media")
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    assert services.attachment_download(attachment_id=attachment.id) == "failed"
    assert [r.path for r in receiver.requests] == ["/media"]


def test_redirects_are_followed_when_private_urls_are_allowed(client, twilio, receiver):
    _redirecting(receiver, "/file.png")
    attachment = _twilio_attachment(client, twilio, receiver.url + "/media")
    assert services.attachment_download(attachment_id=attachment.id) == "stored"
    assert [r.path for r in receiver.requests] == ["/media", "/file.png"]
    # Twilio's credentials went with both requests: the redirect stayed on the same host.
    assert all(r.headers.get("authorization", "").startswith("Basic ") for r in receiver.requests)


def test_a_redirect_loop_fails_after_a_few_hops(client, twilio, receiver):
    receiver.respond(Reply(status=302, headers={"Location": "/media"}))
    attachment = _twilio_attachment(client, twilio, receiver.url + "/media")
    assert services.attachment_download(attachment_id=attachment.id) == "failed"
    assert len(receiver.requests) == services.MAX_REDIRECTS + 1


def test_an_api_url_naming_localhost_is_not_fetched(api, receiver, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    response = api.post(
        "/api/v1/messages/inbound/",
        {
            "from": {"external_id": "x"},
            "attachments": [{"url": f"http://localhost:{receiver.port}/secret"}],
        },
        format="json",
    )
    assert response.status_code == 200
    attachment = Attachment.objects.get()
    assert services.attachment_download(attachment_id=attachment.id) == "failed"
    assert receiver.requests == []
