"""The demo estate `make run` seeds in the simulated account, and the command that serves it."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from cases.models import Incident, TimelineEntry
from playbooks.aws import client, session_client, session_for, session_name
from playbooks.definitions import incident_context
from playbooks.estate import (
    DEMO_INCIDENT_TITLE,
    EXTERNAL_ID,
    LOG_BUCKET,
    NAME,
    PUBLIC_BUCKET,
    RESPONSE_ROLE,
    SECURITY_ACCOUNT,
    WORKLOAD_ACCOUNT,
    Estate,
    seed_estate,
)
from playbooks.management.commands import simulated_aws
from playbooks.models import CloudAccount
from playbooks.tests.conftest import REGION

pytestmark = pytest.mark.django_db


@pytest.fixture
def estate(aws: str) -> Estate:
    return seed_estate(REGION)


def instances_in_account() -> list[str]:
    reservations = client("ec2", REGION).describe_instances()["Reservations"]
    return sorted(i["InstanceId"] for r in reservations for i in r["Instances"])


def test_the_auto_scaling_group_keeps_two_healthy_instances_behind_the_load_balancer(estate):
    group = client("autoscaling", REGION).describe_auto_scaling_groups(
        AutoScalingGroupNames=[NAME]
    )["AutoScalingGroups"][0]
    assert len(estate.scaled_instance_ids) == 2
    assert sorted(i["InstanceId"] for i in group["Instances"]) == sorted(estate.scaled_instance_ids)
    assert {i["LifecycleState"] for i in group["Instances"]} == {"InService"}

    health = client("elbv2", REGION).describe_target_health(TargetGroupArn=estate.target_group_arn)
    targets = {
        t["Target"]["Id"]: t["TargetHealth"]["State"] for t in health["TargetHealthDescriptions"]
    }
    assert targets == {instance: "healthy" for instance in estate.scaled_instance_ids}
    listeners = client("elbv2", REGION).describe_listeners(LoadBalancerArn=estate.load_balancer_arn)
    assert listeners["Listeners"][0]["DefaultActions"][0]["TargetGroupArn"] == (
        estate.target_group_arn
    )


def test_web_1_runs_tagged_production_with_a_data_volume_and_a_profile(estate):
    ec2 = client("ec2", REGION)
    instance = ec2.describe_instances(InstanceIds=[estate.web_1_instance_id])["Reservations"][0][
        "Instances"
    ][0]
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags == {"Name": "web-1", "env": "production"}
    assert instance["SubnetId"] in estate.subnet_ids
    volumes = [m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]]
    assert estate.web_1_volume_id in volumes and len(volumes) == 2
    assert instance["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/{NAME}")


def test_the_users_have_active_access_keys(estate):
    iam = client("iam", REGION)
    for user, key_id in estate.access_key_ids.items():
        keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        assert [(k["AccessKeyId"], k["Status"]) for k in keys] == [(key_id, "Active")]
    assert set(estate.access_key_ids) == {"alice", "deploy-bot"}


def test_the_response_role_trusts_the_portal_account_with_the_external_id(estate):
    role = client("iam", REGION).get_role(RoleName=RESPONSE_ROLE)["Role"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{WORKLOAD_ACCOUNT}:root"}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}
    assert set(estate.role_arns) == {"ci-deployer", RESPONSE_ROLE}


def test_the_assets_bucket_is_public_and_the_logs_bucket_is_not(estate):
    s3 = client("s3", REGION)
    with pytest.raises(s3.exceptions.ClientError, match="NoSuchPublicAccessBlock"):
        s3.get_public_access_block(Bucket=PUBLIC_BUCKET)
    (statement,) = json.loads(s3.get_bucket_policy(Bucket=PUBLIC_BUCKET)["Policy"])["Statement"]
    assert (statement["Principal"], statement["Action"]) == ("*", "s3:GetObject")

    blocked = s3.get_public_access_block(Bucket=LOG_BUCKET)["PublicAccessBlockConfiguration"]
    assert set(blocked.values()) == {True} and len(blocked) == 4


def test_it_registers_the_workload_and_the_security_account(estate):
    workload = CloudAccount.objects.get(account_id=WORKLOAD_ACCOUNT)
    security = CloudAccount.objects.get(account_id=SECURITY_ACCOUNT)
    assert workload.role_arn == f"arn:aws:iam::{WORKLOAD_ACCOUNT}:role/{RESPONSE_ROLE}"
    assert (workload.environment, workload.regions) == ("demo", [REGION])
    assert not workload.is_security_account
    assert security.is_security_account
    assert security.role_arn == f"arn:aws:iam::{SECURITY_ACCOUNT}:role/{RESPONSE_ROLE}"


def test_a_security_account_registered_by_hand_stays_the_security_account(aws):
    own = CloudAccount.objects.create(
        account_id="999988887777", name="Our security", is_security_account=True
    )

    seed_estate(REGION)

    assert CloudAccount.objects.get(is_security_account=True) == own
    assert CloudAccount.objects.filter(account_id=SECURITY_ACCOUNT).exists()


def test_the_security_account_is_an_account_of_its_own(estate):
    security = CloudAccount.objects.get(account_id=SECURITY_ACCOUNT)
    session = session_for(security, session_name("test", "estate"))

    identity = session_client(session, "sts", REGION).get_caller_identity()
    assert identity["Account"] == SECURITY_ACCOUNT
    role = session_client(session, "iam", REGION).get_role(RoleName=RESPONSE_ROLE)["Role"]
    assert role["Arn"] == security.role_arn
    # The workload's users are not there.
    assert session_client(session, "iam", REGION).list_users()["Users"] == []


def test_the_demo_incident_names_web_1_for_the_playbook(estate):
    incident = Incident.objects.get(title=DEMO_INCIDENT_TITLE)
    assert incident.reference == estate.incident and incident.is_open
    context = incident_context(incident)
    assert context["instance"]["id"] == estate.web_1_instance_id
    assert (context["account_id"], context["region"]) == (WORKLOAD_ACCOUNT, REGION)


def test_seeding_twice_changes_nothing(estate):
    instances = instances_in_account()
    entries = TimelineEntry.objects.count()

    again = seed_estate(REGION)

    assert again == estate
    assert instances_in_account() == instances and len(instances) == 3
    assert client("ec2", REGION).describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [NAME]}])[
        "Vpcs"
    ] == [client("ec2", REGION).describe_vpcs(VpcIds=[estate.vpc_id])["Vpcs"][0]]
    assert CloudAccount.objects.count() == 2
    assert Incident.objects.filter(title=DEMO_INCIDENT_TITLE).count() == 1
    assert TimelineEntry.objects.count() == entries


def test_after_a_restart_the_demo_incident_follows_the_new_web_1(estate, aws):
    # moto forgets everything when it stops; the database remembers the old web-1.
    requests.post(f"{aws}/moto-api/reset", timeout=10).raise_for_status()

    rebuilt = seed_estate(REGION)

    assert rebuilt.web_1_instance_id != estate.web_1_instance_id
    assert rebuilt.incident == estate.incident
    (resource,) = Incident.objects.get(reference=estate.incident).resources.all()
    assert resource.identifier.endswith(f"instance/{rebuilt.web_1_instance_id}")


def test_it_refuses_to_seed_a_real_account(aws, settings):
    settings.AWS_ENDPOINT_URL = ""
    with pytest.raises(ImproperlyConfigured, match="AWS_ENDPOINT_URL"):
        seed_estate(REGION)
    assert not CloudAccount.objects.exists()


@pytest.mark.parametrize(
    ("endpoint", "port"), [("", 5000), ("http://127.0.0.1:5123", 5123), ("http://moto", 5000)]
)
def test_simulated_aws_serves_where_aws_endpoint_url_points(settings, endpoint, port):
    settings.AWS_ENDPOINT_URL = endpoint
    assert simulated_aws._default_port() == port


def test_simulated_aws_refuses_a_port_already_taken(moto_server):
    taken = moto_server.rsplit(":", 1)[1]
    with pytest.raises(CommandError, match=f"127.0.0.1:{taken}"):
        call_command("simulated_aws", port=int(taken))


def test_simulated_aws_serves_an_account_and_stops_on_sigterm():
    server = subprocess.Popen(
        [sys.executable, "manage.py", "simulated_aws", "--port", "0", "--no-seed"],
        cwd=Path(settings.BASE_DIR),
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "irportal.test_settings"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = output_of(server)
    try:
        endpoint = read_line(lines, "Simulated AWS (moto) at ").rsplit(" ", 1)[1]
        read_line(lines, "Ready")
        sts = boto3.client(
            "sts",
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id="demo",
            aws_secret_access_key="demo",
        )
        assert sts.get_caller_identity()["Account"] == WORKLOAD_ACCOUNT

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        read_line(lines, "Simulated AWS stopped.", timeout=5)
    finally:
        server.kill()
        server.wait()


def read_line(lines: queue.Queue[str], start: str, timeout: float = 120) -> str:
    """The first line of output that starts so; the wait only guards against a hang."""
    deadline = time.monotonic() + timeout
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line.startswith(start):
            return line.strip()
        seen.append(line)
    raise AssertionError(f"no line starting {start!r}; saw {''.join(seen)!r}")


def output_of(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's output, line by line, read in a thread so a test can wait with a limit."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout], daemon=True
    ).start()
    return lines
