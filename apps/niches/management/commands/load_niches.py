from apps.core.commands import SwitchboardCommand
from apps.niches.seed import niches_load


class Command(SwitchboardCommand):
    help = (
        "Load (or upgrade) the shared niche content. Idempotent: a second run changes nothing; "
        "organization overrides are kept."
    )

    def run(self, **options) -> dict:
        result = niches_load()
        if not result.changed:
            self.say("Niche content is up to date.")
        for bucket, counts in result.as_dict().items():
            changed = {kind: n for kind, n in counts.items() if n}
            if changed:
                self.say(
                    f"{bucket.capitalize()}: " + ", ".join(f"{k} {n}" for k, n in changed.items())
                )
        return {"changed": result.changed, **result.as_dict()}
