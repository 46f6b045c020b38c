"""How long from a GuardDuty finding posted to the events API to its instance isolated in
the account, beside the floor: what the same broker, worker and AWS calls cost alone.

What it measures, `--runs` times, one run after another, each on a fresh instance:

1. Response: POST /api/v1/events/ with an EventBridge GuardDuty event about the instance
   (findings.demo.guardduty_event), as an integration; a triage rule made by this bench
   opens an incident and starts a one-step playbook (ec2_isolate_instance, no approval
   gate), whose task a real Celery worker takes from Redis. The clock stops when
   DescribeInstances shows every interface of the instance in the isolation group: the
   effect in the account, not the engine's own record of it. Also shown: how long the
   POST took to answer, and from the action run's timestamps, how long the action waited
   for the worker (created to taken) and how long the worker took (taken to finished).
2. The floor, measured in the same runs, interleaved with them:
   - a no-op Celery task's round trip through the same Redis and worker (the task, in this
     file, answers on a Redis list the bench waits on; the worker imports it by --include);
   - AssumeRole into the account's response role under a new session name, as each new
     incident's run does;
   - the isolate action's own `inspect` and `apply`, called in this process on another
     fresh instance with an EC2 client made beforehand: the same EC2 calls, with no web
     request, database or broker around them.
   The floor is the sum of the three medians. Target: response p50 within 3 times it.
   Shown beside it, not part of it: making a session and an EC2 client the way the worker
   makes them for each action run (AssumeRole included).

Everything runs as deployed, each in its own process: gunicorn (`-w 2`, DEBUG off),
`celery worker -Q playbooks` (`--pool threads --concurrency 4`, as Procfile.dev runs it),
moto's server as the simulated account 123456789012 (registered with a response role),
PostgreSQL (a scratch database, irportal_bench_response, created anew and dropped at the
end) and Redis (database 13 unless told; the playbooks queue is purged at the start). On a
2-core machine they share the cores with this client, whose polling costs moto some CPU:
the load averages printed before and after say whether anything else disturbed the run.

    .venv/bin/python bench/response_latency.py [--runs 50] [--redis redis://127.0.0.1:6379/13]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import redis
from celery import shared_task
from harness import (
    DEFAULT_SERVER,
    ROOT,
    VENV_BIN,
    Server,
    app_environment,
    connect,
    create_users,
    free_port,
    gunicorn,
    migrate,
    ms,
    percentile,
    request,
    scratch_database,
    setup_django,
    verdict,
)

if TYPE_CHECKING:
    from playbooks.aws import AwsContext

EVENTS = "/api/v1/events/"
PROBE = "/api/v1/findings/?page_size=1"
ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "eu-west-1"
IMAGE_ID = "ami-0123456789abcdef0"  # moto launches from any image id
FINDING_TYPE = "CryptoCurrency:EC2/BitcoinTool.B!DNS"
PLAYBOOK = "bench-isolate"
ISOLATE = "ec2_isolate_instance"
ISOLATION_GROUP = "ir-portal-isolation"  # the group ec2_isolate_instance makes per VPC
QUEUE = "playbooks"
NOOP_TASK = "bench.noop"
TARGET_RATIO = 3.0
WARM_UP_RUNS = 3
RUN_TIMEOUT_SECONDS = 30.0
# The clock's resolution: one DescribeInstances and this pause. Polling more often would
# take moto's CPU from the worker's calls, which the floor's calls do not have to share.
POLL_SECONDS = 0.025


# --- the no-op task, run by the worker -----------------------------------------------


@shared_task(name=NOOP_TASK, ignore_result=True)
def noop(reply_to: str) -> None:
    """Answer on the Redis list the bench waits on: the round trip's only work."""
    answer = _redis(os.environ["REDIS_URL"]).pipeline()
    answer.rpush(reply_to, b"done")
    answer.expire(reply_to, 60)  # answers nobody waited for any more do not pile up
    answer.execute()


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


# --- the processes -------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="timed runs (each path)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--pool", choices=("threads", "solo", "prefork"), default="threads")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--database", default="irportal_bench_response")
    parser.add_argument("--server", default=DEFAULT_SERVER)
    parser.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    return parser.parse_args()


@contextmanager
def process(name: str, command: list[str], env: dict[str, str]) -> Iterator[Path]:
    """Run `command` in its own process group until the block ends, however it ends; the
    path of its output."""
    with tempfile.NamedTemporaryFile("w+", prefix=f"bench-{name}-", suffix=".log") as log:
        started = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
        try:
            yield Path(log.name)
        finally:
            stop(started)


