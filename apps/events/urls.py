from django.urls import path

from apps.events import api

urlpatterns = [
    path("webhooks/", api.WebhookListView.as_view(), name="webhooks"),
    path("webhooks/<uuid:pk>/", api.WebhookDetailView.as_view(), name="webhook"),
    path(
        "webhooks/<uuid:pk>/rotate-secret/",
        api.WebhookRotateSecretView.as_view(),
        name="webhook-rotate-secret",
    ),
    path("webhooks/<uuid:pk>/replay/", api.WebhookReplayView.as_view(), name="webhook-replay"),
    path("events/", api.EventListView.as_view(), name="events"),
    path("events/<uuid:pk>/", api.EventDetailView.as_view(), name="event"),
    path("events/<uuid:pk>/redeliver/", api.EventRedeliverView.as_view(), name="event-redeliver"),
    path("event-types/", api.EventTypeListView.as_view(), name="event-types"),
]
