from django.urls import path

from apps.providers import sandbox

urlpatterns = [
    path(
        "twilio/2010-04-01/Accounts/<str:account_sid>/Messages.json",
        sandbox.twilio_messages,
        name="sandbox-twilio",
    ),
    path(
        "whatsapp/<str:version>/<str:phone_number_id>/messages",
        sandbox.whatsapp_messages,
        name="sandbox-whatsapp",
    ),
]
