"""Lead scoring: each rule kind fires with an explanation; thresholds move new leads."""

import pytest

from apps.crm import services
from apps.crm.scoring import lead_score_compute
from tests.crm import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def niche(organization):
    niche = organization.primary_niche
    niche.qualify_threshold, niche.disqualify_threshold = 50, -20
    niche.save()
    return niche


def score(lead):
    return lead_score_compute(lead=lead)


def reasons_by_rule(result):
    return {r["rule"]: r for r in result.reasons}


@pytest.mark.parametrize(
    ("condition", "answer", "fires", "why"),
    [
        ({"in": ["Strength", "weight loss"]}, "strength", True, 'answer goal is "strength"'),
        ({"in": ["strength"]}, ["yoga", "Strength"], True, 'answer goal is "Strength"'),
        ({"in": ["strength"]}, "cardio", False, None),
        ({"equals": "Yes"}, "yes", True, 'answer goal equals "Yes"'),
        ({"equals": True}, True, True, "answer goal equals True"),
        ({"equals": True}, False, False, None),
        ({"min": 3000}, "$5,000", True, "answer goal 5000 ≥ 3000"),
        ({"min": 3000}, 2999, False, None),
        ({"max": 10}, "4", True, "answer goal 4 ≤ 10"),
        ({"min": 1, "max": 10}, 11, False, None),
        ({"min": 1}, "lots", False, None),
        ({"in": ["strength"]}, None, False, None),
    ],
)
def test_answer_rules(organization, niche, condition, answer, fires, why):
    rule = f.rule(organization, kind="answer", answer_field="goal", condition=condition, points=20)
    answers = {} if answer is None else {"goal": answer}
    lead = f.lead(organization, answers=answers)
    result = score(lead)
    if fires:
        assert reasons_by_rule(result)[rule.key] == {
            "rule": rule.key,
            "name": rule.name,
            "kind": "answer",
            "points": 20,
            "why": why,
        }
        assert result.score == 20
    else:
        assert result.reasons == [] and result.score == 0


def test_keyword_rules_read_inbound_messages_and_answers(organization, niche):
    rule = f.rule(
        organization, kind="keyword", condition={"keywords": ["ASAP", "this week"]}, points=15
    )
    contact = f.contact(organization)
    lead = f.lead(organization, contact=contact)
    f.message(contact, "we can do it asap", direction="out")  # outbound never counts
    f.message(contact, "Hi! Cannot wait")
    assert score(lead).reasons == []
    f.message(contact, "Could I start This Week please?")
    why = reasons_by_rule(score(lead))[rule.key]["why"]
    assert why == 'keyword "this week" in a message: "Could I start This Week please?"'

    other = f.lead(organization, answers={"timeline": "asap"})
    assert reasons_by_rule(score(other))[rule.key]["why"] == 'keyword "ASAP" in answer timeline'


def test_keywords_match_whole_words_only(organization, niche):
    f.rule(organization, kind="keyword", condition={"keywords": ["cancel"]}, points=-30)
    contact = f.contact(organization)
    lead = f.lead(organization, contact=contact)
    f.message(contact, "what is your cancellation policy?")
    assert score(lead).score == 0
    f.message(contact, "ok I want to cancel.")
    assert score(lead).score == -30


def test_source_rules(organization, niche):
    rule = f.rule(
        organization, kind="source", condition={"sources": ["referral", "Google"]}, points=25
    )
    assert reasons_by_rule(score(f.lead(organization, source="google")))[rule.key]["why"] == (
        'source is "google"'
    )
    assert score(f.lead(organization, source="instagram")).score == 0
    assert score(f.lead(organization)).score == 0


