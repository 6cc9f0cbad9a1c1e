from apps.core.commands import SwitchboardCommand
from apps.decisions.credits import credits_account, credits_top_up
from apps.tenancy.selectors import organization_get_by_slug


class Command(SwitchboardCommand):
    help = "Add bought AI credits to an organization (they never expire) and print the balance."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--amount", required=True, type=int, help="Credits to add.")
        parser.add_argument("--note", default="", help="Why, e.g. an invoice number.")

    def run(self, **options) -> dict:
        organization = organization_get_by_slug(slug=options["org"])
        entry = credits_top_up(
            organization=organization, amount=options["amount"], note=options["note"]
        )
        account = credits_account(organization=organization)
        self.say(f"{organization.slug}: +{entry.amount} credits; balance {account.balance}.")
        return {"entry_id": str(entry.id), "balance": account.balance}
