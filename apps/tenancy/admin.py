from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.utils import timezone

from apps.tenancy import services
from apps.tenancy.models import ApiKey, Membership, Organization, Profile, User
from apps.tenancy.roles import MANAGERS
from apps.tenancy.scoping import TenantAdmin, TenantScopeMixin


@admin.register(Organization)
class OrganizationAdmin(TenantScopeMixin, admin.ModelAdmin):
    organization_lookup = "pk"
    change_roles = MANAGERS
    list_display = ("name", "slug", "primary_niche", "plan", "timezone", "is_active", "created_at")
    list_filter = ("primary_niche", "plan", "is_active")
    search_fields = ("name", "slug")
    list_select_related = ("primary_niche",)
    readonly_fields = ("id", "created_at", "updated_at")
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += ["slug", "plan", "is_active"]
        return fields

    def _object_organization_id(self, obj):
        return obj.pk

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            services.organization_provision_defaults(organization=obj)

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser


class MembershipForm(forms.ModelForm):
    email = forms.EmailField(
        help_text="The person's login. A new staff account is created if needed."
    )

    class Meta:
        model = Membership
        fields = ("organization", "role", "is_available", "max_open_conversations")


@admin.register(Membership)
class MembershipAdmin(TenantAdmin):
    """Organization admins manage their staff here."""

    view_roles = change_roles = add_roles = delete_roles = MANAGERS
    list_display = (
        "user",
        "organization",
        "role",
        "is_available",
        "max_open_conversations",
        "created_at",
    )
    list_filter = ("role", "is_available")
    search_fields = ("user__email", "user__full_name")
    list_select_related = ("user", "organization")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = MembershipForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("organization", "email", "role", "is_available", "max_open_conversations")
        return ("user", "organization", "role", "is_available", "max_open_conversations")

    def get_readonly_fields(self, request, obj=None):
        return ("user", "organization") if obj else ()

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        account = services.operator_upsert(
            organization=form.cleaned_data["organization"],
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
        )
        Membership.objects.filter(pk=account.membership.pk).update(
            is_available=form.cleaned_data["is_available"],
            max_open_conversations=form.cleaned_data["max_open_conversations"],
        )
        account.membership.refresh_from_db()
        obj.__dict__.update(account.membership.__dict__)
        if account.password:
            messages.warning(
                request,
                f"Created {account.user.email} with the temporary password {account.password} "
                "- share it privately; it is not shown again.",
            )


class ApiKeyAddForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("organization", "name")


@admin.register(ApiKey)
class ApiKeyAdmin(TenantAdmin):
    view_roles = change_roles = add_roles = delete_roles = MANAGERS
    list_display = (
        "name",
        "organization",
        "masked",
        "created_by",
        "last_used_at",
        "revoked_at",
        "created_at",
    )
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix")
    list_select_related = ("organization", "created_by")
    readonly_fields = ("masked", "created_by", "last_used_at", "revoked_at", "created_at")
    actions = ("revoke",)

    @admin.display(description="key")
    def masked(self, obj) -> str:
        return f"sbk_{obj.prefix}_••••••••"

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ("organization", "name") if obj is None else ("name", *self.readonly_fields)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        issued = services.api_key_create(
            organization=form.cleaned_data["organization"],
            name=form.cleaned_data["name"],
            created_by=request.user,
        )
        obj.pk = issued.api_key.pk
        messages.warning(request, f"New API key (copy it now; it is not shown again): {issued.key}")

    revoke_roles = MANAGERS

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(api_key=api_key)
            count += 1
        self.message_user(
            request, f"Revoked {count} key(s) at {timezone.now():%Y-%m-%d %H:%M} UTC."
        )


class ProfileInline(admin.StackedInline):
    model = Profile
    can_delete = False


class UserCreationForm(BaseUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserChangeForm(DjangoUserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Accounts across organizations: superusers only (org admins use Memberships)."""

    form = UserChangeForm
    add_form = UserCreationForm
    ordering = ("email",)
    list_display = ("email", "full_name", "is_staff", "is_superuser", "is_active", "last_login")
    search_fields = ("email", "full_name")
    inlines = (ProfileInline,)
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal", {"fields": ("full_name",)}),
        (
            "Access",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    has_change_permission = has_add_permission = has_delete_permission = has_view_permission
