"""Benchmark: the operator inbox at volume (100k conversations, 1M messages, 50 organizations).

    .venv/bin/python bench/bench_inbox.py [--database-url URL] [--reseed] [--rounds 15]

Uses its own database (default `sb_inbox_bench` on the DATABASE_URL server; created and
migrated when missing) and REDIS_URL for the cache. Seeding is plain SQL (`INSERT ...
SELECT generate_series`, deterministic md5-derived ids), with progress: 50 organizations,
5 operators each, 2,000 contacts and conversations per organization (statuses, assignees,
channels, tags and read states spread over them) and 10 messages per conversation, plus one
conversation with 500 messages. A second run reuses the data unless `--reseed`.

It then measures, in process through Django's full stack (middleware, session, admin), the
server time (median and p95 of `--rounds` requests after a warm-up) and the number of SQL
queries of the inbox list (tabs, filters, page sizes 50 and 200, the next page) and of the
conversation page (10 and 500 messages), and prints them next to the target: ≤ 300 ms and
a query count that does not depend on the page size. Not a test: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ORGANIZATIONS = 50
CONVERSATIONS_PER_ORG = 2_000
MESSAGES_PER_CONVERSATION = 10
OPERATORS_PER_ORG = 5
BIG_CONVERSATION_MESSAGES = 500
TARGET_MS = 300
PREFIX = "bench-inbox-"


def _bench_url(base: str | None) -> str:
    if base:
        return base
    current = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/switchboard")
    parsed = urlparse(current)
    return urlunparse(parsed._replace(path="/sb_inbox_bench"))


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import subprocess

    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "ensure_database.py")], check=True, cwd=ROOT
    )
    import django

    django.setup()
    from django.core.management import call_command

    print("migrating the bench database…", flush=True)
    call_command("migrate", verbosity=0)


def _step(label: str):
    class Step:
        def __enter__(self):
            self.started = time.monotonic()
            print(f"  {label}…", end="", flush=True)
            return self

        def __exit__(self, *exc):
            print(f" {time.monotonic() - self.started:.1f} s", flush=True)

    return Step()


# --- seeding ----------------------------------------------------------------------------------


def _seeded(cursor) -> bool:
    """Complete: the last seeding step (the big conversation) is there."""
    cursor.execute(
        f"""
        SELECT count(*) FROM conversations_message m
        JOIN tenancy_organization o ON o.id = m.organization_id AND o.slug = '{PREFIX}01'
        WHERE m.conversation_id = md5(o.id::text || ':v1')::uuid
        """  # noqa: S608
    )
    return cursor.fetchone()[0] >= BIG_CONVERSATION_MESSAGES


def _wipe(cursor) -> None:
    cursor.execute("SELECT id FROM tenancy_organization WHERE slug LIKE %s", [PREFIX + "%"])
    ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return
    for table in (
        "conversations_readstate",
        "conversations_conversationactivity",
        "conversations_slabreach",
        "conversations_message",
        "conversations_conversation",
        "crm_contact",
        "tenancy_membership",
        "conversations_inboxsettings",
        "events_event",
    ):
        cursor.execute(f"DELETE FROM {table} WHERE organization_id = ANY(%s)", [ids])  # noqa: S608
    cursor.execute("DELETE FROM tenancy_user WHERE email LIKE %s", [PREFIX + "%"])
    cursor.execute("DELETE FROM tenancy_organization WHERE id = ANY(%s)", [ids])


_ORG_SET = "SELECT id, slug FROM tenancy_organization WHERE slug LIKE 'bench-inbox-%'"


def seed(connection) -> None:
    from apps.tenancy.services import organization_create

    print(
        f"seeding {ORGANIZATIONS} organizations, {CONVERSATIONS_PER_ORG:,} conversations each, "
        f"{MESSAGES_PER_CONVERSATION} messages per conversation…",
        flush=True,
    )
    started = time.monotonic()
    with connection.cursor() as cursor:
        with _step("removing earlier bench data"):
            _wipe(cursor)
        with _step("organizations"):
            for n in range(1, ORGANIZATIONS + 1):
                organization_create(
                    name=f"Bench studio {n:02d}", slug=f"{PREFIX}{n:02d}", niche="fitness"
                )
        with _step("operators (unusable passwords) and memberships"):
            cursor.execute(
                f"""
                INSERT INTO tenancy_user (id, password, is_superuser, email, full_name,
                                          is_staff, is_active, date_joined)
                SELECT md5(o.id::text || ':u' || k)::uuid, '!', false,
                       '{PREFIX}' || o.slug || '-' || k || '@example.com',
                       'Operator ' || k || ' of ' || o.slug, true, true, now()
                FROM tenancy_organization o, generate_series(1, {OPERATORS_PER_ORG}) k
                WHERE o.slug LIKE 'bench-inbox-%'
                """  # noqa: S608
            )
            cursor.execute(
                f"""
                INSERT INTO tenancy_membership (id, role, is_available, max_open_conversations,
                                                created_at, user_id, organization_id)
                SELECT gen_random_uuid(), 'operator', true, 1000, now(),
                       md5(o.id::text || ':u' || k)::uuid, o.id
                FROM tenancy_organization o, generate_series(1, {OPERATORS_PER_ORG}) k
                WHERE o.slug LIKE 'bench-inbox-%'
                """  # noqa: S608
            )
        with _step(f"{ORGANIZATIONS * CONVERSATIONS_PER_ORG:,} contacts"):
            cursor.execute(
                f"""
                INSERT INTO crm_contact (created_at, updated_at, id, name, email, phone, tags,
                    custom_fields, lifecycle_stage, source, timezone, last_activity_at,
                    company_id, merged_into_id, organization_id, owner_id)
                SELECT now() - g * interval '1 minute', now(), md5(o.id::text || ':c' || g)::uuid,
                       'Contact ' || g, 'contact' || g || '@' || o.slug || '.example',
                       '+1555' || lpad(g::text, 7, '0'),
                       CASE g % 5 WHEN 0 THEN ARRAY['vip'] WHEN 1 THEN ARRAY['trial', 'yoga']
                                  ELSE ARRAY[]::varchar[] END,
                       '{{}}'::jsonb, 'lead', 'whatsapp', '', now(), NULL, NULL, o.id, NULL
                FROM ({_ORG_SET}) o, generate_series(1, {CONVERSATIONS_PER_ORG}) g
                """  # noqa: S608
            )
        with _step(f"{ORGANIZATIONS * CONVERSATIONS_PER_ORG:,} conversations"):
            # last message: inbound (the contact waits) for 2 in 5, outbound otherwise
            cursor.execute(
                f"""
                INSERT INTO conversations_conversation (created_at, updated_at, id, status,
                    priority, agent_active, last_inbound_channel, last_message_at,
                    last_message_preview, last_inbound_at, waiting_since, first_response_at,
                    snoozed_until, resolved_at, escalated_at, assignee_id, contact_id,
                    last_channel_connection_id, organization_id, assigned_at,
                    last_inbound_received_at)
                SELECT lm - interval '1 hour', lm, md5(o.id::text || ':v' || g)::uuid,
                       CASE WHEN g % 20 < 13 THEN 'open' WHEN g % 20 < 15 THEN 'pending'
                            WHEN g % 20 < 16 THEN 'snoozed' ELSE 'resolved' END,
                       CASE WHEN g % 50 = 0 THEN 'high' ELSE 'normal' END,
                       g % 3 <> 0,
                       (ARRAY['whatsapp', 'sms', 'email', 'manychat'])[1 + g % 4],
                       lm, 'Message {MESSAGES_PER_CONVERSATION} about classes',
                       CASE WHEN g % 5 < 2 THEN lm ELSE lm - interval '3 minutes' END,
                       CASE WHEN g % 5 < 2 AND g % 20 < 13 THEN lm END,
                       lm - interval '50 minutes',
                       CASE WHEN g % 20 = 15 THEN now() + interval '1 day' END,
                       CASE WHEN g % 20 >= 16 THEN lm END, NULL,
                       CASE WHEN g % 10 < 3 THEN NULL
                            ELSE md5(o.id::text || ':u' || (1 + g % {OPERATORS_PER_ORG}))::uuid END,
                       md5(o.id::text || ':c' || g)::uuid, NULL, o.id, lm,
                       CASE WHEN g % 5 < 2 THEN lm ELSE lm - interval '3 minutes' END
                FROM ({_ORG_SET}) o, generate_series(1, {CONVERSATIONS_PER_ORG}) g,
                     LATERAL (SELECT now() - g * interval '37 seconds'
                                           - ((g * 7919) % 600) * interval '1 second' AS lm) t
                """  # noqa: S608
            )
        chunk = 200
        total = ORGANIZATIONS * CONVERSATIONS_PER_ORG * MESSAGES_PER_CONVERSATION
        print(f"  {total:,} messages:", flush=True)
        done = 0
        for low in range(1, CONVERSATIONS_PER_ORG + 1, chunk):
            high = min(low + chunk - 1, CONVERSATIONS_PER_ORG)
            t0 = time.monotonic()
            _insert_messages(cursor, low, high)
            done += (high - low + 1) * ORGANIZATIONS * MESSAGES_PER_CONVERSATION
            print(
                f"    {done:>9,} / {total:,} ({done / total:4.0%}) {time.monotonic() - t0:.1f} s",
                flush=True,
            )
        with _step("read states of operator 1 (2 in 3 conversations read)"):
            cursor.execute(
                f"""
                INSERT INTO conversations_readstate (created_at, updated_at, id, last_read_at,
                    marked_unread, conversation_id, organization_id, user_id)
                SELECT now(), now(), gen_random_uuid(), v.last_inbound_received_at, false,
                       v.id, v.organization_id, md5(v.organization_id::text || ':u1')::uuid
                FROM conversations_conversation v
                WHERE v.organization_id IN (SELECT id FROM ({_ORG_SET}) s)
                  AND abs(hashtext(v.id::text)) % 3 <> 0
                """  # noqa: S608
            )
        with _step(f"one conversation with {BIG_CONVERSATION_MESSAGES} messages"):
            _big_conversation(cursor)
        with _step("ANALYZE"):
            for table in (
                "crm_contact",
                "conversations_conversation",
                "conversations_message",
                "conversations_readstate",
            ):
                cursor.execute(f"ANALYZE {table}")
    print(f"seeded in {time.monotonic() - started:.0f} s", flush=True)


def _insert_messages(cursor, low: int, high: int) -> None:
    last = MESSAGES_PER_CONVERSATION
    cursor.execute(
        f"""
        INSERT INTO conversations_message (created_at, updated_at, id, direction, channel,
            provider_message_id, sender_kind, is_internal_note, text, subject, status,
            error_code, error_reason, template_name, reply_to_provider_id, email_message_id,
            sent_at, scheduled_for, delivered_at, read_at, failed_at, send_attempts,
            next_attempt_at, trace_id, raw, channel_connection_id, contact_id, conversation_id,
            organization_id, reply_to_id, sender_user_id)
        SELECT v.last_message_at - ({last} - k) * interval '3 minutes',
               v.last_message_at - ({last} - k) * interval '3 minutes',
               md5(o.id::text || ':m' || g || ':' || k)::uuid,
               d.direction, v.last_inbound_channel, NULL,
               CASE d.direction WHEN 'in' THEN 'contact' ELSE 'agent' END, false,
               'Message ' || k || ' about classes', '',
               CASE d.direction WHEN 'in' THEN 'received' ELSE 'delivered' END,
               '', '', '', '', '', NULL, NULL, NULL, NULL, NULL, 0, NULL, '', NULL, NULL,
               v.contact_id, v.id, o.id, NULL, NULL
        FROM ({_ORG_SET}) o
        CROSS JOIN generate_series({low}, {high}) g
        JOIN conversations_conversation v ON v.id = md5(o.id::text || ':v' || g)::uuid
        CROSS JOIN generate_series(1, {last}) k
        CROSS JOIN LATERAL (SELECT CASE WHEN k % 2 = 1 OR (k = {last} AND g % 5 < 2)
                                        THEN 'in' ELSE 'out' END AS direction) d
        """  # noqa: S608
    )


def _big_conversation(cursor) -> None:
    extra = BIG_CONVERSATION_MESSAGES - MESSAGES_PER_CONVERSATION
    cursor.execute(
        f"""
        INSERT INTO conversations_message (created_at, updated_at, id, direction, channel,
            provider_message_id, sender_kind, is_internal_note, text, subject, status,
            error_code, error_reason, template_name, reply_to_provider_id, email_message_id,
            sent_at, scheduled_for, delivered_at, read_at, failed_at, send_attempts,
            next_attempt_at, trace_id, raw, channel_connection_id, contact_id, conversation_id,
            organization_id, reply_to_id, sender_user_id)
        SELECT v.last_message_at - k * interval '1 minute' - interval '1 hour',
               v.last_message_at - k * interval '1 minute' - interval '1 hour',
               md5(v.id::text || ':big' || k)::uuid,
               CASE WHEN k % 2 = 1 THEN 'in' ELSE 'out' END, v.last_inbound_channel, NULL,
               CASE WHEN k % 2 = 1 THEN 'contact' ELSE 'agent' END, false,
               'Older message ' || k, '',
               CASE WHEN k % 2 = 1 THEN 'received' ELSE 'read' END,
               '', '', '', '', '', NULL, NULL, NULL, NULL, NULL, 0, NULL, '', NULL, NULL,
               v.contact_id, v.id, v.organization_id, NULL, NULL
        FROM conversations_conversation v, generate_series(1, {extra}) k
        WHERE v.id = md5((SELECT id FROM tenancy_organization WHERE slug = '{PREFIX}01')::text
                         || ':v1')::uuid
        """  # noqa: S608
    )


# --- measuring --------------------------------------------------------------------------------


def measure(client, url: str, rounds: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):  # warm-up: caches, prepared plans
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    timings = []
    queries = None
    for _ in range(rounds):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
        queries = len(captured.captured_queries)
    timings.sort()
    return {
        "p50": statistics.median(timings),
        "p95": timings[max(0, int(len(timings) * 0.95) - 1)],
        "queries": queries,
        "response": response,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="default: sb_inbox_bench on DATABASE_URL's server")
    parser.add_argument("--reseed", action="store_true", help="drop the bench data and seed again")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    _setup_django(_bench_url(args.database_url))
    from django.db import connection
    from django.test import Client

    from apps.conversations.models import Conversation, Message
    from apps.tenancy.models import Organization, User

    with connection.cursor() as cursor:
        if args.reseed or not _seeded(cursor):
            seed(connection)
        else:
            print("reusing the seeded data (--reseed to start over)", flush=True)
    print(
        f"data: {Conversation.objects.count():,} conversations, "
        f"{Message.objects.count():,} messages, "
        f"{Organization.objects.filter(slug__startswith=PREFIX).count()} bench organizations",
        flush=True,
    )
    organization = Organization.objects.get(slug=f"{PREFIX}01")
    user = User.objects.get(email=f"{PREFIX}{organization.slug}-1@example.com")
    client = Client()
    client.force_login(user)
    big = Conversation.objects.get(contact__name="Contact 1", organization=organization)
    typical = Conversation.objects.get(contact__name="Contact 7", organization=organization)

    first = client.get("/admin/inbox/?per_page=50").content.decode()
    cursor = re.search(r'href="\?[^"]*after=([^&"]+)[^"]*" rel="next"', first).group(1)
    cases = [
        ("inbox: all, 50 per page", "/admin/inbox/?per_page=50"),
        ("inbox: all, 200 per page", "/admin/inbox/?per_page=200"),
        ("inbox: all, 10 per page", "/admin/inbox/?per_page=10"),
        ("inbox: next page (cursor)", f"/admin/inbox/?per_page=50&after={cursor}"),
        ("inbox: mine", "/admin/inbox/?tab=mine"),
        ("inbox: unassigned", "/admin/inbox/?tab=unassigned"),
        ("inbox: unread only", "/admin/inbox/?unread=1"),
        ("inbox: any status", "/admin/inbox/?status="),
        ("inbox: channel sms", "/admin/inbox/?channel=sms"),
        ("inbox: tag vip", "/admin/inbox/?tag=vip"),
        (
            "inbox: unassigned, tag trial, sms (1 in 20)",
            "/admin/inbox/?tab=unassigned&tag=trial&channel=sms",
        ),
        ("conversation: 10 messages", f"/admin/inbox/{typical.pk}/"),
        (
            f"conversation: {BIG_CONVERSATION_MESSAGES} messages (shows 100)",
            f"/admin/inbox/{big.pk}/",
        ),
        ("conversation: poll", f"/admin/inbox/{typical.pk}/poll/"),
    ]
    print(f"\n{'request':<44} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8} {'rows':>6}")
    results = {}
    for label, url in cases:
        result = measure(client, url, args.rounds)
        results[label] = result
        body = result["response"].content.decode()
        rows = body.count('class="sb-row') or body.count('class="sb-item') or ""
        verdict = "ok" if result["p50"] <= TARGET_MS else "SLOW"
        print(
            f"{label:<44} {result['p50']:8.1f} {result['p95']:8.1f} "
            f"{result['queries']:8d} {rows!s:>6}  {verdict}",
            flush=True,
        )
    list_counts = {
        results[k]["queries"]
        for k in ("inbox: all, 10 per page", "inbox: all, 50 per page", "inbox: all, 200 per page")
    }
    page_counts = {
        results["conversation: 10 messages"]["queries"],
        results[f"conversation: {BIG_CONVERSATION_MESSAGES} messages (shows 100)"]["queries"],
    }
    print(
        f"\ntarget: p50 ≤ {TARGET_MS} ms; list queries at 10/50/200 per page: {sorted(list_counts)}"
        f" ({'independent of page size' if len(list_counts) == 1 else 'GROWS'}); "
        f"conversation page queries at 10/{BIG_CONVERSATION_MESSAGES} messages: "
        f"{sorted(page_counts)}"
    )


if __name__ == "__main__":
    main()
