"""The catalog's generated docs, and the shipped n8n workflows' subscriptions."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.events import catalog, docs, signing
from apps.events.models import EndpointStatus, WebhookEndpoint
from apps.events.n8n import SHIPPED_WORKFLOWS, path_for

ROOT = Path(__file__).resolve().parent.parent.parent


def test_docs_events_md_is_generated_from_the_catalog():
    assert docs.DOC_PATH.read_text() == docs.render(), (
        "docs/events.md is stale: run `python manage.py events_docs`"
    )


def test_docs_cover_every_type():
    text = docs.render()
    for event_type in catalog.all_types():
        assert f"### `{event_type.name}` (v{event_type.version})" in text


def test_events_docs_check_command(capsys):
    call_command("events_docs", "--check")
    assert "up to date" in capsys.readouterr().out


def test_subscription_patterns():
    assert catalog.pattern_is_valid("*")
    assert catalog.pattern_is_valid("booking.*")
    assert catalog.pattern_is_valid("booking.no_show")
    assert not catalog.pattern_is_valid("booking.")
    assert not catalog.pattern_is_valid("nothing.*")
    assert not catalog.pattern_is_valid("booking.teleported")


def test_shipped_workflow_paths():
    assert [(w.event_type, w.path) for w in SHIPPED_WORKFLOWS] == [
        ("lead.created", "switchboard-lead-created"),
        ("message.received", "switchboard-message-received"),
        ("booking.no_show", "switchboard-booking-no_show"),
        ("deal.won", "switchboard-deal-won"),
    ]
    for workflow in SHIPPED_WORKFLOWS:
        catalog.get(workflow.event_type)


def test_shipped_workflow_files_match_the_list():
    files = sorted((ROOT / "n8n" / "workflows").glob("*.json"))
    if not files:
        pytest.skip("no n8n/workflows/*.json in this tree yet")
    paths = set()
    for file in files:
        workflow = json.loads(file.read_text())
        for node in workflow.get("nodes", []):
            if node.get("type") == "n8n-nodes-base.webhook":
                paths.add(node["parameters"]["path"])
    assert {path_for(w.event_type) for w in SHIPPED_WORKFLOWS} <= paths


def _connect(organization, *extra, secret=None):
    out = StringIO()
    call_command(
        "connect_n8n",
        "--org",
        organization.slug,
        "--n8n-url",
        "http://n8n:5678/",
        "--secret",
        secret or SECRET,
        *extra,
        stdout=out,
    )
    return out.getvalue()


SECRET = signing.secret_generate()


@pytest.mark.django_db
def test_connect_n8n_subscribes_each_workflow_idempotently(organization):
    result = json.loads(_connect(organization, "--json"))
    assert result["organization"] == organization.slug
    rows = result["subscriptions"]
    assert [(r["event_type"], r["url"], r["created"]) for r in rows] == [
        (w.event_type, f"http://n8n:5678/webhook/{w.path}", True) for w in SHIPPED_WORKFLOWS
    ]
    for row in rows:
        endpoint = WebhookEndpoint.objects.get(pk=row["id"])
        assert endpoint.event_types == [row["event_type"]]
        assert endpoint.secret == SECRET

    deal = WebhookEndpoint.objects.get(url="http://n8n:5678/webhook/switchboard-deal-won")
    deal.status = EndpointStatus.PAUSED
    deal.event_types = ["*"]
    deal.save()
    new_secret = signing.secret_generate()
    again = json.loads(_connect(organization, "--json", secret=new_secret))
    assert [r["created"] for r in again["subscriptions"]] == [False] * 4
    assert [r["id"] for r in again["subscriptions"]] == [r["id"] for r in rows]
    assert WebhookEndpoint.objects.count() == 4
    deal.refresh_from_db()
    assert (deal.status, deal.event_types, deal.secret) == ("active", ["deal.won"], new_secret)
    assert deal.previous_secret == SECRET  # the old one still signs for a day


@pytest.mark.django_db
def test_connect_n8n_human_output(organization):
    text = _connect(organization)
    assert "switchboard-booking-no_show" in text and "subscribed" in text


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "nope", "--n8n-url", "http://n8n:5678", "--secret", SECRET], "nope"),
        (["--org", "pulse", "--n8n-url", "http://n8n:5678", "--secret", "plain"], "secret"),
        (["--org", "pulse", "--n8n-url", "ftp://n8n", "--secret", SECRET], "url"),
    ],
)
def test_connect_n8n_errors_exit_2_and_write_nothing(organization, args, message):
    err = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("connect_n8n", *args, stdout=StringIO(), stderr=err)
    assert exit_info.value.code == 2
    assert message in err.getvalue() and err.getvalue().count("\n") == 1
    assert not WebhookEndpoint.objects.exists()
