"""The CRM in the operator console: contacts (with one timeline), leads, deals and the
pipeline board, tasks, notes, companies, pipelines and stages.

Every admin is tenant-scoped (`TenantAdmin`) and writes through the services, so the
console emits the same events as the API. Forms check that every related row belongs to
the chosen organization; a service error that slips past them is shown as a message.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db import models
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from apps.core.errors import DomainError
from apps.crm import selectors, services
from apps.crm.admin_views import pipeline_board, pipeline_move
from apps.crm.models import (
    Company,
    ConsentStatus,
    Contact,
    ContactConsent,
    ContactIdentity,
    Deal,
    DealStageChange,
    Lead,
    Note,
    Pipeline,
    Stage,
    Task,
    TaskStatus,
)
from apps.crm.normalize import InvalidIdentity, normalize_email, normalize_phone
from apps.tenancy.models import Membership, User
from apps.tenancy.roles import ALL_ROLES, SUPERVISORS, WORKERS
from apps.tenancy.scoping import TenantAdmin, TenantInlineMixin
from apps.tenancy.selectors import user_role_in

admin.site.register_page("pipeline/", pipeline_board, name="pipeline_board", title="Pipeline")
admin.site.register_page(
    "pipeline/move/", pipeline_move, name="pipeline_move", title="Move deal", in_nav=False
)


# --- shared ---------------------------------------------------------------------------------


class TenantModelForm(forms.ModelForm):
    """Every related row must belong to the row's organization; staff must be its members."""

    def organization(self):
        if "organization" in self.fields:
            return self.cleaned_data.get("organization")
        return getattr(self.instance, "organization", None)

    def clean(self):
        cleaned = super().clean()
        organization = self.organization()
        if organization is None:
            return cleaned
        for name, value in cleaned.items():
            if name == "organization" or value is None:
                continue
            if isinstance(value, User):
                if not Membership.objects.filter(organization=organization, user=value).exists():
                    self.add_error(name, f"{value} is not a member of {organization}.")
            elif hasattr(value, "organization_id") and value.organization_id != organization.pk:
                self.add_error(name, f"This {value._meta.verbose_name} belongs elsewhere.")
        return cleaned


class CrmAdmin(TenantAdmin):
    """Operators and above write; `user` members read. Service errors become messages."""

    view_roles = ALL_ROLES
    add_roles = WORKERS
    change_roles = WORKERS
    delete_roles = SUPERVISORS
    form = TenantModelForm

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:  # the transaction rolled back: nothing was written
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def organization_for(self, form, obj):
        return form.cleaned_data.get("organization") or obj.organization

    @staticmethod
    def adopt(obj, saved) -> None:
        """Make the admin's unsaved instance the row the service wrote (for logs, redirects)."""
        obj.__dict__.update(saved.__dict__)

    def changed_values(self, form, fields) -> dict:
        return {f: form.cleaned_data[f] for f in fields if f in form.changed_data}

    @staticmethod
    def json_patch(form, name: str, values: dict) -> None:
        """The services merge JSON objects; a key deleted in the form is sent as None."""
        if name in values:
            old = form.initial.get(name) or {}
            new = values[name] or {}
            values[name] = {**{k: None for k in old if k not in new}, **new}

    def run_action(self, request, queryset, service, done: str) -> None:
        """Apply `service(obj)` to each selected row; report successes and failures."""
        ok, failed = 0, []
        for obj in queryset:
            if (
                not request.user.is_superuser
                and user_role_in(user=request.user, organization_id=obj.organization_id)
                not in self.change_roles
            ):
                failed.append(f"{obj}: not allowed")
                continue
            try:
                service(obj)
                ok += 1
            except DomainError as exc:
                failed.append(f"{obj}: {exc.message}")
        if ok:
            self.message_user(request, f"{done}: {ok}.", messages.SUCCESS)
        for failure in failed[:10]:
            self.message_user(request, failure, messages.WARNING)


