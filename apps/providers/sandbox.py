"""A provider sandbox for local development and the demo (`PROVIDER_SANDBOX`, on in dev only).

The demo channels point their `api_base` here, so a reply an operator sends from the inbox
goes through the real send path — the `sends` worker, the provider adapter, the HTTP call —
and comes back accepted, the way Twilio's and Meta's APIs answer. Nothing leaves the machine.
Never mounted in production settings.
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


@csrf_exempt
@require_POST
def twilio_messages(request: HttpRequest, account_sid: str) -> JsonResponse:
    """Twilio's `POST /2010-04-01/Accounts/<sid>/Messages.json` (see twilio_send_response_201)."""
    sid = "SM" + uuid.uuid4().hex
    return JsonResponse(
        {
            "account_sid": account_sid,
            "sid": sid,
            "status": "queued",
            "to": request.POST.get("To", ""),
            "from": request.POST.get("From", ""),
            "body": request.POST.get("Body", ""),
            "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
        },
        status=201,
    )


@csrf_exempt
@require_POST
def whatsapp_messages(request: HttpRequest, version: str, phone_number_id: str) -> JsonResponse:
    """WhatsApp Cloud API's `POST /<version>/<phone-number-id>/messages`."""
    return JsonResponse(
        {
            "messaging_product": "whatsapp",
            "messages": [{"id": f"wamid.sandbox{uuid.uuid4().hex}", "message_status": "accepted"}],
        }
    )
