"""Provider webhooks under `/hooks/` (ARCHITECTURE.md, "Ingress")."""

from django.urls import path

from apps.providers import hooks

urlpatterns = [
    path("twilio/<uuid:channel_id>/", hooks.twilio_inbound, name="hook-twilio"),
    path("twilio/<uuid:channel_id>/status/", hooks.twilio_status, name="hook-twilio-status"),
    path("whatsapp/<uuid:channel_id>/", hooks.whatsapp_hook, name="hook-whatsapp"),
    path("manychat/<uuid:channel_id>/", hooks.manychat_hook, name="hook-manychat"),
    path("mailgun/<uuid:channel_id>/", hooks.mailgun_inbound, name="hook-mailgun"),
    path("mailgun/<uuid:channel_id>/events/", hooks.mailgun_events, name="hook-mailgun-events"),
]
