from apps.core.commands import SwitchboardCommand
from apps.events.n8n import n8n_connect
from apps.tenancy.selectors import organization_get_by_slug


class Command(SwitchboardCommand):
    help = (
        "Subscribe the shipped n8n workflows' webhooks (URL/webhook/switchboard-<type>) to "
        "their event types, signed with the given whsec_ secret. Safe to re-run."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--n8n-url", required=True, help="n8n base URL, e.g. http://n8n:5678")
        parser.add_argument(
            "--secret", required=True, help="whsec_ secret (n8n's SWITCHBOARD_WEBHOOK_SECRET)."
        )

    def run(self, **options) -> dict:
        organization = organization_get_by_slug(slug=options["org"])
        subscriptions = n8n_connect(
            organization=organization, n8n_url=options["n8n_url"], secret=options["secret"]
        )
        rows = [
            {
                "id": str(s.endpoint.id),
                "event_type": s.workflow.event_type,
                "workflow": s.workflow.name,
                "path": s.workflow.path,
                "url": s.endpoint.url,
                "status": s.endpoint.status,
                "created": s.created,
            }
            for s in subscriptions
        ]
        for row in rows:
            verb = "subscribed" if row["created"] else "updated"
            self.say(f"{verb:>10}  {row['event_type']:<18} → {row['url']}  ({row['id']})")
        return {"organization": organization.slug, "subscriptions": rows}
