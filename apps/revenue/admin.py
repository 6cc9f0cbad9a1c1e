"""Revenue in the operator console: invoices (print, send, record a payment, void), payments,
revenue entries, price rules, sequences and enrolments, churn alerts, duplicate suggestions,
job settings, plans (superusers) and the job run log; plus the dashboards and usage page.

Organization-owned admins are tenant-scoped (`TenantAdmin`); invoices change only through
the services (so the console emits the same events as the API).
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from apps.core.errors import DomainError
from apps.revenue import limits, services
from apps.revenue.admin_views import (
    activity_dashboard,
    invoice_print,
    revenue_dashboard,
    usage_page,
)
from apps.revenue.models import (
    ChurnAlert,
    DuplicateStatus,
    DuplicateSuggestion,
    Enrollment,
    EnrollmentStatus,
    EnrollmentStepSend,
    Invoice,
    InvoiceLine,
    InvoiceSequence,
    JobRun,
    Payment,
    PaymentMethod,
    Plan,
    PriceRule,
    RevenueEntry,
    RevenueSettings,
    Sequence,
    SequenceStep,
    Subscription,
)
from apps.tenancy.roles import ALL_ROLES, MANAGERS, SUPERVISORS, WORKERS
from apps.tenancy.scoping import TenantAdmin, TenantInlineMixin
from apps.tenancy.selectors import user_role_in

admin.site.register_page(
    "revenue/dashboard/", revenue_dashboard, name="revenue_dashboard", title="Revenue"
)
admin.site.register_page(
    "revenue/activity/", activity_dashboard, name="revenue_activity", title="Activity"
)
admin.site.register_page(
    "revenue/usage/", usage_page, name="revenue_usage", title="Plan & usage", in_nav=True
)
admin.site.register_page(
    "revenue/invoices/<uuid:pk>/print/",
    invoice_print,
    name="revenue_invoice_print",
    title="Print invoice",
    in_nav=False,
)


class ReadOnlyInline(TenantInlineMixin, admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(TenantAdmin):
    """Rows written by services and jobs: listed and inspected, never edited here."""

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class TenantForm(forms.ModelForm):
    """Related rows must belong to the row's organization."""

    def clean(self):
        cleaned = super().clean()
        organization = cleaned.get("organization") or getattr(self.instance, "organization", None)
        if organization is None:
            return cleaned
        for name, value in cleaned.items():
            if name != "organization" and getattr(value, "organization_id", None) not in (
                None,
                organization.pk,
            ):
                self.add_error(name, f"This {value._meta.verbose_name} belongs elsewhere.")
        return cleaned


# --- invoices -------------------------------------------------------------------------------


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = ("position", "description", "quantity", "unit_price", "tax_rate", "amount")
    readonly_fields = fields


class PaymentInline(ReadOnlyInline):
    model = Payment
    fields = ("received_at", "amount", "currency", "method", "reference", "note")
    readonly_fields = fields


class PaymentForm(forms.Form):
    amount = forms.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal("0.01"))
    method = forms.ChoiceField(choices=PaymentMethod.choices, initial=PaymentMethod.CARD)
    reference = forms.CharField(max_length=100, required=False)
    note = forms.CharField(max_length=300, required=False)


