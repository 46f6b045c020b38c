"""How fast the timeline takes entries, next to what the database itself can do.

Appends N entries to one incident through `TimelineEntry.objects.append` (lock the
incident, read the chain head, hash, insert), then makes N raw single-row INSERTs of a
similar row into a scratch table on the same connection, both first with a commit per row
and then all in one transaction. Last, it re-verifies the chain and reports entries per
second.

    .venv/bin/python bench/timeline.py [--entries 20000] [--database-url URL]

By default it creates (and afterwards drops) the PostgreSQL database irportal_bench_timeline
on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "irportal_bench_timeline"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    database_url = args.database_url or create_database()
    try:
        run(database_url, args.entries)
    finally:
        if not args.database_url:
            drop_database()


def create_database() -> str:
    drop_database()
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {BENCH_DB}")
    return f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}"


def drop_database() -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def run(database_url: str, entries: int) -> None:
    os.environ.update(DATABASE_URL=database_url, DEBUG="true", LOG_LEVEL="WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "irportal.settings")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection, transaction

    from cases import services
    from cases.choices import EntryKind
    from cases.models import TimelineEntry
    from irportal.actors import Actor

    call_command("migrate", verbosity=0)
    actor = Actor.for_user(User.objects.create_user("bench"))
    per_row_incident = services.open_incident(actor, title="per-row commits")
    batch_incident = services.open_incident(actor, title="one transaction")

    def append_to(incident: object) -> Callable[[int], None]:
        def append(n: int) -> None:
            TimelineEntry.objects.append(
                incident,  # type: ignore[arg-type]
                actor,
                EntryKind.NOTE,
                f"note {n}",
                {"n": n, "instance": "i-0abc"},
            )

        return append

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_raw (id bigserial PRIMARY KEY, incident_id bigint, "
            "sequence integer, summary varchar(300), data jsonb, hash varchar(64))"
        )

    def raw_insert(n: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bench_raw (incident_id, sequence, summary, data, hash) "
                "VALUES (%s, %s, %s, %s, %s)",
                [1, n, f"note {n}", '{"n": 1, "instance": "i-0abc"}', "0" * 64],
            )

    print(f"database: {connection.vendor} {connection.pg_version}; entries: {entries:,}")  # type: ignore[attr-defined]
    rows = [
        ("timeline append, commit per entry", time_each(append_to(per_row_incident), entries)),
        ("raw INSERT, commit per row", time_each(raw_insert, entries)),
    ]
    with transaction.atomic():
        rows.append(
            ("timeline append, one transaction", time_each(append_to(batch_incident), entries))
        )
    with transaction.atomic():
        rows.append(("raw INSERT, one transaction", time_each(raw_insert, entries)))
    for label, rate in rows:
        print(f"{label:<36} {rate:>10,.0f} per second")
    print(f"append / raw, commit per row: {rows[0][1] / rows[1][1]:.0%}")
    print(f"append / raw, one transaction: {rows[2][1] / rows[3][1]:.0%}")

    started = time.perf_counter()
    broken = TimelineEntry.objects.verify_chain(per_row_incident)
    elapsed = time.perf_counter() - started
    assert broken is None, broken
    print(f"{'verification':<36} {(entries + 1) / elapsed:>10,.0f} entries per second")
    connection.close()


def time_each(step: Callable[[int], None], count: int) -> float:
    started = time.perf_counter()
    for n in range(count):
        step(n)
    return count / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
