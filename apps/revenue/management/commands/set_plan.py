from apps.core.commands import SwitchboardCommand
from apps.revenue import limits
from apps.revenue.services import subscription_change_plan
from apps.tenancy.selectors import organization_get_by_slug


class Command(SwitchboardCommand):
    help = "Move an organization to another plan (its limits apply at once) and print its usage."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--plan", required=True, help="free, starter, growth or scale.")
        parser.add_argument("--reason", default="", help="Kept in the plan history.")

    def run(self, **options) -> dict:
        organization = organization_get_by_slug(slug=options["org"])
        subscription_change_plan(
            organization=organization, plan_key=options["plan"], reason=options["reason"]
        )
        usage = limits.usage_summary(organization=organization)
        self.say(f"{organization.slug} is on the {organization.plan} plan.")
        for row in usage:
            self.say(
                f"  {row.label}: {row.usage} / {'unlimited' if row.value is None else row.value}"
            )
        return {
            "organization": organization.slug,
            "plan": organization.plan,
            "limits": {row.limit: {"value": row.value, "usage": row.usage} for row in usage},
        }
