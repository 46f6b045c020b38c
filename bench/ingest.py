"""How fast the events endpoint takes findings, served by gunicorn on PostgreSQL, next to
what the same database does with plain INSERTs.

What it measures, in order:

1. The database alone: single-row INSERTs of a finding-like row (the columns and indexes
   of findings_finding, a real event's JSON in `raw`) into a scratch table, autocommit,
   from 1 and then 4 connections for `--raw-seconds` each; rows per second.
2. Single events: POST /api/v1/events/ with one EventBridge GuardDuty event a request, as an
   integration, from 1 and then 4 concurrent clients for `--seconds` each; findings per
   second, p50/p99 request latency, errors.
3. Batches: the same with a JSON array of `--batch` events a request.
4. SQL statements per request, counted in-process with django.test.Client and
   CaptureQueriesContext on the same database: a single event of each kind, and a batch.
5. `manage.py verify_timeline` on the database the runs filled: every chain must hold.

Targets, on a 2-core machine, at 4 clients and without errors: single events >= 300
findings/s, batches of 100 >= 3,000 findings/s. Each is printed as met or MISSED.

The events are a mix, printed at the start, of what an estate's detectors send: mostly new
findings of low or medium severity types that no default triage rule turns into an
incident (they stay untriaged, in the queue); a share of high-severity types that open an
incident or, on an instance or key of a small pool, join the one already open; and
re-deliveries of events already sent, exact (duplicates) or a later version with a higher
count (updates). Re-deliveries are drawn from events whose answer has come back. The events
are built by findings.demo.guardduty_event, once per finding type, and rendered from those
templates with fresh ids, so the client's work per event stays a few microseconds.

For each load it also shows the CPU used per finding by gunicorn (master and workers), by
PostgreSQL (all its processes) and by this client, and how busy the machine was, as
bench/api.py does (see bench/harness.py).

The app runs as deployed: `gunicorn irportal.wsgi -w 2`, DEBUG off, on a database of its
own, irportal_bench_ingest, dropped and created anew on every run and dropped at the end
(`--keep-database` keeps it).

    .venv/bin/python bench/ingest.py [--seconds 10] [--batch 100] [--raw-seconds 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from harness import (
    DEFAULT_SERVER,
    Call,
    CpuUse,
    LoadResult,
    Server,
    app_environment,
    cpu_since,
    cpu_snapshot,
    create_users,
    gunicorn,
    manage,
    migrate,
    ms,
    percentile,
    run_load,
    scratch_database,
    setup_django,
    verdict,
)

EVENTS = "/api/v1/events/"
PROBE = "/api/v1/findings/?page_size=1"
TARGET_SINGLE_PER_SECOND = 300
TARGET_BATCH_PER_SECOND = 3_000
CLIENTS = (1, 4)

# --- the mix -------------------------------------------------------------------------

# Shares of all events sent.
NEW_QUIET, NEW_LOUD, DUPLICATE, UPDATE = "new, no rule", "new, incident", "duplicate", "update"
SHARES = {NEW_QUIET: 0.85, NEW_LOUD: 0.05, DUPLICATE: 0.05, UPDATE: 0.05}


@dataclass(frozen=True)
class FindingType:
    name: str
    severity: float  # GuardDuty's score: 1-3.9 low, 4-6.9 medium, 7-8.9 high
    resource: str  # "instance", "key" or "bucket"
    weight: int  # within its group
    pool: int  # how many distinct resources its findings are about


# Low and medium types no default rule matches (Recon and Policy:IAMUser have no rule; the
# EC2, IAM and S3 rules start at medium): they stay in the triage queue.
QUIET = (
    FindingType("Recon:EC2/PortProbeUnprotectedPort", 2.0, "instance", 50, 2_000),
    FindingType("UnauthorizedAccess:EC2/SSHBruteForce", 2.0, "instance", 15, 2_000),
    FindingType("Recon:EC2/Portscan", 5.0, "instance", 10, 2_000),
    FindingType("Recon:IAMUser/MaliciousIPCaller", 5.0, "key", 10, 200),
    FindingType("Policy:IAMUser/RootCredentialUsage", 2.0, "key", 5, 200),
    FindingType("Policy:S3/BucketBlockPublicAccessDisabled", 2.0, "bucket", 10, 500),
)
# High types the default rules open incidents for. Their resources come from a small pool,
# so most join the incident opened for the same resource and category.
LOUD = (
    FindingType("UnauthorizedAccess:EC2/TorClient", 8.0, "instance", 3, 12),
    FindingType("Backdoor:EC2/C&CActivity.B!DNS", 8.0, "instance", 3, 12),
    FindingType("CryptoCurrency:EC2/BitcoinTool.B!DNS", 8.0, "instance", 2, 12),
    FindingType(
        "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS", 8.0, "key", 2, 4
    ),
)

# Placeholders guardduty_event's output is rendered from.
FINDING_ID, EVENT_ID, RESOURCE, USER, COUNT = "@F@", "@E@", "@R@", "@U@", "@C@"


@dataclass(frozen=True)
class Template:
    kind: FindingType
    body: bytes  # guardduty_event's JSON, with placeholders
    loud: bool

    @classmethod
    def build(cls, kind: FindingType, loud: bool) -> Template:
        from findings.demo import guardduty_event

        resources: dict[str, dict[str, Any]] = {
            "instance": {"instance_id": RESOURCE, "tags": {"Name": "bench", "env": "production"}},
            "key": {"access_key": (USER, RESOURCE)},
            "bucket": {"bucket": RESOURCE},
        }
        resource = resources[kind.resource]
        event = guardduty_event(kind.name, kind.severity, finding_id=FINDING_ID, **resource)
        event["id"] = EVENT_ID
        event["detail"]["service"]["count"] = COUNT
        return cls(kind, json.dumps(event).encode(), loud)


@dataclass(frozen=True)
class Sent:
    """One event as sent: enough to render it again, byte for byte."""

    template: Template
    finding_id: str
    event_id: str
    resource: int
    count: int

    def render(self) -> bytes:
        resource = {
            "instance": f"i-0be{'a' if self.template.loud else 'c'}{self.resource:013x}",
            "key": f"AKIABENCH{'L' if self.template.loud else 'Q'}{self.resource:010d}",
            "bucket": f"bench-bucket-{self.resource:05d}",
        }[self.template.kind.resource]
        return (
            self.template.body.replace(FINDING_ID.encode(), self.finding_id.encode())
            .replace(EVENT_ID.encode(), self.event_id.encode())
            .replace(RESOURCE.encode(), resource.encode())
            .replace(USER.encode(), f"svc-{self.resource}".encode())
            .replace(f'"{COUNT}"'.encode(), str(self.count).encode())
        )


class Mix:
    """Draws the events to send in SHARES, from any thread; remembers what was answered."""

    def __init__(self, seed: int) -> None:
        self.quiet = [Template.build(kind, loud=False) for kind in QUIET]
        self.loud = [Template.build(kind, loud=True) for kind in LOUD]
        self._random = random.Random(seed)
        self._numbers = itertools.count()
        self._answered: list[Sent] = []  # new findings the app has stored
        self._counts: dict[str, int] = {}  # the highest count sent, by finding id
        self._lock = threading.Lock()

    def draw(self) -> tuple[str, Sent]:
        with self._lock:
            kind = self._random.choices(list(SHARES), weights=list(SHARES.values()))[0]
            if kind in (DUPLICATE, UPDATE) and not self._answered:
                kind = NEW_QUIET
            if kind == NEW_QUIET:
                return kind, self._new(self.quiet)
            if kind == NEW_LOUD:
                return kind, self._new(self.loud)
            earlier = self._random.choice(self._answered)
            if kind == DUPLICATE:
                return kind, earlier
            count = self._counts.get(earlier.finding_id, earlier.count) + 1
            self._counts[earlier.finding_id] = count
            return kind, replace(earlier, event_id=self._id(), count=count)

    def _new(self, templates: list[Template]) -> Sent:
        weights = [t.kind.weight for t in templates]
        template = self._random.choices(templates, weights=weights)[0]
        resource = self._random.randrange(template.kind.pool)
        return Sent(template, f"bench{self._id()}", self._id(), resource, 1)

    def _id(self) -> str:
        return f"{next(self._numbers):032x}"

    def answered(self, sent: list[tuple[str, Sent]]) -> None:
        with self._lock:
            self._answered.extend(s for kind, s in sent if kind in (NEW_QUIET, NEW_LOUD))


# --- what the app answered -----------------------------------------------------------


@dataclass
class Tally:
    """What the answers of one run said, added up from the client threads."""

    findings: int = 0
    sent: Counter[str] = field(default_factory=Counter)  # events by kind in the mix
    outcomes: Counter[str] = field(default_factory=Counter)  # new, updated, duplicate
    decisions: Counter[str] = field(default_factory=Counter)  # of new findings
    failures: Counter[int] = field(default_factory=Counter)  # requests by status
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sent: list[tuple[str, Sent]], status: int, answer: bytes) -> bool:
        if status != 200:
            with self.lock:
                self.failures[status] += 1
            return False
        data = json.loads(answer)
        results = data["results"] if isinstance(data, dict) and "results" in data else [data]
        findings = [f for result in results for f in result.get("findings", [])]
        with self.lock:
            self.sent.update(kind for kind, _ in sent)
            self.findings += len(findings)
            self.outcomes.update(f["outcome"] for f in findings)
            self.decisions.update(f["decision"] for f in findings if f["outcome"] == "new")
        return len(findings) == len(sent)

    def merge(self, other: Tally) -> None:
        self.findings += other.findings
        self.sent.update(other.sent)
        self.outcomes.update(other.outcomes)
        self.decisions.update(other.decisions)
        self.failures.update(other.failures)


# --- loads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    label: str  # "single events" or "batches of N"
    load: LoadResult
    tally: Tally

    @property
    def findings_per_second(self) -> float:
        return self.tally.findings / self.load.elapsed


def event_load(
    server: Server, token: str, mix: Mix, batch: int, clients: int, seconds: float
) -> tuple[LoadResult, Tally]:
    """`clients` threads posting events back to back for `seconds`: one a request when
    `batch` is 0, else arrays of `batch`."""
    tally = Tally()

    def prepare() -> Call:
        sent = [mix.draw() for _ in range(max(batch, 1))]
        bodies = [s.render() for _, s in sent]
        body = b"[" + b",".join(bodies) + b"]" if batch else bodies[0]

        def check(status: int, answer: bytes) -> bool:
            ok = tally.add(sent, status, answer)
            if ok:
                mix.answered(sent)
            return ok

        return Call("POST", EVENTS, body, check)

    return run_load(server, token, clients, seconds, prepare), tally


def bench_events(
    server: Server, token: str, mix: Mix, batch: int, seconds: float, overall: Tally
) -> list[Run]:
    label = f"batches of {batch}" if batch else "single events"
    runs = []
    for clients in CLIENTS:
        load, tally = event_load(server, token, mix, batch, clients, seconds)
        overall.merge(tally)
        run = Run(label, load, tally)
        runs.append(run)
        print_run(run)
    return runs


def print_run(run: Run) -> None:
    load, tally = run.load, run.tally
    p50, p99 = percentile(load.latencies, 0.50), percentile(load.latencies, 0.99)
    clients = f"{load.clients} client{'s' if load.clients > 1 else ' '}"
    failures = ", ".join(f"HTTP {status or 'none'} x{n}" for status, n in tally.failures.items())
    print(
        f"  {clients}: {run.findings_per_second:6.0f} findings/s"
        f"  {load.per_second:5.0f} req/s  p50 {ms(p50)}  p99 {ms(p99)}"
        f"  errors {load.errors}{f' ({failures})' if failures else ''}"
        f"  ({tally.findings} findings in {load.elapsed:.1f} s)"
    )
    print(f"             {load.cpu.per(max(tally.findings, 1), 'finding')}")


def warm_up(server: Server, token: str, mix: Mix, overall: Tally) -> None:
    """Both workers' imports and connections, and answered events to re-send later."""
    for batch in (0, 10):
        _, tally = event_load(server, token, mix, batch, 2, 1.0)
        overall.merge(tally)