def stop(started: subprocess.Popen[bytes]) -> None:
    """SIGTERM to its process group, SIGKILL if it is still there 15 s later."""
    with suppress(ProcessLookupError):  # it ended by itself
        os.killpg(started.pid, signal.SIGTERM)
    try:
        started.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(started.pid, signal.SIGKILL)
        started.wait()


def wait_until(what: str, log: Path, ready: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} was not ready within {seconds:.0f} s:\n{log.read_text()[-3000:]}")


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's server in a process of its own, as AWS is to the app: its URL."""
    import requests

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with process("moto", command, dict(os.environ)) as log:
        wait_until("moto's server", log, lambda: requests.get(url, timeout=1).ok)
        yield url


@contextmanager
def celery_worker(env: dict[str, str], pool: str) -> Iterator[Path]:
    """A worker on the playbooks queue that also knows the no-op task; up once it has
    answered one."""
    command = [str(VENV_BIN / "celery"), "-A", "irportal", "worker", "-Q", QUEUE]
    command += ["--pool", pool, "--include", Path(__file__).stem, "-n", "bench-latency@%h"]
    command += ["--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "warning"]
    if pool != "solo":
        command += ["--concurrency", "4"]
    worker_env = {**env, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(ROOT)])}
    with process("worker", command, worker_env) as log:
        wait_until("the Celery worker", log, lambda: noop_round_trip(env["REDIS_URL"], 1) > 0)
        yield log


def deployment_environment(database_url: str, redis_url: str, aws_url: str) -> dict[str, str]:
    """What gunicorn, the worker and this process share: database, broker, account."""
    return {
        **app_environment(database_url),
        "REDIS_URL": redis_url,
        "AWS_ENDPOINT_URL": aws_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
    }


def purge_queue() -> None:
    """Drop what an earlier run left in the queue this bench's worker reads."""
    from irportal.celery import app

    with app.connection_for_write() as broker:
        broker.default_channel.queue_purge(QUEUE)


# --- the estate, the playbook and the rule -------------------------------------------


def register_account() -> Any:
    from playbooks.choices import Environment
    from playbooks.models import CloudAccount

    return CloudAccount.objects.create(
        account_id=ACCOUNT_ID,
        name="Simulated workload account",
        environment=Environment.DEMO,
        regions=[REGION],
        role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/ir-portal-responder",
        external_id="ir-portal-bench",
    )


def create_rule_and_playbook() -> None:
    """A rule, tried before the default ones, that opens an incident for the finding type
    and starts a one-step playbook: isolate the instance, no approval gate."""
    from cases.choices import Category
    from findings.choices import RuleEffect
    from findings.models import TriageRule
    from playbooks import definitions
    from playbooks.models import Playbook

    steps = [
        {
            "id": "isolate",
            "action": ISOLATE,
            "parameters": {"instance_id": "${instance.id}"},
            "approval": False,
        }
    ]
    Playbook.objects.create(
        slug=PLAYBOOK,
        name="Bench: isolate the instance",
        definition=definitions.clean_definition({"steps": steps}),
    )
    rule = TriageRule(
        name="Bench: isolate cryptomining instances",
        position=0,
        type_patterns=[FINDING_TYPE],
        effect=RuleEffect.OPEN_INCIDENT,
        incident_category=Category.COMPROMISED_INSTANCE,
        playbook=PLAYBOOK,
    )
    rule.full_clean()
    rule.save()


def launch_instances(count: int) -> list[str]:
    from playbooks.aws import client

    ec2 = client("ec2", REGION)
    image = IMAGE_ID
    launched = ec2.run_instances(ImageId=image, MinCount=count, MaxCount=count)
    return [instance["InstanceId"] for instance in launched["Instances"]]


# --- one response, end to end --------------------------------------------------------


@dataclass(frozen=True)
class Response:
    answered: float  # the POST's answer
    isolated: float  # the isolation seen in the account
    waited: float  # the action run, from created to taken by the worker
    acted: float  # from taken to finished


def respond(server: Server, token: str, instance_id: str) -> Response:
    """Post a finding about the instance; time it until the account shows it isolated."""
    from findings.demo import guardduty_event
    from playbooks.aws import client

    event = guardduty_event(
        FINDING_TYPE, 8.0, instance_id=instance_id, account=ACCOUNT_ID, region=REGION
    )
    body = json.dumps(event).encode()
    ec2 = client("ec2", REGION)
    connection = connect(server.port)

    began = time.perf_counter()
    status, answer = request(connection, "POST", EVENTS, token, body)
    answered = time.perf_counter() - began
    connection.close()
    if status != 200:
        raise RuntimeError(f"POST {EVENTS} answered {status}: {answer[:300]!r}")
    deadline = began + RUN_TIMEOUT_SECONDS
    while not isolated(ec2, instance_id):
        if time.perf_counter() > deadline:
            raise RuntimeError(not_isolated(instance_id))
        time.sleep(POLL_SECONDS)
    seen = time.perf_counter() - began

    waited, acted = action_timings(instance_id, deadline)
    return Response(answered, seen, waited, acted)


