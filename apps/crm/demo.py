"""Demo CRM data for `manage.py seed_demo`: the niche's default pipeline and a handful of
realistic contacts, leads, deals, tasks and notes. Idempotent: re-running adds nothing.

Phone numbers are in ranges reserved for fiction (US 555-01xx, UK 07700 900xxx).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from apps.crm import services
from apps.crm.models import Deal, Lead, Note, Stage, Task

# Per niche: contacts with an optional lead (answers), deal (stage index, amount), task, note.
DEMO = {
    "fitness": [
        {
            "name": "Maya Chen",
            "email": "maya.chen@example.com",
            "phone": "+14155550142",
            "tags": ["trial", "mornings"],
            "source": "instagram",
            "lead": {"answers": {"goal": "strength", "experience": "beginner"}},
            "deal": ("Maya Chen — unlimited membership", 1, "149.00"),
            "task": ("Confirm Maya's trial class for Thursday 7am", 1),
            "note": "Wants small-group strength classes before work; mild knee pain last year.",
        },
        {
            "name": "Jordan Alvarez",
            "email": "jordan.alvarez@example.com",
            "phone": "+14155550143",
            "tags": ["referral"],
            "source": "referral",
            "lead": {"answers": {"goal": "weight loss", "start": "this week"}},
            "deal": ("Jordan Alvarez — 3-month plan", 3, "399.00"),
            "task": ("Send Jordan the 3-month plan offer", 0),
        },
        {
            "name": "Priya Natarajan",
            "email": "priya.n@example.com",
            "phone": "+14155550144",
            "tags": ["member"],
            "source": "website",
            "deal": ("Priya Natarajan — annual membership", 4, "1490.00"),
            "note": "Converted after two trial classes; prefers evening yoga.",
        },
        {
            "name": "Sam Okafor",
            "email": "sam.okafor@example.com",
            "phone": "+14155550145",
            "tags": ["trial"],
            "source": "facebook",
            "lead": {"answers": {"goal": "general fitness"}},
            "deal": ("Sam Okafor — class pack", 2, "120.00"),
        },
        {
            "name": "Lena Fischer",
            "email": "lena.fischer@example.com",
            "phone": "+14155550146",
            "source": "walk-in",
            "lead": {"answers": {"goal": "just browsing"}},
        },
    ],
    "med_spa": [
        {
            "name": "Olivia Brooks",
            "email": "olivia.brooks@example.com",
            "phone": "+13105550150",
            "tags": ["consultation"],
            "source": "instagram",
            "lead": {"answers": {"treatment": "laser hair removal", "timeline": "next month"}},
            "deal": ("Olivia Brooks — laser package (6 sessions)", 1, "1200.00"),
            "task": ("Send pre-consultation form to Olivia", 1),
        },
        {
            "name": "Daniel Reyes",
            "email": "daniel.reyes@example.com",
            "phone": "+13105550151",
            "source": "google",
            "deal": ("Daniel Reyes — skin rejuvenation plan", 3, "850.00"),
            "note": "Asked about downtime; explained the consultation decides suitability.",
        },
        {
            "name": "Grace Kim",
            "email": "grace.kim@example.com",
            "phone": "+13105550152",
            "tags": ["vip"],
            "source": "referral",
            "deal": ("Grace Kim — quarterly facials", 4, "600.00"),
        },
        {
            "name": "Hannah Wells",
            "email": "hannah.wells@example.com",
            "phone": "+13105550153",
            "source": "website",
            "lead": {"answers": {"treatment": "not sure yet"}},
        },
    ],
    "real_estate": [
        {
            "name": "Tom Whitaker",
            "email": "tom.whitaker@example.com",
            "phone": "+447700900101",
            "tags": ["buyer", "first-time"],
            "source": "rightmove",
            "lead": {"answers": {"intent": "buy", "budget": "350000", "mortgage": "in principle"}},
            "deal": ("Tom Whitaker — 2-bed flat, Clifton", 2, "7000.00"),
            "task": ("Book Tom's second viewing", 1),
        },
        {
            "name": "Aisha Rahman",
            "email": "aisha.rahman@example.com",
            "phone": "+447700900102",
            "tags": ["seller"],
            "source": "referral",
            "deal": ("Aisha Rahman — sale of 14 Elm Road", 4, "9500.00"),
            "note": "Valuation agreed; wants to complete before September.",
        },
        {
            "name": "George Patel",
            "email": "george.patel@example.com",
            "phone": "+447700900103",
            "tags": ["buyer"],
            "source": "website",
            "lead": {"answers": {"intent": "buy", "budget": "600000"}},
            "deal": ("George Patel — family home, Redland", 3, "12000.00"),
        },
        {
            "name": "Emily Carter",
            "email": "emily.carter@example.com",
            "phone": "+447700900104",
            "source": "zoopla",
            "lead": {"answers": {"intent": "rent"}},
        },
    ],
    "consultant": [
        {
            "name": "Marcus Lee",
            "email": "marcus@northwind.example",
            "phone": "+12125550160",
            "tags": ["b2b"],
            "source": "linkedin",
            "lead": {"answers": {"company_size": "25", "budget": "15000"}},
            "deal": ("Northwind — growth strategy sprint", 3, "15000.00"),
            "task": ("Follow up on the Northwind proposal", 2),
        },
        {
            "name": "Sofia Rossi",
            "email": "sofia@bluebird.example",
            "phone": "+12125550161",
            "source": "referral",
            "deal": ("Bluebird — monthly advisory retainer", 5, "4000.00"),
            "note": "Signed a 6-month retainer; kickoff call every first Monday.",
        },
        {
            "name": "Ben Adams",
            "email": "ben@acme.example",
            "phone": "+12125550162",
            "source": "website",
            "lead": {"answers": {"company_size": "3"}},
            "deal": ("Acme — discovery call", 1, "2500.00"),
        },
    ],
    "local_service": [
        {
            "name": "Karen Holt",
            "email": "karen.holt@example.com",
            "phone": "+15125550170",
            "tags": ["repeat"],
            "source": "google",
            "lead": {"answers": {"job": "leaking kitchen tap", "urgency": "today"}},
            "deal": ("Karen Holt — kitchen tap repair", 3, "180.00"),
            "task": ("Bring a replacement cartridge to Karen's job", 0),
        },
        {
            "name": "Luis Moreno",
            "email": "luis.moreno@example.com",
            "phone": "+15125550171",
            "source": "nextdoor",
            "deal": ("Luis Moreno — bathroom regrout quote", 2, "650.00"),
            "note": "Prefers text messages; gate code is on the job sheet.",
        },
        {
            "name": "Fatima Noor",
            "email": "fatima.noor@example.com",
            "phone": "+15125550172",
            "source": "website",
            "lead": {"answers": {"job": "water heater replacement", "urgency": "this week"}},
            "deal": ("Fatima Noor — water heater replacement", 1, "1400.00"),
        },
    ],
}


@transaction.atomic
def seed_demo(*, organization) -> None:
    """Create the demo CRM rows for `organization` (its niche's data). Idempotent."""
    pipeline = services.pipeline_ensure_default(organization=organization)
    stages = list(Stage.objects.filter(pipeline=pipeline).order_by("order"))
    now = timezone.now()
    for row in DEMO.get(organization.primary_niche.slug, DEMO["fitness"]):
        contact = services.contact_create(
            organization=organization,
            name=row["name"],
            email=row["email"],
            phone=row["phone"],
            tags=row.get("tags"),
            source=row.get("source", ""),
            consent_source="demo",
        ).contact
        lead = None
        if "lead" in row and not Lead.objects.filter(contact=contact).exists():
            lead = services.lead_create(
                organization=organization,
                contact=contact,
                source=row.get("source", ""),
                answers=row["lead"]["answers"],
            )
        if "deal" in row:
            title, stage_index, amount = row["deal"]
            if not Deal.objects.filter(organization=organization, title=title).exists():
                services.deal_create(
                    organization=organization,
                    title=title,
                    contact=contact,
                    lead=lead,
                    pipeline=pipeline,
                    stage=stages[min(stage_index, len(stages) - 1)],
                    amount=Decimal(amount),
                    source=row.get("source", ""),
                    actor="demo",
                )
        if "task" in row:
            title, days = row["task"]
            if not Task.objects.filter(contact=contact, title=title).exists():
                services.task_create(
                    organization=organization,
                    title=title,
                    contact=contact,
                    due_at=now + timedelta(days=days, hours=2),
                    source="demo",
                )
        if "note" in row and not Note.objects.filter(contact=contact, body=row["note"]).exists():
            services.note_create(organization=organization, contact=contact, body=row["note"])
