import json

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from apps.conversations.models import MessageStatusUpdate
from apps.conversations.services import message_send_retry
from apps.core.errors import DomainError
from apps.providers import selectors, services
from apps.providers.models import ChannelConnection, MessageDelivery
from apps.tenancy.roles import MANAGERS, WORKERS
from apps.tenancy.scoping import TenantAdmin, TenantInlineMixin

SECRET_KEYS = {
    "auth_token",
    "access_token",
    "app_secret",
    "verify_token",
    "api_key",
    "inbound_token",
    "signing_key",
}


def mask(key: str, value) -> str:
    """Credentials are never shown in full: secrets keep their last 4 characters only."""
    text = str(value)
    if key not in SECRET_KEYS:
        return text
    return "••••••••" + (text[-4:] if len(text) >= 12 else "")


class ChannelConnectionForm(forms.ModelForm):
    credentials = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "autocomplete": "off", "spellcheck": "false"}),
        help_text=(
            "JSON object. When adding: every required key of the provider. When changing: "
            "only the keys given replace the stored ones; leave empty to keep them."
        ),
    )

    class Meta:
        model = ChannelConnection
        fields = ("organization", "provider", "name", "status")

    def clean_credentials(self):
        raw = (self.cleaned_data.get("credentials") or "").strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Must be a JSON object.")
        return value

    def clean(self):
        cleaned = super().clean()
        credentials = cleaned.get("credentials") or {}
        adding = self.instance._state.adding
        provider = cleaned.get("provider") if adding else self.instance.provider
        if not provider:
            return cleaned
        merged = dict(credentials)
        if not adding:
            merged = {**self.instance.config, **credentials}
            if self.instance.api_base and "api_base" not in credentials:
                merged["api_base"] = self.instance.api_base
        try:
            services.channel_config_validate(provider=provider, config=merged)
        except DomainError as exc:
            self.add_error("credentials", exc.message)
        return cleaned


class StatusUpdateInline(TenantInlineMixin, admin.TabularInline):
    model = MessageStatusUpdate
    extra = 0
    can_delete = False
    fields = ("status", "occurred_at", "error_code", "error_reason")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ChannelConnection)
class ChannelConnectionAdmin(TenantAdmin):
    """Provider accounts (organization admins only). Credentials are write-only here."""

    form = ChannelConnectionForm
    view_roles = add_roles = change_roles = delete_roles = MANAGERS
    list_display = (
        "__str__",
        "provider",
        "identifier",
        "status",
        "organization",
        "last_inbound_at",
        "last_error",
    )
    list_filter = ("provider", "status")
    search_fields = ("name", "identifier")
    list_select_related = ("organization",)
    readonly_fields = (
        "identifier",
        "masked_config",
        "inbound_url",
        "status_url",
        "api_base",
        "last_inbound_at",
        "last_error",
        "created_at",
    )

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("organization", "provider", "name", "credentials")
        return ("organization", "provider", "name", "status", "credentials", *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("provider")
        return fields

    @admin.display(description="credentials (masked)")
    def masked_config(self, obj) -> str:
        return format_html_join(
            "",
            "<div><code>{}</code>: {}</div>",
            ((k, mask(k, v)) for k, v in sorted(obj.config.items())),
        )

    @admin.display(description="inbound URL")
    def inbound_url(self, obj) -> str:
        return format_html("<code>{}</code>", selectors.channel_urls(obj)[0])

    @admin.display(description="status URL")
    def status_url(self, obj) -> str:
        url = selectors.channel_urls(obj)[1]
        return format_html("<code>{}</code>", url) if url else "-"

    def save_model(self, request, obj, form, change):
        credentials = form.cleaned_data.get("credentials") or {}
        if not change:
            created = services.channel_create(
                organization=form.cleaned_data["organization"],
                provider=form.cleaned_data["provider"],
                config=credentials,
                name=form.cleaned_data.get("name") or "",
            )
            obj.pk = created.pk
            obj.__dict__.update(
                {k: v for k, v in created.__dict__.items() if not k.startswith("_")}
            )
            return
        channel = ChannelConnection.objects.get(pk=obj.pk)
        services.channel_update(
            channel=channel,
            config_changes=credentials or None,
            name=form.cleaned_data.get("name") or "",
            status=form.cleaned_data.get("status"),
        )


@admin.register(MessageDelivery)
class MessageDeliveryAdmin(TenantAdmin):
    """Read-only delivery log: provider ids, statuses, attempts; failed sends can be retried."""

    list_display = (
        "created_at",
        "contact",
        "direction",
        "channel",
        "status",
        "error_code",
        "provider_message_id",
        "send_attempts",
        "next_attempt_at",
    )
    list_filter = ("status", "direction", "channel")
    search_fields = ("=id", "=provider_message_id", "=email_message_id")
    list_select_related = ("contact", "organization")
    date_hierarchy = "created_at"
    inlines = (StatusUpdateInline,)
    actions = ("retry_failed",)
    exclude = ("raw",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "raw"] + ["payload"]

    @admin.display(description="raw payload")
    def payload(self, obj) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.raw, indent=2, sort_keys=True))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_retry_permission(self, request) -> bool:
        return self._allowed(request, self.retry_failed_roles)

    retry_failed_roles = WORKERS

    @admin.action(description="Retry selected failed sends", permissions=["retry"])
    def retry_failed(self, request, queryset):
        count = 0
        for message in queryset.select_related("organization").filter(
            direction="out", status="failed"
        ):
            message_send_retry(organization=message.organization, message=message)
            count += 1
        self.message_user(request, f"Queued {count} message(s) again.", messages.SUCCESS)
