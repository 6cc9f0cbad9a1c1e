"""The whole system on 127.0.0.1 for the end-to-end suite: the Core App (gunicorn, a Celery
worker, beat) on its own database, a fake provider API, and a real n8n with the shipped
workflows imported and published. Every process logs to `<workdir>/<name>.log`.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "n8n" / "workflows"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # not up yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Process:
    def __init__(self, name: str, argv: list[str], *, env: dict, cwd: Path, logdir: Path):
        self.name, self.argv, self.env, self.cwd = name, argv, env, cwd
        self.log_path = logdir / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> Process:
        handle = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20) -> None:
        if not self.alive():
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


class Stack:
    def __init__(
        self,
        workdir: Path,
        *,
        n8n_bin: str,
        database: str = "switchboard_e2e",
        redis_url: str = "redis://127.0.0.1:6379/12",
    ):
        self.workdir = workdir
        self.n8n_bin = n8n_bin
        self.database = database
        self.redis_url = redis_url
        self.web_port = free_port()
        self.n8n_port = free_port()
        self.n8n_broker_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        self.n8n_url = f"http://127.0.0.1:{self.n8n_port}"
        self.processes: list[Process] = []
        self.n8n_home = workdir / "n8n-home"

    # --- Core App -------------------------------------------------------------------------
    def core_env(self, **extra) -> dict:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings.dev",
            DEBUG="false",
            DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{self.database}",
            REDIS_URL=self.redis_url,
            PUBLIC_URL=self.base_url,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            WEBHOOKS_ALLOW_PRIVATE_URLS="true",
            WEB_BIND=f"127.0.0.1:{self.web_port}",
            WEB_CONCURRENCY="2",
            WEB_ACCESS_LOG="0",
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            PROMETHEUS_MULTIPROC_DIR=str(self.workdir / "prometheus"),
        )
        env.update(extra)
        return env

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.core_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
        return result

    def manage_json(self, *args: str) -> dict:
        return json.loads(self.manage(*args, "--json").stdout)

    def reset_database(self) -> None:
        with psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True
        ) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.database)
                )
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        import redis

        redis.Redis.from_url(self.redis_url).flushdb()
        self.manage("migrate", "--noinput")

    def start_core(self) -> None:
        (self.workdir / "prometheus").mkdir(exist_ok=True)
        env = self.core_env()
        bin_dir = Path(sys.executable).parent
        self.processes += [
            Process(
                "web",
                [str(bin_dir / "gunicorn"), "config.wsgi:application"],
                env=env,
                cwd=ROOT,
                logdir=self.workdir,
            ).start(),
            Process(
                "worker",
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "-Q",
                    "events,sends,ai,default",
                    "-c",
                    "2",
                    "--without-mingle",
                    "--without-gossip",
                    "-l",
                    "INFO",
                ],
                env=env,
                cwd=ROOT,
                logdir=self.workdir,
            ).start(),
            Process(
                "beat",
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "beat",
                    "-l",
                    "INFO",
                    "--schedule",
                    str(self.workdir / "beat-schedule"),
                ],
                env=env,
                cwd=ROOT,
                logdir=self.workdir,
            ).start(),
        ]
        import urllib.request

        wait_until(
            lambda: urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2).status == 200,
            timeout=60,
            what="the Core App's /healthz",
        )
        wait_until(
            lambda: " ready." in self.processes[1].log(), timeout=60, what="the Celery worker"
        )

    # --- n8n ------------------------------------------------------------------------------
    def n8n_env(self, **extra) -> dict:
        env = dict(os.environ)
        env.update(
            N8N_USER_FOLDER=str(self.n8n_home),
            N8N_ENCRYPTION_KEY="switchboard-e2e",
            N8N_HOST="127.0.0.1",
            N8N_LISTEN_ADDRESS="127.0.0.1",
            N8N_PORT=str(self.n8n_port),
            WEBHOOK_URL=f"{self.n8n_url}/",
            N8N_RUNNERS_BROKER_LISTEN_ADDRESS="127.0.0.1",
            N8N_RUNNERS_BROKER_PORT=str(self.n8n_broker_port),
            N8N_DIAGNOSTICS_ENABLED="false",
            N8N_VERSION_NOTIFICATIONS_ENABLED="false",
            N8N_TEMPLATES_ENABLED="false",
            N8N_COMMUNITY_PACKAGES_ENABLED="false",
            N8N_SECURE_COOKIE="false",
            N8N_BLOCK_ENV_ACCESS_IN_NODE="false",
            EXECUTIONS_DATA_SAVE_ON_SUCCESS="all",
            GENERIC_TIMEZONE="UTC",
        )
        env.update(extra)
        return env

    def workflow_files(self) -> list[Path]:
        return sorted(WORKFLOWS.glob("*.json"))

    def start_n8n(self, *, api_key: str, webhook_secret: str) -> None:
        env = self.n8n_env(
            SWITCHBOARD_URL=self.base_url,
            SWITCHBOARD_API_KEY=api_key,
            SWITCHBOARD_WEBHOOK_SECRET=webhook_secret,
        )
        files = self.workflow_files()
        for path in files:
            workflow_id = json.loads(path.read_text())["id"]
            for argv in (
                [self.n8n_bin, "import:workflow", f"--input={path}"],
                [self.n8n_bin, "publish:workflow", f"--id={workflow_id}"],
            ):
                result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
                if result.returncode != 0:
                    raise RuntimeError(
                        f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
                    )
        process = Process(
            "n8n", [self.n8n_bin, "start"], env=env, cwd=self.workdir, logdir=self.workdir
        ).start()
        self.processes.append(process)
        wait_until(
            lambda: self.n8n_active_webhooks() >= len(files),
            timeout=120,
            what="n8n to activate the shipped workflows",
        )

    def n8n_db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.n8n_home / ".n8n" / "database.sqlite", timeout=5)

    def n8n_active_webhooks(self) -> int:
        with self.n8n_db() as db:
            return db.execute("SELECT COUNT(*) FROM webhook_entity").fetchone()[0]

    def n8n_executions(self, workflow_id: str) -> list[tuple[int, str]]:
        with self.n8n_db() as db:
            return db.execute(
                "SELECT id, status FROM execution_entity WHERE workflowId = ? ORDER BY id",
                [workflow_id],
            ).fetchall()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
