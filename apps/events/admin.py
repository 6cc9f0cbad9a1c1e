import json

from django.contrib import admin
from django.utils.html import format_html

from apps.events.models import Event
from apps.tenancy.scoping import TenantAdmin


@admin.register(Event)
class EventAdmin(TenantAdmin):
    """The event log: read-only, searchable by type, subject and trace id."""

    list_display = ("created_at", "type", "sequence", "subject", "trace_id", "organization")
    list_filter = ("type",)
    search_fields = ("=id", "type", "=subject_id", "=trace_id")
    list_select_related = ("organization",)
    date_hierarchy = "created_at"
    readonly_fields = (
        "id",
        "organization",
        "type",
        "version",
        "sequence",
        "subject_type",
        "subject_id",
        "trace_id",
        "created_at",
        "pretty_data",
    )
    exclude = ("data",)

    @admin.display(description="subject")
    def subject(self, obj) -> str:
        return f"{obj.subject_type}:{obj.subject_id}"

    @admin.display(description="data")
    def pretty_data(self, obj) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, sort_keys=True))

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
