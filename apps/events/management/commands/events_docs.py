from apps.core.commands import SwitchboardCommand
from apps.events import docs


class Command(SwitchboardCommand):
    help = "Write docs/events.md from the event catalog (--check: fail if it is stale)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--check", action="store_true", help="Change nothing; exit 2 if the file is stale."
        )

    def run(self, **options) -> dict:
        text = docs.render()
        current = docs.DOC_PATH.read_text() if docs.DOC_PATH.exists() else None
        stale = current != text
        if options["check"]:
            if stale:
                self.fail(f"{docs.DOC_PATH} is stale: run `python manage.py events_docs`")
            self.say(f"{docs.DOC_PATH} is up to date")
        elif stale:
            docs.DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
            docs.DOC_PATH.write_text(text)
            self.say(f"wrote {docs.DOC_PATH}")
        else:
            self.say(f"{docs.DOC_PATH} is up to date")
        return {"path": str(docs.DOC_PATH), "changed": stale and not options["check"]}
