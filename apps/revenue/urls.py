"""`/api/v1/` routes of revenue."""

from django.urls import path

from apps.revenue import api

urlpatterns = [
    path("invoices/", api.InvoiceListView.as_view(), name="revenue-invoices"),
    path("invoices/<uuid:pk>/", api.InvoiceDetailView.as_view(), name="revenue-invoice"),
    path("invoices/<uuid:pk>/send/", api.InvoiceSendView.as_view(), name="revenue-invoice-send"),
    path(
        "invoices/<uuid:pk>/payments/",
        api.InvoicePaymentsView.as_view(),
        name="revenue-invoice-payments",
    ),
    path("invoices/<uuid:pk>/void/", api.InvoiceVoidView.as_view(), name="revenue-invoice-void"),
    path("usage/", api.UsageView.as_view(), name="revenue-usage"),
    path("pricing/check/", api.PricingCheckView.as_view(), name="revenue-pricing-check"),
    path("revenue/", api.RevenueReportView.as_view(), name="revenue-report"),
    path(
        "sequences/<uuid:pk>/enrollments/",
        api.SequenceEnrollView.as_view(),
        name="revenue-sequence-enroll",
    ),
    path("unsubscribe/<str:token>/", api.UnsubscribeView.as_view(), name="revenue-unsubscribe"),
]
