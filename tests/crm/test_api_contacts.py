"""`/api/v1/contacts/`: search, create with duplicate detection, get, PATCH, notes."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.crm import services
from apps.crm.models import Contact, Note
from apps.events.models import Event
from tests.crm import factories as f

pytestmark = pytest.mark.django_db
URL = "/api/v1/contacts/"


def post(api, url, body, **headers):
    return api.post(url, body, format="json", **headers)


def patch(api, url, body):
    return api.patch(url, body, format="json")


def assert_error(response, status, field=None, code=None):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["message"]
    if field:
        assert field in error["details"], error
        assert error["message"].startswith(f"{field}:") or field in error["message"]
    if code:
        assert error["code"] == code


def test_create_then_the_same_person_matches(api, organization):
    body = {
        "name": "Maya Chen",
        "email": "Maya@Example.com",
        "phone": "(415) 555-0142",
        "tags": ["trial"],
        "custom_fields": {"goal": "strength"},
        "consent": {"sms": {"opted_in": True, "reason": "web form"}},
    }
    created = post(api, URL, body)
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["created"] is True and data["matched_by"] is None
    assert (data["email"], data["phone"], data["tags"]) == (
        "maya@example.com",
        "+14155550142",
        ["trial"],
    )
    assert data["consent"]["sms"]["status"] == "opted_in"
    assert {i["kind"] for i in data["identities"]} == {"email", "phone"}
    assert data["source"] == "api"

    again = post(api, URL, {"phone": "+1 415 555 0142", "tags": ["vip"]})
    assert again.status_code == 200
    assert again.json()["id"] == data["id"] and again.json()["matched_by"] == "phone"
    assert again.json()["tags"] == ["trial", "vip"]
    assert Contact.objects.filter(organization=organization).count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "nope@"}, "email"),
        ({"phone": "12"}, "phone"),
        ({"name": "No way to reach"}, "email"),
        ({"email": "a@example.com", "tag": ["x"]}, "tag"),
        ({"email": "a@example.com", "lifecycle_stage": "vip"}, "lifecycle_stage"),
        ({"email": "a@example.com", "tags": "vip"}, "tags"),
        ({"email": "a@example.com", "consent": {"fax": {"opted_in": True}}}, "consent"),
        ({"email": "a@example.com", "consent": {"sms": {"opted_in": "maybe"}}}, "consent"),
        ({"email": "a@example.com", "owner_id": "not-a-uuid"}, "owner_id"),
        ({"email": "a@example.com", "timezone": "Mars/Base"}, "timezone"),
        ({"identities": [{"kind": "fax", "value": "1"}]}, "identities"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_writes_nothing(api, organization, body, field):
    assert_error(post(api, URL, body), 400, field)
    assert not Contact.objects.exists() and not Event.objects.exists()


def test_not_json_or_not_an_object_is_400(api):
    assert api.post(URL, "nope", content_type="application/json").status_code == 400
    assert_error(api.post(URL, [1, 2], format="json"), 400)


def test_a_foreign_owner_is_404_naming_it(api, organization, other_member):
    response = post(api, URL, {"email": "a@example.com", "owner_id": str(other_member.pk)})
    assert_error(response, 404, "owner_id", "not_found")
    assert not Contact.objects.exists()


def test_idempotency_key_replays_the_create(api, organization):
    headers = {"HTTP_IDEMPOTENCY_KEY": "contact-1"}
    first = post(api, URL, {"email": "k@example.com"}, **headers)
    second = post(api, URL, {"email": "k@example.com"}, **headers)
    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true" and second.json() == first.json()
    assert Event.objects.filter(organization=organization).count() == 1
    assert post(api, URL, {"email": "other@example.com"}, **headers).status_code == 422


def test_list_search_and_filters(api, organization, other_organization, member):
    f.contact(organization, name="Maya Chen", phone="+14155550142", tags=["trial"], owner=member)
    f.contact(organization, name="Jordan", email="jordan@example.com", lifecycle_stage="customer")
    f.contact(other_organization, name="Maya Elsewhere")

    def listed(**params):
        response = api.get(URL, params)
        assert response.status_code == 200, response.content
        return [c["name"] for c in response.json()["results"]]

    assert listed() == ["Jordan", "Maya Chen"]
    assert listed(search="maya") == ["Maya Chen"]
    assert listed(search="(415) 555") == ["Maya Chen"]
    assert listed(tag="trial") == ["Maya Chen"]
    assert listed(lifecycle_stage="customer") == ["Jordan"]
    assert listed(owner_id=str(member.pk)) == ["Maya Chen"]
    assert listed(created_after="2000-01-01T00:00:00Z", search="jordan") == ["Jordan"]
    assert api.get(URL, {"page_size": 1}).json()["count"] == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lifecycle_stage": "vip"}, "lifecycle_stage"),
        ({"owner_id": "x"}, "owner_id"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"search": "x" * 101}, "search"),
    ],
)
def test_bad_filters_are_400(api, params, field):
    assert_error(api.get(URL, params), 400, field)


def _queries(api, url):
    with CaptureQueriesContext(connection) as ctx:
        assert api.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_list_query_count_does_not_grow_with_the_page(api, organization, member):
    for i in range(12):
        contact = f.contact(organization, owner=member, tags=["t"], phone=f"+1415555{i:04d}")
        services.contact_set_consent(
            organization=organization, contact=contact, channel="sms", opted_in=True
        )
    api.get(URL)  # warm up (the API key's last-used stamp)
    assert _queries(api, f"{URL}?page_size=2") == _queries(api, f"{URL}?page_size=12")
    assert _queries(api, f"{URL}?page_size=12") <= 6


def test_get_and_404s(api, organization, other_organization):
    mine = f.contact(organization, email="m@example.com")
    theirs = f.contact(other_organization, email="t@example.com")
    assert api.get(f"{URL}{mine.pk}/").json()["email"] == "m@example.com"
    assert_error(api.get(f"{URL}{theirs.pk}/"), 404, code="not_found")
    assert api.get(f"{URL}not-a-uuid/").status_code == 404


def test_patch_fields_tags_custom_fields_and_consent(api, organization, member):
    contact = f.contact(
        organization, email="m@example.com", tags=["a"], custom_fields={"x": 1, "y": 2}
    )
    response = patch(
        api,
        f"{URL}{contact.pk}/",
        {
            "name": "Maya",
            "phone": "415 555 0100",
            "tags": ["member"],
            "custom_fields": {"y": None, "plan": "unlimited"},
            "owner_id": str(member.pk),
            "consent": {"sms": {"opted_in": False, "reason": "asked by phone"}},
        },
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["name"] == "Maya" and data["phone"] == "+14155550100"
    assert data["tags"] == ["member"] and data["custom_fields"] == {"x": 1, "plan": "unlimited"}
    assert data["owner_id"] == str(member.pk)
    assert data["consent"]["sms"]["status"] == "opted_out"
    assert data["consent"]["sms"]["reason"] == "asked by phone"
    assert [e.type for e in f.events(organization)][-2:] == ["contact.updated", "contact.opted_out"]
    cleared = patch(api, f"{URL}{contact.pk}/", {"owner_id": None, "phone": None})
    assert cleared.json()["owner_id"] is None and cleared.json()["phone"] is None


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"email": "bad"}, 400, "email"),
        ({"phone": "abc"}, 400, "phone"),
        ({"nickname": "x"}, 400, "nickname"),
        ({"tags": "x"}, 400, "tags"),
        ({"lifecycle_stage": "vip"}, 400, "lifecycle_stage"),
        ({"custom_fields": "x"}, 400, "custom_fields"),
    ],
)
def test_bad_patches_change_nothing(api, organization, body, status, field):
    contact = f.contact(organization, email="m@example.com")
    before = Event.objects.count()
    assert_error(patch(api, f"{URL}{contact.pk}/", {"name": "Changed", **body}), status, field)
    contact.refresh_from_db()
    assert contact.name != "Changed" and Event.objects.count() == before


def test_patch_conflicts(api, organization):
    f.contact(organization, email="taken@example.com")
    contact = f.contact(organization, email="m@example.com")
    assert_error(
        patch(api, f"{URL}{contact.pk}/", {"email": "taken@example.com"}),
        409,
        code="duplicate_contact",
    )
    survivor = f.contact(organization, email="s@example.com")
    services.contact_merge(organization=organization, survivor=survivor, duplicates=[contact])
    assert_error(patch(api, f"{URL}{contact.pk}/", {"name": "x"}), 409, code="contact_merged")
    assert api.get(f"{URL}{contact.pk}/").json()["merged_into_id"] == str(survivor.pk)


def test_notes(api, organization, other_organization):
    contact = f.contact(organization)
    deal = f.deal(organization, contact=contact)
    response = post(
        api, f"{URL}{contact.pk}/notes/", {"body": "Knee injury", "deal_id": str(deal.pk)}
    )
    assert response.status_code == 201, response.content
    assert response.json()["deal_id"] == str(deal.pk) and response.json()["body"] == "Knee injury"
    foreign_deal = f.deal(other_organization)
    assert_error(
        post(api, f"{URL}{contact.pk}/notes/", {"body": "x", "deal_id": str(foreign_deal.pk)}),
        404,
        "deal_id",
    )
    assert_error(post(api, f"{URL}{contact.pk}/notes/", {"body": " "}), 400, "body")
    assert_error(post(api, f"{URL}{contact.pk}/notes/", {}), 400, "body")
    assert Note.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@example.com", "custom_fields": {"a": "x\u0000y"}}, "custom_fields"),
        ({"email": "a@example.com", "custom_fields": {"a\u0000": 1}}, "custom_fields"),
        ({"email": "a@example.com", "na\u0000me": "x"}, "na\\x00me"),
        ({"email": "a@example.com", "name": "x\u0000"}, "name"),
    ],
)
def test_nul_characters_are_a_400_even_when_the_answer_is_stored(api, body, field):
    response = post(api, URL, body, HTTP_IDEMPOTENCY_KEY="nul")
    assert_error(response, 400, field)
    assert not Contact.objects.exists()


def test_nul_characters_in_lead_answers_are_a_400(api, organization):
    lead = f.lead(organization)
    response = api.patch(f"/api/v1/leads/{lead.pk}/", {"answers": {"a": "\u0000"}}, format="json")
    assert_error(response, 400, "answers")