class ReadOnlyInline(TenantInlineMixin, admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _json(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


# --- contacts -------------------------------------------------------------------------------


class MergedFilter(admin.SimpleListFilter):
    title = "merged"
    parameter_name = "merged"

    def lookups(self, request, model_admin):
        return (("merged", "Merged away"), ("all", "All, merged included"))

    def choices(self, changelist):
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "Live contacts",
        }
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        if self.value() == "merged":
            return queryset.filter(merged_into__isnull=False)
        if self.value() == "all":
            return queryset
        return queryset.filter(merged_into__isnull=True)


class TagFilter(admin.SimpleListFilter):
    title = "tag"
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        from django.db.models import F, Func

        tags = (
            model_admin.get_queryset(request)
            .annotate(tag=Func(F("tags"), function="unnest"))
            .values_list("tag", flat=True)
            .distinct()
            .order_by("tag")[:100]
        )
        return [(t, t) for t in tags]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(tags__contains=[self.value()])
        return queryset


class ContactForm(TenantModelForm):
    class Meta:
        model = Contact
        fields = (
            "organization",
            "name",
            "email",
            "phone",
            "company",
            "tags",
            "custom_fields",
            "lifecycle_stage",
            "source",
            "owner",
            "timezone",
        )

    def clean(self):
        cleaned = super().clean()
        organization = self.organization()
        region = organization.default_phone_region if organization else "US"
        try:
            if cleaned.get("phone"):
                cleaned["phone"] = normalize_phone(cleaned["phone"], region=region)
        except InvalidIdentity as exc:
            self.add_error("phone", str(exc))
        try:
            if cleaned.get("email"):
                cleaned["email"] = normalize_email(cleaned["email"])
        except InvalidIdentity as exc:
            self.add_error("email", str(exc))
        if self.instance._state.adding and not (cleaned.get("email") or cleaned.get("phone")):
            self.add_error("email", "Give an email or a phone to recognize the contact.")
        return cleaned


class ContactIdentityInline(ReadOnlyInline):
    model = ContactIdentity
    fields = ("kind", "value", "created_at")
    readonly_fields = fields


class ContactConsentInline(ReadOnlyInline):
    model = ContactConsent
    fields = ("channel", "status", "changed_at", "reason", "source")
    readonly_fields = fields


class MergeForm(forms.Form):
    survivor = forms.UUIDField()


@admin.register(Contact)
class ContactAdmin(CrmAdmin):
    form = ContactForm
    list_display = (
        "display_name",
        "email",
        "phone",
        "lifecycle_stage",
        "source",
        "tag_list",
        "owner",
        "last_activity_at",
        "created_at",
    )
    list_filter = (
        MergedFilter,
        "lifecycle_stage",
        "source",
        TagFilter,
        ("owner", admin.RelatedOnlyFieldListFilter),
        "created_at",
    )
    search_fields = ("name", "email", "phone")
    search_help_text = "Name, email or phone (any format)."
    list_select_related = ("owner", "company")
    autocomplete_fields = ("company",)
    readonly_fields = ("id", "merged_into", "last_activity_at", "created_at", "updated_at")
    inlines = (ContactIdentityInline, ContactConsentInline)
    actions = ("merge_contacts",)
    change_form_template = "admin/crm/contact/change_form.html"

    @admin.display(description="name", ordering="name")
    def display_name(self, obj) -> str:
        return obj.name or "(no name)"

    @admin.display(description="tags")
    def tag_list(self, obj) -> str:
        return ", ".join(obj.tags)

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        region = "US"
        org_ids = self.organization_ids(request)
        if len(org_ids) == 1:
            from apps.tenancy.models import Organization

            region = (
                Organization.objects.filter(pk=org_ids[0])
                .values_list("default_phone_region", flat=True)
                .first()
                or "US"
            )
        queryset = queryset.filter(selectors.contact_search_q(search_term, region=region))
        if request.resolver_match and request.resolver_match.url_name == "autocomplete":
            queryset = queryset.filter(merged_into__isnull=True)
        return queryset, False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        obj = self.get_object(request, unquote(object_id))
        if obj is not None:
            extra_context["timeline"] = selectors.contact_timeline(
                organization=obj.organization, contact=obj
            )
            extra_context["can_write"] = self.has_change_permission(request, obj)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            result = services.contact_create(
                organization=data["organization"],
                name=data.get("name", ""),
                email=data.get("email") or None,
                phone=data.get("phone") or None,
                tags=data.get("tags"),
                custom_fields=data.get("custom_fields"),
                lifecycle_stage=data.get("lifecycle_stage"),
                source=data.get("source") or "admin",
                owner=data.get("owner"),
                company=data.get("company"),
                timezone_name=data.get("timezone", ""),
            )
            self.adopt(obj, result.contact)
            obj._matched_by = result.matched_by
            return
        values = self.changed_values(form, services.CONTACT_UPDATABLE)
        self.json_patch(form, "custom_fields", values)
        for key in ("email", "phone"):
            if key in values and not values[key]:
                values[key] = None
        saved = services.contact_update(
            organization=obj.organization, contact=obj, data=values, consent_source="admin"
        )
        self.adopt(obj, saved)

    def response_add(self, request, obj, post_url_continue=None):
        matched_by = getattr(obj, "_matched_by", None)
        if matched_by:
            self.message_user(
                request,
                f"This is an existing contact (matched by {matched_by}); its blanks were "
                "filled and new tags added.",
                messages.WARNING,
            )
            return HttpResponseRedirect(reverse("admin:crm_contact_change", args=[obj.pk]))
        return super().response_add(request, obj, post_url_continue)

    def has_merge_permission(self, request) -> bool:
        return self._allowed(request, self.merge_contacts_roles)

    merge_contacts_roles = SUPERVISORS

    @admin.action(description="Merge selected contacts…", permissions=["merge"])
    def merge_contacts(self, request, queryset):
        contacts = list(queryset.filter(merged_into__isnull=True).order_by("created_at"))
        if len(contacts) < 2:
            self.message_user(request, "Select at least two live contacts.", messages.WARNING)
            return None
        if len({c.organization_id for c in contacts}) > 1:
            self.message_user(request, "Contacts of different organizations.", messages.ERROR)
            return None
        organization = contacts[0].organization
        if not request.user.is_superuser and (
            user_role_in(user=request.user, organization_id=organization.pk) not in SUPERVISORS
        ):
            self.message_user(request, "Only admins and moderators merge.", messages.ERROR)
            return None
        if "apply" in request.POST:
            form = MergeForm(request.POST)
            by_id = {c.pk: c for c in contacts}
            if form.is_valid() and form.cleaned_data["survivor"] in by_id:
                survivor = by_id.pop(form.cleaned_data["survivor"])
                try:
                    services.contact_merge(
                        organization=organization,
                        survivor=survivor,
                        duplicates=list(by_id.values()),
                        merged_by=request.user,
                    )
                except DomainError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                    return None
                self.message_user(
                    request, f"Merged {len(by_id)} contact(s) into {survivor}.", messages.SUCCESS
                )
                return HttpResponseRedirect(reverse("admin:crm_contact_change", args=[survivor.pk]))
            self.message_user(request, "Choose the contact to keep.", messages.ERROR)
        return TemplateResponse(
            request,
            "admin/crm/contact/merge.html",
            {
                **self.admin_site.each_context(request),
                "title": "Merge contacts",
                "contacts": contacts,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )


@admin.register(ContactIdentity)
class ContactIdentityAdmin(CrmAdmin):
    list_display = ("value", "kind", "contact", "created_at")
    list_filter = ("kind",)
    search_fields = ("value", "contact__name", "contact__email")
    list_select_related = ("contact",)
    autocomplete_fields = ("contact",)
    fields = ("organization", "contact", "kind", "value")

    def get_readonly_fields(self, request, obj=None):
        return ("organization", "contact", "kind", "value", "created_at") if obj else ()

    def has_change_permission(self, request, obj=None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        self.adopt(
            obj,
            services.contact_identity_add(
                organization=data["organization"],
                contact=data["contact"],
                kind=data["kind"],
                value=data["value"],
            ),
        )


class ConsentForm(TenantModelForm):
    opted_in = forms.TypedChoiceField(
        label="status",
        choices=((True, "Opted in"), (False, "Opted out")),
        coerce=lambda v: v in (True, "True"),
    )

    class Meta:
        model = ContactConsent
        fields = ("organization", "contact", "channel", "reason")


@admin.register(ContactConsent)
class ContactConsentAdmin(CrmAdmin):
    form = ConsentForm
    list_display = ("contact", "channel", "status", "changed_at", "reason", "source")
    list_filter = ("channel", "status", "source")
    search_fields = ("contact__name", "contact__email", "contact__phone")
    list_select_related = ("contact",)
    autocomplete_fields = ("contact",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("organization", "contact", "channel", "opted_in", "reason")
        return ("contact", "channel", "opted_in", "reason", "status", "changed_at", "source")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("organization", "contact", "channel", "status", "changed_at", "source")

    def get_changeform_initial_data(self, request):
        return {**super().get_changeform_initial_data(request), "opted_in": True}

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None:
            form.base_fields["opted_in"].initial = obj.status == ConsentStatus.OPTED_IN
        return form

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        contact = data.get("contact") or obj.contact
        self.adopt(
            obj,
            services.contact_set_consent(
                organization=self.organization_for(form, obj),
                contact=contact,
                channel=data.get("channel") or obj.channel,
                opted_in=data["opted_in"],
                reason=data.get("reason") or f"set in the console by {request.user}",
                source="admin",
            ),
        )


@admin.register(Company)
class CompanyAdmin(CrmAdmin):
    list_display = ("name", "domain", "industry", "phone", "contact_count", "created_at")
    search_fields = ("name", "domain")
    list_filter = ("industry",)
    fields = ("organization", "name", "domain", "website", "phone", "industry", "notes")
    readonly_fields = ("created_at", "updated_at")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_contacts=Count("contacts")).order_by("name")

    @admin.display(description="contacts", ordering="n_contacts")
    def contact_count(self, obj) -> int:
        return obj.n_contacts

    def save_model(self, request, obj, form, change):
        values = {
            f: form.cleaned_data[f]
            for f in ("name", "domain", "website", "phone", "industry", "notes")
        }
        if change:
            services.company_update(organization=obj.organization, company=obj, data=values)
        else:
            organization = form.cleaned_data["organization"]
            self.adopt(obj, services.company_create(organization=organization, **values))


# --- leads ----------------------------------------------------------------------------------


@admin.register(Lead)
class LeadAdmin(CrmAdmin):
    list_display = ("contact", "status", "score", "source", "campaign", "owner", "created_at")
    list_filter = ("status", "source", ("owner", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("contact__name", "contact__email", "contact__phone", "campaign")
    list_select_related = ("contact", "owner")
    autocomplete_fields = ("contact",)
    readonly_fields = (
        "status",
        "score",
        "explained_score",
        "scored_at",
        "qualified_at",
        "disqualified_reason",
        "converted_at",
        "deal",
        "last_activity_at",
        "created_at",
    )
    actions = ("qualify", "disqualify", "convert", "rescore")

    def get_fields(self, request, obj=None):
        editable = ("source", "campaign", "answers", "owner")
        if obj is None:
            return ("organization", "contact", *editable)
        return ("contact", *editable, *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("organization", "contact", *self.readonly_fields)

    @admin.display(description="why this score")
    def explained_score(self, obj) -> str:
        if not obj.score_reasons:
            return "No rule fired."
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li><strong>{:+d}</strong> {} — {}</li>",
                (
                    (r.get("points", 0), r.get("name", r.get("rule")), r.get("why", ""))
                    for r in obj.score_reasons
                ),
            ),
        )

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            self.adopt(
                obj,
                services.lead_create(
                    organization=data["organization"],
                    contact=data["contact"],
                    source=data.get("source", ""),
                    campaign=data.get("campaign", ""),
                    answers=data.get("answers") or {},
                    owner=data.get("owner"),
                ),
            )
            return
        values = self.changed_values(form, services.LEAD_UPDATABLE)
        self.json_patch(form, "answers", values)
        self.adopt(obj, services.lead_update(organization=obj.organization, lead=obj, data=values))

    qualify_roles = WORKERS

    @admin.action(description="Qualify", permissions=["change"])
    def qualify(self, request, queryset):
        self.run_action(
            request,
            queryset.select_related("organization__primary_niche"),
            lambda lead: services.lead_qualify(
                organization=lead.organization, lead=lead, changed_by=request.user
            ),
            "Qualified",
        )

    disqualify_roles = WORKERS

    @admin.action(description="Disqualify (not a fit)", permissions=["change"])
    def disqualify(self, request, queryset):
        self.run_action(
            request,
            queryset.select_related("organization__primary_niche"),
            lambda lead: services.lead_disqualify(
                organization=lead.organization,
                lead=lead,
                reason=f"Not a fit (marked by {request.user})",
                changed_by=request.user,
            ),
            "Disqualified",
        )

    convert_roles = WORKERS

    @admin.action(description="Convert to deals", permissions=["change"])
    def convert(self, request, queryset):
        self.run_action(
            request,
            queryset.select_related("organization__primary_niche"),
            lambda lead: services.lead_convert(
                organization=lead.organization, lead=lead, changed_by=request.user
            ),
            "Converted",
        )

    rescore_roles = WORKERS

    @admin.action(description="Rescore from the niche rules", permissions=["change"])
    def rescore(self, request, queryset):
        self.run_action(
            request,
            queryset.select_related("organization__primary_niche"),
            lambda lead: services.lead_rescore(lead=lead),
            "Rescored",
        )


# --- pipelines, stages, deals ---------------------------------------------------------------


class StageInline(TenantInlineMixin, admin.TabularInline):
    model = Stage
    fields = ("order", "name", "probability", "is_won", "is_lost", "max_idle_days")
    extra = 0
    ordering = ("order",)
    add_roles = change_roles = delete_roles = SUPERVISORS


@admin.register(Pipeline)
class PipelineAdmin(CrmAdmin):
    add_roles = change_roles = delete_roles = SUPERVISORS
    list_display = ("name", "niche", "is_default", "stage_count", "board")
    list_filter = ("is_default",)
    search_fields = ("name",)
    list_select_related = ("niche",)
    fields = ("organization", "name", "niche", "is_default")
    readonly_fields = ("is_default",)
    inlines = (StageInline,)
    actions = ("make_default",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_stages=Count("stages")).order_by("name")

    @admin.display(description="stages", ordering="n_stages")
    def stage_count(self, obj) -> int:
        return obj.n_stages

    @admin.display(description="board")
    def board(self, obj) -> str:
        url = reverse("admin:pipeline_board")
        return format_html(
            '<a href="{}?organization={}&pipeline={}">Open board</a>',
            url,
            obj.organization_id,
            obj.pk,
        )

    def save_model(self, request, obj, form, change):
        if change:
            services.pipeline_update(
                organization=obj.organization,
                pipeline=obj,
                data=self.changed_values(form, ("name", "niche")),
            )
            return
        data = form.cleaned_data
        self.adopt(
            obj,
            services.pipeline_create(
                organization=data["organization"], name=data["name"], niche=data.get("niche")
            ),
        )

    def save_formset(self, request, form, formset, change):
        """Stages are written by `stage_save` / `stage_delete` (validated, same organization)."""
        pipeline = form.instance
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for deleted in formset.deleted_forms:
            if deleted.instance.pk:
                services.stage_delete(organization=pipeline.organization, stage=deleted.instance)
                formset.deleted_objects.append(deleted.instance)
        for stage_form in formset.forms:
            if stage_form in formset.deleted_forms or not stage_form.has_changed():
                continue
            instance = stage_form.instance
            adding = instance._state.adding
            saved = services.stage_save(
                organization=pipeline.organization,
                pipeline=pipeline,
                stage=None if adding else instance,
                data={f: stage_form.cleaned_data[f] for f in StageInline.fields},
            )
            if adding:
                formset.new_objects.append(saved)
            else:
                formset.changed_objects.append((saved, stage_form.changed_data))

    make_default_roles = SUPERVISORS

    @admin.action(description="Make default", permissions=["change"])
    def make_default(self, request, queryset):
        self.run_action(
            request,
            queryset,
            lambda p: services.pipeline_set_default(organization=p.organization, pipeline=p),
            "Default pipeline set",
        )


@admin.register(Stage)
class StageAdmin(CrmAdmin):
    add_roles = change_roles = delete_roles = SUPERVISORS
    list_display = (
        "name",
        "pipeline",
        "order",
        "probability",
        "is_won",
        "is_lost",
        "max_idle_days",
    )
    list_filter = (("pipeline", admin.RelatedOnlyFieldListFilter), "is_won", "is_lost")
    search_fields = ("name", "pipeline__name")
    list_select_related = ("pipeline",)
    ordering = ("pipeline__name", "order")
    fields = (
        "organization",
        "pipeline",
        "order",
        "name",
        "probability",
        "is_won",
        "is_lost",
        "max_idle_days",
    )

    def get_readonly_fields(self, request, obj=None):
        return ("organization", "pipeline") if obj else ()

    def save_model(self, request, obj, form, change):
        data = {f: form.cleaned_data[f] for f in services.STAGE_FIELDS if f in form.cleaned_data}
        self.adopt(
            obj,
            services.stage_save(
                organization=self.organization_for(form, obj),
                pipeline=form.cleaned_data.get("pipeline") or obj.pipeline,
                stage=obj if change else None,
                data=data,
            ),
        )


class DealStageChangeInline(ReadOnlyInline):
    model = DealStageChange
    fields = ("created_at", "from_stage", "to_stage", "changed_by", "actor")
    readonly_fields = fields
    ordering = ("created_at",)


class DealForm(TenantModelForm):
    class Meta:
        model = Deal
        fields = (
            "organization",
            "title",
            "contact",
            "company",
            "pipeline",
            "stage",
            "amount",
            "currency",
            "expected_close_date",
            "owner",
            "source",
            "lost_reason",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, help_text in (
            ("pipeline", "Empty: the organization's default pipeline."),
            ("stage", "Empty: the pipeline's first stage."),
        ):
            if name in self.fields:
                self.fields[name].required = False
                self.fields[name].help_text = help_text

    def clean(self):
        cleaned = super().clean()
        stage = cleaned.get("stage")
        pipeline = cleaned.get("pipeline") or (
            self.instance.pipeline if self.instance.pipeline_id else None
        )
        if stage is not None and pipeline is not None and stage.pipeline_id != pipeline.pk:
            self.add_error("stage", f"Not a stage of {pipeline}.")
        return cleaned


@admin.register(Deal)
class DealAdmin(CrmAdmin):
    form = DealForm
    list_display = (
        "title",
        "contact",
        "pipeline",
        "stage",
        "status",
        "amount_display",
        "owner",
        "expected_close_date",
        "stage_changed_at",
    )
    list_filter = (
        "status",
        ("pipeline", admin.RelatedOnlyFieldListFilter),
        ("stage", admin.RelatedOnlyFieldListFilter),
        ("owner", admin.RelatedOnlyFieldListFilter),
        "expected_close_date",
    )
    search_fields = ("title", "contact__name", "contact__email", "contact__phone")
    list_select_related = ("contact", "pipeline", "stage", "owner")
    autocomplete_fields = ("contact", "company")
    readonly_fields = ("status", "closed_at", "stage_changed_at", "last_activity_at", "created_at")
    inlines = (DealStageChangeInline,)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj) -> str:
        return "" if obj.amount is None else f"{obj.amount:,.2f} {obj.currency}"

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("pipeline")
        return fields

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            self.adopt(
                obj,
                services.deal_create(
                    organization=data["organization"],
                    title=data.get("title", ""),
                    contact=data.get("contact"),
                    company=data.get("company"),
                    pipeline=data.get("pipeline"),
                    stage=data.get("stage"),
                    amount=data.get("amount"),
                    currency=data.get("currency"),
                    expected_close_date=data.get("expected_close_date"),
                    owner=data.get("owner"),
                    source=data.get("source") or "admin",
                    changed_by=request.user,
                ),
            )
            return
        services.deal_update(
            organization=obj.organization,
            deal=obj,
            data=self.changed_values(form, services.DEAL_UPDATABLE),
        )
        if "stage" in form.changed_data and data.get("stage") is not None:
            services.deal_move_stage(
                organization=obj.organization,
                deal=obj,
                stage=data["stage"],
                changed_by=request.user,
                lost_reason=data.get("lost_reason", ""),
            )
        obj.refresh_from_db()


@admin.register(DealStageChange)
class DealStageChangeAdmin(CrmAdmin):
    list_display = ("created_at", "deal", "from_stage", "to_stage", "changed_by", "actor")
    list_filter = (("to_stage", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("deal__title", "actor")
    list_select_related = ("deal", "from_stage", "to_stage", "changed_by")
    readonly_fields = ("deal", "from_stage", "to_stage", "changed_by", "actor", "created_at")
    fields = readonly_fields

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- tasks and notes ------------------------------------------------------------------------


@admin.register(Task)
class TaskAdmin(CrmAdmin):
    list_display = ("title", "status", "due_at", "assignee", "contact", "deal", "source")
    list_filter = (
        "status",
        ("assignee", admin.RelatedOnlyFieldListFilter),
        "source",
        "due_at",
    )
    search_fields = ("title", "contact__name", "contact__email")
    list_select_related = ("assignee", "contact", "deal")
    autocomplete_fields = ("contact", "deal")
    readonly_fields = ("status", "source", "completed_at", "completed_by", "created_at")
    actions = ("complete",)

    def get_fields(self, request, obj=None):
        editable = ("title", "description", "due_at", "assignee")
        if obj is None:
            return ("organization", *editable, "contact", "deal")
        return (*editable, "contact", "deal", *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("organization", "contact", "deal", *self.readonly_fields)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            self.adopt(
                obj,
                services.task_create(
                    organization=data["organization"],
                    title=data["title"],
                    description=data.get("description", ""),
                    due_at=data.get("due_at"),
                    assignee=data.get("assignee"),
                    contact=data.get("contact"),
                    deal=data.get("deal"),
                    source="admin",
                ),
            )
            return
        services.task_update(
            organization=obj.organization,
            task=obj,
            data=self.changed_values(form, services.TASK_UPDATABLE),
        )

    complete_roles = WORKERS

    @admin.action(description="Mark done", permissions=["change"])
    def complete(self, request, queryset):
        self.run_action(
            request,
            queryset.exclude(status=TaskStatus.DONE).select_related("organization"),
            lambda task: services.task_complete(
                organization=task.organization, task=task, completed_by=request.user
            ),
            "Done",
        )


@admin.register(Note)
class NoteAdmin(CrmAdmin):
    list_display = ("short_body", "contact", "deal", "author", "created_at")
    search_fields = ("body", "contact__name", "contact__email")
    list_filter = (("author", admin.RelatedOnlyFieldListFilter), "created_at")
    list_select_related = ("contact", "deal", "author")
    autocomplete_fields = ("contact", "deal")
    readonly_fields = ("author", "created_at")

    @admin.display(description="note")
    def short_body(self, obj) -> str:
        return obj.body[:80] + ("…" if len(obj.body) > 80 else "")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("organization", "contact", "deal", "body")
        return ("contact", "deal", "body", "author", "created_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("organization", "contact", "deal", "author", "created_at")

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.note_update(organization=obj.organization, note=obj, body=data["body"])
            return
        self.adopt(
            obj,
            services.note_create(
                organization=data["organization"],
                contact=data["contact"],
                body=data["body"],
                deal=data.get("deal"),
                author=request.user,
            ),
        )