def isolated(ec2: Any, instance_id: str) -> bool:
    found = ec2.describe_instances(InstanceIds=[instance_id])
    interfaces = found["Reservations"][0]["Instances"][0]["NetworkInterfaces"]
    return bool(interfaces) and all(
        [group["GroupName"] for group in interface["Groups"]] == [ISOLATION_GROUP]
        for interface in interfaces
    )


def action_timings(instance_id: str, deadline: float) -> tuple[float, float]:
    """(created to taken, taken to finished) of the isolation, once it has settled: the
    next run does not start while this one's worker still writes."""
    from playbooks.choices import ActionState
    from playbooks.models import ActionRun

    while time.perf_counter() < deadline:
        action_run = ActionRun.objects.filter(action=ISOLATE, target=instance_id).first()
        if action_run and action_run.state == ActionState.SUCCEEDED:
            assert action_run.started_at and action_run.finished_at
            return (
                (action_run.started_at - action_run.created_at).total_seconds(),
                (action_run.finished_at - action_run.started_at).total_seconds(),
            )
        if action_run and action_run.state == ActionState.FAILED:
            raise RuntimeError(f"the isolation failed: {action_run.error_message}")
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"the isolation of {instance_id} did not settle in time")


def not_isolated(instance_id: str) -> str:
    """Why an instance was not isolated in time, from what the app recorded."""
    from cases.models import TimelineEntry
    from findings.models import Finding
    from playbooks.models import ActionRun

    finding = Finding.objects.filter(resources__contains=[{"id": instance_id}]).first()
    if finding is None or finding.incident_id is None:
        return f"no incident was opened for {instance_id}'s finding"
    said = TimelineEntry.objects.filter(incident_id=finding.incident_id).order_by("sequence")
    action_run = ActionRun.objects.filter(target=instance_id).first()
    return (
        f"{instance_id} not isolated within {RUN_TIMEOUT_SECONDS:.0f} s; action run: "
        f"{action_run and (action_run.state, action_run.error_message)}; timeline:\n"
        + "\n".join(f"  {entry.kind}: {entry.summary}" for entry in said)
    )


# --- the floor -----------------------------------------------------------------------


def noop_round_trip(redis_url: str, timeout: float = 10) -> float:
    """Seconds for a no-op task to go through Redis to the worker and answer back."""
    from irportal.celery import app

    reply_to = f"bench:noop:{uuid.uuid4().hex}"
    began = time.perf_counter()
    app.send_task(NOOP_TASK, args=[reply_to], queue=QUEUE)
    if _redis(redis_url).blpop([reply_to], timeout=timeout) is None:
        raise OSError(f"no answer from the no-op task within {timeout:g} s")
    return time.perf_counter() - began


@dataclass(frozen=True)
class Direct:
    assume_role: float  # AssumeRole under a new session name, as each new incident's run
    ec2_calls: float  # the isolate action's EC2 calls, on clients made beforehand
    making_clients: float  # a session and EC2 client made as the worker makes them


def isolate_directly(account: Any, sts: Any, ec2: Any, instance_id: str, number: int) -> Direct:
    """The isolate action's own AWS calls, made here on clients made beforehand; and,
    apart, what making a session and a client costs the way the worker makes them."""
    from playbooks import actions
    from playbooks.aws import AwsContext, session_for, session_name

    action = actions.get(ISOLATE)
    inputs = action.validate(
        {"instance_id": instance_id, "account_id": ACCOUNT_ID, "region": REGION}
    )
    reference = f"BENCH-FLOOR-{number:04}"
    context = cast("AwsContext", MadeClients(ec2, reference, action_run_id=1_000_000 + number))

    began = time.perf_counter()
    sts.assume_role(
        RoleArn=account.role_arn,
        RoleSessionName=session_name(reference, "bench"),
        ExternalId=account.external_id,
        DurationSeconds=3600,
    )
    assumed = time.perf_counter()
    action.apply(context, inputs, action.inspect(context, inputs))
    acted = time.perf_counter()
    session = session_for(account, session_name(f"{reference}-B", "bench"))
    AwsContext(session, REGION, incident_reference=reference)("ec2")
    made = time.perf_counter()
    return Direct(assumed - began, acted - assumed, made - acted)


