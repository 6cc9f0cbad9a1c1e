"""`load_niches`: idempotent, upgrades shared content, never touches organization overrides."""

import json
import threading

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.niches import content
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
from apps.niches.seed import niches_load
from apps.niches.selectors import niche_context
from tests.niches.factories import override

pytestmark = pytest.mark.django_db

WRITES = ("INSERT", "UPDATE", "DELETE")


def _writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(WRITES)]


def _with_template(key_niche: tuple[str, str], template: str) -> list[dict]:
    niche, key = key_niche
    return [
        {**row, "template": template} if (row["niche"], row["key"]) == (niche, key) else row
        for row in content.PROMPTS
    ]


def test_second_run_changes_nothing_and_writes_nothing():
    niches_load()  # the migrations already loaded it; this run must be a no-op too
    with CaptureQueriesContext(connection) as queries:
        result = niches_load()
    assert not result.changed
    assert _writes(queries.captured_queries) == []
    assert len(queries) <= 20  # one SELECT per table and relation, plus savepoints


def test_command_reports_no_change_as_json(capsys):
    call_command("load_niches", "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["changed"] is False
    assert sum(out["created"].values()) == sum(out["updated"].values()) == 0


def test_loads_everything_into_an_empty_database():
    for model in (Prompt, Workflow, QualificationRule, ComplianceRule, Objection, AgentPack):
        model.objects.all().delete()
    WorkflowTemplate.objects.all().delete()
    PlatformTemplate.objects.all().delete()
    result = niches_load()
    assert result.created["prompts"] == 32 and result.created["workflows"] == 18
    assert result.created["qualification_rules"] == 13 and result.created["objections"] == 17
    assert result.created["compliance_rules"] == 12 and result.created["agent_packs"] == 5
    assert result.created["workflow_templates"] == 4 and result.created["platform_templates"] == 5
    assert sum(result.updated.values()) == 0  # new rows' links are part of their creation
    assert Prompt.objects.count() == 32 and Niche.objects.count() == 5
    assert AgentPack.objects.get(niche__slug="fitness").prompts.count() == 7
    assert not niches_load().changed


def test_a_hand_edited_row_is_restored_and_counted_once():
    rule = ComplianceRule.objects.get(key="quiet-hours-sms-whatsapp")
    rule.config = {"start": "23:00", "end": "06:00"}
    rule.save()
    result = niches_load()
    assert result.updated["compliance_rules"] == 1
    assert sum(result.updated.values()) == 1 and sum(result.created.values()) == 0
    rule.refresh_from_db()
    assert rule.config["start"] == "21:00"


def test_agent_pack_links_are_repaired():
    pack = AgentPack.objects.get(niche__slug="real_estate")
    pack.prompts.clear()
    pack.objections.remove(pack.objections.first())
    result = niches_load()
    assert result.updated["agent_packs"] == 1 and sum(result.updated.values()) == 1
    assert pack.prompts.count() == 6 and pack.objections.count() == 3


def test_upgrading_a_shared_template_bumps_its_version_and_keeps_overrides(
    organization, monkeypatch
):
    mine = override(organization, "greeting", "Yo {first_name}, welcome to {business_name}!")
    before = Prompt.objects.get(pk=mine.pk)
    shared = Prompt.objects.get(niche__slug="fitness", key="greeting", organization=None)
    untouched = Prompt.objects.get(niche__slug="fitness", key="reminder", organization=None)
    new_text = "Hi {first_name}! {agent_name} at {business_name} here. What's your main goal?"
    monkeypatch.setattr(content, "PROMPTS", _with_template(("fitness", "greeting"), new_text))

    with CaptureQueriesContext(connection) as queries:
        result = niches_load()

    assert result.updated["prompts"] == 1 and sum(result.created.values()) == 0
    assert len([q for q in _writes(queries.captured_queries) if "niches_prompt" in q]) == 1
    shared.refresh_from_db()
    assert shared.template == new_text and shared.version == 2
    after = Prompt.objects.get(pk=mine.pk)
    assert (after.template, after.version, after.based_on_version, after.updated_at) == (
        before.template,
        before.version,
        1,
        before.updated_at,
    )
    untouched_now = Prompt.objects.get(pk=untouched.pk)
    assert (untouched_now.version, untouched_now.updated_at) == (1, untouched.updated_at)

    greeting = niche_context(organization=organization).prompt("greeting")
    assert greeting.is_override and greeting.template == mine.template
    assert greeting.version == 2 and greeting.is_outdated
    assert not niches_load().changed  # the upgrade itself is idempotent


def test_removed_content_is_retired_not_deleted_and_comes_back(monkeypatch, organization):
    override(organization, "onboarding", "Welcome, {first_name}!")
    trimmed = [r for r in content.PROMPTS if (r["niche"], r["key"]) != ("fitness", "onboarding")]
    monkeypatch.setattr(content, "PROMPTS", trimmed)
    result = niches_load()
    assert result.retired["prompts"] == 1
    shared = Prompt.objects.get(niche__slug="fitness", key="onboarding", organization=None)
    assert not shared.is_active
    assert Prompt.objects.filter(key="onboarding", organization=organization).exists()
    context = niche_context(organization=organization)
    assert context.prompt("onboarding") is None  # the override of a retired prompt is unused
    assert shared not in AgentPack.objects.get(niche__slug="fitness").prompts.all()

    monkeypatch.undo()
    result = niches_load()
    shared.refresh_from_db()
    assert shared.is_active and result.updated["prompts"] == 1
    assert niche_context(organization=organization).prompt("onboarding").is_override


def test_loader_change_invalidates_cached_contexts(organization, monkeypatch):
    assert niche_context(organization=organization).prompt("greeting").version == 1
    monkeypatch.setattr(
        content, "PROMPTS", _with_template(("fitness", "greeting"), "Hello {first_name}!")
    )
    niches_load()
    greeting = niche_context(organization=organization).prompt("greeting")
    assert greeting.template == "Hello {first_name}!" and greeting.version == 2


def test_loader_works_with_a_migration_app_registry():
    from django.db.migrations.executor import MigrationExecutor

    state = MigrationExecutor(connection).loader.project_state(
        ("niches", "0005_load_niche_content")
    )
    Prompt.objects.filter(niche__slug="consultant", key="greeting").update(template="stale")
    result = niches_load(apps=state.apps)
    assert result.updated["prompts"] == 1
    assert "{agent_name}" in Prompt.objects.get(niche__slug="consultant", key="greeting").template


@pytest.mark.django_db(transaction=True)
def test_concurrent_loads_write_once():
    Prompt.objects.all().delete()
    results, errors = [], []
    barrier = threading.Barrier(3)

    def load():
        try:
            barrier.wait(timeout=10)
            results.append(niches_load())
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(r.created["prompts"] for r in results) == [0, 0, 32]
    assert Prompt.objects.count() == 32
