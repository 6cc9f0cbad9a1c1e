import json

from apps.core.choices import Provider
from apps.core.commands import SwitchboardCommand
from apps.providers.selectors import channel_urls
from apps.providers.services import channel_create
from apps.tenancy.selectors import organization_get_by_slug


class Command(SwitchboardCommand):
    help = (
        "Connect a provider account to an organization and print the webhook URLs to configure "
        "at the provider. Credentials are stored encrypted."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--provider", required=True, choices=Provider.values)
        parser.add_argument(
            "--config",
            required=True,
            help='Credentials and ids as JSON, e.g. twilio: {"account_sid", "auth_token", '
            '"from_number"}; optional "api_base" overrides the provider API base URL.',
        )
        parser.add_argument("--name", default="", help="A label shown to operators.")

    def run(self, **options) -> dict:
        try:
            config = json.loads(options["config"])
        except ValueError as exc:
            self.fail(f"--config is not valid JSON: {exc}")
        if not isinstance(config, dict):
            self.fail("--config must be a JSON object.")
        organization = organization_get_by_slug(slug=options["org"])
        channel = channel_create(
            organization=organization,
            provider=options["provider"],
            config=config,
            name=options["name"],
        )
        inbound_url, status_url = channel_urls(channel)
        self.say(
            f"Created {channel.get_provider_display()} channel {channel.id} for {organization.slug}"
        )
        self.say(f"inbound URL: {inbound_url}")
        self.say(f"status URL:  {status_url or '-'}")
        return {
            "id": str(channel.id),
            "provider": channel.provider,
            "inbound_url": inbound_url,
            "status_url": status_url,
        }