# --- the database alone --------------------------------------------------------------

RAW_TABLE = "bench_raw_finding"
RAW_COLUMNS = (
    "source, provider_id, type, title, description, severity, severity_score, account_id, "
    "region, resources, primary_resource, first_seen, last_seen, count, provider_updated_at, "
    "raw, received_at, updated_at, revisions, decision, decision_reason"
)


@dataclass(frozen=True)
class RawRun:
    connections: int
    rows: int
    elapsed: float
    cpu: CpuUse

    @property
    def per_second(self) -> float:
        return self.rows / self.elapsed


def raw_row(mix: Mix) -> list[Any]:
    """A finding row's values, as the app would store one of the mix's quiet events."""
    from django.utils import timezone

    from findings.parsing import parse_event

    sent = Sent(mix.quiet[0], "raw", "raw", 1, 1)
    finding = parse_event(json.loads(sent.render()))[0]
    now = timezone.now()
    return [
        finding.source,
        None,  # provider_id: unique, set per row
        finding.type,
        finding.title,
        finding.description,
        finding.severity,
        finding.severity_score,
        finding.account_id,
        finding.region,
        json.dumps(finding.resources),
        finding.primary_resource,
        finding.first_seen,
        finding.last_seen,
        finding.count,
        finding.provider_updated_at,
        json.dumps(finding.raw),
        now,
        now,
        1,
        "untriaged",
        "",
    ]


