"""The whole system on 127.0.0.1 for the end-to-end suite: the Core App (gunicorn, a Celery
worker, beat) on its own database, and a real n8n with the shipped workflows imported and
published. Every process logs to `<workdir>/<name>.log`.

Isolation: the database (`E2E_DATABASE`, default `switchboard_e2e`) is dropped and created
again, and the Redis database (`E2E_REDIS_URL`, default `redis://127.0.0.1:6379/12`) flushed,
so a run never touches the development or test databases.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
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


def flatted_parse(text: str):
    """n8n stores execution data in the `flatted` format (a JSON array of shared values)."""
    table = json.loads(text)
    revived: dict[int, object] = {}

    def revive(index: int):
        if index in revived:
            return revived[index]
        value = table[index]
        if isinstance(value, list):
            out: list = []
            revived[index] = out
            out.extend(revive(int(v)) if isinstance(v, str) else v for v in value)
            return out
        if isinstance(value, dict):
            out_dict: dict = {}
            revived[index] = out_dict
            for key, v in value.items():
                out_dict[key] = revive(int(v)) if isinstance(v, str) else v
            return out_dict
        revived[index] = value
        return value

    return revive(0)


class Process:
    def __init__(self, name: str, argv: list[str], *, env: dict, cwd: Path, logdir: Path):
        self.name, self.argv, self.env, self.cwd = name, argv, env, cwd
        self.log_path = logdir / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> Process:
        with self.log_path.open("ab") as handle:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped with its children
            )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20) -> None:
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):  # what is left of the group (workers…)
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


class Stack:
    def __init__(
        self,
        workdir: Path,
        *,
        n8n_bin: str,
        database: str | None = None,
        redis_url: str | None = None,
        wait_scale: float = 1.0,
    ):
        self.workdir = workdir
        self.n8n_bin = n8n_bin
        self.database = database or os.environ.get("E2E_DATABASE", "switchboard_e2e")
        self.redis_url = redis_url or os.environ.get("E2E_REDIS_URL", "redis://127.0.0.1:6379/12")
        self.wait_scale = wait_scale
        self.web_port = free_port()
        self.n8n_port = free_port()
        self.n8n_broker_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        self.n8n_url = f"http://127.0.0.1:{self.n8n_port}"
        self.processes: dict[str, Process] = {}
        self.n8n_home = workdir / "n8n-home"
        (workdir / "prometheus").mkdir(parents=True, exist_ok=True)

    # --- Core App -------------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:5432/{self.database}"

    def core_env(self, **extra) -> dict:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings.dev",
            DEBUG="false",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            PUBLIC_URL=self.base_url,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            WEBHOOKS_ALLOW_PRIVATE_URLS="true",
            DECISION_ENGINE="rules",
            WEB_BIND=f"127.0.0.1:{self.web_port}",
            WEB_CONCURRENCY="2",
            WEB_THREADS="2",
            WEB_ACCESS_LOG="0",
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            PROMETHEUS_MULTIPROC_DIR=str(self.workdir / "prometheus"),
        )
        env.pop("CELERY_BROKER_URL", None)
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
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args[:2])} failed:\n{result.stderr[-3000:]}")
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

    def query(self, statement: str, params=()) -> list[tuple]:
        """Read the e2e database (what no API shows, e.g. the trace id stored on a message)."""
        with psycopg.connect(self.database_url.replace("postgres://", "postgresql://")) as conn:
            return conn.execute(statement, params).fetchall()

    def _start(self, name: str, argv: list[str], env: dict, cwd: Path = ROOT) -> Process:
        process = Process(name, argv, env=env, cwd=cwd, logdir=self.workdir).start()
        self.processes[name] = process
        return process

    def start_core(self) -> None:
        env = self.core_env()
        bin_dir = Path(sys.executable).parent
        celery = [sys.executable, "-m", "celery", "-A", "config"]
        self._start("web", [str(bin_dir / "gunicorn"), "config.wsgi:application"], env)
        worker = self._start(
            "worker",
            [
                *celery,
                "worker",
                "-Q",
                "events,sends,ai,default",
                "-c",
                "4",
                "--without-mingle",
                "--without-gossip",
                "-l",
                "INFO",
                "-n",
                f"e2e-{self.web_port}@%h",
            ],
            env,
        )
        self._start(
            "beat",
            [*celery, "beat", "-l", "INFO", "--schedule", str(self.workdir / "beat-schedule")],
            env,
        )
        wait_until(
            lambda: urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2).status == 200,
            timeout=60,
            what="the Core App's /healthz",
        )
        wait_until(lambda: " ready." in worker.log(), timeout=60, what="the Celery worker")

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

    def workflow_ids(self) -> dict[str, str]:
        """Webhook path → workflow id."""
        ids = {}
        for path in self.workflow_files():
            workflow = json.loads(path.read_text())
            for node in workflow["nodes"]:
                if node["type"] == "n8n-nodes-base.webhook":
                    ids[node["parameters"]["path"]] = workflow["id"]
        return ids

    def start_n8n(self, *, api_key: str, webhook_secret: str) -> None:
        """Import and publish every shipped workflow (n8n stopped), then start n8n."""
        env = self.n8n_env(
            SWITCHBOARD_URL=self.base_url,
            SWITCHBOARD_API_KEY=api_key,
            SWITCHBOARD_WEBHOOK_SECRET=webhook_secret,
            SWITCHBOARD_WAIT_SCALE=str(self.wait_scale),
        )
        files = self.workflow_files()
        commands = [[self.n8n_bin, "import:workflow", "--separate", f"--input={WORKFLOWS}"]]
        commands += [
            [self.n8n_bin, "publish:workflow", f"--id={json.loads(p.read_text())['id']}"]
            for p in files
        ]
        with (self.workdir / "n8n-import.log").open("a") as log:
            for argv in commands:
                result = subprocess.run(
                    argv, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=180, check=False
                )
                if result.returncode != 0:
                    raise RuntimeError(f"{' '.join(argv[1:])} failed: see n8n-import.log")
        self._start("n8n", [self.n8n_bin, "start"], env, cwd=self.workdir)
        # /healthz answers before the workflows are active: wait for their webhooks.
        wait_until(
            lambda: self.n8n_active_webhooks() >= len(files),
            timeout=120,
            what="n8n to activate the shipped workflows",
        )

    def n8n_db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.n8n_home / ".n8n" / "database.sqlite", timeout=10)

    def n8n_active_webhooks(self) -> int:
        with self.n8n_db() as db:
            return db.execute("SELECT COUNT(*) FROM webhook_entity").fetchone()[0]

    def n8n_executions(self, workflow_id: str) -> list[dict]:
        """Every execution of a workflow: id, status, and its data (runData per node)."""
        with self.n8n_db() as db:
            rows = db.execute(
                "SELECT e.id, e.status, d.data FROM execution_entity e "
                "LEFT JOIN execution_data d ON d.executionId = e.id "
                "WHERE e.workflowId = ? ORDER BY e.id",
                [workflow_id],
            ).fetchall()
        executions = []
        for execution_id, status, data in rows:
            run_data = {}
            if data:
                run_data = flatted_parse(data).get("resultData", {}).get("runData", {})
            executions.append({"id": execution_id, "status": status, "run_data": run_data})
        return executions

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()


def node_output(execution: dict, node: str, run: int = -1) -> list[dict]:
    """The items (json) a node output in one of its runs (the last by default)."""
    runs = execution["run_data"].get(node) or []
    if not runs:
        return []
    main = (runs[run].get("data") or {}).get("main") or [[]]
    return [item["json"] for branch in main if branch for item in branch]
