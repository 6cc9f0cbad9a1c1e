"""The seed content: exact counts, internal consistency, and the compliance it must carry."""

import re
from collections import Counter

import pytest
from django.db.models import Q

from apps.niches import content
from apps.niches.content.common import (
    STEP_ACTIONS,
    STEP_COMMON_PARAMS,
    STEP_CONDITIONS,
    VARIABLES,
)
from apps.niches.models import (
    AgentPack,
    ComplianceRule,
    Niche,
    Objection,
    PlatformTemplate,
    Prompt,
    QualificationRule,
    Workflow,
    WorkflowTemplate,
)
from apps.niches.templating import prompt_render, template_errors, template_variables
from tests.niches.factories import SAMPLE_VARIABLES

EXPECTED_TOTALS = {
    Niche: 5,
    Prompt: 32,
    Workflow: 18,
    QualificationRule: 13,
    ComplianceRule: 12,
    Objection: 17,
}
# prompts, workflows, qualification rules, niche-specific compliance rules, objections
EXPECTED_BY_NICHE = {
    "fitness": (7, 4, 3, 1, 4),
    "med_spa": (7, 4, 3, 3, 4),
    "real_estate": (6, 4, 3, 2, 3),
    "consultant": (6, 3, 2, 1, 3),
    "local_service": (6, 3, 2, 1, 3),
}
GLOBAL_COMPLIANCE_RULES = 4

CUSTOMER_FACING_PROMPTS = [p for p in content.PROMPTS if p["purpose"] != "system"]
DURATION = re.compile(r"^P(?!$)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$")


# --- counts (the database as the migrations left it) ------------------------------------------
@pytest.mark.django_db
def test_exact_totals():
    assert {model: model.objects.count() for model in EXPECTED_TOTALS} == EXPECTED_TOTALS
    assert Prompt.objects.filter(organization__isnull=False).count() == 0


@pytest.mark.django_db
def test_exact_breakdown_per_niche():
    breakdown = {
        niche.slug: (
            niche.prompts.count(),
            niche.workflows.count(),
            niche.qualification_rules.count(),
            niche.compliance_rules.count(),
            niche.objections.count(),
        )
        for niche in Niche.objects.all()
    }
    assert breakdown == EXPECTED_BY_NICHE
    assert ComplianceRule.objects.filter(niche__isnull=True).count() == GLOBAL_COMPLIANCE_RULES


@pytest.mark.django_db
def test_one_default_agent_pack_per_niche_bundling_its_content():
    for niche in Niche.objects.all():
        pack = AgentPack.objects.get(niche=niche, is_default=True)
        assert pack.agent_name and pack.persona and pack.tone
        assert set(pack.prompts.all()) == set(niche.prompts.all())
        assert set(pack.objections.all()) == set(niche.objections.all())
        assert set(pack.qualification_rules.all()) == set(niche.qualification_rules.all())
        assert set(pack.compliance_rules.all()) == set(
            ComplianceRule.objects.filter(Q(niche=niche) | Q(niche__isnull=True))
        )
    assert AgentPack.objects.count() == 5


@pytest.mark.django_db
def test_workflow_templates_are_the_four_shipped_n8n_workflows():
    templates = {t.key: t for t in WorkflowTemplate.objects.prefetch_related("niches")}
    assert {k: (t.trigger_event, t.file) for k, t in templates.items()} == {
        "lead-qualify-book": ("lead.created", "n8n/workflows/lead-qualify-book.json"),
        "message-received-ai-reply": (
            "message.received",
            "n8n/workflows/message-received-ai-reply.json",
        ),
        "no-show-follow-up": ("booking.no_show", "n8n/workflows/no-show-follow-up.json"),
        "deal-won-onboarding": ("deal.won", "n8n/workflows/deal-won-onboarding.json"),
    }
    # Linked to exactly the niches whose workflows use them.
    for key, template in templates.items():
        users = {w.niche.slug for w in Workflow.objects.filter(n8n_workflow=key)}
        assert {n.slug for n in template.niches.all()} == users
    assert len(templates["lead-qualify-book"].niches.all()) == 5


