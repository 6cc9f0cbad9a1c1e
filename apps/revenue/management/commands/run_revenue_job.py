from apps.core.commands import SwitchboardCommand
from apps.revenue.jobs import JOBS


class Command(SwitchboardCommand):
    help = "Run one revenue-intelligence job now, in this process (logged like a beat run)."

    def add_arguments(self, parser):
        parser.add_argument("--job", required=True, choices=sorted(JOBS))

    def run(self, **options) -> dict:
        run = JOBS[options["job"]]()
        if run is None:
            self.fail(f"{options['job']} is already running; try again when it has finished.")
        self.say(
            f"{options['job']}: {run.processed} looked at, {run.created} done, "
            f"{run.errors} error(s)."
        )
        return {
            "job": options["job"],
            "processed": run.processed,
            "created": run.created,
            "errors": run.errors,
            "details": run.details,
        }
