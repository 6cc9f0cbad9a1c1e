"""The n8n workflows Switchboard ships (`n8n/workflows/*.json`) and how they subscribe.

This list is the single source of truth: `connect_n8n` subscribes from it, and the
workflow files are checked against it (each starts with a Webhook node on `path_for(type)`).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from apps.events import services
from apps.events.models import EndpointStatus, WebhookEndpoint


@dataclass(frozen=True)
class ShippedWorkflow:
    event_type: str
    name: str

    @property
    def path(self) -> str:
        return path_for(self.event_type)


SHIPPED_WORKFLOWS: tuple[ShippedWorkflow, ...] = (
    ShippedWorkflow("lead.created", "Lead → Qualify → Book"),
    ShippedWorkflow("message.received", "Message received → AI reply → send"),
    ShippedWorkflow("booking.no_show", "No-show → follow-up sequence"),
    ShippedWorkflow("deal.won", "Deal won → onboarding"),
)


def path_for(event_type: str) -> str:
    """The Webhook node path of the workflow for `event_type`: `switchboard-lead-created`."""
    return "switchboard-" + event_type.replace(".", "-")


def webhook_url(n8n_url: str, event_type: str) -> str:
    return f"{n8n_url.rstrip('/')}/webhook/{path_for(event_type)}"


@dataclass(frozen=True)
class Subscription:
    endpoint: WebhookEndpoint
    workflow: ShippedWorkflow
    created: bool


def n8n_connect(*, organization, n8n_url: str, secret: str) -> list[Subscription]:
    """Subscribe every shipped workflow's webhook to its event type, signed with `secret`.

    Idempotent: an endpoint of the organization with the same URL is updated (types,
    secret, active again), never duplicated. All or nothing (one transaction).
    """
    subscriptions = []
    with transaction.atomic():
        for workflow in SHIPPED_WORKFLOWS:
            url = webhook_url(n8n_url, workflow.event_type)
            description = f"n8n: {workflow.name}"
            endpoint = (
                WebhookEndpoint.objects.for_organization(organization)
                .select_for_update()
                .filter(url=url)
                .order_by("created_at")
                .first()
            )
            if endpoint is None:
                endpoint = services.webhook_endpoint_create(
                    organization=organization,
                    url=url,
                    event_types=[workflow.event_type],
                    secret=secret,
                    description=description,
                )
                subscriptions.append(Subscription(endpoint, workflow, created=True))
                continue
            endpoint = services.webhook_endpoint_update(
                endpoint=endpoint,
                event_types=[workflow.event_type],
                description=description,
                status=EndpointStatus.ACTIVE,
            )
            if endpoint.secret != secret:
                endpoint = services.webhook_endpoint_rotate_secret(endpoint=endpoint, secret=secret)
            subscriptions.append(Subscription(endpoint, workflow, created=False))
    return subscriptions