@pytest.mark.django_db
def test_shared_whatsapp_templates_cover_out_of_window_purposes():
    shared = PlatformTemplate.objects.filter(organization__isnull=True, channel="whatsapp")
    assert {"follow_up", "reminder", "no_show", "reactivation"} <= set(
        shared.values_list("purpose", flat=True)
    )
    for template in shared:
        template.full_clean()
        assert set(template.variables) <= set(VARIABLES)
        assert re.fullmatch(r"[a-z0-9_]+", template.name)  # WhatsApp template name rules
        if template.category == "marketing":
            assert "STOP" in template.body


# --- prompts and templates --------------------------------------------------------------------
@pytest.mark.parametrize("prompt", content.PROMPTS, ids=lambda p: f"{p['niche']}/{p['key']}")
def test_prompt_variables_are_listed_and_consistent(prompt):
    used = template_variables(prompt["template"])
    assert len(prompt["variables"]) == len(set(prompt["variables"])), "listed twice"
    assert sorted(prompt["variables"]) == sorted(used)
    assert set(used) <= set(VARIABLES), "not in the documented vocabulary"
    assert template_errors(prompt["template"]) == []


@pytest.mark.parametrize(
    "text",
    [p["template"] for p in CUSTOMER_FACING_PROMPTS]
    + [o["response_template"] for o in content.OBJECTIONS],
)
def test_customer_facing_text_renders_cleanly(text):
    assert set(template_variables(text)) <= set(VARIABLES)
    assert template_errors(text) == []
    full = prompt_render(text, SAMPLE_VARIABLES)
    assert "{" not in full and "}" not in full
    without_name = prompt_render(text, {**SAMPLE_VARIABLES, "first_name": ""})
    for smell in ("  ", " ,", " .", " !", " ?", " :", ",.", ",!", ",:", ", ,"):
        assert smell not in without_name, (smell, without_name)
    # SMS-friendly: plain ASCII (emoji and curly quotes force UCS-2: 70 characters a segment).
    assert all(32 <= ord(ch) < 127 or ch == "\n" for ch in text), text


def test_prompt_keys_unique_per_niche_and_purposes_cover_the_sales_flow():
    keys = Counter((p["niche"], p["key"]) for p in content.PROMPTS)
    assert max(keys.values()) == 1
    for niche in EXPECTED_BY_NICHE:
        purposes = {p["purpose"] for p in content.PROMPTS if p["niche"] == niche}
        assert {"system", "greeting", "qualify", "booking"} <= purposes
        booking = [p for p in content.PROMPTS if p["niche"] == niche and p["purpose"] == "booking"]
        assert all("slots" in p["variables"] for p in booking)


# --- workflows and qualification rules --------------------------------------------------------
@pytest.mark.parametrize("workflow", content.WORKFLOWS, ids=lambda w: f"{w['niche']}/{w['key']}")
def test_workflow_steps_are_executable(workflow):
    niche = workflow["niche"]
    prompts = {p["key"] for p in content.PROMPTS if p["niche"] == niche}
    rules = {r["key"] for r in content.QUALIFICATION_RULES if r["niche"] == niche}
    templates = {t["key"]: t for t in content.WORKFLOW_TEMPLATES}
    purposes = {t["purpose"] for t in content.PLATFORM_TEMPLATES}
    assert workflow["steps"]
    for step in workflow["steps"]:
        spec = STEP_ACTIONS[step["action"]]
        params = set(step) - STEP_COMMON_PARAMS
        assert spec["required"] <= params <= spec["required"] | spec["optional"], step
        if "prompt" in step:
            assert step["prompt"] in prompts, step
        for rule in step.get("rules", []):
            assert rule in rules, step
        for name in ("delay", "timeout", "due"):
            if name in step:
                assert DURATION.match(step[name]), step
        if "when" in step:
            assert step["when"] in STEP_CONDITIONS, step
        if "template_purpose" in step:
            assert step["template_purpose"] in purposes, step
    if workflow["n8n_workflow"]:
        assert templates[workflow["n8n_workflow"]]["trigger_event"] == workflow["trigger"]


