"""`/api/v1/` routes of the providers app: messages (send, read, custom-channel inbound)."""

from django.urls import path

from apps.providers import api

urlpatterns = [
    path("messages/", api.MessageSendView.as_view(), name="message-send"),
    path("messages/inbound/", api.MessageInboundView.as_view(), name="message-inbound"),
    path("messages/<uuid:pk>/", api.MessageDetailView.as_view(), name="message-detail"),
]
