"""Operator console for niche intelligence.

- Shared content (niches, workflows, rules, objections, agent packs, workflow templates, and
  prompts / WhatsApp templates without an organization) comes from apps/niches/content. Every
  staff member with a membership may read it; only superusers may hot-fix it (the next
  `load_niches` restores the content files); nobody adds or deletes it here.
- An organization's prompt overrides and WhatsApp templates are visible to its members only
  and editable by its admins and moderators. Another organization's rows never show: not in
  lists, not by URL, not in actions, not in form choices.
Edits go through `apps.niches.services` and invalidate the cached niche contexts.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.db.models import Count, Q
from django.utils.html import format_html

from apps.core.errors import DomainError
from apps.niches import services
from apps.niches.cache import niche_cache_invalidate
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
from apps.tenancy.models import Organization
from apps.tenancy.roles import ALL_ROLES, SUPERVISORS
from apps.tenancy.selectors import user_organization_ids, user_role_in

EDIT_ROLES = SUPERVISORS  # who may write an organization's overrides and templates


def _staff(request) -> bool:
    return request.user.is_active and request.user.is_staff


def _superuser(request) -> bool:
    return _staff(request) and request.user.is_superuser


def _member_org_ids(request, roles=ALL_ROLES) -> list:
    return user_organization_ids(user=request.user, roles=roles)


def _console_user(request) -> bool:
    """Staff who belong to at least one organization (or superusers)."""
    return _staff(request) and (request.user.is_superuser or bool(_member_org_ids(request)))


def _pretty_json(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


class SharedContentAdmin(admin.ModelAdmin):
    """Platform reference data: readable by every console user, hot-fixable by superusers."""

    show_full_result_count = False
    list_per_page = 50

    def has_module_permission(self, request) -> bool:
        return _console_user(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return _console_user(request)

    def has_add_permission(self, request) -> bool:
        return False  # shared rows come from apps/niches/content (load_niches)

    def has_change_permission(self, request, obj=None) -> bool:
        return _superuser(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # retire with is_active; the loader would bring a deleted row back

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        niche_cache_invalidate()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        niche_cache_invalidate()


class OwnerListFilter(admin.SimpleListFilter):
    title = "owner"
    parameter_name = "owner"

    def lookups(self, request, model_admin):
        return (("shared", "Shared"), ("organization", "Organization's own"))

    def queryset(self, request, queryset):
        if self.value() == "shared":
            return queryset.filter(organization__isnull=True)
        if self.value() == "organization":
            return queryset.filter(organization__isnull=False)
        return queryset


class SharedOrOwnedAdmin(admin.ModelAdmin):
    """Rows that are either shared (organization NULL) or an organization's own.

    Non-superusers see shared rows and their organizations' rows; they may add and edit
    their organizations' rows with an EDIT_ROLES role, and only read shared rows.
    """

    show_full_result_count = False
    list_per_page = 50

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(
            Q(organization__isnull=True) | Q(organization_id__in=_member_org_ids(request))
        )

    def _may(self, request, obj, roles) -> bool:
        if not _staff(request):
            return False
        if request.user.is_superuser:
            return True
        if obj is None:
            return bool(_member_org_ids(request, roles))
        if obj.organization_id is None:
            return False
        return user_role_in(user=request.user, organization_id=obj.organization_id) in roles

    def has_module_permission(self, request) -> bool:
        return _console_user(request)

    def has_view_permission(self, request, obj=None) -> bool:
        if obj is None or obj.organization_id is None:
            return _console_user(request)
        return self._may(request, obj, ALL_ROLES)

    def has_add_permission(self, request) -> bool:
        return self._may(request, None, EDIT_ROLES)

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.organization_id is None:
            return _superuser(request)
        return self._may(request, obj, EDIT_ROLES)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.organization_id is None:
            return False
        return self._may(request, obj, EDIT_ROLES)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name != "organization":
            return super().formfield_for_foreignkey(db_field, request, **kwargs)
        # New rows always belong to an organization: shared ones come from the content files.
        kwargs["required"] = True
        if not request.user.is_superuser:
            kwargs["queryset"] = Organization.objects.filter(
                pk__in=_member_org_ids(request, EDIT_ROLES)
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="owner", ordering="organization__name")
    def owner(self, obj) -> str:
        return obj.organization.name if obj.organization_id else "Shared"


# --- prompts --------------------------------------------------------------------------------
def _validation_to_form(form: forms.Form, exc: DomainError) -> None:
    details = exc.details if isinstance(exc.details, dict) else {}
    for field, messages in details.items():
        for message in messages if isinstance(messages, list) else [messages]:
            form.add_error(field if field in form.fields else None, str(message))
    if not details:
        form.add_error(None, exc.message)


class PromptOverrideAddForm(forms.ModelForm):
    class Meta:
        model = Prompt
        fields = ("organization", "niche", "key", "channel", "template")
        help_texts = {
            "key": "The key of the shared prompt to override, e.g. 'greeting'.",
            "template": "Use the shared prompt's {variables} only; {{ and }} are literal braces.",
        }

    def clean(self):
        data = super().clean()
        niche, key, template = data.get("niche"), data.get("key"), data.get("template")
        if niche and key and template is not None:
            try:
                shared = services.prompt_shared_get(niche=niche, key=key)
                services.prompt_override_validate(
                    shared=shared, template=template, channel=data.get("channel") or ""
                )
            except DomainError as exc:
                _validation_to_form(self, exc)
        return data


class PromptOverrideChangeForm(forms.ModelForm):
    class Meta:
        model = Prompt
        fields = ("channel", "template")

    def clean(self):
        data = super().clean()
        if data.get("template") is not None:
            try:
                shared = services.prompt_shared_get(
                    niche=self.instance.niche, key=self.instance.key
                )
                services.prompt_override_validate(
                    shared=shared, template=data["template"], channel=data.get("channel") or ""
                )
            except DomainError as exc:
                _validation_to_form(self, exc)
        return data


class SharedPromptForm(forms.ModelForm):
    class Meta:
        model = Prompt
        fields = ("purpose", "channel", "template", "is_active")


SHARED_PROMPT_FIELDS = (
    "niche",
    "key",
    "purpose",
    "channel",
    "template",
    "variables",
    "version",
    "is_active",
    "updated_at",
)
OVERRIDE_FIELDS = (
    "organization",
    "niche",
    "key",
    "purpose",
    "channel",
    "template",
    "variables",
    "version",
    "based_on_version",
    "shared_template",
    "updated_at",
)


@admin.register(Prompt)
class PromptAdmin(SharedOrOwnedAdmin):
    list_display = (
        "key",
        "niche",
        "purpose",
        "channel",
        "owner",
        "version",
        "based_on_version",
        "is_active",
        "updated_at",
    )
    list_filter = (OwnerListFilter, "niche", "purpose", "channel", "is_active")
    search_fields = ("key", "template")
    list_select_related = ("niche", "organization")
    ordering = ("niche__name", "key", "organization__name")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = PromptOverrideAddForm
        elif obj.organization_id is None:
            kwargs["form"] = SharedPromptForm
        else:
            kwargs["form"] = PromptOverrideChangeForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return PromptOverrideAddForm.Meta.fields
        if obj.organization_id is None:
            return SHARED_PROMPT_FIELDS
        return OVERRIDE_FIELDS

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        if obj.organization_id is None:
            return tuple(f for f in SHARED_PROMPT_FIELDS if f not in SharedPromptForm.Meta.fields)
        return tuple(f for f in OVERRIDE_FIELDS if f not in PromptOverrideChangeForm.Meta.fields)

    @admin.display(description="shared template (current)")
    def shared_template(self, obj) -> str:
        shared = Prompt.objects.filter(
            niche_id=obj.niche_id, key=obj.key, organization__isnull=True
        ).first()
        if shared is None:
            return "(the shared prompt was retired; this override is not used)"
        return format_html(
            "<pre style='white-space: pre-wrap'>v{}: {}</pre>", shared.version, shared.template
        )

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            saved = services.prompt_override_set(
                organization=data["organization"],
                niche=data["niche"],
                key=data["key"],
                template=data["template"],
                channel=data.get("channel") or "",
            )
            obj.pk, obj.version = saved.pk, saved.version
        elif obj.organization_id is None:
            services.prompt_shared_update(
                prompt=obj,
                template=data["template"],
                channel=data.get("channel") or "",
                purpose=data["purpose"],
                is_active=data["is_active"],
            )
        else:
            services.prompt_override_set(
                organization=obj.organization,
                niche=obj.niche,
                key=obj.key,
                template=data["template"],
                channel=data.get("channel") or "",
            )

    def delete_model(self, request, obj):
        services.prompt_override_clear(organization=obj.organization, niche=obj.niche, key=obj.key)

    def delete_queryset(self, request, queryset):
        for obj in queryset.filter(organization__isnull=False).select_related(
            "organization", "niche"
        ):
            self.delete_model(request, obj)


# --- WhatsApp templates ---------------------------------------------------------------------
@admin.register(PlatformTemplate)
class PlatformTemplateAdmin(SharedOrOwnedAdmin):
    list_display = (
        "name",
        "channel",
        "purpose",
        "language",
        "category",
        "owner",
        "niche",
        "is_approved",
    )
    list_filter = (OwnerListFilter, "channel", "purpose", "category", "is_approved")
    search_fields = ("name", "body")
    list_select_related = ("organization", "niche")
    fields = (
        "organization",
        "niche",
        "channel",
        "purpose",
        "name",
        "language",
        "category",
        "body",
        "variables",
        "is_approved",
    )

    def get_readonly_fields(self, request, obj=None):
        return ("organization",) if obj is not None else ()


# --- shared content -------------------------------------------------------------------------
@admin.register(Niche)
class NicheAdmin(SharedContentAdmin):
    list_display = (
        "name",
        "slug",
        "qualify_threshold",
        "disqualify_threshold",
        "prompt_count",
        "workflow_count",
        "objection_count",
    )
    search_fields = ("name", "slug")
    readonly_fields = ("slug",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                prompt_total=Count(
                    "prompts",
                    filter=Q(prompts__organization__isnull=True, prompts__is_active=True),
                    distinct=True,
                ),
                workflow_total=Count(
                    "workflows", filter=Q(workflows__is_active=True), distinct=True
                ),
                objection_total=Count(
                    "objections", filter=Q(objections__is_active=True), distinct=True
                ),
            )
        )

    @admin.display(description="prompts", ordering="prompt_total")
    def prompt_count(self, obj) -> int:
        return obj.prompt_total

    @admin.display(description="workflows", ordering="workflow_total")
    def workflow_count(self, obj) -> int:
        return obj.workflow_total

    @admin.display(description="objections", ordering="objection_total")
    def objection_count(self, obj) -> int:
        return obj.objection_total


@admin.register(Workflow)
class WorkflowAdmin(SharedContentAdmin):
    list_display = ("key", "name", "niche", "trigger", "n8n_workflow", "step_count", "is_active")
    list_filter = ("niche", "trigger", "n8n_workflow", "is_active")
    search_fields = ("key", "name", "description")
    list_select_related = ("niche",)
    readonly_fields = ("niche", "key", "pretty_steps")
    exclude = ("steps",)

    @admin.display(description="steps")
    def step_count(self, obj) -> int:
        return len(obj.steps)

    @admin.display(description="steps")
    def pretty_steps(self, obj) -> str:
        return _pretty_json(obj.steps)


@admin.register(QualificationRule)
class QualificationRuleAdmin(SharedContentAdmin):
    list_display = ("key", "name", "niche", "kind", "points", "order", "is_active")
    list_filter = ("niche", "kind", "is_active")
    search_fields = ("key", "name", "question")
    list_select_related = ("niche",)
    readonly_fields = ("niche", "key")


class ComplianceScopeFilter(admin.SimpleListFilter):
    title = "scope"
    parameter_name = "scope"

    def lookups(self, request, model_admin):
        return (("global", "Every niche"), ("niche", "One niche"))

    def queryset(self, request, queryset):
        if self.value() == "global":
            return queryset.filter(niche__isnull=True)
        if self.value() == "niche":
            return queryset.filter(niche__isnull=False)
        return queryset


@admin.register(ComplianceRule)
class ComplianceRuleAdmin(SharedContentAdmin):
    list_display = ("key", "name", "scope", "kind", "severity", "channel_list", "is_active")
    list_filter = (ComplianceScopeFilter, "niche", "kind", "severity", "is_active")
    search_fields = ("key", "name", "description", "pattern")
    list_select_related = ("niche",)
    readonly_fields = ("niche", "key")

    @admin.display(description="applies to", ordering="niche__name")
    def scope(self, obj) -> str:
        return obj.niche.name if obj.niche_id else "Every niche"

    @admin.display(description="channels")
    def channel_list(self, obj) -> str:
        return ", ".join(obj.channels) or "all"


@admin.register(Objection)
class ObjectionAdmin(SharedContentAdmin):
    list_display = ("key", "name", "niche", "order", "is_active")
    list_filter = ("niche", "is_active")
    search_fields = ("key", "name", "response_template")
    list_select_related = ("niche",)
    readonly_fields = ("niche", "key")


@admin.register(AgentPack)
class AgentPackAdmin(SharedContentAdmin):
    list_display = ("name", "agent_name", "niche", "tone", "is_default")
    list_filter = ("niche", "is_default")
    search_fields = ("name", "agent_name", "persona")
    list_select_related = ("niche",)
    readonly_fields = ("niche", "key")
    filter_horizontal = ("prompts", "qualification_rules", "compliance_rules", "objections")

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "prompts":
            # Packs bundle shared prompts only: an organization's override never shows here.
            kwargs["queryset"] = Prompt.objects.filter(organization__isnull=True).select_related(
                "niche"
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)


@admin.register(WorkflowTemplate)
class WorkflowTemplateAdmin(SharedContentAdmin):
    list_display = ("key", "name", "trigger_event", "file", "niche_list")
    search_fields = ("key", "name", "trigger_event")
    readonly_fields = ("key",)
    filter_horizontal = ("niches",)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("niches")

    @admin.display(description="niches")
    def niche_list(self, obj) -> str:
        return ", ".join(n.slug for n in obj.niches.all())
