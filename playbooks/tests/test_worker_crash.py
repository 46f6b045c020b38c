"""A worker killed in the middle of a run, for real: Celery workers on Redis, the database
on PostgreSQL, AWS simulated by moto's server. A second worker finishes the run and no
step's side effect happens twice."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection
from django.utils import timezone

from cases.choices import EntryKind
from cases.models import AffectedResource, Incident, TimelineEntry
from irportal.actors import Actor
from irportal.celery import app
from playbooks import services
from playbooks.actions.base import REGISTRY, register
from playbooks.actions.ec2 import ACTION_RUN_TAG
from playbooks.actions.tagging import INCIDENT_TAG
from playbooks.aws import client
from playbooks.choices import ActionState, RunStatus, StepState
from playbooks.models import ActionRun, CloudAccount, Playbook, PlaybookRun
from playbooks.tests import blocking_actions
from playbooks.tests.blocking_actions import APPLY_STARTED, SNAPSHOT_TAKEN, marks
from playbooks.tests.conftest import ACCOUNT_ID, IMAGE_ID, REGION

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 5
# Bounds on waits that take a few seconds on a quiet 2-core machine, generous enough for a
# busy one: a worker starting (Django, boto3) and then acting.
WORKER_START_SECONDS = 60
RUN_FINISH_SECONDS = 60


@pytest.fixture(autouse=True)
def hanging_action() -> Iterator[None]:
    """Known to this process for this test only; the workers load it by the setting."""
    register(blocking_actions.SnapshotThenHang)
    yield
    REGISTRY.pop(blocking_actions.SnapshotThenHang.name)


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL its whole process group: nothing of it gets to clean up."""
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} (exit {self.process.poll()}) ---\n" + "\n".join(
            text.splitlines()[-lines:]
        )


@pytest.fixture
def start_worker(aws: str, tmp_path: Path) -> Iterator[Callable[[str], Worker]]:
    """Start a Celery worker process on the playbooks queue; every one is killed at the end,
    however the test ends."""
    started: list[Worker] = []
    environment = worker_environment(aws)
    purge_playbooks_queue()

    def start(name: str) -> Worker:
        log = tmp_path / f"{name}.log"
        command = [sys.executable, "-m", "celery", "-A", "irportal", "worker"]
        command += ["--pool", "solo", "-Q", "playbooks", "-n", f"{name}@%h", "-l", "info"]
        command += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
        with log.open("wb") as output:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed whole
            )
        started.append(Worker(name, process, log))
        return started[-1]

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()


def worker_environment(aws: str) -> dict[str, str]:
    """What a worker needs to share this test's database, broker and simulated account."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "irportal.test_settings",
        "DATABASE_URL": session_database_url(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "AWS_ENDPOINT_URL": aws,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PLAYBOOK_ACTION_MODULES": blocking_actions.__name__,
        "PLAYBOOK_ACTION_LEASE": str(LEASE_SECONDS),
        "PLAYBOOK_REDISPATCH_AFTER": "2",
        "LOG_LEVEL": "INFO",
    }


def session_database_url() -> str:
    """The database pytest-django created for this session, as a URL for another process."""
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    host, port = db["HOST"] or "localhost", db["PORT"] or "5432"
    return f"postgres://{quote(db['USER'], safe='')}{password}@{host}:{port}/{db['NAME']}"


def purge_playbooks_queue() -> None:
    """Drop messages an earlier run left on the shared broker."""
    with app.connection_for_write() as broker:
        broker.default_channel.queue_purge("playbooks")


def wait_for(what: str, seconds: float, done: Callable[[], Any], workers: list[Worker]) -> Any:
    """Poll `done` until it returns something true; fail naming `what`, with the workers'
    logs, after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = done()
        if result:
            return result
        time.sleep(0.1)
    logs = "\n".join(worker.tail() for worker in workers)
    pytest.fail(f"timed out after {seconds:.0f} s waiting for {what}\n{logs}")


@pytest.fixture
def instance_id(account: CloudAccount) -> str:
    ec2 = client("ec2", REGION)
    image = IMAGE_ID
    return str(
        ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    )


@pytest.fixture
def on_instance(incident: Incident, instance_id: str) -> Incident:
    AffectedResource.objects.create(
        incident=incident,
        account_id=ACCOUNT_ID,
        region=REGION,
        identifier=instance_id,
        resource_type="AWS::EC2::Instance",
    )
    return incident


def crash_playbook(markers: Path) -> Playbook:
    """Tag, snapshot and hang (where the worker is killed), then snapshot every volume."""
    steps: list[dict[str, Any]] = [
        {"id": "tag", "action": "tag_resource", "parameters": {"resource": "${instance.id}"}},
        {
            "id": "snapshot-then-hang",
            "action": blocking_actions.SnapshotThenHang.name,
            "parameters": {"instance_id": "${instance.id}", "marker_dir": str(markers)},
        },
        {
            "id": "snapshot-volumes",
            "action": "ec2_snapshot_volumes",
            "parameters": {"instance_id": "${instance.id}"},
        },
    ]
    return Playbook.objects.create(slug="crash", name="Crash", definition={"steps": steps})


