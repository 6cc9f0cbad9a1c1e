from django.urls import path

from apps.bookings import api

urlpatterns = [
    path("appointment-types/", api.AppointmentTypeListView.as_view(), name="appointment-type-list"),
    path("bookings/", api.BookingListView.as_view(), name="booking-list"),
    path("bookings/slots/", api.SlotListView.as_view(), name="booking-slots"),
    path("bookings/<uuid:pk>/", api.BookingDetailView.as_view(), name="booking-detail"),
    path(
        "bookings/<uuid:pk>/reschedule/",
        api.BookingRescheduleView.as_view(),
        name="booking-reschedule",
    ),
    path("bookings/<uuid:pk>/cancel/", api.BookingCancelView.as_view(), name="booking-cancel"),
    path("bookings/<uuid:pk>/confirm/", api.BookingConfirmView.as_view(), name="booking-confirm"),
    path(
        "bookings/<uuid:pk>/complete/", api.BookingCompleteView.as_view(), name="booking-complete"
    ),
    path("bookings/<uuid:pk>/no-show/", api.BookingNoShowView.as_view(), name="booking-no-show"),
]
