"""niche_context (cached, override resolution, invalidation), prompt_for, keywords, rendering."""

import pytest
from django.core.cache import cache

from apps.niches.cache import context_key
from apps.niches.models import Niche, PlatformTemplate
from apps.niches.selectors import (
    niche_context,
    opt_out_keyword_kind,
    opt_out_keywords,
    platform_template_for,
    prompt_for,
)
from apps.niches.services import prompt_override_clear
from apps.niches.templating import prompt_render
from tests.niches.factories import SAMPLE_VARIABLES, override

pytestmark = pytest.mark.django_db


def test_context_holds_the_niche_content(organization):
    context = niche_context(organization=organization)
    assert context.niche.slug == "fitness" and context.niche.qualify_threshold == 60
    assert context.agent_pack.agent_name == "Jess"
    assert list(context.prompts)[:2] == ["greeting", "qualify-timing"]
    assert len(context.prompts) == 7 and not any(p.is_override for p in context.prompts.values())
    assert [r.key for r in context.qualification_rules] == [
        "start-soon",
        "buying-intent",
        "engaged",
    ]
    keys = {r.key for r in context.compliance_rules}
    assert keys == {
        "fitness-no-medical-advice",
        "quiet-hours-sms-whatsapp",
        "opt-out-keywords",
        "consent-required-sms-whatsapp",
        "no-claiming-to-be-human",
    }
    assert {r.key for r in context.compliance_rules if r.is_global} == keys - {
        "fitness-no-medical-advice"
    }
    assert len(context.objections) == 4 and len(context.workflows) == 4
    quiet = context.compliance_rules_of("quiet_hours", channel="sms")
    assert quiet and quiet[0].config["start"] == "21:00"
    assert context.compliance_rules_of("quiet_hours", channel="email") == ()


def test_every_niche_context_carries_the_global_rules(organization):
    for niche in Niche.objects.all():
        organization.primary_niche = niche
        kinds = {r.kind for r in niche_context(organization=organization).compliance_rules}
        assert {"quiet_hours", "opt_out_keywords", "consent_required"} <= kinds


def test_cache_hit_costs_zero_queries(organization, django_assert_num_queries):
    first = niche_context(organization=organization)
    with django_assert_num_queries(0):
        again = niche_context(organization=organization)
        prompt_for(organization=organization, key="greeting")
        opt_out_keywords(organization=organization)
    assert again == first


def test_cache_miss_is_bounded(organization, django_assert_num_queries):
    with django_assert_num_queries(7):
        niche_context(organization=organization)


def test_override_replaces_the_shared_prompt_for_its_organization_only(organization, fitness_rival):
    niche_context(organization=organization)  # warm both caches
    niche_context(organization=fitness_rival)
    override(organization, "greeting", "Hey {first_name}, pulse-only greeting!")

    mine = niche_context(organization=organization).prompt("greeting")
    assert mine.is_override and mine.template == "Hey {first_name}, pulse-only greeting!"
    assert mine.variables == ("first_name",) and mine.based_on_version == 1
    assert mine.purpose == "greeting" and not mine.is_outdated
    theirs = niche_context(organization=fitness_rival).prompt("greeting")
    assert not theirs.is_override and "pulse-only" not in theirs.template


def test_override_clear_restores_the_shared_prompt(organization, django_assert_num_queries):
    override(organization)
    assert niche_context(organization=organization).prompt("greeting").is_override
    assert prompt_override_clear(organization=organization, key="greeting")
    with django_assert_num_queries(7):  # invalidated: rebuilt from the database
        greeting = niche_context(organization=organization).prompt("greeting")
    assert not greeting.is_override


def test_other_organizations_writes_do_not_evict_my_context(
    organization, fitness_rival, django_assert_num_queries
):
    niche_context(organization=organization)
    override(fitness_rival)
    with django_assert_num_queries(0):
        niche_context(organization=organization)


def test_changing_the_primary_niche_changes_the_context(organization):
    assert niche_context(organization=organization).niche.slug == "fitness"
    organization.primary_niche = Niche.objects.get(slug="med_spa")
    organization.save()
    context = niche_context(organization=organization)
    assert context.niche.slug == "med_spa" and "handoff-clinical" in context.prompts


def test_a_lost_cache_entry_is_rebuilt(organization):
    niche_context(organization=organization)
    cache.delete(context_key(organization.pk))
    assert niche_context(organization=organization).niche.slug == "fitness"


