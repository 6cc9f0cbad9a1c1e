"""The decision API under load: rules engine, N concurrent keep-alive connections, gunicorn.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/bench_decisions.py \
        [--contacts 2000] [--connections 8] [--seconds 20] [--workers 2]

Creates (once) the organization `bench-decisions` (fitness, New York) with N contacts,
each with a lead (some answered), a conversation of six messages and the agent's memory;
a third have an open deal, a tenth an upcoming booking; plus an API key and enough
credits. Starts gunicorn (`--no-control-socket`, production settings, no access log) on a
free port, warms up, then for `--seconds` sends `POST /api/v1/decisions/` from
`--connections` threads, each with its own keep-alive connection (http.client): a
`message.received` decision for a random contact with a message from a realistic mix
(greetings, answers, booking requests, picks, objections, prices, thanks, questions).

Prints one JSON object: throughput, client latency and server time (the view's
`Server-Timing: app;dur=`, from the API key check to the committed decision, context load
included) as p50/p90/p99, the status codes and the intents seen. Targets: server p50 <= 20
ms, p99 <= 60 ms. The machine is shared and noisy: compare runs made back to back.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

import django  # noqa: E402

django.setup()

from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.bookings.models import AppointmentType  # noqa: E402
from apps.bookings.services import booking_create  # noqa: E402
from apps.bookings.slots import slots_compute  # noqa: E402
from apps.conversations.models import Conversation, Message  # noqa: E402
from apps.core.errors import DomainError  # noqa: E402
from apps.crm import services as crm  # noqa: E402
from apps.crm.models import Contact  # noqa: E402
from apps.decisions.credits import credits_account, credits_top_up  # noqa: E402
from apps.decisions.models import ConversationMemory  # noqa: E402
from apps.niches.seed import niches_load  # noqa: E402
from apps.revenue.services import subscription_change_plan  # noqa: E402
from apps.tenancy.models import Organization  # noqa: E402
from apps.tenancy.services import (  # noqa: E402
    api_key_create,
    organization_create,
    organization_provision_defaults,
)

SLUG = "bench-decisions"
FIRST = ["Maya", "Jordan", "Priya", "Sam", "Lena", "Olivia", "Daniel", "Grace", "Tom", "Aisha"]
LAST = ["Chen", "Alvarez", "Natarajan", "Okafor", "Fischer", "Brooks", "Reyes", "Kim", "Lee"]
HISTORY = [
    ("in", "Hi, I saw your ad about the trial class"),
    ("out", "Hi, it's Jess from Bench Fitness. What's your main goal right now?"),
    ("in", "mostly getting stronger"),
    ("out", "Love that. When would you like to start: this week, next week, or later?"),
    ("in", "probably next week"),
    ("out", "The best first step is a free trial class. I have Tue 6:00 PM. Which works?"),
]
MESSAGES = [
    "hi",
    "hello there",
    "I want to get back into a routine",
    "next week",
    "this week if possible",
    "can I book a trial class?",
    "do you have anything on tuesday?",
    "the first one",
    "2",
    "that's too expensive for me",
    "I'm too busy at the moment",
    "let me think about it",
    "how much is a membership?",
    "thanks!",
    "what should I bring?",
    "is there parking nearby?",
    "can I reschedule?",
    "I have a bad knee, is that ok?",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return round(ordered[index], 2)


def arrange(contacts: int) -> tuple[Organization, str]:
    """The bench organization (created once) and a fresh API key."""
    niches_load()
    organization = Organization.objects.filter(slug=SLUG).first()
    if organization is None:
        organization = organization_create(
            name="Bench Fitness", niche="fitness", slug=SLUG, timezone_name="America/New_York"
        )
        organization_provision_defaults(organization=organization)
    # The free plan allows 1,000 contacts and 500 decisions a month; a benchmark needs more.
    subscription_change_plan(organization=organization, plan_key="scale", reason="benchmark")
    have = Contact.objects.filter(organization=organization).count()
    now = timezone.now()
    kind = AppointmentType.objects.filter(organization=organization, is_active=True).first()
    slots = slots_compute(
        organization=organization,
        appointment_type=kind,
        start=now + timedelta(days=1),
        end=now + timedelta(days=30),
        now=now,
    )
    rng = random.Random(7)
    for n in range(have, contacts):
        with transaction.atomic():
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            contact = crm.contact_create(
                organization=organization,
                name=name,
                email=f"bench{n}@example.com",
                phone=f"+1202555{n:04d}",
                source="sms",
                consent={"sms": {"opted_in": True, "reason": "web form"}},
            ).contact
            answers = {"goal": "strength"} if n % 2 else {}
            crm.lead_create(organization=organization, contact=contact, answers=answers)
            if n % 3 == 0:
                crm.deal_create(organization=organization, contact=contact)
            while n % 10 == 0 and slots:
                slot = slots.pop(0)
                try:
                    with transaction.atomic():
                        booking_create(
                            organization=organization,
                            contact=contact,
                            appointment_type=kind,
                            start=slot.start,
                            now=now,
                        )
                    break
                except DomainError:  # a neighbour's buffer covers it
                    continue
            conversation = Conversation.objects.create(
                organization=organization,
                contact=contact,
                last_inbound_channel="sms",
                last_inbound_at=now,
                last_message_at=now,
            )
            Message.objects.bulk_create(
                Message(
                    organization=organization,
                    conversation=conversation,
                    contact=contact,
                    direction=direction,
                    channel="sms",
                    sender_kind="contact" if direction == "in" else "agent",
                    text=text,
                    status="received" if direction == "in" else "sent",
                )
                for direction, text in HISTORY
            )
            ConversationMemory.objects.create(
                organization=organization,
                contact=contact,
                facts={"greeted": True, "pending_question": "start_timing"},
            )
    account = credits_account(organization=organization)
    if account.balance < 1_000_000:
        credits_top_up(organization=organization, amount=2_000_000, note="benchmark")
    key = api_key_create(organization=organization, name="bench").key
    return organization, key


def start_server(port: int, workers: int) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY=env.get("SECRET_KEY", "bench-secret-key-" + "x" * 40),
        SECURE_SSL_REDIRECT="false",
        SECURE_COOKIES="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DECISION_ENGINE="rules",
        API_RATE_LIMIT_PER_SECOND="0",  # measure the decision path, not the per-key limiter
        WEB_ACCESS_LOG="0",
        LOG_LEVEL="WARNING",
        WEB_CONCURRENCY=str(workers),
    )
    server = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--no-control-socket",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("gunicorn did not start")


def load(port, key, contact_ids, seconds: float, connections: int, record: bool):
    """Run the load; (client ms, server ms, status counter, intent counter, requests)."""
    client_ms: list[float] = []
    server_ms: list[float] = []
    statuses: Counter = Counter()
    intents: Counter = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(seed: int):
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        mine_client, mine_server, mine_status, mine_intents = [], [], Counter(), Counter()
        while time.monotonic() < stop_at:
            body = json.dumps(
                {
                    "contact_id": rng.choice(contact_ids),
                    "trigger": "message.received",
                    "message": rng.choice(MESSAGES),
                }
            )
            started = time.perf_counter()
            conn.request("POST", "/api/v1/decisions/", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            timing = response.getheader("Server-Timing") or ""
            mine_status[response.status] += 1
            if record:
                mine_client.append(elapsed)
                if timing.startswith("app;dur="):
                    mine_server.append(float(timing.split("=", 1)[1]))
                if response.status == 201:
                    mine_intents[json.loads(payload)["intent"]] += 1
        conn.close()
        with lock:
            client_ms.extend(mine_client)
            server_ms.extend(mine_server)
            statuses.update(mine_status)
            intents.update(mine_intents)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return client_ms, server_ms, statuses, intents, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    organization, key = arrange(args.contacts)
    contact_ids = [
        str(pk)
        for pk in Contact.objects.filter(organization=organization).values_list("pk", flat=True)
    ]
    port = free_port()
    server = start_server(port, args.workers)
    try:
        load(port, key, contact_ids, args.warmup, args.connections, record=False)
        client_ms, server_ms, statuses, intents, elapsed = load(
            port, key, contact_ids, args.seconds, args.connections, record=True
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    result = {
        "engine": "rules",
        "connections": args.connections,
        "gunicorn_workers": args.workers,
        "contacts": len(contact_ids),
        "seconds": round(elapsed, 1),
        "requests": len(client_ms),
        "throughput_rps": round(len(client_ms) / elapsed, 1),
        "server_ms": {
            "p50": percentile(server_ms, 50),
            "p90": percentile(server_ms, 90),
            "p99": percentile(server_ms, 99),
            "mean": round(statistics.fmean(server_ms), 2) if server_ms else None,
        },
        "client_ms": {
            "p50": percentile(client_ms, 50),
            "p90": percentile(client_ms, 90),
            "p99": percentile(client_ms, 99),
        },
        "targets": {"server_p50_ms": 20, "server_p99_ms": 60},
        "statuses": dict(statuses),
        "intents": dict(intents.most_common()),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
