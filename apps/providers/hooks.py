"""Provider webhooks (`/hooks/<provider>/<channel_id>/...`): plain Django views, no DRF.

The hot path is kept short: the channel (with its decrypted config) comes from an
in-process cache, the signature is checked on the raw bytes or the parsed form, and one
transaction stores and threads the message. Answers (ARCHITECTURE.md, "Ingress"): 200
accepted (a replayed duplicate too), 400 malformed (JSON error), 403 bad or missing
signature (nothing stored; counted and logged with the trace id), 404 unknown or disabled
channel, 413 over the body limit. Bad input never produces a 5xx.
"""

from __future__ import annotations

import functools
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import DataError
from django.http import HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from apps.core.choices import Provider
from apps.core.errors import DomainError, error_body
from apps.providers import metrics, selectors, services
from apps.providers.adapters import mailgun, manychat, twilio, whatsapp
from apps.providers.types import Malformed

logger = logging.getLogger(__name__)

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAILGUN_MAX_BYTES = 30 * 1024 * 1024  # Mailgun forwards messages up to 25 MB, attachments included


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


class _Stop(Exception):
    def __init__(self, response):
        self.response = response


def _body_limit() -> int:
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 1024 * 1024


def _check_length(request, limit: int) -> None:
    raw = request.META.get("CONTENT_LENGTH") or "0"
    try:
        length = int(raw)
    except ValueError:
        raise _Stop(_error(400, "malformed_request", "Invalid Content-Length.")) from None
    if length > limit:
        raise _Stop(_error(413, "payload_too_large", f"The body is over {limit} bytes."))


def _read_body(request, limit: int) -> bytes:
    _check_length(request, limit)
    try:
        body = request.body
    except RequestDataTooBig:
        raise _Stop(_error(413, "payload_too_large", f"The body is over {limit} bytes.")) from None
    if len(body) > limit:
        raise _Stop(_error(413, "payload_too_large", f"The body is over {limit} bytes."))
    return body


def _form(request):
    try:
        return request.POST
    except RequestDataTooBig:
        raise _Stop(_error(413, "payload_too_large", "The form is over the size limit.")) from None
    except (SuspiciousOperation, MultiPartParserError, ValueError, UnicodeDecodeError):
        raise _Stop(_error(400, "malformed_request", "The form body cannot be parsed.")) from None


def _reject(provider: str, channel_id, reason: str) -> JsonResponse:
    metrics.webhook_rejected.labels(provider, reason).inc()
    logger.warning(
        "webhook rejected: %s (provider=%s channel=%s)",
        reason,
        provider,
        channel_id,
        extra={"provider": provider, "channel_id": str(channel_id), "reason": reason},
    )
    message = {
        "missing_signature": "The signature header is missing.",
        "bad_signature": "The signature does not match.",
        "stale": "The signed timestamp is too old or in the future.",
        "replayed": "This signature token was already used.",
    }.get(reason, "Forbidden.")
    return _error(403, "invalid_signature", message)


def hook(provider: str, methods=("POST",)):
    """Common plumbing: method check, channel lookup (404), error mapping (400/413)."""

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request, channel_id, *args, **kwargs):
            if request.method not in methods:
                response = _error(405, "method_not_allowed", f"Use {' or '.join(methods)}.")
                response["Allow"] = ", ".join(methods)
                return response
            channel = selectors.hook_channel(channel_id=channel_id, provider=provider)
            if channel is None:
                return _error(404, "not_found", "Unknown channel.")
            try:
                return view(request, channel, *args, **kwargs)
            except _Stop as stop:
                return stop.response
            except Malformed as exc:
                return _error(400, "malformed_request", str(exc))
            except DomainError as exc:
                return _error(400, exc.code, exc.message)
            except DataError:
                logger.warning("webhook payload rejected by the database", exc_info=True)
                return _error(400, "malformed_request", "A field value is out of range.")

        return wrapper

    return decorate


# --- Twilio -----------------------------------------------------------------------------------


