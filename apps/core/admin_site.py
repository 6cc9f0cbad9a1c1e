"""Switchboard's admin site: Django's, plus pages that apps register (inbox, dashboards...).

Apps add pages from their `admin.py`:

    admin.site.register_page("inbox/", views.inbox, name="inbox", title="Inbox")

Each page is wrapped in `admin_view` (login + staff required) and listed in the sidebar.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import admin
from django.urls import path


@dataclass(frozen=True)
class AdminPage:
    route: str
    view: object
    name: str
    title: str
    in_nav: bool


class SwitchboardAdminSite(admin.AdminSite):
    site_header = "Switchboard"
    site_title = "Switchboard"
    index_title = "Operator console"
    login_template = "admin/login.html"

    def __init__(self, name: str = "admin"):
        super().__init__(name)
        self._pages: list[AdminPage] = []

    def register_page(
        self, route: str, view, *, name: str, title: str, in_nav: bool = True
    ) -> None:
        self._pages.append(AdminPage(route, view, name, title, in_nav))

    def get_urls(self):
        pages = [path(p.route, self.admin_view(p.view), name=p.name) for p in self._pages]
        return pages + super().get_urls()

    def each_context(self, request):
        context = super().each_context(request)
        context["switchboard_pages"] = [p for p in self._pages if p.in_nav]
        return context
