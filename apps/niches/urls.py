from django.urls import path

from apps.niches import api

urlpatterns = [
    path("niches/", api.NicheListView.as_view(), name="niche-list"),
    path("niches/<str:slug>/", api.NicheDetailView.as_view(), name="niche-detail"),
]
