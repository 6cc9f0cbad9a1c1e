"""Tenant scoping for the Django admin: staff see and touch only their organizations' rows.

Every organization-owned ModelAdmin inherits `TenantAdmin` (inlines: `TenantInlineMixin`).
It scopes, for non-superusers:
- the changelist, change/delete views and actions (all built on `get_queryset`);
- foreign-key and many-to-many choices, and autocomplete results (which use the related
  admin's `get_queryset`);
- the organization a new row may belong to.
Access follows membership roles (`view_roles`, `change_roles`, ...) rather than Django's
per-model permissions; superusers see everything.

Foreign-key and many-to-many choices come only from organizations where the user may add
or change rows of this admin (`add_roles | change_roles`), not merely view them.

Admin actions: each action's roles sit next to it as `<action name>_roles` (e.g.
`replay_roles = SUPERVISORS`); without one, the roles follow the permission it declares
(`delete` → `delete_roles`, `add` → `add_roles`, `view` → `view_roles`, anything else or
nothing → `change_roles`: an action is a write). `get_actions` offers an action only to a
user who holds one of its roles somewhere, and running it checks the organization of every
selected row: if any row is in an organization where the user lacks those roles, nothing
is done (see `action_roles` and `action_guarded`).
"""

from __future__ import annotations

import functools

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect

from apps.core.models import TenantModel
from apps.tenancy.models import Membership, Organization, User
from apps.tenancy.roles import ALL_ROLES, SUPERVISORS
from apps.tenancy.selectors import user_organization_ids, user_role_in

_PERMISSION_ROLES = {"add": "add_roles", "view": "view_roles", "delete": "delete_roles"}


def action_roles(modeladmin, name: str, func) -> frozenset:
    """The membership roles that may run admin action `name` (`func`) of `modeladmin`:
    its `<name>_roles` attribute, else the roles of the permission it declares (an action
    declaring none, or a custom one without `<name>_roles`, needs `change_roles`)."""
    explicit = getattr(modeladmin, f"{name}_roles", None)
    if explicit is not None:
        return frozenset(explicit)
    declared = getattr(func, "allowed_permissions", ()) or ()
    for permission in ("delete", "add"):
        if permission in declared:
            return frozenset(getattr(modeladmin, _PERMISSION_ROLES[permission]))
    if declared and set(declared) <= {"view"}:
        return frozenset(modeladmin.view_roles)
    return frozenset(modeladmin.change_roles)


def action_guarded(func, roles: frozenset):
    """`func` (an admin action) that first checks the organization of every selected row:
    when any lies outside the organizations where the user holds one of `roles`, it reports
    an error and does nothing. Superusers pass."""

    @functools.wraps(func)
    def guarded(modeladmin, request, queryset):
        if not request.user.is_superuser:
            allowed = modeladmin.organization_ids(request, roles)
            lookup = f"{modeladmin.organization_lookup}__in"
            refused = queryset.exclude(**{lookup: allowed}).count()
            if refused:
                modeladmin.message_user(
                    request,
                    f"Your role does not allow this action on {refused} of the selected items "
                    "(their organization); nothing was done.",
                    messages.ERROR,
                )
                return None
        return func(modeladmin, request, queryset)

    return guarded


class TenantScopeMixin:
    organization_lookup = "organization"
    view_roles = ALL_ROLES
    add_roles = ALL_ROLES
    change_roles = ALL_ROLES
    delete_roles = SUPERVISORS

    # --- scoping -----------------------------------------------------------------------------
    def organization_ids(self, request, roles=ALL_ROLES) -> list:
        return user_organization_ids(user=request.user, roles=roles)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(
            **{f"{self.organization_lookup}__in": self.organization_ids(request, self.view_roles)}
        )

    def _scope_related(self, request, model, queryset=None):
        queryset = queryset if queryset is not None else model._default_manager.all()
        if request.user.is_superuser:
            return queryset
        # Choices only from organizations this form may write in, not merely view.
        org_ids = self.organization_ids(request, self.add_roles | self.change_roles)
        if model is Organization:
            return queryset.filter(pk__in=self.organization_ids(request, self.add_roles))
        if model is User:
            return queryset.filter(memberships__organization_id__in=org_ids).distinct()
        if issubclass(model, TenantModel) or hasattr(model, "organization_id"):
            return queryset.filter(organization_id__in=org_ids)
        return queryset

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        kwargs["queryset"] = self._scope_related(
            request, db_field.remote_field.model, kwargs.get("queryset")
        )
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if (
            field is not None
            and db_field.remote_field.model is Organization
            and not request.user.is_superuser
            and field.queryset.count() == 1
        ):
            field.initial = field.queryset.first()
        return field

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs["queryset"] = self._scope_related(
            request, db_field.remote_field.model, kwargs.get("queryset")
        )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    # --- actions ----------------------------------------------------------------------------
    def get_actions(self, request):
        """Actions the user may run somewhere, each guarded per selected row's organization."""
        actions = super().get_actions(request)
        offered = {}
        for name, (func, action_name, description) in actions.items():
            roles = action_roles(self, name, func)
            if request.user.is_superuser or self.organization_ids(request, roles):
                offered[name] = (action_guarded(func, roles), action_name, description)
        return offered

    def response_action(self, request, queryset):
        try:
            return super().response_action(request, queryset)
        except ValidationError:  # a malformed selected id: raised before the action runs
            self.message_user(
                request, "Some selected items do not exist; nothing was done.", messages.ERROR
            )
            return HttpResponseRedirect(request.get_full_path())

    # --- role-based access -----------------------------------------------------------------
    def _allowed(self, request, roles, obj=None) -> bool:
        user = request.user
        if not (user.is_active and user.is_staff):
            return False
        if user.is_superuser:
            return True
        if obj is not None:
            org_id = self._object_organization_id(obj)
            return org_id is not None and user_role_in(user=user, organization_id=org_id) in roles
        return bool(self.organization_ids(request, roles))

    def _object_organization_id(self, obj):
        target = obj
        for part in self.organization_lookup.split("__")[:-1]:
            target = getattr(target, part, None)
        if target is None:
            return None
        last = self.organization_lookup.split("__")[-1]
        return getattr(target, f"{last}_id", None)

    def has_module_permission(self, request) -> bool:
        return self._allowed(request, self.view_roles)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._allowed(request, self.view_roles | self.change_roles, obj)

    def has_add_permission(self, request, *args) -> bool:
        return self._allowed(request, self.add_roles)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._allowed(request, self.change_roles, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._allowed(request, self.delete_roles, obj)


class TenantAdmin(TenantScopeMixin, admin.ModelAdmin):
    """Base ModelAdmin for organization-owned models."""

    show_full_result_count = False
    list_per_page = 50

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if (
            obj is not None
            and self.organization_lookup == "organization"
            and "organization" not in fields
        ):
            fields.append("organization")  # ownership never moves between tenants
        return fields

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if request.user.is_superuser and self.organization_lookup == "organization":
            filters.insert(0, "organization")
        return filters


class TenantInlineMixin(TenantScopeMixin):
    """For inlines of organization-owned parents; the parent admin has already checked access."""

    def has_add_permission(self, request, obj=None) -> bool:
        return self._allowed(request, self.add_roles)


__all__ = [
    "Membership",
    "TenantAdmin",
    "TenantInlineMixin",
    "TenantScopeMixin",
    "action_guarded",
    "action_roles",
]
