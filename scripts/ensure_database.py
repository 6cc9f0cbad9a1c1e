#!/usr/bin/env python3
"""Create the database named in DATABASE_URL if it does not exist yet (idempotent)."""

import os
import sys

import environ
import psycopg
from psycopg import sql

env = environ.Env()
environ.Env.read_env(os.path.join(os.path.dirname(__file__), "..", ".env"), overwrite=False)
config = env.db_url("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/switchboard")

try:
    with psycopg.connect(
        host=config["HOST"] or None,
        port=config["PORT"] or None,
        user=config["USER"] or None,
        password=config["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
    ) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))
            print(f"Created database {config['NAME']}.")
except psycopg.Error as exc:
    print(f"error: cannot prepare database {config['NAME']!r}: {str(exc).strip()}", file=sys.stderr)
    sys.exit(1)