def raw_inserts(url: str, row: list[Any], connections: int, seconds: float) -> RawRun:
    """`connections` threads, each INSERTing one row a statement, autocommit, for `seconds`."""
    placeholders = ", ".join(["%s"] * len(row))
    insert = f"INSERT INTO {RAW_TABLE} ({RAW_COLUMNS}) VALUES ({placeholders})"  # noqa: S608
    numbers = itertools.count()
    start = threading.Barrier(connections + 1)
    done = [0] * connections
    stop_at = float("inf")

    def client(connection: psycopg.Connection[Any], index: int) -> None:
        start.wait()
        while time.perf_counter() < stop_at:
            values = list(row)
            values[1] = f"raw-{connections}-{next(numbers)}"
            connection.execute(insert, values, prepare=True)
            done[index] += 1

    # Connected before the clock starts and closed after the CPU is read, so that their
    # backends' CPU is all seen on them.
    opened = [psycopg.connect(url, autocommit=True) for _ in range(connections)]
    threads = [
        threading.Thread(target=client, args=(connection, i)) for i, connection in enumerate(opened)
    ]
    for thread in threads:
        thread.start()
    cpu = cpu_snapshot(None)
    began = time.perf_counter()
    stop_at = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    used = cpu_since(cpu, None)
    for connection in opened:
        connection.close()
    return RawRun(connections, sum(done), elapsed, used)


