"""`/api/v1/`: each app owns its routes in `apps/<app>/urls.py`."""

from django.urls import include, path

urlpatterns = [
    path("", include("apps.tenancy.urls")),
    path("", include("apps.events.urls")),
    path("", include("apps.niches.urls")),
    path("", include("apps.crm.urls")),
    path("", include("apps.bookings.urls")),
    path("", include("apps.providers.urls")),
    path("", include("apps.conversations.urls")),
    path("", include("apps.decisions.urls")),
    path("", include("apps.revenue.urls")),
]
