"""The decision simulator (`/admin/decisions/simulator/`): pick a contact, type a message,
see what the agent would do, why, and what the compliance guard changed.

No side effects at all: no Decision row, no event, no credits, no memory update (it runs
`services.decision_simulate`, phase 1 only). Contacts are scoped to the organizations the
staff member belongs to; another organization's contact id is a 404.

Every member may open the page and simulate with the rules engine (free). The LLM engine
costs money per call, so only members who may act in the organization (`LLM_ROLES`:
admin, moderator, operator) are offered it; a read-only `user` asking for it is a 403.
"""

from __future__ import annotations

import json
import uuid

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404
from django.template.response import TemplateResponse

from apps.crm.models import Contact
from apps.decisions.models import Trigger
from apps.decisions.selectors import decision_subject_get
from apps.decisions.services import decision_simulate
from apps.tenancy.models import Organization
from apps.tenancy.roles import WORKERS
from apps.tenancy.selectors import user_organization_ids, user_role_in

RECENT_CONTACTS = 100
LLM_ROLES = WORKERS  # running the LLM engine costs money: members who may act, not readers


def _organizations(user) -> list:
    organizations = Organization.objects.select_related("primary_niche").order_by("name")
    if not user.is_superuser:
        organizations = organizations.filter(pk__in=user_organization_ids(user=user))
    return list(organizations)


class SimulatorForm(forms.Form):
    contact = forms.UUIDField(
        label="Contact", help_text="Pick one, or paste a contact id from its page."
    )
    trigger = forms.ChoiceField(choices=Trigger.choices, initial=Trigger.MESSAGE_RECEIVED)
    message = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        required=False,
        max_length=4000,
        help_text="What the contact writes (message.received / manual).",
    )
    engine = forms.ChoiceField(choices=[("rules", "rules"), ("llm", "llm")], initial="rules")

    def __init__(self, *args, may_run_llm: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not may_run_llm:
            self.fields["engine"].choices = [("rules", "rules")]
            self.fields["engine"].help_text = "The LLM engine is for members who may act."


def _may_run_llm(user, organization) -> bool:
    return user.is_superuser or (
        user_role_in(user=user, organization_id=organization.pk) in LLM_ROLES
    )


def _pretty(value) -> str:
    return json.dumps(value, indent=2, cls=DjangoJSONEncoder, ensure_ascii=False)


def decision_simulator(request):
    organizations = _organizations(request.user)
    if not organizations:
        raise PermissionDenied
    organization = organizations[0]
    wanted = request.POST.get("organization") or request.GET.get("organization")
    if wanted:
        try:
            wanted_id = uuid.UUID(str(wanted))
        except ValueError:
            raise Http404("No such organization.") from None
        organization = next((o for o in organizations if o.pk == wanted_id), None)
        if organization is None:
            raise Http404("No such organization.")
    may_run_llm = _may_run_llm(request.user, organization)
    if request.method == "POST" and request.POST.get("engine") == "llm" and not may_run_llm:
        raise PermissionDenied("Your role may not run the LLM engine.")
    form = SimulatorForm(
        request.POST or None,
        initial={
            "engine": settings.DECISION_ENGINE if settings.LLM_API_BASE and may_run_llm else "rules"
        },
        may_run_llm=may_run_llm,
    )
    plan = None
    if request.method == "POST" and form.is_valid():
        contact = (
            Contact.objects.filter(organization=organization, pk=form.cleaned_data["contact"])
            .only("pk")
            .first()
        )
        if contact is None:
            raise Http404("No such contact in this organization.")
        contact, _ = decision_subject_get(organization=organization, contact_id=contact.pk)
        plan = decision_simulate(
            organization=organization,
            contact=contact,
            trigger=form.cleaned_data["trigger"],
            message=form.cleaned_data["message"],
            engine=form.cleaned_data["engine"],
        )
    contacts = list(
        Contact.objects.filter(organization=organization, merged_into__isnull=True)
        .order_by("-created_at")
        .only("pk", "name", "email", "phone")[:RECENT_CONTACTS]
    )
    context = {
        **admin.site.each_context(request),
        "title": "Decision simulator",
        "organization": organization,
        "organizations": organizations,
        "contacts": contacts,
        "form": form,
        "plan": plan,
        "llm_configured": bool(settings.LLM_API_BASE),
    }
    if plan is not None:
        context.update(
            actions_json=_pretty(plan.actions),
            proposed_json=_pretty(plan.result.actions),
            memory_json=_pretty(plan.memory),
            summary_json=_pretty(plan.ctx.summary()),
        )
    return TemplateResponse(request, "admin/decisions/simulator.html", context)
