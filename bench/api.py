"""How fast the incidents API creates and lists, served by gunicorn on PostgreSQL.

What it measures, in order:

1. Creates: POST /api/v1/incidents/ as a responder, from 1 and then 4 concurrent clients
   for `--seconds` each; requests per second, p50/p99 latency and errors.
2. Lists, once `--rows` more incidents are seeded in bulk SQL (then VACUUM ANALYZE):
   GET /api/v1/incidents/?page=N at the default page size, the first, middle and last
   page, `--repeat` times each, one request at a time, as a lead (sees every incident)
   and as a responder (sees those not restricted); p50/p95/p99 latency.
3. SQL statements per request, counted in-process with django.test.Client and
   CaptureQueriesContext on the same database: the list at page_size 10 and 100, first
   and last page, and a create. The count should not depend on the page size.

For each load it also shows the CPU used per request by gunicorn (master and workers),
by PostgreSQL (all its processes) and by this client, read from /proc, and how busy the
machine was: on a 2-core machine the three share the cores, so that says where the time
goes. The load clients are threads on http.client, to keep the client's share small.

The app runs as deployed: `gunicorn irportal.wsgi -w 2`, DEBUG off, on a database of its
own, irportal_bench_api, dropped and created anew on every run and dropped at the end
(`--keep-database` keeps it, e.g. to EXPLAIN ANALYZE the list's queries). Gunicorn's log
goes to a temporary file, shown if it does not start; it is stopped however the run ends.

The scratch database, gunicorn, the load clients and the CPU accounting are shared with
bench/ingest.py, in bench/harness.py.

    .venv/bin/python bench/api.py [--seconds 10] [--rows 100000] [--repeat 200]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness import (
    DEFAULT_SERVER,
    Call,
    CpuUse,
    LoadResult,
    Server,
    app_environment,
    connect,
    cpu_since,
    cpu_snapshot,
    create_users,
    get_once,
    gunicorn,
    migrate,
    ms,
    percentile,
    request,
    run_load,
    scratch_database,
    setup_django,
    verdict,
)

API = "/api/v1/incidents/"
PAGE_SIZE = 25  # REST_FRAMEWORK["PAGE_SIZE"]
TARGET_CREATES_PER_SECOND = 400
TARGET_LIST_P95_MS = 50.0

SEVERITIES = ("sev1", "sev2", "sev3", "sev4")
CATEGORIES = ("compromised_credentials", "compromised_instance", "data_exposure", "malware")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each create run")
    parser.add_argument("--rows", type=int, default=100_000, help="incidents seeded for lists")
    parser.add_argument("--repeat", type=int, default=200, help="requests per timed list page")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--database", default="irportal_bench_api")
    parser.add_argument("--server", default=DEFAULT_SERVER)
    parser.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    parser.add_argument("--show-sql", action="store_true", help="print the statements counted")
    return parser.parse_args()


# --- users ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tokens:
    lead: str
    responder: str


def create_lead_and_responder() -> Tokens:
    """A lead and a responder, each with a knox token as `issue_token` issues them."""
    from irportal import roles

    keys = create_users(roles.LEAD, roles.RESPONDER)
    return Tokens(lead=keys[roles.LEAD], responder=keys[roles.RESPONDER])


# --- creates -------------------------------------------------------------------------


def incident_body(n: int) -> bytes:
    fields = {
        "title": f"Bench incident {n}: unusual API calls",
        "severity": SEVERITIES[n % len(SEVERITIES)],
        "category": CATEGORIES[n % len(CATEGORIES)],
    }
    return json.dumps(fields).encode()


def create_load(server: Server, token: str, clients: int, seconds: float) -> LoadResult:
    """`clients` threads, each creating incidents back to back for `seconds`."""
    numbers = iter(range(10**9))  # next() on it is atomic under the GIL

    def prepare() -> Call:
        return Call("POST", API, incident_body(next(numbers)), created)

    return run_load(server, token, clients, seconds, prepare)


def created(status: int, _answer: bytes) -> bool:
    return status == 201


def bench_creates(server: Server, token: str, seconds: float) -> list[LoadResult]:
    create_load(server, token, 2, 1.0)  # warm both workers up: imports, DB connections
    results = []
    for clients in (1, 4):
        result = create_load(server, token, clients, seconds)
        results.append(result)
        p50, p99 = percentile(result.latencies, 0.50), percentile(result.latencies, 0.99)
        print(
            f"  {clients} client{'s' if clients > 1 else ' '}: {result.per_second:5.0f} req/s"
            f"  p50 {ms(p50)}  p99 {ms(p99)}  errors {result.errors}"
            f"  ({len(result.latencies)} in {result.elapsed:.1f} s)"
        )
        print(f"             {result.cpu.per_request(len(result.latencies))}")
    return results


# --- seeding -------------------------------------------------------------------------

SEED_SQL = """
INSERT INTO cases_incident (
    reference, title, summary, severity, category, tlp, status, resolution, restricted,
    detected_at, reported_at, created_by_id, created_at, updated_at
)
SELECT
    'IR-' || %(year)s::text || '-' || lpad(n::text, 6, '0'),
    'Seeded incident ' || n,
    '',
    (ARRAY['sev1', 'sev2', 'sev3', 'sev4'])[1 + mod(n, 4)],
    (ARRAY['compromised_credentials', 'malware', 'data_exposure', 'other'])[1 + mod(n, 4)],
    'amber',
    CASE WHEN mod(n, 3) = 0 THEN 'closed' ELSE 'triaged' END,
    CASE WHEN mod(n, 3) = 0 THEN 'false_positive' ELSE '' END,
    mod(n, 20) = 0,
    at - interval '2 hours',
    at,
    %(user)s,
    at,
    at
