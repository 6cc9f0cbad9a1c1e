"""What a new organization can book on day one, per niche: appointment types as a real
business in that niche sets them up, and one resource with its weekly hours.

Durations, buffers, notice and prices are starting points the owner edits in the admin.
Buffers before/after are travel or preparation time; `price` None means "quoted", 0 free.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from decimal import Decimal

from apps.bookings.models import LocationKind, ResourceKind

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


@dataclass(frozen=True)
class TypeDefault:
    name: str
    slug: str
    description: str
    duration_minutes: int
    price: Decimal | None
    location_kind: str = LocationKind.IN_PERSON
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    slot_interval_minutes: int = 30
    min_notice_minutes: int = 120
    max_days_ahead: int = 30
    reminder_minutes_before: int = 24 * 60
    no_show_grace_minutes: int = 15


@dataclass(frozen=True)
class ResourceDefault:
    name: str
    kind: str
    hours: dict[int, tuple[tuple[time, time], ...]]


def _h(start: str, end: str) -> tuple[time, time]:
    return time.fromisoformat(start), time.fromisoformat(end)


APPOINTMENT_TYPES: dict[str, list[TypeDefault]] = {
    "fitness": [
        TypeDefault(
            name="Free trial class",
            slug="free-trial-class",
            description="Your first class on us. Arrive 15 minutes early to sign the waiver, "
            "meet your coach and get set up.",
            duration_minutes=60,
            price=Decimal("0.00"),
            buffer_before_minutes=15,
            slot_interval_minutes=60,
            min_notice_minutes=120,
            max_days_ahead=21,
            reminder_minutes_before=3 * 60,
            no_show_grace_minutes=10,
        ),
        TypeDefault(
            name="Intro personal training session",
            slug="intro-personal-training",
            description="One-to-one session: movement screen, goals and a first workout "
            "tailored to you.",
            duration_minutes=45,
            price=Decimal("49.00"),
            buffer_after_minutes=15,
            min_notice_minutes=12 * 60,
        ),
        TypeDefault(
            name="Membership consultation",
            slug="membership-consultation",
            description="A studio tour and a chat about schedules, memberships and class packs.",
            duration_minutes=30,
            price=Decimal("0.00"),
            min_notice_minutes=60,
            no_show_grace_minutes=10,
        ),
    ],
    "med_spa": [
        TypeDefault(
            name="Consultation",
            slug="consultation",
            description="Complimentary consultation with a licensed provider to discuss your "
            "goals and which treatments may suit you. No treatment is performed.",
            duration_minutes=30,
            price=Decimal("0.00"),
            buffer_after_minutes=10,
            min_notice_minutes=4 * 60,
            max_days_ahead=60,
        ),
        TypeDefault(
            name="Injectables treatment",
            slug="injectables-treatment",
            description="Treatment with a licensed injector after a consultation. Priced per "
            "unit or syringe, quoted in advance.",
            duration_minutes=45,
            price=None,
            buffer_before_minutes=10,
            buffer_after_minutes=15,
            slot_interval_minutes=15,
            min_notice_minutes=24 * 60,
            max_days_ahead=90,
        ),
        TypeDefault(
            name="Signature facial",
            slug="signature-facial",
            description="Cleanse, exfoliation, extractions and a hydrating mask, customised "
            "to your skin.",
            duration_minutes=60,
            price=Decimal("165.00"),
            buffer_after_minutes=15,
            min_notice_minutes=12 * 60,
            max_days_ahead=60,
        ),
    ],
    "real_estate": [
        TypeDefault(
            name="Property viewing",
            slug="property-viewing",
            description="A private showing at the property with your agent. Bring photo ID.",
            duration_minutes=30,
            price=None,
            location_kind=LocationKind.ON_SITE,
            buffer_before_minutes=15,
            buffer_after_minutes=15,
            min_notice_minutes=2 * 60,
            reminder_minutes_before=3 * 60,
        ),
        TypeDefault(
            name="Buyer consultation",
            slug="buyer-consultation",
            description="Budget, areas, must-haves, financing and how the buying process works.",
            duration_minutes=45,
            price=None,
            location_kind=LocationKind.VIDEO,
            buffer_after_minutes=15,
            min_notice_minutes=4 * 60,
        ),
        TypeDefault(
            name="Home valuation visit",
            slug="home-valuation",
            description="Your agent visits to walk the home and prepare a free market "
            "appraisal with recent comparable sales.",
            duration_minutes=60,
            price=Decimal("0.00"),
            location_kind=LocationKind.ON_SITE,
            buffer_before_minutes=30,
            buffer_after_minutes=30,
            slot_interval_minutes=60,
            min_notice_minutes=24 * 60,
            no_show_grace_minutes=20,
        ),
    ],
    "consultant": [
        TypeDefault(
            name="Discovery call",
            slug="discovery-call",
            description="A free 30-minute video call to understand your goals and see whether "
            "we are a good fit.",
            duration_minutes=30,
            price=Decimal("0.00"),
            location_kind=LocationKind.VIDEO,
            buffer_after_minutes=10,
            min_notice_minutes=12 * 60,
            max_days_ahead=45,
            no_show_grace_minutes=10,
        ),
        TypeDefault(
            name="Strategy session",
            slug="strategy-session",
            description="A 90-minute working session on one problem, with a written summary "
            "and next steps.",
            duration_minutes=90,
            price=Decimal("450.00"),
            location_kind=LocationKind.VIDEO,
            buffer_before_minutes=15,
            buffer_after_minutes=15,
            min_notice_minutes=48 * 60,
            max_days_ahead=60,
        ),
        TypeDefault(
            name="Proposal review",
            slug="proposal-review",
            description="We walk through the proposal together: scope, timeline and price.",
            duration_minutes=45,
            price=Decimal("0.00"),
            location_kind=LocationKind.VIDEO,
            buffer_after_minutes=15,
            min_notice_minutes=24 * 60,
        ),
    ],
    "local_service": [
        TypeDefault(
            name="On-site estimate",
            slug="on-site-estimate",
            description="A technician visits, inspects the job and gives you a written quote. "
            "Free, no obligation.",
            duration_minutes=60,
            price=Decimal("0.00"),
            location_kind=LocationKind.ON_SITE,
            buffer_before_minutes=30,
            buffer_after_minutes=30,
            slot_interval_minutes=60,
            min_notice_minutes=4 * 60,
            no_show_grace_minutes=30,
        ),
        TypeDefault(
            name="Service call",
            slug="service-call",
            description="A two-hour visit to diagnose and fix the problem. The call-out fee "
            "covers travel and the first hour; parts are quoted before work starts.",
            duration_minutes=120,
            price=Decimal("89.00"),
            location_kind=LocationKind.ON_SITE,
            buffer_before_minutes=30,
            buffer_after_minutes=30,
            slot_interval_minutes=60,
            min_notice_minutes=4 * 60,
            no_show_grace_minutes=30,
        ),
        TypeDefault(
            name="Phone quote",
            slug="phone-quote",
            description="A 15-minute call for a ballpark price on small jobs.",
            duration_minutes=15,
            price=Decimal("0.00"),
            location_kind=LocationKind.PHONE,
            slot_interval_minutes=15,
            min_notice_minutes=30,
            max_days_ahead=14,
            reminder_minutes_before=60,
            no_show_grace_minutes=10,
        ),
    ],
}

RESOURCES: dict[str, ResourceDefault] = {
    "fitness": ResourceDefault(
        name="Head coach",
        kind=ResourceKind.STAFF,
        hours={
            **{day: (_h("06:00", "20:00"),) for day in (MON, TUE, WED, THU, FRI)},
            SAT: (_h("08:00", "14:00"),),
            SUN: (_h("09:00", "13:00"),),
        },
    ),
    "med_spa": ResourceDefault(
        name="Treatment room 1",
        kind=ResourceKind.ROOM,
        hours={
            **{day: (_h("10:00", "19:00"),) for day in (TUE, WED, THU, FRI)},
            SAT: (_h("09:00", "16:00"),),
        },
    ),
    "real_estate": ResourceDefault(
        name="Lead agent",
        kind=ResourceKind.STAFF,
        hours={
            **{day: (_h("09:00", "19:00"),) for day in (MON, TUE, WED, THU, FRI)},
            SAT: (_h("10:00", "17:00"),),
            SUN: (_h("12:00", "16:00"),),
        },
    ),
    "consultant": ResourceDefault(
        name="Principal consultant",
        kind=ResourceKind.STAFF,
        hours={
            **{day: (_h("09:00", "12:00"), _h("13:00", "17:00")) for day in (MON, TUE, WED, THU)},
            FRI: (_h("09:00", "13:00"),),
        },
    ),
    "local_service": ResourceDefault(
        name="Field technician",
        kind=ResourceKind.STAFF,
        hours={
            **{day: (_h("08:00", "17:00"),) for day in (MON, TUE, WED, THU, FRI)},
            SAT: (_h("09:00", "13:00"),),
        },
    ),
}
