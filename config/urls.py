from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.core import metrics as core_metrics
from apps.core import views as core_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("hooks/", include("apps.providers.hook_urls")),
    path("healthz", core_views.healthz, name="healthz"),
    path("metrics", core_metrics.metrics, name="prometheus-django-metrics"),
]

if settings.PROVIDER_SANDBOX:  # development and the demo only (apps/providers/sandbox.py)
    urlpatterns.append(path("sandbox/", include("apps.providers.sandbox_urls")))

handler400 = "apps.core.views.bad_request"
handler403 = "apps.core.views.permission_denied"
handler404 = "apps.core.views.page_not_found"
handler500 = "apps.core.views.server_error"
