"""Provider webhooks under `/hooks/` (see the ingress issue)."""

urlpatterns: list = []
