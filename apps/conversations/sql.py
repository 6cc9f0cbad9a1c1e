"""Hot-path SQL on the raw psycopg connection: server-side bound and prepared.

The ingress statements (sender lookup; insert + thread) run thousands of times per minute
with the same shape. Django's cursor binds parameters client-side and PostgreSQL parses and
plans each call; here psycopg prepares each statement once per connection and sends only
the values. Same connection and transaction as Django's (errors are translated to
`django.db` exceptions); these queries do not appear in Django's query log.
"""

from __future__ import annotations

from django.db import connection


def fetch_prepared(sql: str, params, *, many: bool = False):
    """Execute `sql` (psycopg `%s` / `%(name)s` placeholders) prepared; fetch one row or all."""
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall() if many else cursor.fetchone()
