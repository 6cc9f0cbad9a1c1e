from django.contrib import admin

from apps.core.models import IdempotencyRecord


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    """Stored API responses per Idempotency-Key (superusers; for support)."""

    list_display = (
        "created_at",
        "organization",
        "method",
        "path",
        "key",
        "response_status",
        "expires_at",
    )
    list_filter = ("method", "response_status")
    search_fields = ("=key", "path")
    list_select_related = ("organization",)
    show_full_result_count = False

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
