"""`GET /api/v1/niches/` and `GET /api/v1/niches/<slug>/`."""

import pytest
from rest_framework.test import APIClient

from tests.factories import api_key_for
from tests.niches.factories import override
from tests.niches.test_content import EXPECTED_BY_NICHE, GLOBAL_COMPLIANCE_RULES

pytestmark = pytest.mark.django_db


@pytest.fixture
def rival_api(fitness_rival) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(fitness_rival)}")
    return client


def _warm(client):
    """First use of a key stamps last_used_at (one UPDATE); measure steady-state calls."""
    client.get("/api/v1/organization/")


def test_list_has_the_five_niches_with_counts(api):
    response = api.get("/api/v1/niches/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 5 and body["next"] is None
    counts = {item["slug"]: item["counts"] for item in body["results"]}
    assert counts == {
        slug: {
            "prompts": prompts,
            "workflows": workflows,
            "qualification_rules": rules,
            "compliance_rules": compliance + GLOBAL_COMPLIANCE_RULES,
            "objections": objections,
        }
        for slug, (prompts, workflows, rules, compliance, objections) in EXPECTED_BY_NICHE.items()
    }
    assert [i["slug"] for i in body["results"] if i["is_primary"]] == ["fitness"]
    fitness = next(i for i in body["results"] if i["slug"] == "fitness")
    assert fitness["name"] == "Fitness studio" and fitness["qualify_threshold"] == 60


def test_list_marks_each_organizations_own_niche(other_api):
    body = other_api.get("/api/v1/niches/").json()
    assert [i["slug"] for i in body["results"] if i["is_primary"]] == ["real_estate"]


def test_list_counts_do_not_include_overrides(api, organization):
    override(organization)
    body = api.get("/api/v1/niches/").json()
    fitness = next(i for i in body["results"] if i["slug"] == "fitness")
    assert fitness["counts"]["prompts"] == 7


def test_list_query_count_is_bounded(api, django_assert_num_queries):
    _warm(api)
    # API key lookup, COUNT for the page, the annotated list.
    with django_assert_num_queries(3):
        assert api.get("/api/v1/niches/").status_code == 200


def test_detail_has_the_niche_content(api):
    response = api.get("/api/v1/niches/med_spa/")
    assert response.status_code == 200
    body = response.json()
    assert body["slug"] == "med_spa" and body["is_primary"] is False
    assert body["agent_pack"]["agent_name"] == "Sofia"
    assert len(body["prompts"]) == 7 and len(body["workflows"]) == 4
    assert len(body["qualification_rules"]) == 3 and len(body["objections"]) == 4
    rules = {r["key"]: r for r in body["compliance_rules"]}
    assert len(rules) == 3 + GLOBAL_COMPLIANCE_RULES
    assert rules["med-spa-no-diagnosis"]["is_global"] is False
    assert rules["quiet-hours-sms-whatsapp"]["is_global"] is True
    assert rules["quiet-hours-sms-whatsapp"]["config"]["start"] == "21:00"
    system = next(p for p in body["prompts"] if p["key"] == "system")
    assert system["variables"] == ["agent_name", "business_name"]
    assert system["is_override"] is False and system["based_on_version"] is None
    no_show = next(w for w in body["workflows"] if w["key"] == "consultation-no-show")
    assert (
        no_show["trigger"] == "booking.no_show" and no_show["n8n_workflow"] == "no-show-follow-up"
    )
    assert no_show["steps"][0] == {"action": "send_prompt", "prompt": "no-show", "delay": "PT1H"}


def test_detail_applies_and_flags_this_organizations_override(api, rival_api, organization):
    override(organization, "greeting", "Hey {first_name}! pulse-only text.")
    mine = {p["key"]: p for p in api.get("/api/v1/niches/fitness/").json()["prompts"]}
    assert mine["greeting"]["is_override"] is True
    assert mine["greeting"]["template"] == "Hey {first_name}! pulse-only text."
    assert mine["greeting"]["variables"] == ["first_name"]
    assert mine["greeting"]["based_on_version"] == 1 and mine["greeting"]["is_outdated"] is False
    assert mine["reminder"]["is_override"] is False

    # Another organization of the same niche never sees it.
    response = rival_api.get("/api/v1/niches/fitness/")
    theirs = {p["key"]: p for p in response.json()["prompts"]}
    assert theirs["greeting"]["is_override"] is False
    assert "pulse-only" not in response.content.decode()


def test_unknown_slug_is_404_in_the_error_shape(api):
    for slug in ("bakery", "FITNESS", "fitness%20"):
        response = api.get(f"/api/v1/niches/{slug}/")
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["code"] == "unknown_niche" and "Unknown niche" in error["message"]


@pytest.mark.parametrize("url", ["/api/v1/niches/", "/api/v1/niches/fitness/"])
def test_requires_an_api_key(db, url):
    response = APIClient().get(url)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer sbk_nope_nope")
    assert bad.get(url).status_code == 401


def test_detail_query_count_is_bounded(api, organization, django_assert_num_queries):
    override(organization)
    _warm(api)
    # key, niche, prompts, agent pack, workflows, qualification rules, compliance, objections
    with django_assert_num_queries(8):
        assert api.get("/api/v1/niches/fitness/").status_code == 200


def test_schema_documents_both_endpoints(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/niches/" in paths and "/api/v1/niches/{slug}/" in paths
    detail = paths["/api/v1/niches/{slug}/"]["get"]
    assert "404" in detail["responses"]
    assert detail["responses"]["200"]["content"]["application/json"]["examples"]