def bench_raw(url: str, mix: Mix, seconds: float) -> list[RawRun]:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {RAW_TABLE} (LIKE findings_finding INCLUDING ALL)")
    row = raw_row(mix)
    runs = []
    for connections in CLIENTS:
        run = raw_inserts(url, row, connections, seconds)
        runs.append(run)
        plural = "s" if connections > 1 else " "
        print(
            f"  {connections} connection{plural}: {run.per_second:6.0f} rows/s"
            f"  ({run.rows} in {run.elapsed:.1f} s)"
        )
        print(f"                 {run.cpu.per(run.rows, 'row', digits=3)}")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"DROP TABLE {RAW_TABLE}")
    return runs


# --- the mix, described and checked --------------------------------------------------


def print_mix(mix: Mix) -> None:
    """The shares, and each type's rule under the default rule set (checked, not assumed)."""
    from findings.models import TriageRule
    from findings.parsing import parse_event
    from findings.services import _new_row, triage

    rules = list(TriageRule.objects.filter(enabled=True))
    shares = ", ".join(f"{kind} {share:.0%}" for kind, share in SHARES.items())
    print(f"  shares of events: {shares}")
    for group, templates in (("no rule", mix.quiet), ("incident", mix.loud)):
        total = sum(t.kind.weight for t in templates)
        for template in templates:
            parsed = parse_event(json.loads(Sent(template, "x", "x", 0, 1).render()))[0]
            row = _new_row(parsed, parsed.first_seen)
            triage([row], rules)
            rule = row.rule.name if row.rule else "none"
            expected = row.rule is None if group == "no rule" else row.rule is not None
            if not expected:
                raise RuntimeError(f"{template.kind.name}: rule {rule}, expected {group}")
            kind = template.kind
            print(
                f"    {group:8} {template.kind.weight / total:4.0%}  {kind.name}"
                f" {kind.severity:.1f} ({parsed.severity}), {kind.pool} {kind.resource}s;"
                f" rule: {rule}"
            )


