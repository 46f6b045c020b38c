"""The EC2 response actions on the simulated account: their effect, undo, and what they do
when asked twice or retried after a worker died."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from django.core.exceptions import PermissionDenied

from playbooks import services
from playbooks.actions import Outcome, get
from playbooks.actions import ec2 as ec2_actions
from playbooks.aws import AwsContext, client, session_for
from playbooks.choices import ActionState
from playbooks.models import ActionRun
from playbooks.tests.conftest import ACCOUNT_ID, REGION

pytestmark = pytest.mark.django_db

# moto launches from any image id; listing its images to pick one costs seconds.
ANY_AMI = "ami-0123456789abcdef0"


@dataclass
class Estate:
    """A VPC with a web tier: one instance with two interfaces, launched from a template,
    in an Auto Scaling group, registered with a target group, with an instance profile."""

    vpc_id: str
    subnet_id: str
    web_group: str
    admin_group: str
    instance_id: str
    interfaces: list[str]
    volumes: dict[str, str]
    target_group_arn: str
    app_profile_arn: str


def ec2() -> Any:
    return client("ec2", REGION)


@pytest.fixture
def estate(account) -> Estate:
    vpc_id = ec2().create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2().create_subnet(
        VpcId=vpc_id, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{REGION}a"
    )["Subnet"]["SubnetId"]
    web = ec2().create_security_group(GroupName="web", Description="web", VpcId=vpc_id)
    admin = ec2().create_security_group(GroupName="admin", Description="admin", VpcId=vpc_id)
    groups = [[web["GroupId"]], [web["GroupId"], admin["GroupId"]]]
    profile_arn = make_profile("app")

    ec2().create_launch_template(
        LaunchTemplateName="web-tier",
        LaunchTemplateData={
            "ImageId": ANY_AMI,
            "InstanceType": "t3.micro",
            "BlockDeviceMappings": [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 8}}],
        },
    )
    instance_id = launch(subnet_id, groups, LaunchTemplate={"LaunchTemplateName": "web-tier"})
    ec2().associate_iam_instance_profile(InstanceId=instance_id, IamInstanceProfile={"Name": "app"})
    instance = ec2().describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][
        0
    ]

    autoscaling = client("autoscaling", REGION)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web",
        LaunchTemplate={"LaunchTemplateName": "web-tier"},
        MinSize=0,
        MaxSize=3,
        DesiredCapacity=0,
        VPCZoneIdentifier=subnet_id,
    )
    autoscaling.attach_instances(InstanceIds=[instance_id], AutoScalingGroupName="web")
    elbv2 = client("elbv2", REGION)
    target_group = elbv2.create_target_group(
        Name="web", Protocol="HTTP", Port=80, VpcId=vpc_id, TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=target_group, Targets=[{"Id": instance_id, "Port": 8080}])

    return Estate(
        vpc_id=vpc_id,
        subnet_id=subnet_id,
        web_group=web["GroupId"],
        admin_group=admin["GroupId"],
        instance_id=instance_id,
        interfaces=[i["NetworkInterfaceId"] for i in instance["NetworkInterfaces"]],
        volumes={m["Ebs"]["VolumeId"]: m["DeviceName"] for m in instance["BlockDeviceMappings"]},
        target_group_arn=target_group,
        app_profile_arn=profile_arn,
    )


def launch(subnet_id: str, groups: list[list[str]], **extra: Any) -> str:
    """An instance with one interface per entry of `groups`, which shuts down by terminating."""
    interfaces = [
        {"DeviceIndex": index, "SubnetId": subnet_id, "Groups": ids}
        for index, ids in enumerate(groups)
    ]
    extra.setdefault("ImageId", ANY_AMI)
    launched = ec2().run_instances(
        MinCount=1,
        MaxCount=1,
        NetworkInterfaces=interfaces,
        InstanceInitiatedShutdownBehavior="terminate",
        **extra,
    )
    return str(launched["Instances"][0]["InstanceId"])


def make_profile(name: str) -> str:
    iam = client("iam", REGION)
    iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")
    arn = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Arn"]
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return str(arn)


def ask(engine: Any, actor: Any, incident: Any, action: str, **inputs: Any) -> ActionRun:
    """Request the action through the engine, let it run, and return its action run."""
    with engine():
        run, _ = services.request_action(
            actor, incident, action, {"account_id": ACCOUNT_ID, "region": REGION, **inputs}
        )
    run.refresh_from_db()
    return run


def undo(engine: Any, actor: Any, run: ActionRun) -> ActionRun:
    with engine():
        services.request_undo(actor, run)
    run.refresh_from_db()
    return run


def context(account: Any, incident: Any, action_run_id: int) -> AwsContext:
    """What a worker acts with, for calling an action directly as action run `action_run_id`."""
    session = session_for(account, "tests")
    return AwsContext(
        session, REGION, incident_reference=incident.reference, action_run_id=action_run_id
    )


def apply(ctx: AwsContext, action: str, **inputs: Any) -> Outcome:
    chosen = get(action)
    cleaned = chosen.validate({"account_id": ACCOUNT_ID, "region": REGION, **inputs})
    return chosen.apply(ctx, cleaned, chosen.inspect(ctx, cleaned))


def groups_of(interface_id: str) -> list[str]:
    found = ec2().describe_network_interfaces(NetworkInterfaceIds=[interface_id])
    return [g["GroupId"] for g in found["NetworkInterfaces"][0]["Groups"]]


def tags_of(resource_id: str) -> dict[str, str]:
    found = ec2().describe_tags(Filters=[{"Name": "resource-id", "Values": [resource_id]}])
    return {t["Key"]: t["Value"] for t in found["Tags"]}


def attribute(instance_id: str, name: str) -> Any:
    found = ec2().describe_instance_attribute(InstanceId=instance_id, Attribute=name)
    return found[name[0].upper() + name[1:]]["Value"]


def groups_named(vpc_id: str, name: str) -> list[dict[str, Any]]:
    return ec2().describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": [name]}]
    )["SecurityGroups"]


def record_interface_moves(ctx: AwsContext) -> list[tuple[str, list[str]]]:
    """The groups each ModifyNetworkInterfaceAttribute call made by `ctx` asks for, in order."""
    moves: list[tuple[str, list[str]]] = []

    def note(params: dict[str, Any], **_: Any) -> None:
        moves.append((params["NetworkInterfaceId"], params["Groups"]))

    ctx("ec2").meta.events.register(
        "provide-client-params.ec2.ModifyNetworkInterfaceAttribute", note
    )
    return moves


# ---------------------------------------------------------------------------------------
# Isolation


def test_isolation_moves_every_interface_to_a_rule_free_group_and_undo_restores_them(
    estate, incident, lead_actor, engine
):
    run = ask(engine, lead_actor, incident, "ec2_isolate_instance", instance_id=estate.instance_id)

    assert run.state == ActionState.SUCCEEDED and run.changed is True
    [isolation] = groups_named(estate.vpc_id, "ir-portal-isolation")
    assert isolation["IpPermissions"] == [] and isolation["IpPermissionsEgress"] == []
    assert [groups_of(i) for i in estate.interfaces] == [[isolation["GroupId"]]] * 2
    assert attribute(estate.instance_id, "disableApiTermination") is True
    assert attribute(estate.instance_id, "instanceInitiatedShutdownBehavior") == "stop"
    assert run.before["interfaces"] == {
        estate.interfaces[0]: [estate.web_group],
        estate.interfaces[1]: [estate.web_group, estate.admin_group],
    }
    assert run.outputs["isolation_group_id"] == isolation["GroupId"]
    assert sorted(run.outputs["interfaces_moved"]) == sorted(estate.interfaces)

    again = ask(
        engine, lead_actor, incident, "ec2_isolate_instance", instance_id=estate.instance_id
    )
    assert again.pk == run.pk and ActionRun.objects.count() == 1

    assert undo(engine, lead_actor, run).state == ActionState.UNDONE
    assert groups_of(estate.interfaces[0]) == [estate.web_group]
    assert groups_of(estate.interfaces[1]) == [estate.web_group, estate.admin_group]
    assert attribute(estate.instance_id, "disableApiTermination") is False
    assert attribute(estate.instance_id, "instanceInitiatedShutdownBehavior") == "terminate"
    leftover = [tags_of(r) for r in [estate.instance_id, *estate.interfaces]]
    assert not [key for tags in leftover for key in tags if key.startswith("ir-portal:")]


def test_isolating_twice_changes_nothing_and_a_vpc_has_one_isolation_group(
    estate, account, incident
):
    first = context(account, incident, 1)
    moves = record_interface_moves(first)
    done = apply(first, "ec2_isolate_instance", instance_id=estate.instance_id)

    [allow_all] = groups_named(estate.vpc_id, "ir-portal-isolation-allow-all")
    isolation = done.outputs["isolation_group_id"]
    # Through the allow-all group first, so that open connections become untracked.
    assert moves == [
        (estate.interfaces[0], [allow_all["GroupId"]]),
        (estate.interfaces[0], [isolation]),
        (estate.interfaces[1], [allow_all["GroupId"]]),
        (estate.interfaces[1], [isolation]),
    ]
    for direction in ("IpPermissions", "IpPermissionsEgress"):
        [rule] = allow_all[direction]
        assert rule["IpProtocol"] == "-1"
        assert rule["IpRanges"][0]["CidrIp"] == "0.0.0.0/0"
        assert rule["Ipv6Ranges"][0]["CidrIpv6"] == "::/0"

    second = context(account, incident, 2)
    moves = record_interface_moves(second)
    again = apply(second, "ec2_isolate_instance", instance_id=estate.instance_id)
    assert again.changed is False and "already isolated" in again.summary
    assert moves == []

    neighbour = launch(estate.subnet_id, [[estate.web_group]])
    other = apply(context(account, incident, 3), "ec2_isolate_instance", instance_id=neighbour)
    assert other.changed and other.outputs["isolation_group_id"] == isolation
    assert len(groups_named(estate.vpc_id, "ir-portal-isolation")) == 1
    assert len(groups_named(estate.vpc_id, "ir-portal-isolation-allow-all")) == 1


def test_workers_racing_to_make_the_isolation_group_share_the_one_made_first(
    estate, account, incident
):
    ctx = context(account, incident, 1)
    raced = []

    def other_worker_first(params: dict[str, Any], **_: Any) -> None:
        if params["GroupName"] == "ir-portal-isolation" and not raced:
            made = ec2().create_security_group(
                GroupName="ir-portal-isolation", Description="theirs", VpcId=estate.vpc_id
            )
            raced.append(made["GroupId"])

    ctx("ec2").meta.events.register(
        "provide-client-params.ec2.CreateSecurityGroup", other_worker_first
    )
    done = apply(ctx, "ec2_isolate_instance", instance_id=estate.instance_id)

    [isolation] = groups_named(estate.vpc_id, "ir-portal-isolation")
    assert done.outputs["isolation_group_id"] == raced[0] == isolation["GroupId"]
    # Theirs came with AWS's default egress rule; isolation removes it.
    assert isolation["IpPermissionsEgress"] == []


def test_a_retry_after_a_lost_commit_still_knows_the_original_groups(estate, account, incident):
    first = apply(
        context(account, incident, 7), "ec2_isolate_instance", instance_id=estate.instance_id
    )
    retried = apply(
        context(account, incident, 7), "ec2_isolate_instance", instance_id=estate.instance_id
    )

    assert retried.changed is True
    assert retried.before == first.before
    assert retried.outputs == first.outputs
    inputs = {"account_id": ACCOUNT_ID, "region": REGION, "instance_id": estate.instance_id}
    get("ec2_isolate_instance").undo(context(account, incident, 7), inputs, retried)
    assert groups_of(estate.interfaces[1]) == [estate.web_group, estate.admin_group]


# ---------------------------------------------------------------------------------------
# Out of service


def target_health(target_group_arn: str) -> list[dict[str, Any]]:
    found = client("elbv2", REGION).describe_target_health(TargetGroupArn=target_group_arn)
    return [d["Target"] for d in found["TargetHealthDescriptions"]]


def lifecycle_state(instance_id: str) -> str:
    found = client("autoscaling", REGION).describe_auto_scaling_instances(InstanceIds=[instance_id])
    return str(found["AutoScalingInstances"][0]["LifecycleState"])


def test_taking_out_of_service_means_standby_and_no_target_group_and_undo_returns_it(
    estate, account, incident, lead_actor, engine
):
    run = ask(
        engine, lead_actor, incident, "ec2_take_out_of_service", instance_id=estate.instance_id
    )

    assert run.state == ActionState.SUCCEEDED and run.changed is True
    assert lifecycle_state(estate.instance_id) == "Standby"
    assert target_health(estate.target_group_arn) == []
    assert run.before == {
        "auto_scaling_group": "web",
        "target_groups": [{"arn": estate.target_group_arn, "name": "web", "port": 8080}],
    }

    again = apply(
        context(account, incident, run.pk + 1),
        "ec2_take_out_of_service",
        instance_id=estate.instance_id,
    )
    assert again.changed is False and "Standby in web" in again.summary

    assert undo(engine, lead_actor, run).state == ActionState.UNDONE
    assert lifecycle_state(estate.instance_id) == "InService"
    assert target_health(estate.target_group_arn) == [{"Id": estate.instance_id, "Port": 8080}]


def test_an_instance_outside_any_group_is_left_alone(estate, incident, lead_actor, engine):
    loner = launch(estate.subnet_id, [[estate.web_group]])

    run = ask(engine, lead_actor, incident, "ec2_take_out_of_service", instance_id=loner)

    assert run.state == ActionState.SUCCEEDED and run.changed is False
    assert "no Auto Scaling group and no target group" in run.outputs["summary"]


# ---------------------------------------------------------------------------------------
# Snapshots


def snapshots_of(action_run_id: int) -> list[dict[str, Any]]:
    return ec2().describe_snapshots(
        OwnerIds=["self"],
        Filters=[{"Name": "tag:ir-portal:action-run", "Values": [str(action_run_id)]}],
    )["Snapshots"]


def test_every_volume_is_snapshotted_once_even_when_the_commit_is_lost(
    estate, account, incident, lead_actor, engine
):
    run = ask(engine, lead_actor, incident, "ec2_snapshot_volumes", instance_id=estate.instance_id)

    assert run.state == ActionState.SUCCEEDED and run.changed is True
    taken = run.outputs["snapshots"]
    assert set(taken) == set(estate.volumes) and len(estate.volumes) == 2
    for snapshot in snapshots_of(run.pk):
        tags = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
        assert taken[snapshot["VolumeId"]] == snapshot["SnapshotId"]
        assert tags["ir-portal:incident"] == incident.reference
        assert tags["ir-portal:volume"] == snapshot["VolumeId"]
        assert tags["ir-portal:device"] == estate.volumes[snapshot["VolumeId"]]

    # The worker's commit was lost: the next attempt of the same run takes no second one.
    retried = apply(
        context(account, incident, run.pk), "ec2_snapshot_volumes", instance_id=estate.instance_id
    )
    assert retried.outputs["snapshots"] == taken
    assert len(snapshots_of(run.pk)) == 2


# ---------------------------------------------------------------------------------------
# Quarantine profile


def profile_arn_of(instance_id: str) -> str | None:
    found = ec2().describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )["IamInstanceProfileAssociations"]
    return found[0]["IamInstanceProfile"]["Arn"] if found else None


def test_quarantine_swaps_in_a_deny_all_profile_and_undo_gives_the_old_one_back(
    estate, account, incident, lead_actor, responder_actor, engine
):
    with pytest.raises(PermissionDenied):
        ask(
            engine,
            responder_actor,
            incident,
            "ec2_quarantine_instance_profile",
            instance_id=estate.instance_id,
        )

    run = ask(
        engine,
        lead_actor,
        incident,
        "ec2_quarantine_instance_profile",
        instance_id=estate.instance_id,
    )

    assert run.state == ActionState.SUCCEEDED and run.changed is True
    assert profile_arn_of(estate.instance_id) == run.outputs["profile_arn"]
    assert run.outputs["profile_arn"].endswith(":instance-profile/ir-portal-quarantine")
    assert run.before == {"profile_arn": estate.app_profile_arn}
    iam = client("iam", REGION)
    role = iam.get_role(RoleName="ir-portal-quarantine")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    policy = iam.get_role_policy(RoleName="ir-portal-quarantine", PolicyName="ir-portal-deny-all")
    document = policy["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    assert document["Statement"] == [{"Effect": "Deny", "Action": "*", "Resource": "*"}]

    again = apply(
        context(account, incident, run.pk + 1),
        "ec2_quarantine_instance_profile",
        instance_id=estate.instance_id,
    )
    assert again.changed is False and "already uses" in again.summary

    assert undo(engine, lead_actor, run).state == ActionState.UNDONE
    assert profile_arn_of(estate.instance_id) == estate.app_profile_arn


def test_quarantining_an_instance_without_a_profile_is_undone_by_removing_it(
    estate, incident, lead_actor, engine
):
    bare = launch(estate.subnet_id, [[estate.web_group]])

    run = ask(engine, lead_actor, incident, "ec2_quarantine_instance_profile", instance_id=bare)
    assert run.before == {"profile_arn": None}
    assert profile_arn_of(bare) == run.outputs["profile_arn"]

    undo(engine, lead_actor, run)
    assert profile_arn_of(bare) is None
    assert "ir-portal:quarantined-by" not in tags_of(bare)


def test_a_fresh_quarantine_profile_is_waited_for_while_ec2_does_not_know_it(monkeypatch):
    """moto knows a new profile at once; real EC2 may take seconds, so Stubber plays it."""
    monkeypatch.setattr(ec2_actions, "FRESH_PROFILE_WAITS", (0.0,))
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x")
    ctx = AwsContext(session, REGION, incident_reference="IR-2026-0001", action_run_id=1)
    arn = f"arn:aws:iam::{ACCOUNT_ID}:instance-profile/ir-portal-quarantine"
    unknown_yet = f"Value ({arn}) for parameter iamInstanceProfile.arn is invalid."
    request = {"InstanceId": "i-0123456789abcdef0", "IamInstanceProfile": {"Arn": arn}}
    association = {
        "IamInstanceProfileAssociation": {
            "AssociationId": "iip-assoc-0123456789abcdef0",
            "InstanceId": "i-0123456789abcdef0",
            "IamInstanceProfile": {"Arn": arn, "Id": "AIPAEXAMPLE"},
            "State": "associating",
        }
    }

    with Stubber(ctx("ec2")) as stub:
        stub.add_client_error(
            "associate_iam_instance_profile",
            "InvalidParameterValue",
            unknown_yet,
            expected_params=request,
        )
        stub.add_response("associate_iam_instance_profile", association, request)
        ec2_actions._attach_profile(ctx, "i-0123456789abcdef0", None, arn, fresh=True)
        stub.assert_no_pending_responses()

        # A profile that was there already is not waited for: the error is real.
        stub.add_client_error(
            "associate_iam_instance_profile",
            "InvalidParameterValue",
            unknown_yet,
            expected_params=request,
        )
        with pytest.raises(ClientError):
            ec2_actions._attach_profile(ctx, "i-0123456789abcdef0", None, arn, fresh=False)


# ---------------------------------------------------------------------------------------
# Errors


def test_an_unknown_instance_fails_each_action_with_the_aws_error_code(
    account, incident, lead_actor, engine
):
    for action in (
        "ec2_isolate_instance",
        "ec2_take_out_of_service",
        "ec2_snapshot_volumes",
        "ec2_quarantine_instance_profile",
    ):
        run = ask(engine, lead_actor, incident, action, instance_id="i-0123456789abcdef0")
        assert (run.state, run.error_code) == (ActionState.FAILED, "InvalidInstanceID.NotFound")
