"""Decisions in the operator console: the decision log (read-only; actions, compliance
interventions and outcomes pretty-printed), credits and their ledger, the agent's
conversation memory, scheduled actions, and the decision simulator page.

Everything is tenant-scoped (`TenantAdmin`): staff see their organizations' rows only.
Decisions, ledger entries and memories are written by the services alone, so nobody adds
or edits them here; top-ups go through `credits_top_up` (management command or the
account's action, superusers only).
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.html import format_html

from apps.core.errors import DomainError
from apps.decisions.admin_views import decision_simulator
from apps.decisions.credits import credits_top_up
from apps.decisions.models import (
    ConversationMemory,
    CreditAccount,
    CreditLedgerEntry,
    Decision,
    DecisionOutcome,
    ScheduledAction,
    ScheduledStatus,
)
from apps.tenancy.roles import ALL_ROLES, SUPERVISORS
from apps.tenancy.scoping import TenantAdmin, TenantInlineMixin

admin.site.register_page(
    "decisions/simulator/",
    decision_simulator,
    name="decision_simulator",
    title="Decision simulator",
)


def _pre(value) -> str:
    text = json.dumps(value, indent=2, cls=DjangoJSONEncoder, ensure_ascii=False)
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)


class ReadOnlyTenantAdmin(TenantAdmin):
    view_roles = ALL_ROLES
    change_roles = frozenset()
    add_roles = frozenset()
    delete_roles = frozenset()

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class OutcomeInline(TenantInlineMixin, admin.TabularInline):
    model = DecisionOutcome
    fields = ("kind", "subject_type", "subject_id", "occurred_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Decision)
class DecisionAdmin(ReadOnlyTenantAdmin):
    list_display = (
        "created_at",
        "contact",
        "trigger",
        "engine_used",
        "intent",
        "actions_list",
        "interventions",
        "credits_used",
        "latency_ms",
    )
    # Choice fields only: a filter on a free-text column would scan the table for its values.
    list_filter = ("trigger", "engine", "engine_requested", "created_at")
    search_fields = ("contact__name", "contact__email", "contact__phone", "event_id", "=id")
    list_select_related = ("contact",)
    inlines = [OutcomeInline]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "organization",
                    "contact",
                    "conversation",
                    "trigger",
                    "event_id",
                    "message",
                    "intent",
                    "created_at",
                    "trace_id",
                )
            },
        ),
        (
            "Engine",
            {
                "fields": (
                    "engine_requested",
                    "engine",
                    "fallback_reason",
                    "rationale",
                    "latency_ms",
                    "prompt_tokens",
                    "completion_tokens",
                    "credits_used",
                )
            },
        ),
        ("Actions", {"fields": ("actions_pretty", "execution_pretty", "executed_at")}),
        ("Compliance", {"fields": ("compliance_pretty",)}),
        ("Inputs", {"fields": ("inputs_digest", "context_pretty")}),
    )
    readonly_fields = (
        "organization",
        "contact",
        "conversation",
        "trigger",
        "event_id",
        "message",
        "intent",
        "created_at",
        "trace_id",
        "engine_requested",
        "engine",
        "fallback_reason",
        "rationale",
        "latency_ms",
        "prompt_tokens",
        "completion_tokens",
        "credits_used",
        "actions_pretty",
        "execution_pretty",
        "executed_at",
        "compliance_pretty",
        "inputs_digest",
        "context_pretty",
    )

    @admin.display(description="engine", ordering="engine")
    def engine_used(self, obj: Decision) -> str:
        if obj.engine != obj.engine_requested:
            return f"{obj.engine} (asked {obj.engine_requested})"
        return obj.engine

    @admin.display(description="actions")
    def actions_list(self, obj: Decision) -> str:
        return ", ".join(obj.action_types)

    @admin.display(description="interventions", ordering="intervention_count")
    def interventions(self, obj: Decision) -> str:
        found = (obj.compliance or {}).get("interventions") or []
        return ", ".join(f"{i['rule']}: {i['outcome']}" for i in found) or "-"

    @admin.display(description="actions")
    def actions_pretty(self, obj: Decision):
        return _pre(obj.actions)

    @admin.display(description="execution")
    def execution_pretty(self, obj: Decision):
        return _pre(obj.execution) if obj.execution is not None else "not executed (n8n executes)"

    @admin.display(description="compliance")
    def compliance_pretty(self, obj: Decision):
        return _pre(obj.compliance)

    @admin.display(description="context")
    def context_pretty(self, obj: Decision):
        return _pre(obj.context_summary)


@admin.register(CreditAccount)
class CreditAccountAdmin(ReadOnlyTenantAdmin):
    list_display = ("organization", "balance", "plan_balance", "topup_balance", "plan_period")
    readonly_fields = ("organization", "plan_balance", "topup_balance", "plan_period", "updated_at")
    list_select_related = ("organization",)
    actions = ["top_up_1000"]

    @admin.display(description="balance")
    def balance(self, obj: CreditAccount) -> int:
        return obj.balance

    def has_top_up_permission(self, request) -> bool:
        return request.user.is_superuser

    top_up_1000_roles = frozenset()  # superusers only

    @admin.action(description="Top up 1,000 credits (superusers)", permissions=["top_up"])
    def top_up_1000(self, request, queryset):
        for account in queryset.select_related("organization"):
            try:
                credits_top_up(
                    organization=account.organization,
                    amount=1000,
                    note="Top-up in the console",
                    created_by=request.user,
                )
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return
        self.message_user(request, f"Topped up {queryset.count()} account(s).")


@admin.register(CreditLedgerEntry)
class CreditLedgerEntryAdmin(ReadOnlyTenantAdmin):
    list_display = (
        "created_at",
        "organization",
        "kind",
        "amount",
        "plan_balance_after",
        "topup_balance_after",
        "decision",
        "note",
    )
    list_filter = ("kind", "created_at")
    list_select_related = ("organization",)
    readonly_fields = (
        "organization",
        "kind",
        "amount",
        "plan_balance_after",
        "topup_balance_after",
        "decision",
        "period",
        "note",
        "created_by",
        "created_at",
    )


@admin.register(ConversationMemory)
class ConversationMemoryAdmin(ReadOnlyTenantAdmin):
    list_display = ("contact", "decision_count", "last_intent", "last_decision_at")
    list_select_related = ("contact",)
    search_fields = ("contact__name", "contact__email", "contact__phone")
    fields = (
        "organization",
        "contact",
        "summary",
        "facts_pretty",
        "turns_pretty",
        "decision_count",
        "last_intent",
        "last_decision_at",
    )
    readonly_fields = fields

    @admin.display(description="facts")
    def facts_pretty(self, obj):
        return _pre(obj.facts)

    @admin.display(description="turns")
    def turns_pretty(self, obj):
        return _pre(obj.turns)


@admin.register(ScheduledAction)
class ScheduledActionAdmin(TenantAdmin):
    view_roles = ALL_ROLES
    change_roles = SUPERVISORS
    list_display = ("due_at", "kind", "contact", "status", "decision")
    list_filter = ("kind", "status")
    list_select_related = ("contact", "decision")
    readonly_fields = (
        "organization",
        "contact",
        "decision",
        "kind",
        "due_at",
        "payload",
        "status",
        "result",
        "completed_at",
    )
    actions = ["cancel"]

    def has_add_permission(self, request, *args) -> bool:
        return False

    cancel_roles = SUPERVISORS

    @admin.action(description="Cancel the selected pending actions", permissions=["change"])
    def cancel(self, request, queryset):
        count = queryset.filter(status=ScheduledStatus.PENDING).update(
            status=ScheduledStatus.CANCELLED
        )
        self.message_user(request, f"Cancelled {count} scheduled action(s).")
