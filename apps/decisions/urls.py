from django.urls import path

from apps.decisions import api

urlpatterns = [
    path("decisions/", api.DecisionCreateView.as_view(), name="decision-create"),
]
