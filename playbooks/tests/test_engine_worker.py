"""The worker side of the run engine: error classification, task retries with backoff,
leases, late and duplicate deliveries, the reconciler, and (on PostgreSQL) two workers
taking one action at the same moment.

Tasks are not run by Celery here: a fake broker keeps what the engine sends, and each test
delivers (or loses) it by calling `services.execute` as a worker's task would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, ClassVar

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, EndpointConnectionError
from celery.app.task import Task
from django.conf import settings as django_settings
from django.db.models import F
from django.utils import timezone
from rest_framework import serializers

from cases.choices import EntryKind
from cases.models import AffectedResource, Incident, TimelineEntry
from irportal.tests.concurrency import at_once
from playbooks import services
from playbooks.actions.base import REGISTRY, Action, ActionInputs, Outcome, register
from playbooks.actions.tagging import INCIDENT_TAG, TagResource
from playbooks.aws import MAX_ATTEMPTS, AwsContext, client, session_for
from playbooks.choices import ActionState, RunStatus, StepState
from playbooks.models import ActionRun, Playbook
from playbooks.tests.conftest import ACCOUNT_ID, REGION

pytestmark = pytest.mark.django_db

BUCKET = "ir-engine-worker"


class WorkerKilled(BaseException):
    """The worker process dies here: nothing after it runs, no `except Exception` sees it."""


@dataclass
class Script:
    """What the scripted action does on each attempt, and what it did."""

    errors: list[BaseException] = field(default_factory=list)  # raised one per apply
    undo_errors: list[BaseException] = field(default_factory=list)
    # Runs once apply has done its work, before the worker records it.
    then: Callable[[], None] | None = None
    done: set[str] = field(default_factory=set)  # the "targets" in their changed state
    changes: int = 0


class ScriptedInputs(ActionInputs):
    resource = serializers.CharField()


class Scripted(Action):
    """Marks a resource done (in memory), looking first as every action must; fails and
    dies as the test's script says."""

    name = "engine_test_scripted"
    title = "Mark a resource done"
    target_kind = "resource"
    target_input = "resource"
    inputs = ScriptedInputs
    undoable = True
    script: ClassVar[Script] = Script()

    def inspect(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"done": inputs["resource"] in self.script.done}

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        if self.script.errors:
            raise self.script.errors.pop(0)
        if not state["done"]:
            self.script.done.add(inputs["resource"])
            self.script.changes += 1
        if self.script.then:
            self.script.then()
        if state["done"]:
            return Outcome(False, f"{inputs['resource']} is done already")
        return Outcome(True, f"Marked {inputs['resource']} done")

    def undo(self, ctx: AwsContext, inputs: dict[str, Any], done: Outcome) -> Outcome:
        if self.script.undo_errors:
            raise self.script.undo_errors.pop(0)
        self.script.done.discard(inputs["resource"])
        return Outcome(True, f"Unmarked {inputs['resource']}")


class TagThenMaybeDie(TagResource):
    """Real tagging, after which the script may kill the worker."""

    name = "engine_test_tag_then_maybe_die"

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        outcome = super().apply(ctx, inputs, state)
        if Scripted.script.then:
            Scripted.script.then()
        return outcome

    def _write(self, ctx: AwsContext, resource: str, tags: dict[str, str]) -> None:
        Scripted.script.changes += 1  # the side effect itself: tags written in AWS
        super()._write(ctx, resource, tags)


@pytest.fixture(autouse=True)
def script() -> Iterator[Script]:
    Scripted.script = Script()
    register(Scripted)
    register(TagThenMaybeDie)
    yield Scripted.script
    REGISTRY.pop(Scripted.name)
    REGISTRY.pop(TagThenMaybeDie.name)


@dataclass
class Message:
    action_run_id: int
    undo: bool
    countdown: float


