"""Real Celery worker processes for tests whose behaviour is asynchronous.

A worker runs `celery -A config worker` in a subprocess against the *test* database and a
Redis of the test's choosing, so tasks run exactly as in production. Tests using it need
committed data: use the `transactional_db` fixture.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from django.db import connection

from tests.support.services import wait_for

ROOT = Path(__file__).resolve().parent.parent.parent
ALL_QUEUES = "events,sends,ai,default"


def subprocess_database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] or "postgres"
    if s.get("PASSWORD"):
        auth += f":{s['PASSWORD']}"
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Worker:
    def __init__(
        self,
        *,
        redis_url: str,
        queues: str = ALL_QUEUES,
        concurrency: int = 2,
        extra_env: dict | None = None,
        pool: str = "prefork",
    ):
        self.redis_url = redis_url
        self.queues = queues
        self.concurrency = concurrency
        self.extra_env = extra_env or {}
        self.pool = pool
        self.name = f"test-{uuid.uuid4().hex[:8]}@%h"
        self.log = Path(tempfile.mkstemp(prefix="sb-worker-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def env(self) -> dict:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings.test",
            DATABASE_URL=subprocess_database_url(),
            REDIS_URL=self.redis_url,
            CELERY_BROKER_URL=self.redis_url,
            DB_CONN_MAX_AGE="0",
            LOG_LEVEL="INFO",
        )
        env.update(self.extra_env)
        return env

    def start(self, *, wait: bool = True) -> Worker:
        self._log_handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                self.queues,
                "-c",
                str(self.concurrency),
                "-P",
                self.pool,
                "-n",
                self.name,
                "--include",
                "tests.support.tasks",
                "--without-mingle",
                "--without-gossip",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=self.env(),
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            wait_for(self.ready, timeout=60, what=f"celery worker to start (log: {self.log})")
        return self

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.output()}")
        return " ready." in self.output()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def child_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children): a crash, not a shutdown."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "_log_handle", None):
            self._log_handle.close()
