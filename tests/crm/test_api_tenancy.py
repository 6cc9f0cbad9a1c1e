"""Every CRM endpoint: 401 without a key; another organization's ids are 404, nothing written."""

import uuid

import pytest
from rest_framework.test import APIClient

from apps.crm import services
from apps.crm.models import Contact, Deal, Lead, Note, Task
from apps.events.models import Event
from tests.crm import factories as f

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "/api/v1/contacts/"),
    ("post", "/api/v1/contacts/"),
    ("get", "/api/v1/contacts/{contact}/"),
    ("patch", "/api/v1/contacts/{contact}/"),
    ("post", "/api/v1/contacts/{contact}/notes/"),
    ("get", "/api/v1/deals/"),
    ("post", "/api/v1/deals/"),
    ("get", "/api/v1/deals/{deal}/"),
    ("post", "/api/v1/deals/{deal}/stage/"),
    ("get", "/api/v1/leads/"),
    ("get", "/api/v1/leads/{lead}/"),
    ("patch", "/api/v1/leads/{lead}/"),
    ("post", "/api/v1/leads/{lead}/qualify/"),
    ("post", "/api/v1/leads/{lead}/disqualify/"),
    ("post", "/api/v1/leads/{lead}/convert/"),
    ("get", "/api/v1/tasks/"),
    ("post", "/api/v1/tasks/"),
    ("get", "/api/v1/tasks/{task}/"),
    ("post", "/api/v1/tasks/{task}/complete/"),
    ("get", "/api/v1/pipelines/"),
]
DETAIL = [(m, u) for m, u in ENDPOINTS if "{" in u]


@pytest.fixture
def theirs(other_organization):
    contact = f.contact(other_organization, email="theirs@example.com")
    return {
        "contact": contact,
        "deal": f.deal(other_organization, contact=contact),
        "lead": f.lead(other_organization, contact=contact),
        "task": services.task_create(organization=other_organization, title="theirs"),
    }


def _body(method, url):
    """A body that would be valid for the endpoint, were the id ours."""
    if method == "patch":
        return {"name": "hijacked"} if "contacts" in url else {"campaign": "hijacked"}
    for suffix, body in (
        ("notes/", {"body": "x"}),
        ("stage/", {"stage": "Lost"}),
        ("disqualify/", {"reason": "x"}),
    ):
        if url.endswith(suffix):
            return body
    return {}


def state():
    return [
        sorted(map(repr, m.objects.values_list())) for m in (Contact, Deal, Lead, Note, Task, Event)
    ]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_without_a_key_is_401(organization, method, url):
    ids = {k: uuid.uuid4() for k in ("contact", "deal", "lead", "task")}
    response = getattr(APIClient(), method)(url.format(**ids), {}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize(("method", "url"), DETAIL)
def test_another_organizations_ids_are_404_and_change_nothing(api, theirs, method, url):
    before = state()
    body = _body(method, url)
    response = getattr(api, method)(
        url.format(**{k: v.pk for k, v in theirs.items()}), body, format="json"
    )
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "not_found"
    assert state() == before


@pytest.mark.parametrize(("method", "url"), DETAIL)
def test_unknown_ids_are_404(api, organization, method, url):
    ids = {k: uuid.uuid4() for k in ("contact", "deal", "lead", "task")}
    response = getattr(api, method)(url.format(**ids), _body(method, url), format="json")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/deals/", "contact_id"),
        ("/api/v1/tasks/", "contact_id"),
        ("/api/v1/tasks/", "deal_id"),
        ("/api/v1/deals/", "pipeline_id"),
        ("/api/v1/contacts/", "owner_id"),
        ("/api/v1/tasks/", "assignee_id"),
    ],
)
def test_foreign_ids_in_a_body_are_404_naming_the_field(
    api, theirs, other_organization, other_member, url, field
):
    ids = {
        "contact_id": theirs["contact"].pk,
        "deal_id": theirs["deal"].pk,
        "pipeline_id": theirs["deal"].pipeline_id,
        "owner_id": other_member.pk,
        "assignee_id": other_member.pk,
    }
    before = state()
    base = {"email": "new@example.com"} if "contacts" in url else {"title": "x"}
    response = api.post(url, {**base, field: str(ids[field])}, format="json")
    assert response.status_code == 404, response.content
    assert field in response.json()["error"]["details"]
    assert state() == before


def test_lists_show_only_my_rows(api, theirs):
    for url in ("/api/v1/contacts/", "/api/v1/deals/", "/api/v1/leads/", "/api/v1/tasks/"):
        assert api.get(url).json()["count"] == 0, url
    assert all(p["name"] for p in api.get("/api/v1/pipelines/").json()["results"])
    assert theirs["deal"].pipeline_id not in {
        p["id"] for p in api.get("/api/v1/pipelines/").json()["results"]
    }


def test_the_schema_documents_every_crm_operation_with_examples(api):
    import yaml

    response = APIClient().get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    for method, url in ENDPOINTS:
        path = url
        for name in ("contact", "deal", "lead", "task"):
            path = path.replace(f"{{{name}}}", "{id}")
        operation = schema["paths"][path][method]
        examples = [
            ex
            for content in [
                *operation.get("requestBody", {}).get("content", {}).values(),
                *(
                    c
                    for r in operation["responses"].values()
                    for c in r.get("content", {}).values()
                ),
            ]
            for ex in content.get("examples", {}).values()
        ]
        assert examples, f"{method} {url} has no example"
