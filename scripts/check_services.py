#!/usr/bin/env python3
"""Stop early, in one line, when PostgreSQL or Redis is not reachable.

Stdlib only (it runs before the virtualenv exists). Reads DATABASE_URL and REDIS_URL from
the environment or `.env`, with the same defaults as the settings.
"""

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/switchboard",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}
HINTS = {
    "PostgreSQL": "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": 'start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
}


def setting(name: str) -> str:
    if os.environ.get(name):
        return os.environ[name]
    env_file = ROOT / ".env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == name:
                return value.strip().strip("'\"")
    return DEFAULTS[name]


def reachable(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.settimeout(2)
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def redis_answers(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.settimeout(2)
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as exc:
        return exc.strerror or str(exc)
    if reply.startswith((b"+PONG", b"-NOAUTH")):
        return None
    return f"unexpected reply {reply[:20]!r}"


def main() -> int:
    db = urlparse(setting("DATABASE_URL"))
    redis = urlparse(setting("REDIS_URL"))
    checks = [
        ("PostgreSQL", db.hostname or "127.0.0.1", db.port or 5432, reachable),
        ("Redis", redis.hostname or "127.0.0.1", redis.port or 6379, redis_answers),
    ]
    for name, host, port, check in checks:
        error = check(host, port)
        if error:
            print(
                f"error: {name} is not reachable at {host}:{port} ({error}); {HINTS[name]}",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
