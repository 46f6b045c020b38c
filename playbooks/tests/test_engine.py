"""The run engine end to end on the simulated account: playbook runs, conditions, approval
gates, dry runs, cancelling, failures, undo and idempotency. The tagging action acts on a
bucket (moto's first EC2 call after a reset costs seconds; S3 costs nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.core.exceptions import PermissionDenied
from rest_framework import serializers

from cases.choices import EntryKind
from cases.models import AffectedResource, Incident, TimelineEntry
from findings.choices import RuleEffect
from findings.models import TriageRule
from findings.services import rule_actor
from irportal.errors import StateConflict
from playbooks import services
from playbooks.actions.base import REGISTRY, Outcome, register
from playbooks.actions.tagging import INCIDENT_TAG, TagResource
from playbooks.aws import AwsContext, client
from playbooks.choices import ActionState, RunStatus, StepState
from playbooks.models import ActionRun, Playbook, PlaybookRun, RunStep
from playbooks.tests.conftest import ACCOUNT_ID, REGION

pytestmark = pytest.mark.django_db

BUCKET = "ir-engine-evidence"
MISSING_BUCKET = "ir-engine-not-there"
ENGINE_KINDS = ("playbook.", "step.", "action.")


class UndoableTag(TagResource):
    """Tagging that can be taken back: undo removes the tags it added (buckets only)."""

    name = "engine_test_undoable_tag"
    undoable = True

    def undo(self, ctx: AwsContext, inputs: dict[str, Any], done: Outcome) -> Outcome:
        bucket, added = inputs["resource"], done.outputs["added"]
        kept = {k: v for k, v in self._read(ctx, bucket).items() if k not in added}
        if kept:
            tag_set = [{"Key": k, "Value": v} for k, v in sorted(kept.items())]
            ctx("s3").put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_set})
        else:
            ctx("s3").delete_bucket_tagging(Bucket=bucket)
        return Outcome(True, f"Removed {', '.join(sorted(added))} from {bucket}")


@pytest.fixture(autouse=True)
def undoable_tag() -> Iterator[None]:
    register(UndoableTag)
    yield
    REGISTRY.pop(UndoableTag.name)


@dataclass
class Broker:
    """Tasks the engine sends, kept instead of run: the test delivers them."""

    pending: list[tuple[int, bool]] = field(default_factory=list)

    def send(self, action_run_id: int, *, undo: bool = False, countdown: float = 0) -> None:
        self.pending.append((action_run_id, undo))

    def deliver(self) -> list[str]:
        """Run every task sent, and those they send, as a worker would."""
        results = []
        while self.pending:
            action_run_id, undo = self.pending.pop(0)
            results.append((services.undo if undo else services.execute)(action_run_id))
        return results


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    kept = Broker()
    monkeypatch.setattr(services, "send_task", kept.send)
    return kept


@pytest.fixture
def bucket(account) -> str:
    client("s3", REGION).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    return BUCKET


@pytest.fixture
def on_bucket(incident: Incident, bucket: str) -> Incident:
    AffectedResource.objects.create(
        incident=incident,
        account_id=ACCOUNT_ID,
        region=REGION,
        identifier=bucket,
        resource_type="AWS::S3::Bucket",
    )
    return incident


def playbook(*steps: dict[str, Any], slug: str = "tag-it") -> Playbook:
    return Playbook.objects.create(slug=slug, name=f"Playbook {slug}", definition={"steps": steps})


def tag(step_id: str, resource: str = "${bucket.id}", **fields: Any) -> dict[str, Any]:
    """A step that tags the bucket with `<step_id>: done`."""
    parameters = {"resource": resource, "tags": {step_id: "done"}}
    return {"id": step_id, "action": "tag_resource", "parameters": parameters, **fields}


def tags_of(bucket: str) -> dict[str, str]:
    try:
        found = client("s3", REGION).get_bucket_tagging(Bucket=bucket)["TagSet"]
    except ClientError:
        return {}
    return {t["Key"]: t["Value"] for t in found}


def states(run: PlaybookRun) -> list[str]:
    return list(run.steps.order_by("position").values_list("state", flat=True))


def engine_entries(incident: Incident) -> list[TimelineEntry]:
    entries = TimelineEntry.objects.filter(incident=incident).order_by("sequence")
    return [e for e in entries if e.kind.startswith(ENGINE_KINDS)]


def kinds(incident: Incident) -> list[str]:
    return [e.kind for e in engine_entries(incident)]


def bucket_inputs(resource: str = BUCKET, **tags: str) -> dict[str, Any]:
    return {"resource": resource, "tags": tags, "account_id": ACCOUNT_ID, "region": REGION}


# --- Runs and the timeline --------------------------------------------------------------


def test_a_run_records_each_step_as_asked_by_who_started_it(
    on_bucket, bucket, responder, responder_actor, engine
):
    with engine():
        run = services.start_run(
            responder_actor, on_bucket, playbook(tag("first"), tag("second"), tag("third"))
        )

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert states(run) == [StepState.SUCCEEDED] * 3
    assert tags_of(bucket) == {
        INCIDENT_TAG: on_bucket.reference,
        "first": "done",
        "second": "done",
        "third": "done",
    }
    entries = engine_entries(on_bucket)
    assert [e.kind for e in entries] == [
        EntryKind.PLAYBOOK_STARTED,
        *[EntryKind.ACTION_REQUESTED, EntryKind.ACTION_SUCCEEDED] * 3,
        EntryKind.PLAYBOOK_FINISHED,
    ]
    assert {(e.actor_name, e.actor_user_id) for e in entries} == {("rui", responder.pk)}
    done = [e for e in entries if e.kind == EntryKind.ACTION_SUCCEEDED]
    assert [e.data["action_run"] for e in done] == [s.action_run_id for s in run.steps.all()]
    assert [e.data["steps"] for e in done] == [
        [{"run": run.pk, "step": key, "position": position}]
        for position, key in enumerate(("first", "second", "third"))
    ]
    assert all(e.data["request_ids"] and e.data["changed"] for e in done)


def test_a_run_a_rule_started_names_the_rule_in_every_entry(on_bucket, bucket, engine):
    rule = TriageRule.objects.create(name="Exposed buckets", effect=RuleEffect.OPEN_INCIDENT)

    with engine():
        run = services.start_run(rule_actor(rule), on_bucket, playbook(tag("first")), rule=rule)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.rule == rule
    entries = engine_entries(on_bucket)
    assert len(entries) == 4
    assert {(e.actor_kind, e.actor_name, e.actor_user_id) for e in entries} == {
        ("rule", "Exposed buckets", None)
    }
    assert ActionRun.objects.get().actor_name == "Exposed buckets"


def test_steps_whose_condition_fails_are_skipped(on_bucket, bucket, lead_actor, engine):
    steps = (
        tag("no-instance", when={"exists": "instance.id"}),
        tag("referenced", when={"equals": ["incident.reference", on_bucket.reference]}),
        tag("not-in", when={"in": ["bucket.id", ["another-bucket"]]}),
    )

    with engine():
        run = services.start_run(lead_actor, on_bucket, playbook(*steps))

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert states(run) == [StepState.SKIPPED, StepState.SUCCEEDED, StepState.SKIPPED]
    assert run.steps.get(key="not-in").reason == "its condition does not hold"
    assert kinds(on_bucket).count(EntryKind.STEP_SKIPPED) == 2
    assert set(tags_of(bucket)) == {INCIDENT_TAG, "referenced"}


def test_a_start_that_lacks_an_input_is_refused_whole(on_bucket, lead_actor):
    steps = (
        tag("fine"),
        tag("user", resource="${user.name}"),
        tag("key", resource="arn:aws:iam::123456789012:user/${user.name}/${access_key.id}"),
        tag("only-with-a-role", resource="${role.name}", when={"exists": "role.name"}),
    )
    entries_before = TimelineEntry.objects.count()

    with pytest.raises(serializers.ValidationError) as refused:
        services.start_run(lead_actor, on_bucket, playbook(*steps))

    problems = refused.value.detail["steps"]
    assert set(problems) == {"user", "key"}
    assert "user.name" in str(problems["user"]["parameters"])
    assert not PlaybookRun.objects.exists() and not ActionRun.objects.exists()
    assert TimelineEntry.objects.count() == entries_before


def test_a_start_in_an_account_not_registered_is_refused(incident, lead_actor):
    AffectedResource.objects.create(
        incident=incident,
        account_id="210987654321",
        region=REGION,
        identifier="their-bucket",
        resource_type="AWS::S3::Bucket",
    )

    with pytest.raises(serializers.ValidationError) as refused:
        services.start_run(lead_actor, incident, playbook(tag("first"), tag("second")))

    assert refused.value.detail["steps"] == {
        "first": {"account_id": "account 210987654321 is not registered"},
        "second": {"account_id": "account 210987654321 is not registered"},
    }
    assert not PlaybookRun.objects.exists()
    assert EntryKind.PLAYBOOK_STARTED not in kinds(incident)


def test_a_dry_run_calls_no_aws_and_records_what_would_be_done(
    on_bucket, bucket, lead_actor, engine, monkeypatch
):
    def no_aws(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a dry run asked for AWS credentials")

    monkeypatch.setattr(services, "session_for", no_aws)
    steps = (tag("first"), tag("gated", approval=True))

    with engine():
        run = services.start_run(lead_actor, on_bucket, playbook(*steps), dry_run=True)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert states(run) == [StepState.SUCCEEDED, StepState.SUCCEEDED]
    assert tags_of(bucket) == {}
    assert [(a.dry_run, a.changed, a.request_ids) for a in ActionRun.objects.all()] == [
        (True, False, [])
    ] * 2
    written = engine_entries(on_bucket)
    assert EntryKind.STEP_AWAITING_APPROVAL not in [e.kind for e in written]
    would = [e.summary for e in written if e.kind == EntryKind.ACTION_SUCCEEDED]
    assert (
        would
        == [f"Would tag a resource with the incident reference: {BUCKET} in {ACCOUNT_ID}/{REGION}"]
        * 2
    )

    # A dry run is a preview: asked for again, it records again.
    with engine():
        services.start_run(lead_actor, on_bucket, run.playbook, dry_run=True)
    assert kinds(on_bucket).count(EntryKind.ACTION_SUCCEEDED) == 4
    assert tags_of(bucket) == {}


# --- Approval gates ---------------------------------------------------------------------


def test_only_a_lead_may_approve_or_reject(on_bucket, bucket, lead_actor, responder_actor, engine):
    with engine():
        run = services.start_run(lead_actor, on_bucket, playbook(tag("gated", approval=True)))
    gated = run.steps.get()

    for decide in (services.approve, services.reject):
        with pytest.raises(PermissionDenied):
            decide(responder_actor, gated)

    gated.refresh_from_db()
    run.refresh_from_db()
    assert gated.state == StepState.AWAITING_APPROVAL
    assert run.status == RunStatus.AWAITING_APPROVAL
    assert kinds(on_bucket)[-1] == EntryKind.STEP_AWAITING_APPROVAL
    assert tags_of(bucket) == {}


def test_a_lead_approving_a_rule_started_step_is_who_asks_for_it(
    on_bucket, bucket, lead, lead_actor, engine
):
    rule = TriageRule.objects.create(name="Exposed buckets", effect=RuleEffect.OPEN_INCIDENT)
    steps = (tag("first"), tag("gated", approval=True))
    with engine():
        run = services.start_run(rule_actor(rule), on_bucket, playbook(*steps), rule=rule)
    gated = run.steps.get(key="gated")

    with engine():
        services.approve(lead_actor, gated)

    run.refresh_from_db()
    gated.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert gated.decided_by == "lena" and gated.action_run.actor_user == lead
    assert tags_of(bucket)["gated"] == "done"
    approved = [e for e in engine_entries(on_bucket) if e.kind == EntryKind.STEP_APPROVED]
    assert [(e.actor_name, e.actor_user_id) for e in approved] == [("lena", lead.pk)]
    with pytest.raises(StateConflict):
        services.approve(lead_actor, gated)


def test_a_gated_step_acts_on_what_was_resolved_when_the_run_started(
    on_bucket, bucket, lead_actor, engine
):
    with engine():
        run = services.start_run(lead_actor, on_bucket, playbook(tag("gated", approval=True)))
    client("s3", REGION).create_bucket(
        Bucket=MISSING_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    on_bucket.resources.update(identifier=MISSING_BUCKET)

    with engine():
        services.approve(lead_actor, run.steps.get())

    assert run.steps.get().parameters["resource"] == BUCKET
    assert tags_of(bucket)["gated"] == "done" and tags_of(MISSING_BUCKET) == {}
    help_text = RunStep._meta.get_field("parameters").help_text
    assert "when the run started" in str(help_text)


def test_rejecting_skips_the_step_and_the_run_goes_on(on_bucket, bucket, lead_actor, engine):
    steps = (tag("first"), tag("gated", approval=True), tag("third"))
    with engine():
        run = services.start_run(lead_actor, on_bucket, playbook(*steps))

    with engine():
        services.reject(lead_actor, run.steps.get(key="gated"), "not in business hours")

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert states(run) == [StepState.SUCCEEDED, StepState.SKIPPED, StepState.SUCCEEDED]
    assert run.steps.get(key="gated").reason == "rejected by lena: not in business hours"
    assert set(tags_of(bucket)) == {INCIDENT_TAG, "first", "third"}
    assert EntryKind.STEP_REJECTED in kinds(on_bucket)


def test_approving_a_step_whose_action_was_done_before_goes_on(
    on_bucket, bucket, lead_actor, engine
):
    with engine():
        services.start_run(lead_actor, on_bucket, playbook(tag("first")))
    again = playbook(tag("first", approval=True), tag("second"), slug="again")
    with engine():
        run = services.start_run(lead_actor, on_bucket, again)

    with engine():
        services.approve(lead_actor, run.steps.get(key="first"))

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert states(run) == [StepState.SUCCEEDED, StepState.SUCCEEDED]
    assert ActionRun.objects.count() == 2  # "first" was not done twice
    assert any("already done" in e.summary for e in engine_entries(on_bucket))


# --- Cancelling -------------------------------------------------------------------------


def test_cancelling_drops_waiting_steps_and_the_late_task_does_nothing(
    on_bucket, bucket, lead_actor, broker
):
    run = services.start_run(lead_actor, on_bucket, playbook(tag("first"), tag("second")))
    assert len(broker.pending) == 1

    services.cancel(lead_actor, run, "wrong incident")

    run.refresh_from_db()
    assert (run.status, run.cancelled_by) == (RunStatus.CANCELLED, "lena")
    assert states(run) == [StepState.CANCELLED, StepState.CANCELLED]
    assert ActionRun.objects.get().state == ActionState.CANCELLED
    assert broker.deliver() == ["not mine"]
    assert tags_of(bucket) == {}
    cancelled = engine_entries(on_bucket)[-1]
    assert cancelled.kind == EntryKind.PLAYBOOK_CANCELLED
    assert cancelled.data["steps_cancelled"] == ["first", "second"]
    with pytest.raises(StateConflict):
        services.cancel(lead_actor, run)


def test_a_cancelled_gate_can_no_longer_be_approved(on_bucket, bucket, lead_actor, broker):
    run = services.start_run(lead_actor, on_bucket, playbook(tag("gated", approval=True)))

    services.cancel(lead_actor, run)

    with pytest.raises(StateConflict):
        services.approve(lead_actor, run.steps.get())
    assert not ActionRun.objects.exists()


def test_cancelling_keeps_an_action_another_run_waits_for(on_bucket, bucket, lead_actor, broker):
    one = services.start_run(lead_actor, on_bucket, playbook(tag("shared"), slug="one"))
    other = services.start_run(
        lead_actor, on_bucket, playbook(tag("shared"), tag("then"), slug="other")
    )

    services.cancel(lead_actor, one)

    assert ActionRun.objects.get().state == ActionState.QUEUED
    assert broker.deliver() == ["succeeded", "succeeded"]
    other.refresh_from_db()
    assert other.status == RunStatus.SUCCEEDED
    assert states(one) == [StepState.CANCELLED]
    assert set(tags_of(bucket)) == {INCIDENT_TAG, "shared", "then"}


# --- Failures ---------------------------------------------------------------------------


def test_a_failed_step_stops_the_run_with_the_aws_error(on_bucket, bucket, lead_actor, engine):
    steps = (tag("first", resource=MISSING_BUCKET), tag("second"))

    with engine():
        run = services.start_run(lead_actor, on_bucket, playbook(*steps))

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert states(run) == [StepState.FAILED, StepState.CANCELLED]
    failed = run.steps.get(key="first")
    assert failed.reason.startswith("NoSuchBucket: ")
    assert (failed.action_run.error_code, failed.action_run.attempts) == ("NoSuchBucket", 1)
    assert "does not exist" in failed.action_run.error_message
    assert run.steps.get(key="second").reason == "step first failed"
    entries = engine_entries(on_bucket)
    assert [e.kind for e in entries][-2:] == [EntryKind.ACTION_FAILED, EntryKind.PLAYBOOK_FINISHED]
    assert "NoSuchBucket" in entries[-2].summary and entries[-2].data["request_ids"]
    assert entries[-1].summary.endswith("failed at step first")
    assert tags_of(bucket) == {}


def test_a_failed_step_marked_continue_lets_the_run_go_on(on_bucket, bucket, lead_actor, engine):
    steps = (tag("first", resource=MISSING_BUCKET, on_failure="continue"), tag("second"))

    with engine():
        run = services.start_run(lead_actor, on_bucket, playbook(*steps))

    run.refresh_from_db()
    assert states(run) == [StepState.FAILED, StepState.SUCCEEDED]
    assert run.status == RunStatus.FAILED  # it did not all go as planned
    assert set(tags_of(bucket)) == {INCIDENT_TAG, "second"}


# --- Undo -------------------------------------------------------------------------------


def hold_step(step_id: str = "hold") -> dict[str, Any]:
    return {**tag(step_id), "action": UndoableTag.name}


def test_undo_takes_the_change_back_and_marks_its_steps_undone(
    on_bucket, bucket, lead_actor, responder_actor, engine
):
    with engine():
        run = services.start_run(lead_actor, on_bucket, playbook(hold_step()))
    action_run = run.steps.get().action_run
    assert tags_of(bucket) == {INCIDENT_TAG: on_bucket.reference, "hold": "done"}

    with engine():
        services.request_undo(responder_actor, action_run)

    action_run.refresh_from_db()
    assert action_run.state == ActionState.UNDONE and action_run.undone_at
    assert action_run.undo_requested_by == "rui"
    assert states(run) == [StepState.UNDONE]
    assert tags_of(bucket) == {}
    undone = engine_entries(on_bucket)[-1]
    assert (undone.kind, undone.actor_name) == (EntryKind.ACTION_UNDONE, "rui")
    assert undone.summary == f"Undone: Removed hold, {INCIDENT_TAG} from {BUCKET}"
    with pytest.raises(StateConflict):
        services.request_undo(responder_actor, action_run)


def test_undo_refuses_what_cannot_be_undone_or_changed_nothing(
    on_bucket, bucket, lead_actor, engine
):
    with engine():
        tagged, _ = services.request_action(lead_actor, on_bucket, "tag_resource", bucket_inputs())
        failed, _ = services.request_action(
            lead_actor, on_bucket, UndoableTag.name, bucket_inputs(MISSING_BUCKET)
        )
        unchanged, _ = services.request_action(
            lead_actor,
            on_bucket,
            UndoableTag.name,
            bucket_inputs(),  # tagged just above
        )

    with pytest.raises(StateConflict, match="cannot be undone"):
        services.request_undo(lead_actor, tagged)
    with pytest.raises(StateConflict, match="this one is failed"):
        services.request_undo(lead_actor, failed)
    with pytest.raises(StateConflict, match="changed nothing"):
        services.request_undo(lead_actor, unchanged)
    assert not ActionRun.objects.filter(state=ActionState.UNDOING).exists()


# --- Idempotency ------------------------------------------------------------------------


def test_asking_twice_returns_the_first_run(on_bucket, bucket, lead_actor, engine):
    with engine():
        first, created = services.request_action(
            lead_actor, on_bucket, "tag_resource", bucket_inputs(x="1")
        )
        again, created_again = services.request_action(
            lead_actor, on_bucket, "tag_resource", bucket_inputs(x="1")
        )
        other, _ = services.request_action(
            lead_actor, on_bucket, "tag_resource", bucket_inputs(x="2")
        )

    assert created and not created_again and first.pk == again.pk != other.pk
    first.refresh_from_db()
    assert first.state == ActionState.SUCCEEDED
    assert kinds(on_bucket).count(EntryKind.ACTION_REQUESTED) == 2


def test_asking_again_after_a_failure_tries_again(on_bucket, bucket, lead_actor, engine):
    inputs = bucket_inputs(MISSING_BUCKET)
    with engine():
        failed, _ = services.request_action(lead_actor, on_bucket, "tag_resource", inputs)
    failed.refresh_from_db()
    assert failed.state == ActionState.FAILED
    client("s3", REGION).create_bucket(
        Bucket=MISSING_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )

    with engine():
        again, created = services.request_action(lead_actor, on_bucket, "tag_resource", inputs)

    again.refresh_from_db()
    assert created and again.pk == failed.pk
    assert again.state == ActionState.SUCCEEDED and again.changed
    assert (again.attempts, again.error_code, again.error_message) == (1, "", "")
    assert tags_of(MISSING_BUCKET) == {INCIDENT_TAG: on_bucket.reference}


def test_two_playbooks_share_one_action_run_and_both_go_on(on_bucket, bucket, lead_actor, broker):
    one = services.start_run(lead_actor, on_bucket, playbook(tag("shared"), tag("one"), slug="a"))
    other = services.start_run(
        lead_actor, on_bucket, playbook(tag("shared"), tag("other"), slug="b")
    )
    assert len(broker.pending) == 1

    assert broker.deliver() == ["succeeded"] * 3

    for run in (one, other):
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED
    assert one.steps.get(key="shared").action_run == other.steps.get(key="shared").action_run
    assert set(tags_of(bucket)) == {INCIDENT_TAG, "shared", "one", "other"}
    # The shared action's own entry, one for each run's step, and one for each run's second.
    assert kinds(on_bucket).count(EntryKind.ACTION_SUCCEEDED) == 5


def test_each_run_sharing_an_action_records_its_steps_outcome(
    on_bucket, bucket, lead_actor, responder, responder_actor, broker
):
    one = services.start_run(lead_actor, on_bucket, playbook(tag("shared"), slug="a"))
    other = services.start_run(responder_actor, on_bucket, playbook(tag("shared"), slug="b"))

    broker.deliver()

    action_run = one.steps.get().action_run
    acted, *own = [
        e for e in engine_entries(on_bucket) if e.data.get("action_run") == action_run.pk
    ][1:]  # after the request
    assert acted.summary == f"Tagged {BUCKET} with {INCIDENT_TAG}, shared"
    assert [(s["run"], s["step"]) for s in acted.data["steps"]] == [
        (one.pk, "shared"),
        (other.pk, "shared"),
    ]
    assert [(e.kind, e.data["run"], e.data["step"], e.actor_name) for e in own] == [
        (EntryKind.ACTION_SUCCEEDED, one.pk, "shared", "lena"),
        (EntryKind.ACTION_SUCCEEDED, other.pk, "shared", "rui"),
    ]
    assert own[1].summary == (
        f"Step 1 of Playbook b: done by the action it shares ({acted.summary})"
    )


def test_each_run_sharing_a_failed_action_records_its_steps_failure(
    on_bucket, bucket, lead_actor, broker
):
    missing = tag("shared", resource=MISSING_BUCKET)
    one = services.start_run(lead_actor, on_bucket, playbook(missing, slug="a"))
    other = services.start_run(lead_actor, on_bucket, playbook(missing, slug="b"))

    broker.deliver()

    failed = [e for e in engine_entries(on_bucket) if e.kind == EntryKind.ACTION_FAILED]
    assert [(e.data.get("run"), e.data.get("shared")) for e in failed] == [
        (None, None),
        (one.pk, True),
        (other.pk, True),
    ]
    assert failed[2].summary.startswith("Step 1 of Playbook b: failed with the action it shares")
    assert "NoSuchBucket" in failed[2].summary