def _twilio_verified(request, channel):
    _read_body(request, _body_limit())
    params = _form(request)
    verdict = twilio.verify(request, channel, params, settings.PUBLIC_URL)
    if verdict is not True:
        reason = "missing_signature" if verdict is None else "bad_signature"
        raise _Stop(_reject(Provider.TWILIO, channel.pk, reason))
    return params


@hook(Provider.TWILIO)
def twilio_inbound(request, channel):
    params = _twilio_verified(request, channel)
    services.ingress_process(channel=channel, items=[twilio.parse_inbound(params)])
    return HttpResponse(TWIML_EMPTY, content_type="text/xml")


@hook(Provider.TWILIO)
def twilio_status(request, channel):
    params = _twilio_verified(request, channel)
    services.ingress_process(channel=channel, items=[], statuses=[twilio.parse_status(params)])
    return HttpResponse(TWIML_EMPTY, content_type="text/xml")


# --- WhatsApp Cloud API -----------------------------------------------------------------------


@hook(Provider.WHATSAPP, methods=("GET", "POST"))
def whatsapp_hook(request, channel):
    if request.method == "GET":
        challenge = whatsapp.verify_handshake(request.GET, channel)
        if challenge is None:
            return _reject(Provider.WHATSAPP, channel.pk, "bad_verify_token")
        return HttpResponse(challenge, content_type="text/plain")
    body = _read_body(request, _body_limit())
    verdict = whatsapp.verify(request, channel, body)
    if verdict is not True:
        reason = "missing_signature" if verdict is None else "bad_signature"
        return _reject(Provider.WHATSAPP, channel.pk, reason)
    items, statuses = whatsapp.parse(body, phone_number_id=channel.config["phone_number_id"])
    services.ingress_process(channel=channel, items=items, statuses=statuses)
    return HttpResponse("", content_type="text/plain")


# --- ManyChat ---------------------------------------------------------------------------------


@hook(Provider.MANYCHAT)
def manychat_hook(request, channel):
    verdict = manychat.verify(request, channel)
    if verdict is not True:
        reason = "missing_signature" if verdict is None else "bad_signature"
        return _reject(Provider.MANYCHAT, channel.pk, reason)
    body = _read_body(request, _body_limit())
    item = manychat.parse(body)
    result = services.ingress_process(channel=channel, items=[item])
    return JsonResponse(
        {
            "status": "accepted",
            "message_id": item.provider_message_id,
            "duplicate": not result.stored,
        }
    )


# --- Mailgun ----------------------------------------------------------------------------------


def _mailgun_checked(channel, *, timestamp, token, signature):
    try:
        mailgun.check_signature(channel, timestamp=timestamp, token=token, signature=signature)
    except mailgun.Rejected as exc:
        raise _Stop(_reject(Provider.MAILGUN, channel.pk, exc.reason)) from None


@hook(Provider.MAILGUN)
def mailgun_inbound(request, channel):
    _check_length(request, MAILGUN_MAX_BYTES)
    form = _form(request)
    token = form.get("token")
    _mailgun_checked(
        channel, timestamp=form.get("timestamp"), token=token, signature=form.get("signature")
    )
    try:
        item = mailgun.parse_inbound(request, channel)
        services.ingress_process(channel=channel, items=[item])
    except Exception:
        mailgun.forget_token(channel, token)  # nothing stored: Mailgun's retry may use it
        raise
    return JsonResponse({"status": "accepted"})


@hook(Provider.MAILGUN)
def mailgun_events(request, channel):
    payload = mailgun.json_payload(_read_body(request, _body_limit()))
    block = payload.get("signature")
    if not isinstance(block, dict):
        return _reject(Provider.MAILGUN, channel.pk, "missing_signature")
    _mailgun_checked(
        channel,
        timestamp=block.get("timestamp"),
        token=block.get("token"),
        signature=block.get("signature"),
    )
    try:
        report = mailgun.parse_event(payload, channel)
        services.ingress_process(channel=channel, items=[], statuses=[report])
    except Exception:
        mailgun.forget_token(channel, block.get("token"))
        raise
    return JsonResponse({"status": "accepted"})
