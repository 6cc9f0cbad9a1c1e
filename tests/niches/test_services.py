"""Prompt override services: validation against the shared prompt, atomic upsert, clear."""

import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.errors import ValidationFailed
from apps.niches.models import Niche, Prompt
from apps.niches.selectors import niche_context
from apps.niches.services import prompt_override_clear, prompt_override_set, prompt_shared_update

pytestmark = pytest.mark.django_db


def test_set_creates_an_override_written_against_the_shared_version(organization):
    prompt = prompt_override_set(
        organization=organization,
        key="booking-offer",
        template="Come try a class! Open spots: {slots}.",
    )
    assert prompt.organization == organization and prompt.niche.slug == "fitness"
    assert prompt.purpose == "booking" and prompt.variables == ["slots"]
    assert prompt.version == 1 and prompt.based_on_version == 1
    shared = Prompt.objects.get(niche__slug="fitness", key="booking-offer", organization=None)
    assert "free trial class" in shared.template  # the shared row is never edited


def test_set_again_updates_in_place_and_bumps_the_override_version(organization):
    first = prompt_override_set(organization=organization, key="greeting", template="Hi!")
    second = prompt_override_set(
        organization=organization, key="greeting", template="Hi {first_name}!", channel="sms"
    )
    assert second.pk == first.pk and second.version == 2 and second.channel == "sms"
    assert Prompt.objects.filter(organization=organization).count() == 1


def test_setting_the_same_override_twice_writes_nothing(organization):
    prompt_override_set(organization=organization, key="greeting", template="Hi {first_name}!")
    with CaptureQueriesContext(connection) as queries:
        prompt_override_set(organization=organization, key="greeting", template="Hi {first_name}!")
    assert not [q for q in queries.captured_queries if q["sql"].startswith(("UPDATE", "INSERT"))]


def test_override_in_another_niche_than_the_primary(organization):
    med_spa = Niche.objects.get(slug="med_spa")
    prompt = prompt_override_set(
        organization=organization, niche=med_spa, key="greeting", template="Hello!"
    )
    assert prompt.niche == med_spa
    assert not niche_context(organization=organization).prompt("greeting").is_override


@pytest.mark.parametrize(
    ("key", "template", "field", "fragment"),
    [
        ("no-such-prompt", "Hi", "key", "no prompt 'no-such-prompt'"),
        ("greeting", "   ", "template", "blank"),
        ("greeting", "Hi {first_name", "template", "brace"),
        ("greeting", "Hi {nickname}!", "template", "{nickname}"),
        ("greeting", "Your slots: {slots}", "template", "{slots}"),  # not a greeting variable
        ("booking-offer", "Book a class with us!", "template", "must keep {slots}"),
        ("reminder", "See you {booking_date}!", "template", "{booking_time}"),
        ("greeting", "x" * 4001, "template", "at most"),
    ],
)
def test_invalid_overrides_are_rejected_and_nothing_is_written(
    organization, key, template, field, fragment
):
    with pytest.raises(ValidationFailed) as caught:
        prompt_override_set(organization=organization, key=key, template=template)
    assert fragment in caught.value.message
    assert field in caught.value.details
    assert not Prompt.objects.filter(organization=organization).exists()


def test_invalid_channel_is_rejected(organization):
    with pytest.raises(ValidationFailed) as caught:
        prompt_override_set(organization=organization, key="greeting", template="Hi", channel="fax")
    assert "channel" in caught.value.details


def test_clear_is_idempotent(organization, fitness_rival):
    prompt_override_set(organization=organization, key="greeting", template="Hi!")
    prompt_override_set(organization=fitness_rival, key="greeting", template="Yo!")
    assert prompt_override_clear(organization=organization, key="greeting") is True
    assert prompt_override_clear(organization=organization, key="greeting") is False
    assert Prompt.objects.filter(organization=fitness_rival).count() == 1


def test_shared_update_bumps_version_only_when_the_template_changes(organization):
    shared = Prompt.objects.get(niche__slug="fitness", key="greeting", organization=None)
    niche_context(organization=organization)
    updated = prompt_shared_update(
        prompt=shared, template=shared.template, channel="", purpose="greeting", is_active=True
    )
    assert updated.version == 1
    updated = prompt_shared_update(
        prompt=shared,
        template="Hi {first_name}, {agent_name} here!",
        channel="",
        purpose="greeting",
        is_active=True,
    )
    assert updated.version == 2 and updated.variables == ["first_name", "agent_name"]
    assert niche_context(organization=organization).prompt("greeting").version == 2
    with pytest.raises(ValidationFailed, match="Unknown variable"):
        prompt_shared_update(
            prompt=shared, template="Hi {nickname}", channel="", purpose="greeting", is_active=True
        )


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_overrides_make_one_row():
    from tests.factories import OrganizationFactory

    organization = OrganizationFactory(slug="race", niche="fitness")
    barrier = threading.Barrier(5)
    errors = []

    def save(n):
        try:
            barrier.wait(timeout=10)
            prompt_override_set(organization=organization, key="greeting", template=f"Hi #{n}!")
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=save, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    rows = Prompt.objects.filter(organization=organization, key="greeting")
    assert rows.count() == 1 and rows.get().template.startswith("Hi #")