def test_works_without_the_cache(organization, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens on the discard port
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    assert niche_context(organization=organization).prompt("greeting").key == "greeting"
    override(organization)  # invalidation failures are logged, not raised
    assert niche_context(organization=organization).prompt("greeting").is_override


def test_prompt_for_by_key_purpose_and_channel(organization):
    assert prompt_for(organization=organization, key="no-show").purpose == "no_show"
    assert prompt_for(organization=organization, key="nope") is None
    assert prompt_for(organization=organization, purpose="booking").key == "booking-offer"
    assert prompt_for(organization=organization, purpose="price") is None
    override(
        organization, "reminder", "{first_name}: {booking_date} {booking_time}.", channel="sms"
    )
    assert prompt_for(organization=organization, purpose="reminder", channel="sms").is_override
    # An SMS-only override does not serve WhatsApp, and nothing else exists for reminders.
    assert prompt_for(organization=organization, purpose="reminder", channel="whatsapp") is None
    with pytest.raises(ValueError, match="exactly one"):
        prompt_for(organization=organization, key="greeting", purpose="greeting")
    with pytest.raises(ValueError, match="exactly one"):
        prompt_for(organization=organization)


def test_opt_out_keywords(organization):
    keywords = opt_out_keywords(organization=organization)
    assert set(keywords) == {"stop", "start", "help"}
    assert {"STOP", "UNSUBSCRIBE", "STOPALL", "CANCEL"} <= keywords["stop"]
    assert "START" in keywords["start"] and "HELP" in keywords["help"]
    assert all(isinstance(v, frozenset) for v in keywords.values())


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("STOP", "stop"),
        (" stop. ", "stop"),
        ("Unsubscribe!", "stop"),
        ("opt  out", "stop"),
        ("start", "start"),
        ("Help?", "help"),
        ("please stop texting me", None),
        ("Can I stop by tomorrow?", None),
        ("", None),
        ("yes", None),
    ],
)
def test_opt_out_keyword_kind_matches_whole_messages(organization, text, kind):
    assert opt_out_keyword_kind(organization=organization, text=text) == kind


def test_stop_always_works_even_if_the_rule_is_switched_off(organization):
    from apps.niches.models import ComplianceRule

    ComplianceRule.objects.filter(kind="opt_out_keywords").update(is_active=False)
    keywords = opt_out_keywords(organization=organization)
    assert {"STOP", "UNSUBSCRIBE"} <= keywords["stop"] and "START" in keywords["start"]


def test_platform_template_for_prefers_the_organizations_own(organization, other_organization):
    shared = platform_template_for(
        organization=organization, channel="whatsapp", purpose="reminder"
    )
    assert shared.organization_id is None and shared.name == "sb_appointment_reminder"
    PlatformTemplate.objects.create(
        organization=other_organization,
        channel="whatsapp",
        purpose="reminder",
        name="harbor_reminder",
        body="Hi {{1}}",
        variables=["first_name"],
    )
    mine = PlatformTemplate.objects.create(
        organization=organization,
        channel="whatsapp",
        purpose="reminder",
        name="pulse_reminder",
        body="Hi {{1}}",
        variables=["first_name"],
    )
    assert (
        platform_template_for(organization=organization, channel="whatsapp", purpose="reminder")
        == mine
    )
    assert (
        platform_template_for(organization=organization, channel="sms", purpose="reminder") is None
    )


# --- rendering ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "variables", "expected"),
    [
        ("Hi {first_name}, it's {agent_name}.", SAMPLE_VARIABLES, "Hi Dana, it's Jess."),
        ("Hi {first_name}, it's {agent_name}.", {"agent_name": "Jess"}, "Hi, it's Jess."),
        ("Thanks, {first_name}.", {}, "Thanks."),
        (
            "Welcome to X, {first_name}! You're in.",
            {"first_name": None},
            "Welcome to X! You're in.",
        ),
        ("Start, {first_name}: today?", {"first_name": "  "}, "Start: today?"),
        ("Hi {first_name} and welcome", {}, "Hi and welcome"),
        ("{first_name} welcome", {}, "welcome"),
        ("I have {slots}.", {"slots": ["Tue 6 PM", "Wed 7 AM"]}, "I have Tue 6 PM, Wed 7 AM."),
        ("Hi {first_name}", {"first_name": "Ana", "unused": "x"}, "Hi Ana"),
        ("Price: {{not a var}} {x}", {"x": 5}, "Price: {not a var} 5"),
        ("{first_name.__class__} {0} {}", {"first_name": "A"}, "{first_name.__class__} {0} {}"),
        ("Hi {first_name}", {"first_name": "{agent_name}"}, "Hi {agent_name}"),
        ("Unclosed {first_name", {"first_name": "A"}, "Unclosed {first_name"),
        ("Line one {first_name}\nLine two", {}, "Line one\nLine two"),
    ],
)
def test_prompt_render(template, variables, expected):
    assert prompt_render(template, variables) == expected


def test_prompt_render_accepts_no_variables():
    assert prompt_render("Hello {first_name}!") == "Hello!"
