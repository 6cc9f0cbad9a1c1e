"""The revenue operator commands: set_plan and run_revenue_job."""

import io
import json

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_set_plan(organization):
    out, _ = run("set_plan", "--org", organization.slug, "--plan", "growth", "--json")
    payload = json.loads(out)
    assert payload["plan"] == "growth"
    assert payload["limits"]["contacts"] == {"value": 100000, "usage": 0}
    organization.refresh_from_db()
    assert organization.plan == "growth"


def test_set_plan_refuses_an_unknown_plan(organization):
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("set_plan", "--org", organization.slug, "--plan", "gold", stderr=err)
    assert exit_.value.code == 2 and "plan:" in err.getvalue()


def test_run_a_job_now(organization):
    out, _ = run("run_revenue_job", "--job", "lead_enrichment", "--json")
    assert json.loads(out)["job"] == "lead_enrichment"
    human, _ = run("run_revenue_job", "--job", "churn_guard")
    assert human.startswith("churn_guard: ")