def volumes_of(instance_id: str) -> list[str]:
    found = client("ec2", REGION).describe_instances(InstanceIds=[instance_id])
    instance = found["Reservations"][0]["Instances"][0]
    return [m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"] if "Ebs" in m]


def snapshots_taken(volume_ids: list[str]) -> Counter[tuple[str, str]]:
    """How many snapshots of each volume each action run took: (volume, action run)."""
    found = client("ec2", REGION).describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": volume_ids}]
    )
    return Counter(
        (snapshot["VolumeId"], tag["Value"])
        for snapshot in found["Snapshots"]
        for tag in snapshot.get("Tags", [])
        if tag["Key"] == ACTION_RUN_TAG
    )


def tags_of(instance_id: str) -> dict[str, str]:
    found = client("ec2", REGION).describe_tags(
        Filters=[{"Name": "resource-id", "Values": [instance_id]}]
    )
    return {tag["Key"]: tag["Value"] for tag in found["Tags"]}


def test_a_second_worker_finishes_a_run_whose_worker_was_killed_without_repeating_a_step(
    on_instance: Incident,
    instance_id: str,
    lead_actor: Actor,
    start_worker: Callable[[str], Worker],
    tmp_path: Path,
) -> None:
    first = start_worker("crash-first")
    run = services.start_run(lead_actor, on_instance, crash_playbook(tmp_path))

    # The first worker tags, snapshots, then hangs before it can commit: kill it there.
    wait_for(
        "the first worker to take the snapshot",
        WORKER_START_SECONDS,
        lambda: marks(tmp_path / SNAPSHOT_TAKEN),
        [first],
    )
    first.kill()
    hung = ActionRun.objects.get(action=blocking_actions.SnapshotThenHang.name)
    assert (hung.state, hung.attempts) == (ActionState.RUNNING, 1)
    second = start_worker("crash-second")

    # Its lease lapses; the reconciler hands the action to the second worker.
    assert hung.lease_expires_at is not None
    wait_for(
        "the first worker's lease to lapse",
        LEASE_SECONDS + 5,
        lambda: timezone.now() > hung.lease_expires_at,
        [first, second],
    )
    assert hung.pk in services.reconcile()
    wait_for(
        "the second worker to finish the run",
        RUN_FINISH_SECONDS,
        lambda: PlaybookRun.objects.get(pk=run.pk).finished,
        [first, second],
    )

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, second.tail()
    steps = list(run.steps.select_related("action_run").order_by("position"))
    assert [step.state for step in steps] == [StepState.SUCCEEDED] * len(steps)
    attempts = {step.key: step.action_run.attempts for step in steps if step.action_run}
    assert attempts == {step.key: 2 if step.key == "snapshot-then-hang" else 1 for step in steps}

    # Both workers started the hung action; only the first one acted, once.
    started = marks(tmp_path / APPLY_STARTED)
    assert [line.split()[0] for line in started] == [
        str(first.process.pid),
        str(second.process.pid),
    ]
    assert len(marks(tmp_path / SNAPSHOT_TAKEN)) == 1

    # In the account: the tag, the hung step's one snapshot of the root volume, and one
    # snapshot of each volume by the last step.
    assert tags_of(instance_id)[INCIDENT_TAG] == on_instance.reference
    volumes = volumes_of(instance_id)
    last = steps[-1].action_run
    assert last is not None
    expected = Counter({(volumes[0], str(hung.pk)): 1})
    expected.update((volume, str(last.pk)) for volume in volumes)
    assert snapshots_taken(volumes) == expected

    # The timeline says each step succeeded exactly once, and its chain holds.
    succeeded = Counter(
        entry.data["action_run"]
        for entry in TimelineEntry.objects.filter(
            incident=on_instance, kind=EntryKind.ACTION_SUCCEEDED
        )
    )
    assert succeeded == Counter(step.action_run_id for step in steps)
    assert TimelineEntry.objects.verify_chain(on_instance) is None


def tag_playbook() -> Playbook:
    steps = [{"id": "tag", "action": "tag_resource", "parameters": {"resource": "${instance.id}"}}]
    return Playbook.objects.create(slug="tag", name="Tag", definition={"steps": steps})


def test_a_step_whose_message_the_broker_lost_is_sent_again_and_done_once(
    on_instance: Incident,
    instance_id: str,
    lead_actor: Actor,
    start_worker: Callable[[str], Worker],
    settings: Any,
) -> None:
    settings.PLAYBOOK_REDISPATCH_AFTER = 2  # as the worker has it
    run = services.start_run(lead_actor, on_instance, tag_playbook())
    queued = ActionRun.objects.get(action="tag_resource")
    assert queued.state == ActionState.QUEUED

    # Redis loses the message (emptied, or restarted without persistence) before any
    # worker takes it: the row in the database is all that is left of the intent.
    purge_playbooks_queue()
    worker = start_worker("after-the-loss")
    wait_for(
        "the worker to be ready", WORKER_START_SECONDS, lambda: "ready" in worker.tail(), [worker]
    )
    time.sleep(settings.PLAYBOOK_REDISPATCH_AFTER + 0.5)
    queued.refresh_from_db()
    assert queued.state == ActionState.QUEUED, "nothing should have run without a message"
    assert INCIDENT_TAG not in tags_of(instance_id)

    assert services.reconcile() == [queued.pk]
    wait_for(
        "the worker to finish the run",
        RUN_FINISH_SECONDS,
        lambda: PlaybookRun.objects.get(pk=run.pk).finished,
        [worker],
    )

    run.refresh_from_db()
    queued.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, worker.tail()
    assert (queued.state, queued.attempts) == (ActionState.SUCCEEDED, 1)
    assert tags_of(instance_id)[INCIDENT_TAG] == on_instance.reference
    assert services.reconcile() == []  # nothing left to send
