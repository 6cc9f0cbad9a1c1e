from apps.core.commands import SwitchboardCommand
from apps.tenancy.selectors import organization_get_by_slug
from apps.tenancy.services import api_key_create


class Command(SwitchboardCommand):
    help = "Issue an API key for an organization. The key is printed once; only its hash is kept."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--name", default="default", help="A label, e.g. 'n8n production'.")

    def run(self, **options) -> dict:
        organization = organization_get_by_slug(slug=options["org"])
        issued = api_key_create(organization=organization, name=options["name"])
        self.say(
            f"API key for {organization.slug} ({issued.api_key.name}); store it now, it is not shown again:"
        )
        self.say(issued.key)
        return {"id": str(issued.api_key.id), "key": issued.key}