@admin.register(Invoice)
class InvoiceAdmin(TenantAdmin):
    """Invoices are created through the API (or n8n); here they are read, printed, sent,
    paid and voided, each through its service."""

    change_roles = WORKERS
    list_display = (
        "number",
        "status",
        "bill_to_name",
        "total_display",
        "balance_display",
        "issue_date",
        "due_date",
        "organization",
    )
    list_filter = ("status", "due_date")
    search_fields = ("number", "bill_to_name", "bill_to_email")
    list_select_related = ("organization",)
    ordering = ("-created_at",)
    inlines = (InvoiceLineInline, PaymentInline)
    readonly_fields = (
        "number",
        "status",
        "contact",
        "company",
        "deal",
        "bill_to_name",
        "bill_to_email",
        "bill_to_address",
        "currency",
        "issue_date",
        "due_date",
        "subtotal",
        "tax_total",
        "total",
        "amount_paid",
        "notes",
        "sent_at",
        "overdue_at",
        "paid_at",
        "voided_at",
        "void_reason",
        "actor",
        "created_at",
        "tools",
    )
    fields = readonly_fields
    actions = ("send_selected", "void_selected")

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # never deleted: voided, so the numbering keeps no gap

    @admin.display(description="total", ordering="total")
    def total_display(self, obj) -> str:
        return f"{obj.total:,.2f} {obj.currency}"

    @admin.display(description="balance due")
    def balance_display(self, obj) -> str:
        return f"{obj.balance_due:,.2f} {obj.currency}"

    @admin.display(description="")
    def tools(self, obj) -> str:
        if obj.pk is None:
            return ""
        return format_html(
            '<a class="button" href="{}">Print</a> <a class="button" href="{}">Record a '
            "payment</a>",
            reverse("admin:revenue_invoice_print", args=[obj.pk]),
            reverse("admin:revenue_invoice_payment", args=[obj.pk]),
        )

    def get_urls(self):
        return [
            path(
                "<uuid:pk>/payment/",
                self.admin_site.admin_view(self.payment_view),
                name="revenue_invoice_payment",
            ),
            *super().get_urls(),
        ]

    def payment_view(self, request, pk):
        invoice = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_change_permission(request, invoice):
            raise PermissionDenied
        form = PaymentForm(request.POST or None, initial={"amount": invoice.balance_due})
        if request.method == "POST" and form.is_valid():
            try:
                services.payment_record(
                    organization=invoice.organization,
                    invoice=invoice,
                    recorded_by=request.user,
                    **form.cleaned_data,
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"Payment recorded on {invoice.number}.")
                return HttpResponseRedirect(
                    reverse("admin:revenue_invoice_change", args=[invoice.pk])
                )
        return TemplateResponse(
            request,
            "admin/revenue/payment_form.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Record a payment on {invoice.number}",
                "invoice": invoice,
                "form": form,
                "opts": self.model._meta,
            },
        )

    def _run(self, request, queryset, service, done: str) -> None:
        ok, failed = 0, []
        for invoice in queryset.select_related("organization"):
            if (
                not request.user.is_superuser
                and user_role_in(user=request.user, organization_id=invoice.organization_id)
                not in self.change_roles
            ):
                failed.append(f"{invoice}: not allowed")
                continue
            try:
                service(invoice)
                ok += 1
            except DomainError as exc:
                failed.append(f"{invoice}: {exc.message}")
        if ok:
            self.message_user(request, f"{done}: {ok}.", messages.SUCCESS)
        for failure in failed[:10]:
            self.message_user(request, failure, messages.WARNING)

    send_selected_roles = WORKERS

    @admin.action(description="Send selected draft invoices", permissions=["change"])
    def send_selected(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda i: services.invoice_send(
                organization=i.organization, invoice=i, sent_by=request.user
            ),
            "Sent",
        )

    void_selected_roles = WORKERS

    @admin.action(description="Void selected unpaid invoices", permissions=["change"])
    def void_selected(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda i: services.invoice_void(
                organization=i.organization,
                invoice=i,
                reason=f"voided by {request.user}",
                voided_by=request.user,
            ),
            "Voided",
        )


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("invoice", "amount", "currency", "method", "reference", "received_at")
    list_filter = ("method",)
    search_fields = ("reference", "invoice__number")
    list_select_related = ("invoice",)


@admin.register(InvoiceSequence)
class InvoiceSequenceAdmin(TenantAdmin):
    """Prefix and padding of invoice numbers (the next number only moves forward)."""

    view_roles = change_roles = MANAGERS
    list_display = ("organization", "prefix", "padding", "next_number")
    readonly_fields = ("next_number",)

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(RevenueEntry)
class RevenueEntryAdmin(ReadOnlyAdmin):
    list_display = ("recognized_at", "kind", "amount", "currency", "source", "campaign", "deal")
    list_filter = ("kind", "source")
    search_fields = ("campaign", "source")
    list_select_related = ("deal",)


# --- pricing, sequences, settings -----------------------------------------------------------------


@admin.register(PriceRule)
class PriceRuleAdmin(TenantAdmin):
    """The allowed price range of each offer: an AI reply may not quote outside it."""

    form = TenantForm
    change_roles = add_roles = delete_roles = SUPERVISORS
    list_display = (
        "name",
        "appointment_type",
        "product",
        "min_price",
        "max_price",
        "currency",
        "action",
        "is_active",
    )
    list_filter = ("action", "is_active")
    search_fields = ("name", "product")
    list_select_related = ("appointment_type",)
    autocomplete_fields = ()


class SequenceStepInline(TenantInlineMixin, admin.TabularInline):
    model = SequenceStep
    extra = 1
    fields = ("position", "delay_hours", "channel", "subject", "body", "template_purpose")

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        parent = obj

        class OwnedFormSet(formset):
            def save_new(self, form, commit=True):
                form.instance.organization_id = (parent or self.instance).organization_id
                return super().save_new(form, commit)

        return OwnedFormSet


@admin.register(Sequence)
class SequenceAdmin(TenantAdmin):
    change_roles = add_roles = delete_roles = SUPERVISORS
    list_display = ("name", "kind", "is_active", "auto_enroll", "daily_cap", "organization")
    list_filter = ("kind", "is_active", "auto_enroll")
    search_fields = ("name",)
    inlines = (SequenceStepInline,)

    def save_formset(self, request, form, formset, change):
        for inline_form in formset.forms:
            inline_form.instance.organization_id = form.instance.organization_id
        super().save_formset(request, form, formset, change)


