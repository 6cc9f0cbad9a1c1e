"""Ingress benchmark: signed Twilio and WhatsApp webhooks against gunicorn, vs the DB ceiling.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sb_x REDIS_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python bench/bench_ingress.py [--requests 6000] [--rounds 2] [--organizations 1]

What it does, all on this machine:
1. Creates (or reuses) the database `<DATABASE_URL name>_bench`, migrates it, and sets up
   an organization with a Twilio and a WhatsApp channel and `--senders` known contacts
   (each with its conversation: the steady state of a live inbox).
2. Starts gunicorn on 127.0.0.1 (`--no-control-socket`, production settings, no access log).
3. Interleaves, `--rounds` times: the ceiling — pgbench with 16 clients running the very
   SQL of one ingress transaction (sender lookup; insert message + thread conversation +
   contact activity; the outbox event with its sequence), taken from the code, in pgbench's
   default simple protocol — then `--requests` signed Twilio webhooks, the same ceiling with
   `-M prepared`, then as many WhatsApp webhooks; each webhook is a new message from a
   known sender, over 16 concurrent keep-alive connections.
4. Prints req/s, p50/p99 latency, and the ratio to both ceilings, next to the targets
   (ingress >= 0.5 x ceiling, p99 <= 50 ms), and the CPU gunicorn and its PostgreSQL
   backends spent per request (from /proc: steadier than throughput on a shared machine).
   Medians over rounds. With one organization every transaction also waits for that
   organization's event-sequence row lock (the outbox), in pgbench as in the app;
   `--organizations N` spreads the load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONCURRENCY = 16
MODES = ("simple", "prepared")  # pgbench query modes measured for the ceiling
TWILIO_TOKEN = "bench_auth_token_0123456789abcdef"
APP_SECRET = "bench_app_secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_database_url(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    name = parsed.path.lstrip("/") + "_bench"
    return urlunparse(parsed._replace(path="/" + name)), name


def ensure_database(url: str, name: str) -> None:
    import psycopg

    admin = urlunparse(urlparse(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


# --- setup (in this process, through the services) ----------------------------------------------


def setup(senders: int, public_url: str, organizations: int = 1) -> list[dict]:
    """`organizations` organizations, each with its channels and known senders."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    per_org = max(1, senders // organizations)
    return [setup_organization(per_org, public_url) for _ in range(organizations)]


def setup_organization(senders: int, public_url: str) -> dict:
    from apps.conversations.services import conversation_for_contact
    from apps.crm.services import contact_upsert
    from apps.providers.services import channel_create
    from apps.tenancy.services import organization_create

    organization = organization_create(
        name="Bench Studio", niche="fitness", slug=f"bench-{secrets.token_hex(3)}"
    )
    twilio = channel_create(
        organization=organization,
        provider="twilio",
        config={
            "account_sid": "ACbench",
            "auth_token": TWILIO_TOKEN,
            "from_number": "+12028831111",
        },
    )
    whatsapp = channel_create(
        organization=organization,
        provider="whatsapp",
        config={
            "phone_number_id": "1122334455667",
            "access_token": "bench",
            "app_secret": APP_SECRET,
            "verify_token": "bench",
        },
    )
    phones = [f"+1202555{1000 + n:04d}" for n in range(senders)]
    for n, phone in enumerate(phones):
        contact = contact_upsert(
            organization=organization,
            identities=[("whatsapp_id", phone[1:])],
            phone=phone,
            name=f"Bench {n}",
        ).contact
        conversation_for_contact(organization=organization, contact=contact, channel="sms")
    return {
        "organization_id": str(organization.id),
        "twilio": str(twilio.id),
        "whatsapp": str(whatsapp.id),
        "phones": phones,
        "public_url": public_url,
    }


# --- requests -----------------------------------------------------------------------------------


