"""Contact search on a big organization: with and without the trigram indexes.

    DATABASE_URL=... DJANGO_SETTINGS_MODULE=config.settings.dev \
        .venv/bin/python bench/crm_search.py [--contacts 300000] [--runs 7]

Creates (once) an organization `bench-crm` with N contacts (realistic names, emails, E.164
phones), then times `selectors.contact_list(search=...)` (first page, as the API runs it)
for a few searches, first with the indexes, then with them dropped inside a transaction
that is rolled back. Prints one JSON object. Compare the two columns of one run only: the
machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

import django

django.setup()

from django.db import connection, transaction  # noqa: E402

from apps.crm.models import Contact  # noqa: E402
from apps.crm.selectors import contact_list  # noqa: E402
from apps.tenancy.models import Organization  # noqa: E402
from apps.tenancy.services import organization_create  # noqa: E402

FIRST = [
    "Maya",
    "Jordan",
    "Priya",
    "Sam",
    "Lena",
    "Olivia",
    "Daniel",
    "Grace",
    "Tom",
    "Aisha",
    "George",
    "Emily",
    "Marcus",
    "Sofia",
    "Ben",
    "Karen",
    "Luis",
    "Fatima",
    "Noah",
    "Chloe",
]
LAST = [
    "Chen",
    "Alvarez",
    "Natarajan",
    "Okafor",
    "Fischer",
    "Brooks",
    "Reyes",
    "Kim",
    "Whitaker",
    "Rahman",
    "Patel",
    "Carter",
    "Lee",
    "Rossi",
    "Adams",
    "Holt",
    "Moreno",
    "Noor",
    "Smith",
    "Dubois",
    "Novak",
    "Silva",
    "Haddad",
    "Kowalski",
    "Tanaka",
]
SEARCHES = {
    "name substring (rare)": "zz0042",
    "name (common)": "maya chen",
    "email fragment": "k0123456@",
    "phone digits": "555 012 34",
    "no match": "qqqqqq",
}
INDEXES = ("contact_name_trgm", "contact_email_trgm", "contact_phone_trgm")


def ensure_data(n: int) -> Organization:
    organization = Organization.objects.filter(slug="bench-crm").first()
    if organization is None:
        organization = organization_create(name="Bench CRM", niche="fitness", slug="bench-crm")
    have = _count(organization)
    if have < n:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO crm_contact (id, organization_id, name, email, phone, tags,
                    custom_fields, lifecycle_stage, source, timezone, created_at, updated_at)
                SELECT gen_random_uuid(), %(org)s,
                       (%(first)s::text[])[1 + i %% 20] || ' ' || (%(last)s::text[])[1 + (i / 20) %% 25]
                           || CASE WHEN i %% 1000 = 42 THEN ' zz' || lpad(i::text, 4, '0') ELSE '' END,
                       'k' || lpad(i::text, 7, '0') || '@example.com',
                       '+1' || (200 + i %% 700)::text || lpad((i %% 10000000)::text, 7, '0'),
                       '{}', '{}', 'lead', 'import', '', now() - (i || ' seconds')::interval, now()
                FROM generate_series(%(start)s, %(end)s) AS i
                """,
                {"org": organization.pk, "first": FIRST, "last": LAST, "start": have + 1, "end": n},
            )
            cursor.execute("ANALYZE crm_contact")
    return organization


def _count(organization) -> int:
    return Contact.objects.filter(organization=organization).count()


def time_searches(organization, runs: int) -> dict:
    results = {}
    for label, term in SEARCHES.items():
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            list(contact_list(organization=organization, search=term)[:50])
            samples.append((time.perf_counter() - start) * 1000)
        results[label] = round(statistics.median(samples), 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    organization = ensure_data(args.contacts)
    with_indexes = time_searches(organization, args.runs)
    with transaction.atomic():
        with connection.cursor() as cursor:
            for index in INDEXES:
                cursor.execute(f'DROP INDEX "{index}"')
        without_indexes = time_searches(organization, args.runs)
        transaction.set_rollback(True)
    print(
        json.dumps(
            {
                "contacts": _count(organization),
                "median_ms_first_page": {
                    label: {"trigram": with_indexes[label], "no_index": without_indexes[label]}
                    for label in SEARCHES
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