def test_engagement_rules(organization, niche):
    chatty = f.rule(
        organization, kind="engagement", condition={"min_inbound_messages": 2}, points=10
    )
    booked = f.rule(organization, kind="engagement", condition={"has_booking": True}, points=30)
    both = f.rule(
        organization,
        kind="engagement",
        condition={"min_inbound_messages": 1, "has_booking": True},
        points=5,
    )
    contact = f.contact(organization)
    lead = f.lead(organization, contact=contact)
    assert score(lead).reasons == []
    f.message(contact, "one")
    f.message(contact, "two")
    assert set(reasons_by_rule(score(lead))) == {chatty.key}
    assert reasons_by_rule(score(lead))[chatty.key]["why"] == "2 inbound messages (≥ 2)"
    f.booking(contact, status="cancelled")
    assert booked.key not in reasons_by_rule(score(lead))
    f.booking(contact)
    result = score(lead)
    assert set(reasons_by_rule(result)) == {chatty.key, booked.key, both.key}
    assert reasons_by_rule(result)[both.key]["why"] == "2 inbound messages (≥ 1) and has a booking"
    assert result.score == 45


def test_malformed_and_inactive_rules_never_fire(organization, niche):
    f.rule(
        organization, kind="answer", answer_field="goal", condition={"between": [1, 2]}, points=50
    )
    f.rule(organization, kind="engagement", condition={"min_inbound_messages": "many"}, points=50)
    f.rule(organization, kind="keyword", condition={}, points=50)
    f.rule(organization, kind="unknown", condition={}, points=50)
    inactive = f.rule(organization, kind="source", condition={"sources": ["x"]}, points=50)
    inactive.is_active = False
    inactive.save()
    assert score(f.lead(organization, source="x", answers={"goal": 1})).score == 0


def test_a_new_lead_reaching_the_threshold_is_qualified_with_reasons(organization, niche):
    f.rule(organization, kind="source", condition={"sources": ["referral"]}, points=30)
    f.rule(organization, kind="answer", answer_field="start", condition={"in": ["now"]}, points=30)
    lead = f.lead(organization, source="referral", answers={"start": "now"})
    assert lead.status == "qualified" and lead.score == 60 and lead.qualified_at
    assert len(lead.score_reasons) == 2
    assert f.event_types(organization)[-2:] == ["lead.created", "lead.qualified"]
    qualified = f.events(organization, "lead.qualified")[0]
    assert qualified.data["score"] == 60 and len(qualified.data["reasons"]) == 2


def test_a_lead_at_the_disqualify_threshold_is_disqualified(organization, niche):
    f.rule(organization, kind="answer", answer_field="budget", condition={"max": 0}, points=-20)
    lead = f.lead(organization, answers={"budget": 0})
    assert lead.status == "disqualified" and "-20" in lead.disqualified_reason
    assert len(f.events(organization, "lead.disqualified")) == 1


def test_rescore_after_new_messages_qualifies_once(organization, niche):
    f.rule(organization, kind="keyword", condition={"keywords": ["sign me up"]}, points=60)
    contact = f.contact(organization)
    lead = f.lead(organization, contact=contact)
    assert lead.status == "new"
    f.message(contact, "ok sign me up!")
    lead = services.lead_rescore(lead=lead)
    assert lead.status == "qualified" and lead.score == 60
    services.lead_rescore(lead=lead)
    services.contact_leads_rescore(organization=organization, contact=contact)
    assert len(f.events(organization, "lead.qualified")) == 1


def test_rescore_never_moves_leads_a_person_decided(organization, niche):
    f.rule(organization, kind="source", condition={"sources": ["ads"]}, points=-40)
    lead = f.lead(organization)
    services.lead_qualify(organization=organization, lead=lead)
    lead = services.lead_update(organization=organization, lead=lead, data={"source": "ads"})
    assert lead.status == "qualified" and lead.score == -40
    assert not f.events(organization, "lead.disqualified")


def test_updating_answers_rescores(organization, niche):
    rule = f.rule(
        organization, kind="answer", answer_field="goal", condition={"in": ["strength"]}, points=55
    )
    lead = f.lead(organization, answers={"goal": "unsure", "level": "new"})
    assert lead.status == "new"
    lead = services.lead_update(
        organization=organization, lead=lead, data={"answers": {"goal": "strength", "level": None}}
    )
    assert lead.answers == {"goal": "strength"}
    assert lead.status == "qualified"
    assert lead.score_reasons[0]["rule"] == rule.key