@dataclass
class Broker:
    """Tasks the engine sends, kept instead of run: the test delivers them, or loses them."""

    sent: list[Message] = field(default_factory=list)
    pending: list[Message] = field(default_factory=list)

    def send(self, action_run_id: int, *, undo: bool = False, countdown: float = 0) -> None:
        message = Message(action_run_id, undo, countdown)
        self.sent.append(message)
        self.pending.append(message)

    def deliver(self) -> list[str]:
        """Run every pending task, and those they send, as a worker would (a countdown is
        not waited for); what became of each."""
        results = []
        while self.pending:
            message = self.pending.pop(0)
            task = services.undo if message.undo else services.execute
            results.append(task(message.action_run_id))
        return results


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    kept = Broker()
    monkeypatch.setattr(services, "send_task", kept.send)
    return kept


@pytest.fixture
def short_retries(settings: Any) -> Any:
    settings.PLAYBOOK_MAX_ATTEMPTS = 3
    return settings


def ask(actor: Any, incident: Incident, resource: str = "evidence-1", **options: Any) -> ActionRun:
    inputs = {"resource": resource, "account_id": ACCOUNT_ID, "region": REGION}
    action_run, _ = services.request_action(actor, incident, Scripted.name, inputs, **options)
    return action_run


def aws_error(code: str, status: int, message: str = "") -> ClientError:
    answer = {
        "Error": {"Code": code, "Message": message or f"{code} happened"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(answer, "DoSomething")  # type: ignore[arg-type]


def throttled() -> ClientError:
    return aws_error("Throttling", 400, "Rate exceeded")


def age(action_run: ActionRun, seconds: float) -> None:
    """As if `seconds` went by: what the row remembers moves that far into the past."""
    by = timedelta(seconds=seconds)
    ActionRun.objects.filter(pk=action_run.pk).update(
        dispatched_at=F("dispatched_at") - by, lease_expires_at=F("lease_expires_at") - by
    )


def expire_lease(action_run: ActionRun) -> None:
    """The worker holding it has not been heard of for longer than its lease."""
    age(action_run, django_settings.PLAYBOOK_ACTION_LEASE + 1)


def die() -> None:
    raise WorkerKilled


def entries(incident: Incident, kind: str) -> list[TimelineEntry]:
    return list(TimelineEntry.objects.filter(incident=incident, kind=kind).order_by("sequence"))


# --- Errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "result"),
    [
        (throttled(), "retrying"),
        (aws_error("RequestLimitExceeded", 503), "retrying"),
        (aws_error("InternalServerError", 500), "retrying"),
        (aws_error("TooManyRequests", 429), "retrying"),
        (EndpointConnectionError(endpoint_url="https://ec2.eu-west-1.amazonaws.com"), "retrying"),
        (aws_error("AccessDenied", 403), "failed"),
        (aws_error("InvalidInstanceID.NotFound", 400), "failed"),
        (ValueError("no such volume"), "failed"),
    ],
)
def test_transient_errors_are_tried_again_and_others_fail(
    account, incident, lead_actor, broker, script, error, result
):
    script.errors = [error]
    ask(lead_actor, incident)

    assert broker.deliver()[0] == result


def test_a_permanent_error_fails_the_step_with_the_aws_code_and_message(
    account, incident, lead_actor, broker, script
):
    script.errors = [aws_error("AccessDenied", 403, "User: ir-portal is not authorized")]
    steps = [
        {"id": step, "action": Scripted.name, "parameters": {"resource": step}}
        for step in ("first", "second")
    ]
    pb = Playbook.objects.create(slug="mark", name="Mark", definition={"steps": steps})
    inputs = {"account_id": ACCOUNT_ID, "region": REGION}
    run = services.start_run(lead_actor, incident, pb, inputs=inputs)

    assert broker.deliver() == ["failed"]

    run.refresh_from_db()
    first = run.steps.get(key="first")
    assert run.status == RunStatus.FAILED
    assert first.state == StepState.FAILED
    assert first.reason == "AccessDenied: User: ir-portal is not authorized"
    assert run.steps.get(key="second").state == StepState.CANCELLED
    assert (first.action_run.error_code, first.action_run.attempts) == ("AccessDenied", 1)
    assert script.changes == 0 and len(broker.sent) == 1


def test_throttling_is_tried_again_with_growing_backoff(
    account, incident, lead_actor, broker, script, short_retries
):
    script.errors = [throttled(), throttled()]
    action_run = ask(lead_actor, incident)

    assert broker.deliver() == ["retrying", "retrying", "succeeded"]

    assert [m.countdown for m in broker.sent] == [0, 5, 10]
    action_run.refresh_from_db()
    assert action_run.state == ActionState.SUCCEEDED and action_run.attempts == 3
    assert (action_run.error_code, action_run.error_message) == ("", "")
    assert script.changes == 1


def test_throttling_past_the_last_attempt_fails_and_asking_again_starts_afresh(
    account, incident, lead_actor, broker, script, short_retries
):
    script.errors = [throttled()] * 5
    action_run = ask(lead_actor, incident)

    assert broker.deliver() == ["retrying", "retrying", "failed"]

    action_run.refresh_from_db()
    assert (action_run.state, action_run.error_code) == (ActionState.FAILED, "Throttling")
    [failed] = entries(incident, EntryKind.ACTION_FAILED)
    assert "Throttling: Rate exceeded" in failed.summary

    # Asked for again, the action has all its attempts again.
    ask(lead_actor, incident)
    assert broker.deliver() == ["retrying", "retrying", "succeeded"]


def test_an_account_whose_role_cannot_be_assumed_fails_the_action(
    account, incident, lead_actor, broker, monkeypatch
):
    def refused(*args: Any, **kwargs: Any) -> None:
        raise aws_error("AccessDenied", 403, "not authorized to perform: sts:AssumeRole")

    monkeypatch.setattr(services, "session_for", refused)
    action_run = ask(lead_actor, incident)

    assert broker.deliver() == ["failed"]

    action_run.refresh_from_db()
    assert (action_run.state, action_run.error_code) == (ActionState.FAILED, "AccessDenied")
    assert action_run.lease_expires_at is None


def test_an_account_disabled_since_the_asking_is_not_acted_in(
    account, incident, lead_actor, broker, script
):
    action_run = ask(lead_actor, incident)
    account.enabled = False
    account.save()

    assert broker.deliver() == ["failed"]

    action_run.refresh_from_db()
    assert action_run.error_message == f"account {ACCOUNT_ID} is disabled"
    assert script.changes == 0


def test_a_failed_undo_leaves_the_action_done_and_names_who_asked(
    account, incident, lead_actor, responder_actor, broker, script
):
    action_run = ask(lead_actor, incident)
    broker.deliver()
    script.undo_errors = [throttled(), aws_error("AccessDenied", 403)]

    services.request_undo(responder_actor, action_run)
    assert broker.deliver() == ["retrying", "failed"]

    action_run.refresh_from_db()
    assert (action_run.state, action_run.error_code) == (ActionState.SUCCEEDED, "AccessDenied")
    [failed] = entries(incident, EntryKind.ACTION_FAILED)
    assert failed.actor_name == "rui" and failed.data["undo"]

    services.request_undo(responder_actor, action_run)
    assert broker.deliver() == ["undone"]
    action_run.refresh_from_db()
    assert action_run.state == ActionState.UNDONE and action_run.error_code == ""
    assert script.done == set()


class Throttled:
    """What EC2 answers when it throttles, as the raw body botocore reads."""

    body = (
        b"<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
        b"<Message>Request limit exceeded.</Message></Error></Errors>"
        b"<RequestID>throttled</RequestID></Response>"
    )

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


@pytest.mark.parametrize("credentials", ["deployment", "response role"])
def test_aws_clients_retry_throttling_in_standard_mode_up_to_the_configured_attempts(
    account, monkeypatch, credentials
):
    if credentials == "deployment":
        ec2 = client("ec2", REGION)
    else:
        ec2 = AwsContext(session_for(account, "tests"), REGION, incident_reference="IR-1")("ec2")
    attempts: list[str] = []

    def throttle(request: Any, **_: Any) -> AWSResponse:
        attempts.append(request.url)
        return AWSResponse(request.url, 503, {}, Throttled())

    ec2.meta.events.register("before-send", throttle)
    slept: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=slept.append))

    with pytest.raises(ClientError) as refused:
        ec2.describe_instances()

    assert refused.value.response["Error"]["Code"] == "RequestLimitExceeded"
    assert ec2.meta.config.retries == {"mode": "standard", "total_max_attempts": MAX_ATTEMPTS}
    assert len(attempts) == MAX_ATTEMPTS
    assert len(slept) == len(attempts) - 1 and all(0 <= pause <= 20 for pause in slept)


