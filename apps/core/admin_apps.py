from django.contrib.admin.apps import AdminConfig


class SwitchboardAdminConfig(AdminConfig):
    """Installs Switchboard's admin site (extra pages: inbox, dashboards, dead letters)."""

    default_site = "apps.core.admin_site.SwitchboardAdminSite"