class StepSendInline(ReadOnlyInline):
    model = EnrollmentStepSend
    fields = ("position", "channel", "status", "reason", "message", "created_at")
    readonly_fields = fields


@admin.register(Enrollment)
class EnrollmentAdmin(ReadOnlyAdmin):
    list_display = (
        "contact",
        "sequence",
        "status",
        "next_step",
        "next_send_at",
        "exit_reason",
        "created_at",
    )
    list_filter = ("status", "exit_reason")
    list_select_related = ("contact", "sequence")
    inlines = (StepSendInline,)
    actions = ("stop_selected",)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._allowed(request, WORKERS, obj)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Enrollment._meta.fields]

    stop_selected_roles = WORKERS

    @admin.action(description="Stop selected enrolments", permissions=["change"])
    def stop_selected(self, request, queryset):
        stopped = 0
        for enrollment in queryset.filter(status=EnrollmentStatus.ACTIVE):
            services.enrollment_exit(enrollment=enrollment, reason="manual")
            stopped += 1
        self.message_user(request, f"Stopped {stopped} enrolment(s).")


@admin.register(RevenueSettings)
class RevenueSettingsAdmin(TenantAdmin):
    form = TenantForm
    view_roles = change_roles = MANAGERS
    list_display = (
        "organization",
        "churn_guard_enabled",
        "resurrection_enabled",
        "outreach_daily_cap",
        "enrichment_enabled",
    )

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ChurnAlert)
class ChurnAlertAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "signal", "deal", "contact", "task")
    list_filter = ("signal",)
    list_select_related = ("deal", "contact", "task")


@admin.register(DuplicateSuggestion)
class DuplicateSuggestionAdmin(ReadOnlyAdmin):
    view_roles = ALL_ROLES
    list_display = ("contact", "other", "score", "reason", "status", "merge_link")
    list_filter = ("status",)
    list_select_related = ("contact", "other")
    actions = ("dismiss_selected",)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._allowed(request, WORKERS, obj)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in DuplicateSuggestion._meta.fields]

    @admin.display(description="")
    def merge_link(self, obj) -> str:
        return format_html(
            '<a href="{}">Review</a>', reverse("admin:crm_contact_change", args=[obj.contact_id])
        )

    dismiss_selected_roles = WORKERS

    @admin.action(description="Dismiss selected suggestions", permissions=["change"])
    def dismiss_selected(self, request, queryset):
        count = queryset.filter(status=DuplicateStatus.OPEN).update(
            status=DuplicateStatus.DISMISSED
        )
        self.message_user(request, f"Dismissed {count} suggestion(s).")


# --- plans (platform-wide: superusers) ---------------------------------------------------------


class SuperuserAdmin(admin.ModelAdmin):
    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    has_add_permission = has_change_permission = has_delete_permission = has_view_permission


@admin.register(Plan)
class PlanAdmin(SuperuserAdmin):
    list_display = (
        "name",
        "key",
        "price",
        "currency",
        "max_operators",
        "max_channels",
        "max_contacts",
        "max_decisions_per_month",
        "max_outbound_messages_per_day",
        "is_active",
    )
    readonly_fields = ("updated_at",)

    def get_readonly_fields(self, request, obj=None):
        return ("key", "updated_at")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        limits.plan_cache_clear()

    def has_add_permission(self, request) -> bool:
        return False  # the tiers are Organization.plan's choices (seeded); edit them

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # organizations point at plans by key


class PlanChoiceForm(forms.ModelForm):
    plan = forms.ChoiceField(help_text="Changing it takes effect at once (limits included).")
    reason = forms.CharField(max_length=200, required=False)

    class Meta:
        model = Subscription
        fields = ("status", "current_period_start", "current_period_end")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].choices = list(
            Plan.objects.filter(is_active=True).values_list("key", "name")
        )
        if self.instance.pk:
            self.fields["plan"].initial = self.instance.organization.plan


@admin.register(Subscription)
class SubscriptionAdmin(SuperuserAdmin):
    form = PlanChoiceForm
    list_display = ("organization", "plan_key", "status", "current_period_end")
    list_filter = ("status",)
    list_select_related = ("organization",)
    readonly_fields = ("organization", "started_at", "cancelled_at")

    @admin.display(description="plan")
    def plan_key(self, obj) -> str:
        return obj.organization.plan

    def has_add_permission(self, request) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.subscription_change_plan(
            organization=obj.organization,
            plan_key=form.cleaned_data["plan"],
            changed_by=request.user,
            reason=form.cleaned_data.get("reason", ""),
        )


@admin.register(JobRun)
class JobRunAdmin(SuperuserAdmin):
    list_display = (
        "job",
        "started_at",
        "finished_at",
        "status",
        "processed",
        "created",
        "errors",
    )
    list_filter = ("job", "status")
    readonly_fields = [f.name for f in JobRun._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