# --- Sending after commit ---------------------------------------------------------------


@pytest.fixture
def celery_sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...], str]]:
    """What the engine hands Celery, instead of sending it: each task's name, arguments and
    the state of its action run in the database at the moment it is sent."""
    sent: list[tuple[str, tuple[Any, ...], str]] = []

    def record(task: Task, args: tuple[Any, ...], **_: Any) -> None:
        state = ActionRun.objects.values_list("state", flat=True).get(pk=args[0])
        sent.append((task.name, tuple(args), state))

    monkeypatch.setattr(Task, "apply_async", record)
    return sent


def test_a_steps_task_is_sent_only_once_the_transaction_that_queued_it_commits(
    account, incident, lead_actor, celery_sent, django_capture_on_commit_callbacks
):
    steps = [{"id": "mark", "action": Scripted.name, "parameters": {"resource": "evidence-1"}}]
    pb = Playbook.objects.create(slug="mark", name="Mark", definition={"steps": steps})
    inputs = {"account_id": ACCOUNT_ID, "region": REGION}

    with django_capture_on_commit_callbacks() as after_commit:
        run = services.start_run(lead_actor, incident, pb, inputs=inputs)

    action_run = run.steps.get().action_run
    assert action_run.state == ActionState.QUEUED and action_run.dispatched_at
    assert celery_sent == []
    for callback in after_commit:
        callback()
    assert celery_sent == [("playbooks.execute_action", (action_run.pk,), ActionState.QUEUED)]


