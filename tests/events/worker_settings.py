"""Settings for worker and beat subprocesses of the event tests: the test settings plus
overrides passed as JSON in SB_TEST_SETTINGS (e.g. a compressed retry schedule)."""

import json
import os

from config.settings.test import *  # noqa: F403

for _name, _value in json.loads(os.environ.get("SB_TEST_SETTINGS", "{}")).items():
    globals()[_name] = _value
