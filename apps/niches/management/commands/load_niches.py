from apps.core.commands import SwitchboardCommand
from apps.niches.seed import niches_load


class Command(SwitchboardCommand):
    help = (
        "Load (or upgrade) the shared niche content. Idempotent; organization overrides are kept."
    )

    def run(self, **options) -> dict:
        created = niches_load()
        self.say("Niche content loaded: " + ", ".join(f"{k}: {v} new" for k, v in created.items()))
        return {"created": created}
