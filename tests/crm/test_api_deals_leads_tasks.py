"""`/api/v1/` deals, leads, tasks and pipelines."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.crm import services
from apps.crm.models import Deal, Lead, Stage, Task
from apps.events.models import Event
from tests.crm import factories as f
from tests.crm.test_api_contacts import assert_error, post

pytestmark = pytest.mark.django_db


def _queries(api, url):
    api.get(url)  # warm up: the API key's last-used stamp is written once a minute
    with CaptureQueriesContext(connection) as ctx:
        assert api.get(url).status_code == 200
    return len(ctx.captured_queries)


# --- pipelines ------------------------------------------------------------------------------


def test_pipelines_list_the_default_with_ordered_stages(api, organization):
    response = api.get("/api/v1/pipelines/")
    assert response.status_code == 200
    [pipeline] = response.json()["results"]
    assert (
        pipeline["name"] == "Memberships"
        and pipeline["is_default"]
        and pipeline["niche"] == "fitness"
    )
    assert [s["name"] for s in pipeline["stages"]][:2] == ["New lead", "Trial booked"]
    assert [s["is_won"] for s in pipeline["stages"]][-2:] == [True, False]
    assert api.get("/api/v1/pipelines/").json()["count"] == 1


# --- deals ----------------------------------------------------------------------------------


def test_create_deal_in_the_default_pipeline_by_stage_name(api, organization):
    contact = f.contact(organization, name="Maya")
    response = post(
        api,
        "/api/v1/deals/",
        {
            "contact_id": str(contact.pk),
            "amount": "149.00",
            "stage": "trial booked",
            "expected_close_date": "2026-03-20",
        },
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["title"] == "Maya — new deal" and data["stage"]["name"] == "Trial booked"
    assert data["amount"] == "149.00" and data["currency"] == "USD" and data["status"] == "open"
    assert data["stage_history"][0]["to_stage"] == "Trial booked"
    assert data["stage_history"][0]["actor"].startswith("api key")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, "title"),
        ({"title": "x", "amount": "-5"}, 400, "amount"),
        ({"title": "x", "amount": "1e20"}, 400, "amount"),
        ({"title": "x", "currency": "dollars"}, 400, "currency"),
        ({"title": "x", "stage": "Nowhere"}, 404, "stage"),
        ({"title": "x", "stage_id": "00000000-0000-0000-0000-000000000000"}, 404, "stage_id"),
        (
            {"title": "x", "stage": "New lead", "stage_id": "00000000-0000-0000-0000-000000000000"},
            400,
            "stage",
        ),
        ({"title": "x", "contact_id": "00000000-0000-0000-0000-000000000000"}, 404, "contact_id"),
        ({"title": "x", "expected_close_date": "soon"}, 400, "expected_close_date"),
        ({"title": "x", "colour": "red"}, 400, "colour"),
    ],
)
def test_bad_deals_are_4xx_and_write_nothing(api, organization, body, status, field):
    assert_error(post(api, "/api/v1/deals/", body), status, field)
    assert not Deal.objects.exists() and not Event.objects.filter(type="deal.created").exists()


def test_move_stage_by_name_and_by_id_and_win(api, organization):
    contact = f.contact(organization)
    deal = f.deal(organization, contact=contact)
    url = f"/api/v1/deals/{deal.pk}/stage/"
    moved = post(api, url, {"stage": "Offer made"})
    assert moved.status_code == 200, moved.content
    assert moved.json()["stage"]["name"] == "Offer made"
    member_stage = Stage.objects.get(pipeline=deal.pipeline, name="Member")
    won = post(api, url, {"stage_id": str(member_stage.pk)}).json()
    assert won["status"] == "won" and won["closed_at"]
    assert [h["to_stage"] for h in won["stage_history"]] == ["New lead", "Offer made", "Member"]
    assert {e.type for e in f.events(organization)} >= {"deal.stage_changed", "deal.won"}
    detail = api.get(f"/api/v1/deals/{deal.pk}/").json()
    assert detail["stage_history"][-1]["actor"].startswith("api key")


def test_move_stage_errors(api, organization, other_organization):
    deal = f.deal(organization)
    url = f"/api/v1/deals/{deal.pk}/stage/"
    other = services.pipeline_create(
        organization=organization, name="B2B", stages=[{"name": "Pitch"}]
    )
    assert_error(post(api, url, {}), 400, "stage_id")
    assert_error(post(api, url, {"stage": "Pitch"}), 404, "stage")
    assert_error(post(api, url, {"stage_id": str(other.stages.get().pk)}), 404, "stage_id")
    foreign = services.pipeline_ensure_default(organization=other_organization).stages.first()
    assert_error(post(api, url, {"stage_id": str(foreign.pk)}), 404, "stage_id")
    deal.refresh_from_db()
    assert deal.stage.name == "New lead" and deal.stage_changes.count() == 1


def test_deal_list_filters_and_query_count(api, organization):
    contact = f.contact(organization)
    for i in range(8):
        f.deal(organization, contact=contact if i % 2 else None, amount=i)
    won = f.deal(organization)
    services.deal_move_stage(
        organization=organization,
        deal=won,
        stage=Stage.objects.get(pipeline=won.pipeline, name="Member"),
    )
    assert api.get("/api/v1/deals/", {"status": "won"}).json()["count"] == 1
    assert api.get("/api/v1/deals/", {"contact_id": str(contact.pk)}).json()["count"] == 4
    assert_error(api.get("/api/v1/deals/", {"status": "maybe"}), 400, "status")
    assert _queries(api, "/api/v1/deals/?page_size=2") == _queries(
        api, "/api/v1/deals/?page_size=9"
    )


# --- leads ----------------------------------------------------------------------------------


def test_lead_flow_score_qualify_convert(api, organization):
    f.rule(
        organization, kind="answer", answer_field="goal", condition={"in": ["strength"]}, points=30
    )
    lead = f.lead(organization, source="instagram")
    url = f"/api/v1/leads/{lead.pk}/"
    assert api.get(url).json()["status"] == "new"
    patched = api.patch(url, {"answers": {"goal": "strength"}}, format="json").json()
    assert (
        patched["score"] == 30 and patched["score_reasons"][0]["why"] == 'answer goal is "strength"'
    )
    qualified = post(api, f"{url}qualify/", {"reason": "Budget confirmed"})
    assert qualified.status_code == 200 and qualified.json()["status"] == "qualified"
    converted = post(
        api, f"{url}convert/", {"title": "Annual", "amount": "1490", "stage": "Offer made"}
    )
    assert converted.status_code == 201, converted.content
    body = converted.json()
    assert body["lead"]["status"] == "converted" and body["lead"]["deal_id"] == body["deal"]["id"]
    assert body["deal"]["stage"]["name"] == "Offer made" and body["deal"]["amount"] == "1490.00"
    assert_error(post(api, f"{url}convert/", {}), 409, code="lead_converted")
    assert_error(post(api, f"{url}disqualify/", {"reason": "x"}), 409, code="lead_converted")


def test_disqualify_needs_a_reason(api, organization):
    lead = f.lead(organization)
    url = f"/api/v1/leads/{lead.pk}/disqualify/"
    assert_error(post(api, url, {}), 400, "reason")
    assert_error(post(api, url, {"reason": "x" * 201}), 400, "reason")
    response = post(api, url, {"reason": "Outside our area"})
    assert response.json()["status"] == "disqualified"
    assert response.json()["disqualified_reason"] == "Outside our area"


def test_lead_list_filters_and_query_count(api, organization):
    for i in range(6):
        f.lead(organization, source="instagram" if i % 2 else "walk-in")
    assert api.get("/api/v1/leads/", {"source": "instagram"}).json()["count"] == 3
    assert api.get("/api/v1/leads/", {"status": "new", "min_score": 0}).json()["count"] == 6
    assert_error(api.get("/api/v1/leads/", {"min_score": "high"}), 400, "min_score")
    assert _queries(api, "/api/v1/leads/?page_size=1") == _queries(
        api, "/api/v1/leads/?page_size=6"
    )


def test_convert_validation_writes_nothing(api, organization):
    lead = f.lead(organization)
    url = f"/api/v1/leads/{lead.pk}/convert/"
    assert_error(post(api, url, {"amount": "-1"}), 400, "amount")
    assert_error(post(api, url, {"stage": "Nowhere"}), 404, "stage")
    assert_error(
        post(api, url, {"pipeline_id": "00000000-0000-0000-0000-000000000000"}), 404, "pipeline_id"
    )
    lead.refresh_from_db()
    assert lead.status == "new" and not Deal.objects.exists()


# --- tasks ----------------------------------------------------------------------------------


def test_task_create_list_complete(api, organization, member):
    contact = f.contact(organization)
    response = post(
        api,
        "/api/v1/tasks/",
        {
            "title": "Call Maya",
            "due_at": "2026-03-03T17:00:00Z",
            "contact_id": str(contact.pk),
            "assignee_id": str(member.pk),
        },
    )
    assert response.status_code == 201, response.content
    task = response.json()
    assert (
        task["status"] == "open"
        and task["source"] == "api"
        and task["assignee_id"] == str(member.pk)
    )
    listed = api.get("/api/v1/tasks/", {"status": "open", "assignee_id": str(member.pk)}).json()
    assert [t["id"] for t in listed["results"]] == [task["id"]]
    done = post(api, f"/api/v1/tasks/{task['id']}/complete/", {})
    assert done.status_code == 200 and done.json()["status"] == "done"
    post(api, f"/api/v1/tasks/{task['id']}/complete/", {})
    assert len(f.events(organization, "task.completed")) == 1
    assert api.get(f"/api/v1/tasks/{task['id']}/").json()["completed_at"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, "title"),
        ({"title": "x", "due_at": "tomorrow"}, 400, "due_at"),
        ({"title": "x", "contact_id": "00000000-0000-0000-0000-000000000000"}, 404, "contact_id"),
        ({"title": "x", "assignee_id": "00000000-0000-0000-0000-000000000000"}, 404, "assignee_id"),
        ({"title": "x", "priority": "high"}, 400, "priority"),
    ],
)
def test_bad_tasks_write_nothing(api, organization, body, status, field):
    assert_error(post(api, "/api/v1/tasks/", body), status, field)
    assert not Task.objects.exists()


def test_task_list_query_count(api, organization, member):
    contact = f.contact(organization)
    for i in range(7):
        services.task_create(
            organization=organization, title=f"t{i}", contact=contact, assignee=member
        )
    assert _queries(api, "/api/v1/tasks/?page_size=1") == _queries(
        api, "/api/v1/tasks/?page_size=7"
    )


def test_lead_counts_only_the_organizations_rows(api, organization, other_organization):
    f.lead(other_organization)
    assert api.get("/api/v1/leads/").json()["count"] == 0
    assert Lead.objects.count() == 1
