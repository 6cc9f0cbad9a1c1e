"""Demo data for `make run`. Idempotent: re-running changes nothing that exists."""

import importlib

from django.db import transaction

from apps.core.commands import SwitchboardCommand
from apps.niches.seed import niches_load
from apps.tenancy.models import Organization
from apps.tenancy.roles import Role
from apps.tenancy.services import operator_upsert, organization_create

DEMO_APPS = ("crm", "bookings", "providers", "conversations", "decisions", "events", "revenue")


def _organization(slug: str, **kwargs) -> Organization:
    return Organization.objects.filter(slug=slug).first() or organization_create(
        slug=slug, **kwargs
    )


class Command(SwitchboardCommand):
    help = "Create the demo organizations and the demo operator (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--email", default="demo@switchboard.local")
        parser.add_argument("--password", default="switchboard-demo")

    def run(self, **options) -> dict:
        niches_load()
        with transaction.atomic():
            demo = _organization(
                "demo",
                name="Pulse Fitness Studio",
                niche="fitness",
                timezone_name="America/New_York",
                default_phone_region="US",
            )
            other = _organization(
                "harbor-realty",
                name="Harbor Realty",
                niche="real_estate",
                timezone_name="Europe/London",
                default_phone_region="GB",
            )
            account = operator_upsert(
                organization=demo,
                email=options["email"],
                role=Role.ADMIN,
                password=options["password"],
                full_name="Demo Operator",
            )
        for organization in (demo, other):
            for app in DEMO_APPS:
                try:
                    module = importlib.import_module(f"apps.{app}.demo")
                except ModuleNotFoundError as exc:
                    if exc.name != f"apps.{app}.demo":
                        raise
                    continue
                module.seed_demo(organization=organization)
        self.say("Demo data ready.")
        self.say(
            f"  Console: http://127.0.0.1:8000/admin/  login {account.user.email} / {options['password']}"
        )
        self.say(
            f"  (member of '{demo.slug}' only; '{other.slug}' exists to show tenant isolation)"
        )
        return {"organization": demo.slug, "email": account.user.email}
