"""Base class for operator CLI commands.

- `--json` prints exactly one JSON object on stdout (what `run` returns); human output otherwise.
- Bad arguments and domain errors print one clear line on stderr and exit with code 2,
  having changed nothing (commands call services, which are atomic).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.core.serializers.json import DjangoJSONEncoder

from apps.core.errors import DomainError

EXIT_USAGE = 2


class _OneLineParser(CommandParser):
    def error(self, message: str):
        if not self.called_from_command_line:
            super().error(message)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class SwitchboardCommand(BaseCommand):
    json_output = True

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = _OneLineParser  # one error line and exit code 2 on bad arguments
        if self.json_output:
            parser.add_argument(
                "--json", action="store_true", help="Print one JSON object on stdout."
            )
        return parser

    def run(self, **options) -> dict[str, Any]:
        raise NotImplementedError

    def say(self, message: str) -> None:
        """Human output; silent under --json so stdout stays one JSON object."""
        if not self._json:
            self.stdout.write(message)

    def fail(self, message: str) -> None:
        """Stop with one error line and exit code 2."""
        raise _Failure(message)

    def handle(self, *args, **options) -> None:
        self._json = bool(options.get("json"))
        try:
            result = self.run(**options)
        except (_Failure, DomainError) as exc:
            self.stderr.write(f"error: {exc}")
            sys.exit(EXIT_USAGE)
        if self._json:
            self.stdout.write(json.dumps(result, cls=DjangoJSONEncoder))


class _Failure(Exception):
    pass
