"""Tagging resources with the incident reference: EC2 instances, IAM users and roles by ARN,
S3 buckets (whose other tags must survive), on the simulated account."""

from __future__ import annotations

import json

import pytest

from playbooks import actions, services
from playbooks.actions.tagging import INCIDENT_TAG
from playbooks.aws import AwsContext, client, session_for
from playbooks.choices import ActionState
from playbooks.models import ActionRun
from playbooks.tests.conftest import ACCOUNT_ID, REGION

pytestmark = pytest.mark.django_db

WHERE = {"account_id": ACCOUNT_ID, "region": REGION}
ANY_AMI = "ami-0123456789abcdef0"


def tag(engine, actor, incident, resource: str, **extra: str) -> ActionRun:
    with engine():
        run, _ = services.request_action(
            actor, incident, "tag_resource", {"resource": resource, "tags": extra, **WHERE}
        )
    run.refresh_from_db()
    return run


def pairs(tags: list[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags}


@pytest.fixture
def instance_id(account) -> str:
    # moto checks no AMI unless told to, and listing its thousands of images takes seconds.
    launched = client("ec2", REGION).run_instances(ImageId=ANY_AMI, MinCount=1, MaxCount=1)
    return launched["Instances"][0]["InstanceId"]


@pytest.fixture
def iam(account):
    return client("iam", REGION)


@pytest.fixture
def s3(account):
    return client("s3", REGION)


def test_it_tags_an_instance_by_its_id(instance_id, incident, lead_actor, engine):
    run = tag(engine, lead_actor, incident, instance_id, stage="contain")

    assert run.state == ActionState.SUCCEEDED and run.changed is True
    found = client("ec2", REGION).describe_tags(
        Filters=[{"Name": "resource-id", "Values": [instance_id]}]
    )
    assert pairs(found["Tags"]) == {INCIDENT_TAG: incident.reference, "stage": "contain"}


def test_it_tags_a_user_by_its_arn(iam, incident, lead_actor, engine):
    arn = iam.create_user(UserName="mallory", Path="/contractors/")["User"]["Arn"]

    run = tag(engine, lead_actor, incident, arn)

    assert run.state == ActionState.SUCCEEDED
    assert pairs(iam.list_user_tags(UserName="mallory")["Tags"]) == {
        INCIDENT_TAG: incident.reference
    }


def test_it_tags_a_role_by_its_arn(iam, incident, lead_actor, engine):
    trust = {"Version": "2012-10-17", "Statement": []}
    arn = iam.create_role(RoleName="web-app", AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]

    run = tag(engine, lead_actor, incident, arn)

    assert run.state == ActionState.SUCCEEDED
    assert pairs(iam.list_role_tags(RoleName="web-app")["Tags"]) == {
        INCIDENT_TAG: incident.reference
    }


@pytest.mark.parametrize("named_by", ["name", "arn"])
def test_a_bucket_keeps_its_other_tags(named_by, s3, incident, lead_actor, engine):
    s3.create_bucket(
        Bucket="payroll-exports", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    s3.put_bucket_tagging(
        Bucket="payroll-exports", Tagging={"TagSet": [{"Key": "owner", "Value": "finance"}]}
    )
    resource = "payroll-exports" if named_by == "name" else "arn:aws:s3:::payroll-exports"

    run = tag(engine, lead_actor, incident, resource)

    assert run.state == ActionState.SUCCEEDED
    tags = pairs(s3.get_bucket_tagging(Bucket="payroll-exports")["TagSet"])
    assert tags == {"owner": "finance", INCIDENT_TAG: incident.reference}


def test_an_untagged_bucket_gets_the_incident_tag(s3, incident, lead_actor, engine):
    s3.create_bucket(
        Bucket="payroll-exports", CreateBucketConfiguration={"LocationConstraint": REGION}
    )

    run = tag(engine, lead_actor, incident, "payroll-exports")

    assert run.state == ActionState.SUCCEEDED and run.before == {"tags": {}}
    tags = pairs(s3.get_bucket_tagging(Bucket="payroll-exports")["TagSet"])
    assert tags == {INCIDENT_TAG: incident.reference}


def test_tagging_twice_changes_nothing_the_second_time(instance_id, account, incident):
    session = session_for(account, f"{incident.reference}.tests")
    ctx = AwsContext(session, REGION, incident_reference=incident.reference)
    action = actions.get("tag_resource")
    inputs = action.validate({"resource": instance_id, **WHERE})

    first = action.apply(ctx, inputs, action.inspect(ctx, inputs))
    second = action.apply(ctx, inputs, action.inspect(ctx, inputs))

    assert (first.changed, second.changed) == (True, False)
    assert "already carries the tags" in second.summary


def test_a_later_run_adds_only_the_missing_tags(instance_id, incident, lead_actor, engine):
    tag(engine, lead_actor, incident, instance_id)

    run = tag(engine, lead_actor, incident, instance_id, stage="eradicate")

    assert run.changed is True
    assert run.outputs["added"] == {"stage": "eradicate"}


def test_an_unknown_bucket_fails_the_run_with_the_aws_error_code(
    account, incident, lead_actor, engine
):
    run = tag(engine, lead_actor, incident, "no-such-bucket")

    assert run.state == ActionState.FAILED
    assert run.error_code == "NoSuchBucket"


def test_an_unknown_user_fails_the_run_with_the_aws_error_code(
    account, incident, lead_actor, engine
):
    run = tag(engine, lead_actor, incident, f"arn:aws:iam::{ACCOUNT_ID}:user/nobody")

    assert run.state == ActionState.FAILED
    assert run.error_code == "NoSuchEntity"


def test_a_bucket_whose_name_looks_like_an_ec2_prefix_is_tagged_as_a_bucket(
    s3, incident, lead_actor, engine
):
    s3.create_bucket(
        Bucket="snap-backups", CreateBucketConfiguration={"LocationConstraint": REGION}
    )

    run = tag(engine, lead_actor, incident, "snap-backups")

    assert run.state == ActionState.SUCCEEDED