def print_tally(overall: Tally) -> None:
    sent = sum(overall.sent.values())
    by_kind = ", ".join(f"{kind} {overall.sent[kind] / sent:.1%}" for kind in SHARES)
    outcomes = ", ".join(f"{name} {n}" for name, n in overall.outcomes.most_common())
    decisions = ", ".join(f"{name} {n}" for name, n in overall.decisions.most_common())
    print(f"  sent and answered: {sent} events: {by_kind}")
    print(f"  outcomes: {outcomes}")
    print(f"  decisions on new findings: {decisions}")


def print_stored() -> None:
    from django.db.models import Count

    from cases.models import Incident, TimelineEntry
    from findings.models import Finding

    decisions = Finding.objects.values_list("decision").annotate(n=Count("id")).order_by("-n")
    counted = ", ".join(f"{decision} {n}" for decision, n in decisions)
    print(f"  findings by decision: {counted}")
    print(
        f"  incidents {Incident.objects.count()}, timeline entries {TimelineEntry.objects.count()}"
    )


# --- SQL statements per request ------------------------------------------------------


def count_statements(token: str, mix: Mix, batch: int, show_sql: bool) -> dict[str, int]:
    """Statements each request runs, counted in-process through the whole Django stack."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(headers={"authorization": f"Token {token}"}, SERVER_NAME="127.0.0.1")
    numbers = itertools.count(10**9)

    def fresh(template: Template, resource: int) -> Sent:
        return Sent(template, f"sql{next(numbers)}", f"{next(numbers):032x}", resource, 1)

    quiet, loud = fresh(mix.quiet[0], 1), fresh(mix.loud[0], 10**6)  # a resource of its own
    joining = fresh(mix.loud[1], 10**6)  # same category and instance as `loud`
    again = replace(loud, event_id="again", count=2)
    quiet_batch = [fresh(mix.quiet[0], n) for n in range(batch)]
    mixed = [mix.draw() for _ in range(batch)]
    bodies: dict[str, Callable[[], bytes]] = {
        "single event, new, no rule": quiet.render,
        "single event, new, opens an incident": loud.render,
        "single event, new, joins that incident": joining.render,
        "single event, duplicate": loud.render,
        "single event, update of an incident's": again.render,
        "single event, update, no incident": replace(quiet, event_id="again", count=2).render,
        f"batch of {batch}, all new, no rule": lambda: array(quiet_batch),
        f"batch of {batch}, the mix": lambda: array([s for _, s in mixed]),
    }
    counts = {}
    for name, body in bodies.items():
        with CaptureQueriesContext(connection) as queries:
            answer = client.post(EVENTS, body(), content_type="application/json")
        if answer.status_code != 200:
            raise RuntimeError(f"{name} answered {answer.status_code}: {answer.content[:300]!r}")
        counts[name] = len(queries)
        print(f"  {name:40} {len(queries):4} statements")
        if show_sql:
            for query in queries.captured_queries:
                print(f"      {query['sql'][:300]}")
    drawn = ", ".join(f"{kind} {n}" for kind, n in Counter(k for k, _ in mixed).most_common())
    print(f"    (the mix drawn for the batch: {drawn})")
    return counts


def array(sent: list[Sent]) -> bytes:
    return b"[" + b",".join(s.render() for s in sent) + b"]"


# --- report --------------------------------------------------------------------------


def print_summary(raw: list[RawRun], single: list[Run], batches: list[Run]) -> None:
    """Findings per second beside the raw INSERT rate at the same concurrency."""
    print(f"  {'':30} {'1 client':>22} {'4 clients':>22}")
    rows = [("raw INSERT, rows/s", [f"{r.per_second:.0f}" for r in raw])]
    for runs in (single, batches):
        cells = [
            f"{run.findings_per_second:.0f} ({run.findings_per_second / r.per_second:.0%} raw)"
            for run, r in zip(runs, raw, strict=True)
        ]
        rows.append((f"{runs[0].label}, findings/s", cells))
    for label, cells in rows:
        print(f"  {label:30} " + " ".join(f"{cell:>22}" for cell in cells))


def verdicts(single: list[Run], batches: list[Run], timeline: tuple[bool, str]) -> list[str]:
    lines = []
    for runs, target in ((single, TARGET_SINGLE_PER_SECOND), (batches, TARGET_BATCH_PER_SECOND)):
        four = next(run for run in runs if run.load.clients == 4)
        lines.append(
            verdict(
                f"{four.label} at 4 clients >= {target:,} findings/s, no errors",
                four.findings_per_second >= target and four.load.errors == 0,
                f"{four.findings_per_second:,.0f}/s, {four.load.errors} errors",
            )
        )
    lines.append(verdict("manage.py verify_timeline passes", *timeline))
    return lines


def verify_timeline(env: dict[str, str]) -> tuple[bool, str]:
    """Whether `manage.py verify_timeline` passes on the bench database, and what it said."""
    done = manage(env, "verify_timeline")
    said = (done.stdout + done.stderr).strip()
    print(f"  exit {done.returncode}: {said}")
    return done.returncode == 0, said.splitlines()[-1] if said else f"exit {done.returncode}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each HTTP run")
    parser.add_argument("--batch", type=int, default=100, help="events in a batch request")
    parser.add_argument("--raw-seconds", type=float, default=3.0, help="length of INSERT runs")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--seed", type=int, default=1, help="of the mix's random draws")
    parser.add_argument("--database", default="irportal_bench_ingest")
    parser.add_argument("--server", default=DEFAULT_SERVER)
    parser.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    parser.add_argument("--show-sql", action="store_true", help="print the statements counted")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    print(f"database {args.database}; gunicorn -w {args.workers}; {os.cpu_count()} cores")
    with scratch_database(args.server, args.database, keep=args.keep_database) as url:
        env = app_environment(url)
        migrate(env)
        setup_django(env)
        from irportal import roles

        token = create_users(roles.INTEGRATION)[roles.INTEGRATION]
        mix = Mix(args.seed)
        print("\nthe mix (EventBridge GuardDuty events, findings.demo.guardduty_event)")
        print_mix(mix)

        print(f"\nraw INSERT of a finding row, autocommit, {args.raw_seconds:g} s per run")
        raw = bench_raw(url, mix, args.raw_seconds)

        overall = Tally()
        with gunicorn(env, args.workers, PROBE, token) as server:
            warm_up(server, token, mix, overall)
            print(f"\nPOST {EVENTS}, one event a request, {args.seconds:g} s per run")
            single = bench_events(server, token, mix, 0, args.seconds, overall)
            print(f"\nPOST {EVENTS}, {args.batch} events a request, {args.seconds:g} s per run")
            batches = bench_events(server, token, mix, args.batch, args.seconds, overall)
            if overall.failures:
                print("\nerrors in gunicorn's log (the last few)")
                print("\n".join(f"  {line}" for line in server.errors_logged()))

        print("\nwhat the app answered (all runs, warm-up included)")
        print_tally(overall)
        print_stored()
        print("\nfindings per second, beside the database's raw INSERT rate")
        print_summary(raw, single, batches)
        print("\nSQL statements per request (in-process, as the integration)")
        count_statements(token, mix, args.batch, args.show_sql)
        print("\nmanage.py verify_timeline")
        timeline = verify_timeline(env)
        print("\ntargets")
        print("\n".join(verdicts(single, batches, timeline)))


if __name__ == "__main__":
    main()
