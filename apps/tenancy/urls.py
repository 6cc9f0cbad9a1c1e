from django.urls import path

from apps.tenancy import api

urlpatterns = [
    path("organization/", api.OrganizationView.as_view(), name="organization"),
]