def test_every_niche_runs_lead_and_reply_workflows():
    for niche in EXPECTED_BY_NICHE:
        used = {w["n8n_workflow"] for w in content.WORKFLOWS if w["niche"] == niche}
        assert {"lead-qualify-book", "message-received-ai-reply"} <= used


@pytest.mark.parametrize("rule", content.QUALIFICATION_RULES, ids=lambda r: r["key"])
def test_qualification_rule_shapes(rule):
    condition = rule["condition"]
    shape = {
        "answer": "in",
        "keyword": "keywords",
        "source": "sources",
        "engagement": "min_inbound_messages",
    }[rule["kind"]]
    assert set(condition) == {shape}
    if rule["kind"] == "answer":
        assert rule["question"].endswith("?") and rule["answer_field"]
        assert all(value == value.lower() for value in condition["in"])


def test_each_niche_can_reach_its_qualify_threshold():
    for module in content.NICHE_MODULES:
        best = sum(max(r["points"], 0) for r in module.QUALIFICATION_RULES)
        assert best >= module.NICHE["qualify_threshold"], module.NICHE["slug"]


# --- compliance -------------------------------------------------------------------------------
@pytest.mark.django_db
def test_every_seeded_rule_passes_model_validation():
    for rule in ComplianceRule.objects.all():
        rule.full_clean()


def _rule(key):
    return next(r for r in content.COMPLIANCE_RULES if r["key"] == key)


def _matches(key, text) -> bool:
    return re.search(_rule(key)["pattern"], text, re.IGNORECASE) is not None


@pytest.mark.parametrize(
    ("key", "bad", "fine"),
    [
        (
            "med-spa-no-guaranteed-results",
            [
                "We guarantee you'll love the results!",
                "Guaranteed results after one session.",
                "Laser hair removal is permanent and painless.",
                "It's completely risk-free with no downtime.",
                "This will make you look 10 years younger.",
                "100% safe, no side effects.",
            ],
            ["We can't guarantee outcomes; individual results vary.", "Results vary."],
        ),
        (
            "med-spa-no-diagnosis",
            [
                "Sounds like you have rosacea.",
                "It looks like melasma from your photo.",
                "That's totally safe for you while pregnant.",
                "You need 20 units for your forehead.",
                "Just stop taking your blood thinners a week before.",
            ],
            ["Your provider will assess your skin at the consultation."],
        ),
        (
            "real-estate-no-steering",
            [
                "It's a very safe neighborhood.",
                "Great family-friendly area!",
                "This home is perfect for young professionals.",
                "You'd fit in well there.",
                "The street is mostly young families.",
                "It's in a good school district.",
            ],
            [
                "The home has three bedrooms and a fenced yard.",
                "You can check the school district's website for school information.",
                "Lots of people love this layout.",
                "The sofa will fit in the living room.",
            ],
        ),
        (
            "real-estate-no-discriminatory-language",
            [
                "The owner prefers no kids.",
                "Adults only building.",
                "No Section 8, sorry.",
                "It's a Christian community.",
                "English-speaking only, please.",
                "Not suitable for wheelchair users.",
            ],
            ["The unit has a step-free entrance and a lift."],
        ),
        (
            "fitness-no-medical-advice",
            [
                "Yoga will fix your back pain.",
                "It's safe for your knee injury.",
                "You can stop taking your meds once you're fit.",
                "You'll lose 10 lbs in two weeks!",
                "Guaranteed weight loss in 30 days.",
            ],
            ["Please check with your doctor first; the coach will adapt the class for you."],
        ),
        (
            "consultant-no-guaranteed-outcomes",
            [
                "We guarantee a 3x ROI.",
                "We'll double your revenue in 90 days.",
                "Guaranteed leads every week.",
                "This is how our clients make $10k a month.",
            ],
            ["We can't promise outcomes; the consultant will look at what's realistic."],
        ),
        (
            "no-claiming-to-be-human",
            ["I'm a real person, promise!", "I am not a bot.", "I'm human, haha."],
            ["I'm the virtual assistant of Pulse Fitness."],
        ),
    ],
)
def test_forbidden_phrase_rules_catch_the_bad_and_spare_the_fine(key, bad, fine):
    assert _rule(key)["kind"] == "forbidden_phrase" and _rule(key)["severity"] == "block"
    for text in bad:
        assert _matches(key, text), text
    for text in fine:
        assert not _matches(key, text), text