class MadeClients:
    """What an action uses of its context (`playbooks.aws.AwsContext`), with the EC2
    client made beforehand: the floor times AWS's answers, not the making of clients."""

    def __init__(self, ec2: Any, reference: str, *, action_run_id: int) -> None:
        self.region = REGION
        self.incident_reference = reference
        self.action_run_id = action_run_id
        self.request_ids: list[str] = []
        self._ec2 = ec2

    def __call__(self, service: str) -> Any:
        if service != "ec2":
            raise LookupError(f"the isolate action was not expected to call {service}")
        return self._ec2


def floor_clients(account: Any) -> tuple[Any, Any]:
    """An STS client, and an EC2 client in the account through its response role."""
    from playbooks.aws import client, session_client, session_for

    return client("sts"), session_client(session_for(account, "bench-floor"), "ec2", REGION)


# --- the runs ------------------------------------------------------------------------


@dataclass
class Measured:
    responses: list[Response]
    noops: list[float]
    direct: list[Direct]


def measure(server: Server, token: str, account: Any, redis_url: str, runs: int) -> Measured:
    """`runs` of each, interleaved, after a few not counted (the isolation group is made
    by the first; connections, sessions and code are warm after them)."""
    instances = launch_instances(2 * (runs + WARM_UP_RUNS))
    sts, ec2 = floor_clients(account)
    measured = Measured([], [], [])
    for number in range(runs + WARM_UP_RUNS):
        noop = noop_round_trip(redis_url)
        direct = isolate_directly(account, sts, ec2, instances[2 * number], number)
        response = respond(server, token, instances[2 * number + 1])
        if number >= WARM_UP_RUNS:
            measured.noops.append(noop)
            measured.direct.append(direct)
            measured.responses.append(response)
        if (number + 1) % 10 == 0:
            print(f"  {number + 1} runs", flush=True)
    return measured


def report(measured: Measured) -> None:
    def line(name: str, values: list[float]) -> float:
        ordered = sorted(values)
        p50, p95 = percentile(ordered, 0.50), percentile(ordered, 0.95)
        print(f"  {name:44} p50 {ms(p50)}  p95 {ms(p95)}  max {ms(ordered[-1])}")
        return p50

    responses = measured.responses
    print(f"\nresponse, {len(responses)} runs (finding posted to instance isolated)")
    response_p50 = line("posted -> isolated in the account", [r.isolated for r in responses])
    line("  of which: POST answered", [r.answered for r in responses])
    line("  action run created -> taken by the worker", [r.waited for r in responses])
    line("  action run taken -> finished", [r.acted for r in responses])

    print(f"\nfloor, {len(measured.noops)} runs each")
    floor = line("no-op task round trip (Redis, worker)", measured.noops)
    floor += line("AssumeRole", [d.assume_role for d in measured.direct])
    floor += line("isolate's EC2 calls, made directly", [d.ec2_calls for d in measured.direct])
    print(f"  {'floor (sum of the medians)':44} {ms(floor)}")
    print("\nnot in the floor: what the worker does before its first call")
    line("a new session (AssumeRole) and EC2 client", [d.making_clients for d in measured.direct])

    ratio = response_p50 / floor
    print(f"\nresponse p50 / floor: {ratio:.2f}")
    print("\ntargets")
    target = f"p50 within {TARGET_RATIO:g}x the floor"
    print(verdict(target, ratio <= TARGET_RATIO, f"{ratio:.2f}x"))


def load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def main() -> None:
    args = parse_args()
    print(
        f"database {args.database}; Redis {args.redis}; gunicorn -w {args.workers}; "
        f"worker --pool {args.pool}; {os.cpu_count()} cores; load {load_average()}"
    )
    with (
        scratch_database(args.server, args.database, keep=args.keep_database) as url,
        moto_server() as aws_url,
    ):
        env = deployment_environment(url, args.redis, aws_url)
        migrate(env)
        setup_django(env)
        from irportal import roles

        token = create_users(roles.INTEGRATION)[roles.INTEGRATION]
        account = register_account()
        create_rule_and_playbook()
        purge_queue()
        with celery_worker(env, args.pool), gunicorn(env, args.workers, PROBE, token) as web:
            print(f"\n{args.runs} runs, {WARM_UP_RUNS} more first to warm up")
            measured = measure(web, token, account, args.redis, args.runs)
    report(measured)
    print(f"\nload averages at the end: {load_average()}")


if __name__ == "__main__":
    main()
