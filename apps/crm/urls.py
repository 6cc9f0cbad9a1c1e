"""`/api/v1/` routes of the CRM."""

from django.urls import path

from apps.crm import api

urlpatterns = [
    path("contacts/", api.ContactListView.as_view(), name="crm-contacts"),
    path("contacts/<uuid:pk>/", api.ContactDetailView.as_view(), name="crm-contact"),
    path("contacts/<uuid:pk>/notes/", api.ContactNotesView.as_view(), name="crm-contact-notes"),
    path("deals/", api.DealListView.as_view(), name="crm-deals"),
    path("deals/<uuid:pk>/", api.DealDetailView.as_view(), name="crm-deal"),
    path("deals/<uuid:pk>/stage/", api.DealStageView.as_view(), name="crm-deal-stage"),
    path("leads/", api.LeadListView.as_view(), name="crm-leads"),
    path("leads/<uuid:pk>/", api.LeadDetailView.as_view(), name="crm-lead"),
    path("leads/<uuid:pk>/qualify/", api.LeadQualifyView.as_view(), name="crm-lead-qualify"),
    path(
        "leads/<uuid:pk>/disqualify/",
        api.LeadDisqualifyView.as_view(),
        name="crm-lead-disqualify",
    ),
    path("leads/<uuid:pk>/convert/", api.LeadConvertView.as_view(), name="crm-lead-convert"),
    path("tasks/", api.TaskListView.as_view(), name="crm-tasks"),
    path("tasks/<uuid:pk>/", api.TaskDetailView.as_view(), name="crm-task"),
    path("tasks/<uuid:pk>/complete/", api.TaskCompleteView.as_view(), name="crm-task-complete"),
    path("pipelines/", api.PipelineListView.as_view(), name="crm-pipelines"),
]
