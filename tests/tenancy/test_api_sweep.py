"""Sweep of `/api/v1/`: every route with an id answers another organization's id with 404
and the documented error shape, and no list or read ever shows another organization's rows.

The routes are read from the URL resolver, not listed by hand, so a new route is swept (or
fails `test_every_id_route_is_swept` until its model is named in `ROUTE_MODELS`). Both
organizations are filled by the demo seed (`seed_demo`), which touches every app.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.apps import apps as django_apps
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from apps.conversations.models import Conversation, Message
from apps.crm.models import Contact, Deal, Lead, Task
from apps.events.models import Event, WebhookEndpoint
from apps.revenue.models import Invoice, Sequence
from tests.factories import api_key_for

pytestmark = pytest.mark.django_db

API_PREFIX = "/api/v1/"

# first path segment of an id route → the model its id names
ROUTE_MODELS = {
    "bookings": "bookings.Booking",
    "conversations": Conversation,
    "contacts": Contact,
    "deals": Deal,
    "leads": Lead,
    "tasks": Task,
    "webhooks": WebhookEndpoint,
    "events": Event,
    "messages": Message,
    "invoices": Invoice,
    "sequences": Sequence,
}
# parameterized routes whose parameter is not a tenant-owned id
NOT_TENANT_IDS = {
    "niches/<str:slug>/": "niches are shared content, not owned by an organization",
    "unsubscribe/<str:token>/": "a signed token from an email, public by design",
}
# a body that would be valid for the route's own objects, so that only ownership decides
BODIES = {
    "deals/<uuid:pk>/stage/": {"stage": "qualified"},
    "contacts/<uuid:pk>/notes/": {"body": "A note"},
    "conversations/<uuid:pk>/escalate/": {"reason": "wants a person"},
    "leads/<uuid:pk>/disqualify/": {"reason": "not a fit"},
    "invoices/<uuid:pk>/payments/": {"amount": "1.00", "method": "cash"},
    "invoices/<uuid:pk>/void/": {"reason": "mistake"},
    "webhooks/<uuid:pk>/replay/": {"scope": "dead"},
    "bookings/<uuid:pk>/reschedule/": {"start": "2030-01-07T10:00:00Z"},
    "bookings/<uuid:pk>/cancel/": {"reason": "sick"},
    "sequences/<uuid:pk>/enrollments/": {"contact_id": None},
}
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _routes(patterns=None, prefix: str = "") -> list[tuple[str, object]]:
    """(route under /api/v1/, view class) for every API route."""
    if patterns is None:
        api = next(
            p for p in get_resolver().url_patterns if str(p.pattern) == API_PREFIX.lstrip("/")
        )
        return _routes(api.url_patterns)
    found = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found += _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            found.append((route, pattern.callback.view_class))
    return found


def _methods(view_class) -> list[str]:
    return [m for m in ("get", "post", "patch", "put", "delete") if hasattr(view_class, m)]


def _model(segment: str):
    model = ROUTE_MODELS[segment]
    return django_apps.get_model(model) if isinstance(model, str) else model


@pytest.fixture
def world(demo_organizations):
    """The two demo organizations, full of rows from every app, each with a webhook
    endpoint; an API client of the first."""
    mine, theirs = demo_organizations
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(mine)}")
    return {"mine": mine, "theirs": theirs, "api": client}


def _foreign_ids(theirs) -> set[str]:
    """Every id of every row the other organization owns."""
    ids = set()
    for model in django_apps.get_models():
        if any(f.name == "organization" for f in model._meta.fields):
            ids |= {
                str(pk)
                for pk in model.objects.filter(organization=theirs).values_list("pk", flat=True)
            }
    return ids


def _assert_not_found(response, where: str) -> None:
    assert response.status_code == 404, (where, response.status_code, response.content[:300])
    body = response.json()
    assert set(body) == {"error"}, (where, body)
    assert {"code", "message", "details"} <= set(body["error"]), (where, body)
    assert body["error"]["code"] == "not_found", (where, body)


def test_every_id_route_is_swept():
    unswept = [
        route
        for route, _ in _routes()
        if "<" in route and route not in NOT_TENANT_IDS and route.split("/")[0] not in ROUTE_MODELS
    ]
    assert unswept == [], "name the model of these routes in ROUTE_MODELS"


def test_another_organizations_id_is_404_on_every_route_and_method(world):
    api, mine, theirs = world["api"], world["mine"], world["theirs"]
    swept = 0
    for route, view_class in _routes():
        if "<uuid:pk>" not in route:
            continue
        model = _model(route.split("/")[0])
        foreign = model.objects.filter(organization=theirs).order_by("pk").first()
        assert foreign is not None, f"the demo seed has no {model.__name__} of the other org"
        own = model.objects.filter(organization=mine).order_by("pk").first()
        url = API_PREFIX + route.replace("<uuid:pk>", str(foreign.pk))
        for method in _methods(view_class):
            body = BODIES.get(route, {})
            if route == "sequences/<uuid:pk>/enrollments/":
                body = {"contact_id": str(Contact.objects.filter(organization=mine).first().pk)}
            response = getattr(api, method)(url, body, format="json")
            _assert_not_found(response, f"{method.upper()} {url}")
            swept += 1
        if "get" in _methods(view_class) and own is not None:  # control: the id form is right
            own_url = API_PREFIX + route.replace("<uuid:pk>", str(own.pk))
            assert api.get(own_url).status_code == 200, own_url
        # a well-formed id that exists nowhere is the same 404 (no oracle)
        for method in _methods(view_class):
            missing = API_PREFIX + route.replace("<uuid:pk>", str(uuid.uuid4()))
            response = getattr(api, method)(missing, BODIES.get(route, {}), format="json")
            if route != "sequences/<uuid:pk>/enrollments/":
                _assert_not_found(response, f"{method.upper()} {missing}")
    assert swept >= 30
    for model in ROUTE_MODELS:  # nothing of theirs was changed by the attempts
        model = _model(model)
        for row in model.objects.filter(organization=theirs):
            assert row.organization_id == theirs.pk


def test_ids_in_request_bodies_are_scoped(world):
    """Writes that name a related row in their body: the other organization's row is 404."""
    api, theirs = world["api"], world["theirs"]
    contact = Contact.objects.filter(organization=theirs).first()
    deal = Deal.objects.filter(organization=theirs).first()
    conversation = Conversation.objects.filter(organization=theirs).first()
    cases = {
        "tasks/": {"title": "Call", "contact_id": str(contact.pk)},
        "tasks/ (deal)": {"title": "Call", "deal_id": str(deal.pk)},
        "messages/": {"contact_id": str(contact.pk), "text": "hi"},
        "decisions/": {"contact_id": str(contact.pk), "trigger": "manual"},
        "decisions/ (conversation)": {"conversation_id": str(conversation.pk), "trigger": "manual"},
    }
    for name, body in cases.items():
        path = API_PREFIX + name.split(" ")[0]
        _assert_not_found(api.post(path, body, format="json"), f"POST {path} {body}")
    assert not Task.objects.filter(organization=world["mine"], contact=contact).exists()


def test_no_list_or_read_ever_shows_another_organizations_rows(world):
    api, theirs = world["api"], world["theirs"]
    foreign = _foreign_ids(theirs)
    assert len(foreign) > 50
    own_names = set(Contact.objects.exclude(organization=theirs).values_list("name", flat=True))
    names = [
        name
        for name in Contact.objects.filter(organization=theirs).values_list("name", flat=True)
        if name and name not in own_names
    ]
    checked = 0
    for route, view_class in _routes():
        if "<" in route or "get" not in _methods(view_class):
            continue
        queries = [{}]
        if route in ("contacts/", "deals/", "leads/", "tasks/", "invoices/"):
            queries += [{"search": name} for name in names[:3]]
        for query in queries:
            response = api.get(API_PREFIX + route, query)
            assert response.status_code < 500, (route, response.status_code)
            text = json.dumps(response.json()) if response.content else ""
            leaked = set(UUID_RE.findall(text)) & foreign
            assert not leaked, (route, query, leaked)
            if query and response.status_code == 200:
                assert all(name not in text for name in names), (route, query)
            checked += 1
    assert checked >= 15
