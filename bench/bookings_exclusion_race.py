"""Why booking services lock the resource row before inserting (apps/bookings/services.py).

Races N contenders inserting the same range into an exclusion-constrained table, ROUNDS
times, with and without a `FOR NO KEY UPDATE` lock on a parent row first, and counts
outcomes. Without the lock PostgreSQL occasionally aborts one contender with a deadlock
(each waits on the other's uncommitted index entry) instead of an exclusion violation.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sb_bench .venv/bin/python bench/bookings_exclusion_race.py
Uses its own scratch tables (bench_race_*) in that database and drops them afterwards.
"""

from __future__ import annotations

import collections
import os
import threading
import time

import psycopg

DSN = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
CONTENDERS = int(os.environ.get("CONTENDERS", "20"))
ROUNDS = int(os.environ.get("ROUNDS", "100"))


def setup() -> None:
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        conn.execute("DROP TABLE IF EXISTS bench_race_booking, bench_race_resource")
        conn.execute("CREATE TABLE bench_race_resource (id int PRIMARY KEY)")
        conn.execute(
            "CREATE TABLE bench_race_booking (id serial PRIMARY KEY,"
            " resource_id int REFERENCES bench_race_resource, s timestamptz, e timestamptz,"
            " EXCLUDE USING gist (tstzrange(s, e, '[)') WITH &&, resource_id WITH =))"
        )
        conn.execute(f"INSERT INTO bench_race_resource SELECT generate_series(1, {ROUNDS * 2})")


def teardown() -> None:
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_race_booking, bench_race_resource")


def race(resource_id: int, lock: bool, outcomes: collections.Counter) -> None:
    barrier = threading.Barrier(CONTENDERS)

    def contender():
        with psycopg.connect(DSN) as conn:
            barrier.wait()
            try:
                if lock:
                    conn.execute(
                        "SELECT 1 FROM bench_race_resource WHERE id = %s FOR NO KEY UPDATE",
                        [resource_id],
                    )
                conn.execute(
                    "INSERT INTO bench_race_booking (resource_id, s, e)"
                    " VALUES (%s, '2026-03-02 15:00Z', '2026-03-02 15:30Z')",
                    [resource_id],
                )
                conn.commit()
                outcomes["booked"] += 1
            except psycopg.errors.ExclusionViolation:
                outcomes["slot_taken"] += 1
            except psycopg.errors.DeadlockDetected:
                outcomes["deadlock"] += 1

    threads = [threading.Thread(target=contender) for _ in range(CONTENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> None:
    setup()
    try:
        results = {False: collections.Counter(), True: collections.Counter()}
        seconds = {False: 0.0, True: 0.0}
        for round_ in range(ROUNDS):  # interleaved, so both variants see the same noise
            for lock in (False, True):
                started = time.perf_counter()
                race(round_ * 2 + 1 + int(lock), lock, results[lock])
                seconds[lock] += time.perf_counter() - started
        for lock in (False, True):
            name = "with resource lock" if lock else "constraint only   "
            print(
                f"{name}: {dict(results[lock])}  mean per round "
                f"{seconds[lock] / ROUNDS * 1000:.0f} ms"
            )
    finally:
        teardown()


if __name__ == "__main__":
    main()
