from django.db import transaction

from apps.core.commands import SwitchboardCommand
from apps.niches.models import NicheSlug
from apps.tenancy.services import organization_create, organization_provision_defaults


class Command(SwitchboardCommand):
    help = "Create an organization with its primary niche."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--niche", required=True, choices=NicheSlug.values)
        parser.add_argument("--slug", help="URL-safe id; derived from the name when omitted.")
        parser.add_argument("--timezone", default="UTC", help="IANA time zone (default UTC).")
        parser.add_argument(
            "--phone-region", default="US", help="Default phone region (default US)."
        )

    def run(self, **options) -> dict:
        with transaction.atomic():
            organization = organization_create(
                name=options["name"],
                niche=options["niche"],
                slug=options["slug"],
                timezone_name=options["timezone"],
                default_phone_region=options["phone_region"],
            )
            organization_provision_defaults(organization=organization)
        self.say(
            f"Created organization {organization.name} (slug {organization.slug}, id {organization.id})."
        )
        return {"id": str(organization.id), "slug": organization.slug}
