"""Blocking public access to an S3 bucket on the simulated account, and undoing it."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from playbooks import actions, services
from playbooks.actions.s3 import ALL_BLOCKED
from playbooks.aws import AwsContext, client, session_for
from playbooks.choices import ActionState
from playbooks.models import ActionRun
from playbooks.tests.conftest import ACCOUNT_ID, REGION

pytestmark = pytest.mark.django_db

WHERE = {"account_id": ACCOUNT_ID, "region": REGION}
BUCKET = "exposed-reports"
# Blocks new public grants but honours those already made: a half-closed bucket.
HALF_BLOCKED = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": False,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": False,
}


@pytest.fixture
def s3(account):
    return client("s3", REGION)


@pytest.fixture
def bucket(s3) -> str:
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return BUCKET


def block(engine, actor, incident, bucket: str) -> ActionRun:
    with engine():
        run, _ = services.request_action(
            actor, incident, "s3_block_public_access", {"bucket": bucket, **WHERE}
        )
    run.refresh_from_db()
    return run


def undo(engine, actor, run: ActionRun) -> ActionRun:
    with engine():
        services.request_undo(actor, run)
    run.refresh_from_db()
    return run


def public_access_block(s3, bucket: str) -> dict[str, bool] | None:
    try:
        return s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError as error:
        assert error.response["Error"]["Code"] == "NoSuchPublicAccessBlockConfiguration"
        return None


def test_it_turns_on_all_four_flags_and_records_there_was_no_block(
    bucket, s3, incident, lead_actor, engine
):
    run = block(engine, lead_actor, incident, bucket)

    assert run.state == ActionState.SUCCEEDED and run.changed is True
    assert public_access_block(s3, bucket) == ALL_BLOCKED
    assert run.before == {"configuration": None}


def test_undo_deletes_the_block_when_there_was_none(bucket, s3, incident, lead_actor, engine):
    run = block(engine, lead_actor, incident, bucket)

    run = undo(engine, lead_actor, run)

    assert run.state == ActionState.UNDONE
    assert public_access_block(s3, bucket) is None


def test_undo_restores_the_earlier_configuration(bucket, s3, incident, lead_actor, engine):
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=HALF_BLOCKED)
    run = block(engine, lead_actor, incident, bucket)
    assert run.before == {"configuration": HALF_BLOCKED}
    assert public_access_block(s3, bucket) == ALL_BLOCKED

    run = undo(engine, lead_actor, run)

    assert run.state == ActionState.UNDONE
    assert public_access_block(s3, bucket) == HALF_BLOCKED


def test_a_bucket_already_blocked_is_left_as_is(bucket, s3, incident, lead_actor, engine):
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=ALL_BLOCKED)

    run = block(engine, lead_actor, incident, bucket)

    assert run.state == ActionState.SUCCEEDED and run.changed is False
    assert "already blocks all public access" in run.outputs["summary"]


def test_blocking_twice_changes_nothing_the_second_time(bucket, s3, account, incident):
    session = session_for(account, f"{incident.reference}.tests")
    ctx = AwsContext(session, REGION, incident_reference=incident.reference)
    action = actions.get("s3_block_public_access")
    inputs = action.validate({"bucket": bucket, **WHERE})

    first = action.apply(ctx, inputs, action.inspect(ctx, inputs))
    second = action.apply(ctx, inputs, action.inspect(ctx, inputs))

    assert (first.changed, second.changed) == (True, False)
    assert public_access_block(s3, bucket) == ALL_BLOCKED


def test_an_unknown_bucket_fails_the_run_with_the_aws_error_code(
    account, incident, lead_actor, engine
):
    run = block(engine, lead_actor, incident, "no-such-bucket")

    assert run.state == ActionState.FAILED
    assert run.error_code == "NoSuchBucket"


def test_a_responder_may_block_a_bucket(bucket, s3, incident, responder_actor, engine):
    run = block(engine, responder_actor, incident, bucket)

    assert run.state == ActionState.SUCCEEDED
    assert public_access_block(s3, bucket) == ALL_BLOCKED
