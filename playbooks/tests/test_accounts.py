"""Prepared access: IR Portal checks that it can still assume each account's response role."""

from __future__ import annotations

import json
import socket
from io import StringIO

import pytest
import requests
from celery.schedules import crontab
from django.core.management import call_command

from irportal.celery import TASK_ROUTES, app
from playbooks import aws as aws_module
from playbooks import tasks
from playbooks.accounts import check_access
from playbooks.aws import client
from playbooks.choices import Environment
from playbooks.models import CloudAccount
from playbooks.tests.conftest import ACCOUNT_ID

pytestmark = pytest.mark.django_db

OTHER_ACCOUNT = "210987654321"


def register(account_id: str, role_arn: str) -> CloudAccount:
    return CloudAccount.objects.create(
        account_id=account_id,
        name=f"Account {account_id}",
        environment=Environment.DEMO,
        role_arn=role_arn,
    )


@pytest.fixture
def iam_enforced(aws, account, monkeypatch):
    """moto checks IAM permissions from here on, and IR Portal's own credentials are a user's
    who may assume roles named ir-portal-responder and no other, as a real deployment's are.
    moto's STS grants any AssumeRole otherwise: it reads neither trust policy nor external id."""
    iam = client("iam")
    iam.create_user(UserName="ir-portal")
    iam.put_user_policy(
        UserName="ir-portal",
        PolicyName="assume-response-roles",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Resource": "arn:aws:iam::*:role/ir-portal-responder",
                    }
                ],
            }
        ),
    )
    key = iam.create_access_key(UserName="ir-portal")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    # A user's key signs alone: moto takes a session token beside it for a forged key.
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    # The deployment's clients share one boto3 session, which read the environment once.
    monkeypatch.setattr(aws_module.Credentials, "_shared", None)

    answer = requests.post(f"{aws}/moto-api/reset-auth", data=b"0", timeout=10).json()
    try:
        yield
    finally:
        previous = str(answer["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]).encode()
        requests.post(f"{aws}/moto-api/reset-auth", data=previous, timeout=10)


def test_the_registered_response_role_can_be_assumed(account):
    checked = check_access(account)

    account.refresh_from_db()
    assert (account.check_ok, account.check_message) == (True, "ok")
    assert account.checked_at is not None and checked.check_ok


def test_a_role_sts_refuses_fails_the_check(iam_enforced, account):
    refused = register(OTHER_ACCOUNT, f"arn:aws:iam::{OTHER_ACCOUNT}:role/someone-elses-role")

    check_access(refused)
    check_access(account)

    refused.refresh_from_db()
    assert refused.check_ok is False
    assert refused.check_message.startswith("ClientError")
    assert "AccessDenied" in refused.check_message
    # The same credentials still get into the account whose role allows them.
    account.refresh_from_db()
    assert account.check_ok is True


def test_a_role_that_answers_from_another_account_fails_the_check(aws):
    misfiled = register(OTHER_ACCOUNT, f"arn:aws:iam::{ACCOUNT_ID}:role/ir-portal-responder")

    check_access(misfiled)

    misfiled.refresh_from_db()
    assert misfiled.check_ok is False
    assert misfiled.check_message == f"the role answers from account {ACCOUNT_ID}"


def test_an_unreachable_endpoint_fails_the_check(account, settings):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{port}"

    check_access(account)

    account.refresh_from_db()
    assert account.check_ok is False
    assert account.check_message.startswith("EndpointConnectionError")


def test_check_accounts_exits_zero_when_every_account_is_reachable(account):
    out, err = StringIO(), StringIO()

    call_command("check_accounts", stdout=out, stderr=err)

    assert out.getvalue() == "1 of 1 accounts reachable\n"
    assert err.getvalue() == ""


def test_check_accounts_names_each_failing_account_and_exits_one(account):
    register(OTHER_ACCOUNT, f"arn:aws:iam::{ACCOUNT_ID}:role/ir-portal-responder")
    register("345678901234", f"arn:aws:iam::{ACCOUNT_ID}:role/ir-portal-responder")
    CloudAccount.objects.create(account_id="456789012345", name="Retired", enabled=False)
    out, err = StringIO(), StringIO()

    with pytest.raises(SystemExit) as exit:
        call_command("check_accounts", stdout=out, stderr=err)

    assert exit.value.code == 1
    failing = err.getvalue().splitlines()
    assert len(failing) == 2
    assert failing[0].startswith(f"Account {OTHER_ACCOUNT} ({OTHER_ACCOUNT}): the role answers")
    assert out.getvalue().startswith("1 of 3 accounts reachable; failing: ")


def test_the_daily_task_checks_every_account_and_counts_the_failures(account):
    register(OTHER_ACCOUNT, f"arn:aws:iam::{ACCOUNT_ID}:role/ir-portal-responder")

    assert tasks.check_accounts() == 1
    assert set(CloudAccount.objects.values_list("check_ok", flat=True)) == {True, False}


def test_beat_runs_the_account_check_once_a_day():
    (entry,) = [
        entry
        for entry in app.conf.beat_schedule.values()
        if entry["task"] == "playbooks.check_accounts"
    ]
    schedule = entry["schedule"]
    assert isinstance(schedule, crontab)
    assert len(schedule.hour) == 1 and len(schedule.minute) == 1
    assert schedule.day_of_week == set(range(7)) and schedule.day_of_month == set(range(1, 32))
    assert TASK_ROUTES["playbooks.check_accounts"] == {"queue": "playbooks"}