def test_an_undos_task_is_sent_only_once_the_transaction_that_asked_for_it_commits(
    account, incident, lead_actor, celery_sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        action_run = ask(lead_actor, incident)
    assert services.execute(action_run.pk) == "succeeded"
    celery_sent.clear()

    with django_capture_on_commit_callbacks() as after_commit:
        services.request_undo(lead_actor, action_run)

    assert celery_sent == []
    for callback in after_commit:
        callback()
    assert celery_sent == [("playbooks.undo_action", (action_run.pk,), ActionState.UNDOING)]


# --- Lost tasks, dead workers and the reconciler ----------------------------------------


def test_a_queued_action_whose_task_was_lost_is_sent_again(
    account, incident, lead_actor, broker, settings
):
    settings.PLAYBOOK_REDISPATCH_AFTER = 60
    action_run = ask(lead_actor, incident)
    broker.pending.clear()  # Redis restarted: the message is gone

    assert services.reconcile() == []  # sent a moment ago: a worker may not have got to it

    age(action_run, 61)
    assert services.reconcile() == [action_run.pk]
    assert services.reconcile() == []  # sent again just now
    assert broker.deliver() == ["succeeded"]


def test_a_lost_undo_is_sent_again_as_an_undo(
    account, incident, lead_actor, broker, settings, script
):
    action_run = ask(lead_actor, incident)
    broker.deliver()
    services.request_undo(lead_actor, action_run)
    broker.pending.clear()

    later = timezone.now() + timedelta(seconds=settings.PLAYBOOK_REDISPATCH_AFTER + 1)
    assert services.reconcile(now=later) == [action_run.pk]

    assert [m.undo for m in broker.pending] == [True]
    assert broker.deliver() == ["undone"]


@pytest.fixture
def bucket(account: Any) -> str:
    client("s3", REGION).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    return BUCKET


def test_a_dead_workers_action_is_taken_over_without_repeating_its_change(
    bucket, incident, lead_actor, broker, script
):
    script.then = die  # after tagging, before recording it
    inputs = {"resource": bucket, "account_id": ACCOUNT_ID, "region": REGION}
    action_run, _ = services.request_action(lead_actor, incident, TagThenMaybeDie.name, inputs)
    with pytest.raises(WorkerKilled):
        broker.deliver()
    action_run.refresh_from_db()
    assert (action_run.state, action_run.attempts) == (ActionState.RUNNING, 1)

    # Its lease still runs: the worker may only be slow.
    assert services.reconcile() == []
    assert services.execute(action_run.pk) == "not mine"

    expire_lease(action_run)
    assert services.reconcile() == [action_run.pk]
    assert services.reconcile() == []  # not sent again on every tick
    script.then = None
    assert broker.deliver() == ["succeeded"]

    action_run.refresh_from_db()
    assert (action_run.state, action_run.attempts) == (ActionState.SUCCEEDED, 2)
    assert script.changes == 1
    # The first attempt's sight of the bucket (no tags) was kept before it acted, so the
    # record says what really happened: the tag was added, once.
    assert action_run.changed is True
    assert action_run.before == {"tags": {}}
    [done] = entries(incident, EntryKind.ACTION_SUCCEEDED)
    assert done.summary == f"Tagged {bucket} with {INCIDENT_TAG}"
    found = client("s3", REGION).get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert found == [{"Key": INCIDENT_TAG, "Value": incident.reference}]


def test_a_worker_that_lost_its_lease_records_nothing(
    account, incident, lead_actor, broker, script
):
    def meanwhile_another_worker_finishes() -> None:
        expire_lease(action_run)
        script.then = None
        assert services.execute(action_run.pk) == "succeeded"

    script.then = meanwhile_another_worker_finishes
    action_run = ask(lead_actor, incident)

    assert broker.deliver() == ["taken over"]

    action_run.refresh_from_db()
    assert (action_run.state, action_run.attempts) == (ActionState.SUCCEEDED, 2)
    assert len(entries(incident, EntryKind.ACTION_SUCCEEDED)) == 1
    assert script.changes == 1


def test_a_late_duplicate_delivery_does_nothing(account, incident, lead_actor, broker, script):
    action_run = ask(lead_actor, incident)
    assert broker.deliver() == ["succeeded"]

    assert services.execute(action_run.pk) == "not mine"
    assert services.undo(action_run.pk) == "not mine"

    action_run.refresh_from_db()
    assert (action_run.state, action_run.attempts) == (ActionState.SUCCEEDED, 1)
    assert script.changes == 1


def test_an_action_no_worker_finishes_fails_after_the_last_attempt(
    account, incident, lead_actor, broker, script, settings
):
    settings.PLAYBOOK_MAX_ATTEMPTS = 2
    script.then = die
    AffectedResource.objects.create(
        incident=incident, account_id=ACCOUNT_ID, region=REGION, identifier="evidence-1"
    )
    steps = [{"id": "mark", "action": Scripted.name, "parameters": {"resource": "evidence-1"}}]
    pb = Playbook.objects.create(slug="mark", name="Mark", definition={"steps": steps})
    run = services.start_run(lead_actor, incident, pb)
    action_run = run.steps.get().action_run

    for _attempt in range(2):
        with pytest.raises(WorkerKilled):
            broker.deliver()
        expire_lease(action_run)
        assert services.reconcile() == [action_run.pk]
    assert broker.deliver() == ["not mine"]

    action_run.refresh_from_db()
    run.refresh_from_db()
    assert (action_run.state, action_run.error_code) == (ActionState.FAILED, "WorkerLost")
    assert run.status == RunStatus.FAILED
    assert run.steps.get().reason == "WorkerLost: no worker finished it in 2 attempts"
    assert services.reconcile() == []


# --- Two workers at once ----------------------------------------------------------------


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_workers_taking_one_action_at_once_only_one_acts(
    account, incident, lead_actor, broker, script
):
    action_run = ask(lead_actor, incident)
    results: list[str] = []

    def worker(_worker: int) -> None:
        results.append(services.execute(action_run.pk))

    assert at_once(2, worker) == []
    assert sorted(results) == ["not mine", "succeeded"]
    assert script.changes == 1
    action_run.refresh_from_db()
    assert (action_run.state, action_run.attempts) == (ActionState.SUCCEEDED, 1)