FROM generate_series(1, %(rows)s) AS n,
     LATERAL (SELECT make_timestamptz(%(year)s, 1, 1, 0, 0, 0, 'UTC')
                     + n * interval '5 minutes' AS at) AS t
"""


def seed_incidents(rows: int) -> None:
    """`rows` incidents reported last year, 1 in 20 restricted; then VACUUM ANALYZE.

    They take last year's references, IR-YYYY-000001 on, and that year's counter is moved
    past them, so they never meet a reference the API hands out.
    """
    from django.contrib.auth.models import User
    from django.db import connection, transaction
    from django.utils import timezone

    from cases.models import ReferenceCounter

    year = timezone.now().year - 1
    lead = User.objects.get(username="bench-lead")
    with transaction.atomic():
        ReferenceCounter.objects.update_or_create(year=year, defaults={"last_number": rows})
        with connection.cursor() as cursor:
            cursor.execute(SEED_SQL, {"year": year, "user": lead.pk, "rows": rows})
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE cases_incident")


# --- lists ---------------------------------------------------------------------------


def time_page(server: Server, token: str, page: int, repeat: int) -> tuple[list[float], CpuUse]:
    """Sorted latencies of `repeat` requests for one page, after 10 not timed."""
    connection = connect(server.port)
    path = f"{API}?page={page}"
    latencies = []
    cpu = cpu_snapshot(server.pid)
    for i in range(-10, repeat):
        if i == 0:
            cpu = cpu_snapshot(server.pid)
        began = time.perf_counter()
        status, body = request(connection, "GET", path, token)
        latency = time.perf_counter() - began
        if status != 200 or not json.loads(body)["results"]:
            raise RuntimeError(f"GET {path} answered {status}: {body[:300]!r}")
        if i >= 0:
            latencies.append(latency)
    connection.close()
    return sorted(latencies), cpu_since(cpu, server.pid)


def visible_count(server: Server, token: str) -> int:
    status, body = get_once(server.port, f"{API}?page_size=1", token)
    if status != 200:
        raise RuntimeError(f"the list answered {status}")
    count: int = json.loads(body)["count"]
    return count


def bench_lists(server: Server, tokens: Tokens, repeat: int) -> dict[tuple[str, str], float]:
    """p95 by (role, page), once each page's latencies are printed."""
    p95s = {}
    for role, token in (("lead", tokens.lead), ("responder", tokens.responder)):
        count = visible_count(server, token)
        last = math.ceil(count / PAGE_SIZE)
        print(f"  {role}: sees {count} incidents, {last} pages")
        for name, page in (("first", 1), ("middle", (last + 1) // 2), ("last", last)):
            latencies, cpu = time_page(server, token, page, repeat)
            p50, p95, p99 = (percentile(latencies, share) for share in (0.50, 0.95, 0.99))
            p95s[(role, name)] = p95
            print(f"    {name:6} page={page:<5} p50 {ms(p50)}  p95 {ms(p95)}  p99 {ms(p99)}")
            print(f"                      {cpu.per_request(repeat)}")
    return p95s


# --- SQL statements per request ------------------------------------------------------


def count_statements(token: str, show_sql: bool) -> dict[str, int]:
    """Statements each request runs, counted in-process through the whole Django stack."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(headers={"authorization": f"Token {token}"}, SERVER_NAME="127.0.0.1")
    calls: dict[str, Callable[[], Any]] = {
        "list page_size=10": lambda: client.get(API, {"page_size": 10}),
        "list page_size=100": lambda: client.get(API, {"page_size": 100}),
        "list page_size=10, last page": lambda: client.get(API, {"page_size": 10, "page": "last"}),
        "list page_size=100, last page": lambda: client.get(
            API, {"page_size": 100, "page": "last"}
        ),
        "create": lambda: client.post(API, incident_body(0), content_type="application/json"),
    }
    counts = {}
    for name, call in calls.items():
        call()  # once before: what a first request caches is not counted
        with CaptureQueriesContext(connection) as queries:
            answer = call()
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"{name} answered {answer.status_code}: {answer.content[:300]!r}")
        counts[name] = len(queries)
        print(f"  {name:30} {len(queries):3} statements")
        if show_sql:
            for query in queries.captured_queries:
                print(f"      {query['sql'][:300]}")
    return counts


# --- report --------------------------------------------------------------------------


def verdicts(
    creates: list[LoadResult], p95s: dict[tuple[str, str], float], statements: dict[str, int]
) -> list[str]:
    four = next(result for result in creates if result.clients == 4)
    lines = [
        verdict(
            f"creates at 4 clients >= {TARGET_CREATES_PER_SECOND}/s, no errors",
            four.per_second >= TARGET_CREATES_PER_SECOND and four.errors == 0,
            f"{four.per_second:.0f}/s, {four.errors} errors",
        )
    ]
    for (role, page), p95 in p95s.items():
        if page != "middle":  # shown for information: the targets are the first and last
            lines.append(
                verdict(
                    f"list p95 < {TARGET_LIST_P95_MS:.0f} ms, {role}, {page} page",
                    p95 * 1000 < TARGET_LIST_P95_MS,
                    f"{p95 * 1000:.1f} ms",
                )
            )
    per_list = sorted({count for name, count in statements.items() if name.startswith("list")})
    lines.append(verdict("statements per list page constant", len(per_list) == 1, str(per_list)))
    return lines


def main() -> None:
    args = parse_args()
    print(f"database {args.database}; gunicorn -w {args.workers}; {os.cpu_count()} cores")
    with scratch_database(args.server, args.database, keep=args.keep_database) as url:
        env = app_environment(url)
        migrate(env)
        setup_django(env)
        tokens = create_lead_and_responder()
        with gunicorn(env, args.workers, f"{API}?page_size=1", tokens.lead) as server:
            print(f"\nPOST {API} as a responder, {args.seconds:g} s per run")
            creates = bench_creates(server, tokens.responder, args.seconds)

            print(f"\nseeding {args.rows} incidents, VACUUM ANALYZE:", end=" ", flush=True)
            began = time.perf_counter()
            seed_incidents(args.rows)
            print(f"{time.perf_counter() - began:.1f} s")

            print(f"\nGET {API}?page=N, {PAGE_SIZE} a page, {args.repeat} requests each")
            p95s = bench_lists(server, tokens, args.repeat)

        print("\nSQL statements per request (in-process, as the lead)")
        statements = count_statements(tokens.lead, args.show_sql)
        print("\ntargets")
        print("\n".join(verdicts(creates, p95s, statements)))


if __name__ == "__main__":
    main()