def twilio_requests(ctxs: list[dict], count: int, host: str) -> list[bytes]:
    from django.http import QueryDict
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(TWILIO_TOKEN)
    run = secrets.token_hex(4)
    out = []
    for n in range(count):
        ctx = ctxs[n % len(ctxs)]
        path = f"/hooks/twilio/{ctx['twilio']}/"
        url = ctx["public_url"] + path
        body = urlencode(
            {
                "ToCountry": "US",
                "SmsMessageSid": f"SM{run}{n:024d}",
                "NumMedia": "0",
                "SmsSid": f"SM{run}{n:024d}",
                "SmsStatus": "received",
                "Body": f"Hi, is there a class tonight? ({n})",
                "To": "+12028831111",
                "NumSegments": "1",
                "MessageSid": f"SM{run}{n:024d}",
                "AccountSid": "ACbench",
                "From": ctx["phones"][n % len(ctx["phones"])],
                "ApiVersion": "2010-04-01",
            }
        ).encode()
        signature = validator.compute_signature(url, QueryDict(body))
        out.append(
            (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
    return out


def whatsapp_requests(ctxs: list[dict], count: int, host: str) -> list[bytes]:
    import hashlib
    import hmac

    run = secrets.token_hex(4)
    out = []
    now = int(time.time())
    for n in range(count):
        ctx = ctxs[n % len(ctxs)]
        path = f"/hooks/whatsapp/{ctx['whatsapp']}/"
        wa_id = ctx["phones"][n % len(ctx["phones"])][1:]
        payload = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "1234567890987654321",
                    "changes": [
                        {
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550001111",
                                    "phone_number_id": "1122334455667",
                                },
                                "contacts": [
                                    {
                                        "profile": {"name": f"Bench {n % len(ctx['phones'])}"},
                                        "wa_id": wa_id,
                                    }
                                ],
                                "messages": [
                                    {
                                        "from": wa_id,
                                        "id": f"wamid.{run}{n:020d}",
                                        "timestamp": str(now),
                                        "text": {"body": f"Can I book for Saturday? ({n})"},
                                        "type": "text",
                                    }
                                ],
                            },
                            "field": "messages",
                        }
                    ],
                }
            ],
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        signature = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        out.append(
            (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"X-Hub-Signature-256: sha256={signature}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
    return out


# --- load generator: raw HTTP/1.1 keep-alive over 16 connections ---------------------------------


async def _connection(host: str, port: int, requests, latencies: list, statuses: dict) -> None:
    reader = writer = None
    for request in requests:
        if writer is None:
            reader, writer = await asyncio.open_connection(host, port)
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        match = re.search(rb"(?i)content-length:\s*(\d+)", head)
        if match:
            await reader.readexactly(int(match.group(1)))
        latencies.append(time.perf_counter() - started)
        status = int(head[9:12])
        statuses[status] = statuses.get(status, 0) + 1
        if re.search(rb"(?i)connection:\s*close", head):
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


def _cpu_seconds(pids) -> float:
    """utime + stime of these processes (those that exited meanwhile count as 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            # utime + stime, plus reaped children (a recycled gunicorn worker lands there)
            total += sum(int(v) for v in fields[11:15])
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:
                    pids.append(int(name))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def _backend_pids(db_url: str) -> list[int]:
    import psycopg

    name = urlparse(db_url).path.lstrip("/")
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        ).fetchall()
    return [r[0] for r in rows]


def run_load(host: str, port: int, requests: list[bytes], server_pgid=None, db_url=None) -> dict:
    """Send `requests` over 16 keep-alive connections; latency per request, and the CPU the
    web server and its database backends spent per request (from /proc, noise-robust)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    shared = iter(requests)
    web = _group_pids(server_pgid) if server_pgid else []
    backends = _backend_pids(db_url) if db_url else []
    web_cpu, db_cpu, own_cpu = _cpu_seconds(web), _cpu_seconds(backends), time.process_time()

    async def main():
        await asyncio.gather(
            *[_connection(host, port, shared, latencies, statuses) for _ in range(CONCURRENCY)]
        )

    started = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - started
    web_cpu = _cpu_seconds(web) - web_cpu
    db_cpu = _cpu_seconds(backends) - db_cpu
    own_cpu = time.process_time() - own_cpu
    latencies.sort()
    n = len(latencies)
    return {
        "rps": n / elapsed,
        "p50_ms": latencies[n // 2] * 1000,
        "p99_ms": latencies[int(n * 0.99) - 1] * 1000,
        "statuses": statuses,
        "web_cpu_ms": web_cpu * 1000 / n,
        "db_cpu_ms": db_cpu * 1000 / n,
        "client_cpu_ms": own_cpu * 1000 / n,
    }


# --- the ceiling: the same SQL in pgbench ---------------------------------------------------------

UUID7_SQL = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
    "substring(int8send(floor(extract(epoch from clock_timestamp()) * 1000)::bigint) from 3) "
    "from 1 for 6), 52, 1), 53, 1), 'hex')::uuid"
)


def pgbench_script(ctx: dict, mode: str) -> str:
    """One ingress transaction for a known sender, built from the code's own SQL strings.

    In `prepared` mode pgbench binds its variables as parameters (no quotes); in `simple`
    mode it pastes them into the text (quoted)."""
    q = "'" if mode == "simple" else ""
    from apps.conversations import selectors
    from apps.conversations import services as conversations
    from apps.events import services as events

    org = ctx["organization_id"]
    phone = "'+1202555' || (1000 + :n)::text"
    lookup = selectors._SENDER_SQL.format(pairs="('phone', %s)") % (f"'{org}'", phone)
    columns = "kind, contact_id, merged_into_id, name, email, phone, conv_id, status"
    lookup = " ".join(lookup.split())
    lookup = f"SELECT t.contact_id, t.conv_id FROM ({lookup}) AS t({columns}) \\gset"  # noqa: S608
    values = {
        "id": UUID7_SQL,
        "org": f"'{org}'",
        "now": "now()",
        "conversation": f"{q}:conv_id{q}",
        "contact": f"{q}:contact_id{q}",
        "channel": "'sms'",
        "connection": f"'{ctx['twilio']}'",
        "provider_id": "'pg' || :n || '-' || :r1 || '-' || :r2",
        "text": "'Hi, is there a class tonight?'",
        "subject": "''",
        "reply_to": "NULL",
        "reply_to_provider_id": "''",
        "email_message_id": "''",
        "sent_at": "NULL",
        "trace_id": "md5(random()::text)",
        "raw": "'"
        + json.dumps(
            {
                "Body": "Hi, is there a class tonight?",
                "From": "+12025551000",
                "MessageSid": "SM" + "0" * 32,
                "To": "+12028831111",
                "NumMedia": "0",
                "AccountSid": "ACbench",
                "ApiVersion": "2010-04-01",
                "SmsStatus": "received",
            }
        )
        + "'",
        "preview": "'Hi, is there a class tonight?'",
        "inbound_at": "now()",
    }
    insert = re.sub(r"%\((\w+)\)s", lambda m: values[m.group(1)], conversations._INBOUND_SQL)
    data = json.dumps(
        {
            "message_id": "01900000-0000-7000-8000-000000000000",
            "conversation_id": "01900000-0000-7000-8000-000000000001",
            "contact_id": "01900000-0000-7000-8000-000000000002",
            "channel": "sms",
            "direction": "in",
            "text": "Hi, is there a class tonight?",
            "provider": "twilio",
            "provider_message_id": "SM" + "0" * 32,
            "status": "received",
            "error_code": None,
            "error_reason": None,
            "attachments": [],
            "sent_at": None,
        },
    )
    event_values = {
        "id": UUID7_SQL,
        "org": f"'{org}'",
        "type": "'message.received'",
        "version": "1",
        "subject_type": "'message'",
        "subject_id": "'01900000-0000-7000-8000-000000000000'",
        "data": f"'{data}'",
        "trace_id": "md5(random()::text)",
        "created_at": "now()",
    }
    emit = re.sub(r"%\((\w+)\)s", lambda m: event_values[m.group(1)], events._EMIT_SQL)
    one_line = lambda sql: " ".join(sql.split())  # noqa: E731
    return "\n".join(
        [
            f"\\set n random(0, {len(ctx['phones']) - 1})",
            "\\set r1 random(1, 2000000000)",
            "\\set r2 random(1, 2000000000)",
            "BEGIN;",
            lookup,
            one_line(insert) + ";",
            one_line(emit) + ";",
            "END;",
            "",
        ]
    )


def run_pgbench(db_url: str, scripts: list[str], seconds: int, mode: str) -> dict:
    paths = []
    for script in scripts:  # one per organization, picked at random per transaction
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
            handle.write(script)
            paths.append(handle.name)
    parsed = urlparse(db_url)
    log_dir = tempfile.mkdtemp(prefix="sb-pgbench-")
    try:
        result = subprocess.run(
            [
                "pgbench",
                "-n",
                "-M",
                mode,
                "-c",
                str(CONCURRENCY),
                "-j",
                "2",
                "-T",
                str(seconds),
                *[arg for path in paths for arg in ("-f", path)],
                "-l",
                "--log-prefix",
                os.path.join(log_dir, "tx"),
                "-h",
                parsed.hostname or "127.0.0.1",
                "-p",
                str(parsed.port or 5432),
                "-U",
                parsed.username or "postgres",
                parsed.path.lstrip("/"),
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PGPASSWORD": parsed.password or ""},
        )
        if result.returncode != 0:
            raise SystemExit(f"pgbench failed:\n{result.stderr}\n{result.stdout}")
        tps = float(re.search(r"tps = ([\d.]+)", result.stdout).group(1))
        latencies = []
        for name in os.listdir(log_dir):
            with open(os.path.join(log_dir, name)) as log:
                latencies += [int(line.split()[2]) / 1000 for line in log if line.strip()]
        latencies.sort()
        return {
            "tps": tps,
            "p50_ms": latencies[len(latencies) // 2],
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        }
    finally:
        for path in paths:
            os.unlink(path)
        shutil.rmtree(log_dir, ignore_errors=True)


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=6000, help="per scenario and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--senders", type=int, default=500, help="known senders in all")
    parser.add_argument(
        "--organizations",
        type=int,
        default=1,
        help="spread the load over this many organizations (each has its event sequence)",
    )
    parser.add_argument("--pgbench-seconds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", 2)))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 4)))
    args = parser.parse_args()

    source_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/switchboard")
    db_url, db_name = bench_database_url(source_url)
    ensure_database(db_url, db_name)
    port = free_port()
    host = f"127.0.0.1:{port}"
    public_url = f"http://{host}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "bench-" + "x" * 50,
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_COOKIES": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "PUBLIC_URL": public_url,
        "DATABASE_URL": db_url,
        "DB_CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
        "WEB_ACCESS_LOG": "0",
        "WEB_BIND": host,
        "WEB_CONCURRENCY": str(args.workers),
        "WEB_THREADS": str(args.threads),
    }
    os.environ.update(env)
    ctxs = setup(args.senders, public_url, args.organizations)
    print(f"database {db_name}; {len(ctxs)} organization(s); {args.senders} known senders")

    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "--no-control-socket",
            "--max-requests",
            "0",  # no worker recycling mid-measurement (production recycles every ~5000)
            "--worker-class",
            "gthread" if args.threads > 1 else "sync",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("gunicorn did not start") from None
                time.sleep(0.2)
        print(
            f"gunicorn: {args.workers} workers x {args.threads} threads "
            f"({'gthread' if args.threads > 1 else 'sync'}), {CONCURRENCY} client connections"
        )
        warm = run_load(
            "127.0.0.1", port, twilio_requests(ctxs, 400, host) + whatsapp_requests(ctxs, 400, host)
        )
        if set(warm["statuses"]) != {200}:
            raise SystemExit(f"warm-up answers: {warm['statuses']}")
        scripts = {mode: [pgbench_script(ctx, mode) for ctx in ctxs] for mode in MODES}
        results: dict[str, list[dict]] = {m: [] for m in MODES} | {"twilio": [], "whatsapp": []}
        for round_no in range(1, args.rounds + 1):
            tw = twilio_requests(ctxs, args.requests, host)
            wa = whatsapp_requests(ctxs, args.requests, host)
            # interleaved: ceiling (simple), twilio, ceiling (prepared), whatsapp
            results["simple"].append(
                run_pgbench(db_url, scripts["simple"], args.pgbench_seconds, "simple")
            )
            results["twilio"].append(run_load("127.0.0.1", port, tw, server.pid, db_url))
            results["prepared"].append(
                run_pgbench(db_url, scripts["prepared"], args.pgbench_seconds, "prepared")
            )
            results["whatsapp"].append(run_load("127.0.0.1", port, wa, server.pid, db_url))
            print(
                f"round {round_no}: ceiling {results['simple'][-1]['tps']:.0f} tps simple, "
                f"{results['prepared'][-1]['tps']:.0f} prepared | "
                + " | ".join(
                    f"{name} {results[name][-1]['rps']:.0f} req/s "
                    f"p99 {results[name][-1]['p99_ms']:.1f} ms {results[name][-1]['statuses']}"
                    for name in ("twilio", "whatsapp")
                )
            )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    med = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
    ceiling = med(results["simple"], "tps")
    prepared = med(results["prepared"], "tps")
    print()
    print(
        f"{'scenario':<36}{'throughput':>12}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'x ceiling':>11}{'x prepared':>12}"
    )
    for mode, label in (
        ("simple", "ceiling: pgbench, same SQL"),
        ("prepared", "  same, pgbench -M prepared"),
    ):
        print(
            f"{label:<36}{med(results[mode], 'tps'):>8.0f} tps"
            f"{med(results[mode], 'p50_ms'):>9.1f}{med(results[mode], 'p99_ms'):>9.1f}"
            f"{med(results[mode], 'tps') / ceiling:>11.2f}{med(results[mode], 'tps') / prepared:>12.2f}"
        )
    verdicts = []
    for name in ("twilio", "whatsapp"):
        rps, p50, p99 = (med(results[name], k) for k in ("rps", "p50_ms", "p99_ms"))
        verdicts.append(rps / ceiling >= 0.5 and p99 <= 50)
        print(
            f"{name + ' inbound (gunicorn)':<36}{rps:>6.0f} req/s{p50:>9.1f}{p99:>9.1f}"
            f"{rps / ceiling:>11.2f}{rps / prepared:>12.2f}"
        )
    print(
        "targets: ingress >= 0.50 x ceiling (pgbench default, simple protocol) and p99 <= 50 ms ->",
        "met" if all(verdicts) else "NOT met",
    )
    for name in ("twilio", "whatsapp"):
        web, db, own = (med(results[name], k) for k in ("web_cpu_ms", "db_cpu_ms", "client_cpu_ms"))
        print(
            f"CPU per {name} request: gunicorn {web:.2f} ms, its PostgreSQL backends {db:.2f} ms, "
            f"load generator {own:.2f} ms"
        )
    print(f"machine load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
