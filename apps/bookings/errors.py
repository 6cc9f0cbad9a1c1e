"""The domain errors of bookings, built in one place so the API and services agree on codes.

409 `slot_taken`, `invalid_transition`; 422 `slot_unavailable`, `slot_in_past`,
`slot_too_soon`, `slot_too_far`, `appointment_type_inactive`, `resource_not_eligible`,
`booking_not_started`.
"""

from __future__ import annotations

from apps.core.errors import Conflict, Unprocessable


def slot_taken() -> Conflict:
    return Conflict("That time has just been taken; pick another slot.", code="slot_taken")


def appointment_type_inactive(appointment_type) -> Unprocessable:
    return Unprocessable(
        f"{appointment_type.name} is not offered any more.",
        code="appointment_type_inactive",
        details={"appointment_type": appointment_type.slug},
    )


def resource_not_eligible(resource, appointment_type) -> Unprocessable:
    return Unprocessable(
        f"{resource.name} does not offer {appointment_type.name} (or is inactive).",
        code="resource_not_eligible",
        details={"resource_id": str(resource.pk), "appointment_type": appointment_type.slug},
    )
