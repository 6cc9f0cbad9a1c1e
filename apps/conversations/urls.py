from django.urls import path

from apps.conversations import api

urlpatterns = [
    path("conversations/<uuid:pk>/", api.ConversationDetailView.as_view(), name="conversation"),
    path(
        "conversations/<uuid:pk>/escalate/",
        api.ConversationEscalateView.as_view(),
        name="conversation-escalate",
    ),
]
