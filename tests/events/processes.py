"""Helpers for the event tests: settings for subprocesses, a real celery beat, and servers
that misbehave in ways the shared Receiver cannot (connection resets)."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from tests.support.services import wait_for
from tests.support.workers import ROOT, subprocess_database_url

# Compressed delivery timing for tests (production defaults are in apps/events/conf.py).
FAST = {
    "WEBHOOK_RETRY_SCHEDULE": [0.3, 0.6, 1.0, 1.5, 2.0],
    "WEBHOOK_RETRY_JITTER": 0.2,
    "WEBHOOK_CIRCUIT_COOLDOWN_SECONDS": [0.2, 1.0],
    "WEBHOOK_DELIVERY_LEASE_SECONDS": 4,
    "WEBHOOK_DISPATCH_BUDGET_SECONDS": 5,
}
SWEEP_INTERVAL = "1"


def worker_env(overrides: dict | None = None, **extra: str) -> dict:
    """extra_env for `start_worker`: worker settings with these overrides."""
    return {
        "DJANGO_SETTINGS_MODULE": "tests.events.worker_settings",
        "SB_TEST_SETTINGS": json.dumps({**FAST, **(overrides or {})}),
        "WEBHOOK_SWEEP_INTERVAL_SECONDS": SWEEP_INTERVAL,
        **extra,
    }


class Beat:
    """`celery -A config beat` against the test database, on the given Redis."""

    def __init__(self, *, redis_url: str, extra_env: dict | None = None):
        self.redis_url = redis_url
        self.extra_env = extra_env or {}
        self.log = Path(tempfile.mkstemp(prefix="sb-beat-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def start(self) -> Beat:
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
        self._log_handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "-l",
                "INFO",
                "--max-interval",
                "1",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(
            lambda: (
                "beat: Starting" in self.log.read_text(errors="replace")
                or self.process.poll() is not None
            ),
            timeout=60,
            what="celery beat to start",
        )
        if self.process.poll() is not None:
            raise AssertionError(f"beat exited:\n{self.log.read_text(errors='replace')}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        if getattr(self, "_log_handle", None):
            self._log_handle.close()


class ResettingServer:
    """Accepts connections, reads the request, then resets them (RST, no HTTP answer) or,
    with `garbage`, answers something that is not HTTP."""

    def __init__(self, *, garbage: bool = False):
        self.garbage = garbage
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            try:
                conn.settimeout(2)
                conn.recv(65536)
                if self.garbage:
                    conn.sendall(b"HELLO THERE\r\n\r\n")
            except OSError:
                pass
            if not self.garbage:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def __enter__(self) -> ResettingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop = True
        self.sock.close()
