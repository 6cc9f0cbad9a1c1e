"""Benchmark: event commit → webhook receipt latency, and sustained deliveries per second.

    .venv/bin/python bench/bench_events.py [--events 3000] [--rate 500] [--backlog 10000]

Uses DATABASE_URL / REDIS_URL (migrate first). It creates a throwaway organization with
one endpoint subscribed to `*` on a local keep-alive receiver (its own process), starts a
real worker node (`celery -A config worker -Q events -c 2`), then:

1. **latency**: emits `--events` events at `--rate` per second from a few threads, each in
   its own transaction (as services do), and measures commit → receipt per event;
2. **throughput**: emits a `--backlog` of events while no worker runs, starts the worker
   and measures how fast it drains them (first → last receipt).

Prints the figures next to the targets (p50 ≤ 50 ms, p99 ≤ 250 ms, ≥ 500 deliveries/s).
Not a test: the machine is shared and noisy; run it a few times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
os.environ.setdefault("LOG_LEVEL", "WARNING")

TARGETS = {"p50_ms": 50, "p99_ms": 250, "deliveries_per_s": 500}


# --- receiver (own process) --------------------------------------------------------------


def _receiver_main(port_value, ready, stop, count, results_path) -> None:
    receipts: dict[str, float] = {}

    async def handle(reader, writer):
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                length = 0
                webhook_id = None
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"webhook-id":
                        webhook_id = value.strip().decode()
                if length:
                    await reader.readexactly(length)
                received = time.time()
                if webhook_id and webhook_id not in receipts:
                    receipts[webhook_id] = received
                    count.value += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
        port_value.value = server.sockets[0].getsockname()[1]
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.close()
        Path(results_path).write_text(json.dumps(receipts))

    asyncio.run(main())


class Receiver:
    def __init__(self):
        self.port = multiprocessing.Value("i", 0)
        self.count = multiprocessing.Value("i", 0, lock=False)
        self.ready = multiprocessing.Event()
        self.stop_event = multiprocessing.Event()
        self.results = Path(tempfile.mkstemp(prefix="sb-bench-", suffix=".json")[1])
        self.process = multiprocessing.Process(
            target=_receiver_main,
            args=(self.port, self.ready, self.stop_event, self.count, str(self.results)),
            daemon=True,
        )

    def start(self) -> Receiver:
        self.process.start()
        self.ready.wait(10)
        self.url = f"http://127.0.0.1:{self.port.value}/webhook"
        return self

    def receipts(self) -> dict[str, float]:
        self.stop_event.set()
        self.process.join(10)
        return json.loads(self.results.read_text())


# --- worker ------------------------------------------------------------------------------


class WorkerNode:
    def __init__(self, concurrency: int):
        self.concurrency = concurrency
        self.log = Path(tempfile.mkstemp(prefix="sb-bench-worker-", suffix=".log")[1])

    def start(self) -> WorkerNode:
        self._log = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "events",
             "-c", str(self.concurrency), "-n", f"bench-{uuid.uuid4().hex[:6]}@%h",
             "--without-mingle", "--without-gossip", "-l", "INFO"],
            cwd=ROOT, env=dict(os.environ), stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while " ready." not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # warm shutdown: running tasks finish
            self.process.wait(60)
        self._log.close()


# --- emitting ----------------------------------------------------------------------------


def _emit_share(organization_id, indexes, rate: float, start: float, out_path: str) -> None:
    """One emitting process: its share of the events, each at start + index / rate."""
    from django.db import connection, transaction

    from apps.events.services import emit
    from apps.tenancy.models import Organization

    connection.close()  # never share the parent's connection
    organization = Organization.objects.get(pk=organization_id)
    commits: dict[str, float] = {}
    for index in indexes:
        delay = start + index / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        contact_id = str(uuid.uuid4())
        with transaction.atomic():
            event = emit(
                organization=organization,
                type="contact.created",
                subject_type="contact",
                subject_id=contact_id,
                data={"contact_id": contact_id, "name": "Bench"},
            )
        commits[str(event.id)] = time.time()
    connection.close()
    Path(out_path).write_text(json.dumps(commits))


def emit_paced(organization, count: int, rate: float, processes: int) -> dict[str, float]:
    """Emit `count` events at `rate`/s from `processes` processes, one transaction each (as
    services do); returns event id → commit time."""
    from django.db import connection

    connection.close()
    context = multiprocessing.get_context("fork")
    start = time.time() + 0.5
    outputs = [
        tempfile.mkstemp(prefix="sb-bench-emit-", suffix=".json")[1] for _ in range(processes)
    ]
    workers = [
        context.Process(
            target=_emit_share,
            args=(organization.pk, range(n, count, processes), rate, start, outputs[n]),
        )
        for n in range(processes)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join()
    commits: dict[str, float] = {}
    for path in outputs:
        commits.update(json.loads(Path(path).read_text()))
        os.unlink(path)
    return commits


def emit_backlog(organization, count: int) -> list[str]:
    """Emit `count` events quickly (100 per transaction) while no worker runs."""
    from django.db import transaction

    from apps.events.services import emit

    ids = []
    for start in range(0, count, 100):
        with transaction.atomic():
            for _ in range(min(100, count - start)):
                contact_id = str(uuid.uuid4())
                event = emit(
                    organization=organization,
                    type="contact.created",
                    subject_type="contact",
                    subject_id=contact_id,
                    data={"contact_id": contact_id, "name": "Bench"},
                )
                ids.append(str(event.id))
    return ids


def wait_count(receiver: Receiver, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while receiver.count.value < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {receiver.count.value}/{expected} delivered in {timeout}s")
        time.sleep(0.05)


def wait_recorded(organization, timeout: float) -> None:
    """Until every delivery's outcome is recorded (stopping the worker earlier would lose
    the last round's records and resend it after the lease: at-least-once, but noisy)."""
    from apps.events.models import Delivery

    deadline = time.monotonic() + timeout
    while Delivery.objects.filter(organization=organization).exclude(status="succeeded").exists():
        if time.monotonic() > deadline:
            raise SystemExit("deliveries were received but not recorded in time")
        time.sleep(0.05)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --- main --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="latency phase events")
    parser.add_argument("--rate", type=float, default=500, help="latency phase events/s")
    parser.add_argument("--emitters", type=int, default=2, help="emitting processes")
    parser.add_argument("--backlog", type=int, default=10000, help="throughput phase events")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import transaction

    from apps.events import delivery, services
    from apps.tenancy.services import organization_create

    if not settings.WEBHOOKS_ALLOW_PRIVATE_URLS:
        raise SystemExit("set WEBHOOKS_ALLOW_PRIVATE_URLS=true (the receiver is on 127.0.0.1)")
    receiver = Receiver().start()
    organization = organization_create(
        name="Bench", slug=f"bench-{uuid.uuid4().hex[:8]}", niche="fitness"
    )
    services.webhook_endpoint_create(
        organization=organization, url=receiver.url, event_types=["*"], max_concurrency=16
    )
    delivery.redis_client().delete(delivery.WAKE_KEY)
    report: dict = {"targets": TARGETS}
    worker = WorkerNode(args.concurrency).start()
    try:
        emit_paced(organization, 200, 200, 2)  # warm-up: connections, imports, caches
        wait_count(receiver, 200, 60)
        base = receiver.count.value

        commits = emit_paced(organization, args.events, args.rate, args.emitters)
        wait_count(receiver, base + args.events, 120)
        wait_recorded(organization, 60)
        worker.stop()

        backlog_ids = emit_backlog(organization, args.backlog)
        base = receiver.count.value
        worker = WorkerNode(args.concurrency).start()
        wait_count(receiver, base + args.backlog, 300)
        wait_recorded(organization, 60)
    finally:
        worker.stop()
        receipts = receiver.receipts()

    latencies = [(receipts[i] - t) * 1000 for i, t in commits.items() if i in receipts]
    span = max(receipts[i] for i in commits) - min(commits.values())
    first_commit = min(commits.values())
    report["latency"] = {
        "events": len(commits),
        "offered_rate": round(len(commits) / (max(commits.values()) - first_commit), 1),
        "delivered_rate": round(len(commits) / span, 1),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
    }
    drained = sorted(receipts[i] for i in backlog_ids)
    report["throughput"] = {
        "events": len(backlog_ids),
        "seconds": round(drained[-1] - drained[0], 2),
        "deliveries_per_s": round((len(drained) - 1) / (drained[-1] - drained[0]), 1),
    }
    from apps.events.models import Delivery, DeliveryAttempt

    deliveries = Delivery.objects.filter(organization=organization)
    report["check"] = {
        "deliveries": deliveries.count(),
        "not_succeeded": deliveries.exclude(status="succeeded").count(),
        "attempts": DeliveryAttempt.objects.filter(organization=organization).count(),
        "received": len(receipts),
    }
    with transaction.atomic():
        organization.delete()

    if args.json:
        print(json.dumps(report))
        return
    lat, thr = report["latency"], report["throughput"]
    print(f"one worker node: celery -Q events -c {args.concurrency}, {os.cpu_count()} cores")
    print(
        f"latency  {lat['events']} events offered at {lat['offered_rate']}/s "
        f"(delivered at {lat['delivered_rate']}/s): commit→receipt "
        f"p50 {lat['p50_ms']} ms (target ≤ {TARGETS['p50_ms']}), p95 {lat['p95_ms']} ms, "
        f"p99 {lat['p99_ms']} ms (target ≤ {TARGETS['p99_ms']}), max {lat['max_ms']} ms"
    )
    print(
        f"throughput  {thr['events']} queued events drained in {thr['seconds']} s: "
        f"{thr['deliveries_per_s']} deliveries/s (target ≥ {TARGETS['deliveries_per_s']})"
    )
    check = report["check"]
    print(
        f"check  {check['deliveries']} deliveries, {check['attempts']} attempts, "
        f"{check['not_succeeded']} not succeeded, {check['received']} distinct webhook-ids received"
    )


if __name__ == "__main__":
    main()