def _applicable_rules(niche, kind):
    return [
        r for r in content.COMPLIANCE_RULES if r["kind"] == kind and r["niche"] in (None, niche)
    ]


def _customer_texts():
    for prompt in CUSTOMER_FACING_PROMPTS:
        yield prompt["niche"], prompt["template"]
    for objection in content.OBJECTIONS:
        yield objection["niche"], objection["response_template"]
    for template in content.PLATFORM_TEMPLATES:
        for niche in EXPECTED_BY_NICHE:
            yield niche, template["body"]


def test_seed_content_obeys_its_own_compliance_rules():
    for niche, text in _customer_texts():
        for rule in _applicable_rules(niche, "forbidden_phrase"):
            match = re.search(rule["pattern"], text, re.IGNORECASE)
            assert match is None, (rule["key"], match and match.group(0), text)
        for rule in _applicable_rules(niche, "required_disclaimer"):
            if re.search(rule["pattern"], text, re.IGNORECASE):
                assert rule["replacement"] in text, (rule["key"], text)


def test_required_disclaimers():
    results = _rule("med-spa-results-disclaimer")
    assert results["kind"] == "required_disclaimer" and results["severity"] == "rewrite"
    assert re.search(results["pattern"], "How long do the results last?", re.IGNORECASE)
    assert "results vary" in results["replacement"].lower()
    estimate = _rule("local-service-estimate-disclaimer")
    assert re.search(estimate["pattern"], "Usually around $150 for that.", re.IGNORECASE)
    assert not re.search(estimate["pattern"], "We can come on Tuesday.", re.IGNORECASE)


def test_every_niche_gets_quiet_hours_keywords_and_consent():
    global_rules = {r["kind"]: r for r in content.COMPLIANCE_RULES if r["niche"] is None}
    quiet = global_rules["quiet_hours"]
    assert quiet["config"]["start"] == "21:00" and quiet["config"]["end"] == "08:00"
    assert set(quiet["channels"]) == {"sms", "whatsapp"}
    keywords = global_rules["opt_out_keywords"]["config"]
    assert {"STOP", "UNSUBSCRIBE"} <= set(keywords["stop"])
    assert "START" in keywords["start"] and "HELP" in keywords["help"]
    assert not set(keywords["stop"]) & set(keywords["start"])
    consent = global_rules["consent_required"]["config"]
    assert set(consent["channels"]) == {"sms", "whatsapp"} and consent["requires"] == "opted_in"


@pytest.mark.django_db
def test_seed_rows_only_use_existing_fields():
    """A typo in a content file would otherwise be skipped silently by the loader."""
    pairs = [
        (Niche, content.NICHES),
        (Prompt, content.PROMPTS),
        (Workflow, content.WORKFLOWS),
        (QualificationRule, content.QUALIFICATION_RULES),
        (ComplianceRule, content.COMPLIANCE_RULES),
        (Objection, content.OBJECTIONS),
        (AgentPack, content.AGENT_PACKS),
        (WorkflowTemplate, content.WORKFLOW_TEMPLATES),
        (PlatformTemplate, content.PLATFORM_TEMPLATES),
    ]
    for model, rows in pairs:
        names = {f.name for f in model._meta.concrete_fields}
        for row in rows:
            assert set(row) <= names, (model.__name__, set(row) - names)
