from apps.core.commands import SwitchboardCommand
from apps.tenancy.roles import Role
from apps.tenancy.selectors import organization_get_by_slug
from apps.tenancy.services import operator_upsert


class Command(SwitchboardCommand):
    help = "Give a person console access to an organization (creates the staff user if needed)."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--email", required=True)
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--password", help="Generated and printed when omitted for a new user.")
        parser.add_argument("--name", default="", help="Full name.")

    def run(self, **options) -> dict:
        organization = organization_get_by_slug(slug=options["org"])
        account = operator_upsert(
            organization=organization,
            email=options["email"],
            role=options["role"],
            password=options["password"],
            full_name=options["name"],
        )
        verb = "Created" if account.created else "Updated"
        self.say(
            f"{verb} {account.user.email} as {account.membership.role} of {organization.slug}."
        )
        if account.password:
            self.say(f"Temporary password: {account.password}")
        result = {
            "id": str(account.user.id),
            "email": account.user.email,
            "organization": organization.slug,
            "role": account.membership.role,
            "created": account.created,
        }
        if account.password:
            result["password"] = account.password
        return result
