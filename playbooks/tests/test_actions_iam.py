"""The IAM response actions on the simulated account: an access key deactivated, a role's
sessions revoked, a user or role denied everything; through the engine and directly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from cases.choices import EntryKind
from cases.models import TimelineEntry
from irportal.errors import StateConflict
from playbooks import actions, services
from playbooks.actions.iam import DENY_ALL_POLICY, REVOKE_SESSIONS_POLICY
from playbooks.aws import AwsContext, client, session_for
from playbooks.choices import ActionState
from playbooks.models import ActionRun
from playbooks.tests.conftest import ACCOUNT_ID, REGION

pytestmark = pytest.mark.django_db

WHERE = {"account_id": ACCOUNT_ID, "region": REGION}
TRUST_EC2 = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@pytest.fixture
def iam(account):
    return client("iam", REGION)


@pytest.fixture
def key_id(iam) -> str:
    """An active access key of the user mallory."""
    iam.create_user(UserName="mallory")
    return iam.create_access_key(UserName="mallory")["AccessKey"]["AccessKeyId"]


@pytest.fixture
def role(iam) -> str:
    iam.create_role(RoleName="web-app", AssumeRolePolicyDocument=json.dumps(TRUST_EC2))
    return "web-app"


def ask(engine, actor, incident, action: str, **inputs) -> ActionRun:
    with engine():
        run, _ = services.request_action(actor, incident, action, {**inputs, **WHERE})
    run.refresh_from_db()
    return run


def undo(engine, actor, run: ActionRun) -> ActionRun:
    with engine():
        services.request_undo(actor, run)
    run.refresh_from_db()
    return run


def context(account, incident) -> AwsContext:
    """What the engine hands an action, for calling it directly (as no action run)."""
    session = session_for(account, f"{incident.reference}.tests")
    return AwsContext(session, REGION, incident_reference=incident.reference)


def run_directly(name: str, ctx: AwsContext, **inputs):
    action = actions.get(name)
    checked = action.validate({**inputs, **WHERE})
    return action.apply(ctx, checked, action.inspect(ctx, checked))


def key_status(iam, key_id: str) -> str:
    keys = iam.list_access_keys(UserName="mallory")["AccessKeyMetadata"]
    return next(k["Status"] for k in keys if k["AccessKeyId"] == key_id)


class WorkerDied(Exception):
    """Raised where a worker would die: after AWS answered, before the outcome commits."""


def crash(monkeypatch, run: ActionRun) -> None:
    """Run the action once, the worker dying before it records the outcome."""

    def die(*args, **kwargs):
        raise WorkerDied

    with monkeypatch.context() as patched:
        patched.setattr(services, "_settle", die)
        with pytest.raises(WorkerDied):
            services.execute(run.pk)


def retry_later(run: ActionRun) -> ActionRun:
    """A second worker takes the action once the first one's lease has run out."""
    later = timezone.now() + timedelta(seconds=settings.PLAYBOOK_ACTION_LEASE + 5)
    with time_machine.travel(later, tick=True):
        assert services.execute(run.pk) == "succeeded"
    run.refresh_from_db()
    assert run.attempts == 2
    return run


def queued(actor, incident, action: str, **inputs) -> ActionRun:
    """An action run asked for, whose task no worker has taken yet."""
    run, _ = services.request_action(actor, incident, action, {**inputs, **WHERE})
    return run


# Deactivating an access key


def test_it_deactivates_the_key_and_says_how_it_found_the_owner(
    key_id, iam, incident, lead_actor, engine
):
    run = ask(engine, lead_actor, incident, "iam_deactivate_access_key", access_key_id=key_id)

    assert run.state == ActionState.SUCCEEDED and run.changed is True
    assert key_status(iam, key_id) == "Inactive"
    assert run.before == {
        "user_name": "mallory",
        "owner_found_by": "GetAccessKeyLastUsed",
        "status": "Active",
    }
    assert "mallory (owner found by GetAccessKeyLastUsed)" in run.outputs["summary"]
    assert run.request_ids


def test_deactivating_an_inactive_key_changes_nothing_and_says_so(
    key_id, iam, incident, lead_actor, engine
):
    iam.update_access_key(UserName="mallory", AccessKeyId=key_id, Status="Inactive")

    run = ask(
        engine,
        lead_actor,
        incident,
        "iam_deactivate_access_key",
        access_key_id=key_id,
        user_name="mallory",
    )

    assert run.state == ActionState.SUCCEEDED and run.changed is False
    assert "already inactive" in run.outputs["summary"]
    entry = TimelineEntry.objects.filter(incident=incident, kind=EntryKind.ACTION_SUCCEEDED).get()
    assert entry.summary.startswith("No change needed")


def test_deactivating_twice_changes_nothing_the_second_time(key_id, iam, account, incident):
    ctx = context(account, incident)

    first = run_directly("iam_deactivate_access_key", ctx, access_key_id=key_id)
    second = run_directly("iam_deactivate_access_key", ctx, access_key_id=key_id)

    assert (first.changed, second.changed) == (True, False)
    assert key_status(iam, key_id) == "Inactive"


def test_undo_makes_the_key_active_again(key_id, iam, incident, lead_actor, engine):
    run = ask(engine, lead_actor, incident, "iam_deactivate_access_key", access_key_id=key_id)

    run = undo(engine, lead_actor, run)

    assert run.state == ActionState.UNDONE
    assert key_status(iam, key_id) == "Active"


def test_a_key_of_an_unknown_user_fails_the_run_with_the_aws_error_code(
    key_id, incident, lead_actor, engine
):
    run = ask(
        engine,
        lead_actor,
        incident,
        "iam_deactivate_access_key",
        access_key_id=key_id,
        user_name="nobody",
    )

    assert run.state == ActionState.FAILED
    assert run.error_code == "NoSuchEntity"


def test_a_key_that_is_not_the_named_users_fails_the_run(key_id, iam, incident, lead_actor, engine):
    iam.create_user(UserName="trent")

    run = ask(
        engine,
        lead_actor,
        incident,
        "iam_deactivate_access_key",
        access_key_id=key_id,
        user_name="trent",
    )

    assert run.state == ActionState.FAILED
    assert "trent has no access key" in run.error_message
    assert key_status(iam, key_id) == "Active"


# Revoking a role's sessions


def revocation_policy(iam, role: str) -> dict:
    found = iam.get_role_policy(RoleName=role, PolicyName=REVOKE_SESSIONS_POLICY)
    return found["PolicyDocument"]


def revoke_before(moment: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Deny",
                    "Action": ["*"],
                    "Resource": ["*"],
                    "Condition": {"DateLessThan": {"aws:TokenIssueTime": moment}},
                }
            ],
        }
    )


def test_it_denies_everything_to_sessions_issued_before_the_request(
    role, iam, incident, lead_actor, engine
):
    run = ask(engine, lead_actor, incident, "iam_revoke_role_sessions", role_name=role)

    assert run.state == ActionState.SUCCEEDED and run.changed is True
    (statement,) = revocation_policy(iam, role)["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == "*" and statement["Resource"] == "*"
    cutoff = statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    assert cutoff == run.outputs["revoked_before"]
    revoked_before = datetime.fromisoformat(cutoff.replace("Z", "+00:00"))
    assert run.created_at <= revoked_before <= timezone.now() + timedelta(seconds=1)


def revocation_time(iam, role: str) -> str:
    (statement,) = revocation_policy(iam, role)["Statement"]
    return statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"]


def test_a_retry_after_a_crash_keeps_the_revocation_time(
    role, iam, incident, lead_actor, monkeypatch
):
    run = queued(lead_actor, incident, "iam_revoke_role_sessions", role_name=role)
    crash(monkeypatch, run)
    first_written = revocation_time(iam, role)

    run = retry_later(run)

    assert revocation_time(iam, role) == first_written
    assert run.outputs["revoked_before"] == first_written
    assert run.changed is True


def test_an_earlier_revocation_covering_the_request_is_kept(
    role, iam, incident, lead_actor, engine
):
    tomorrow = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    iam.put_role_policy(
        RoleName=role, PolicyName=REVOKE_SESSIONS_POLICY, PolicyDocument=revoke_before(tomorrow)
    )

    run = ask(engine, lead_actor, incident, "iam_revoke_role_sessions", role_name=role)

    assert run.changed is False
    assert run.outputs["revoked_before"] == tomorrow
    assert "already revokes" in run.outputs["summary"]
    assert revocation_policy(iam, role) == json.loads(revoke_before(tomorrow))


def test_an_older_revocation_is_moved_up_to_now(role, iam, incident, lead_actor, engine):
    iam.put_role_policy(
        RoleName=role,
        PolicyName=REVOKE_SESSIONS_POLICY,
        PolicyDocument=revoke_before("2020-01-01T00:00:00Z"),
    )

    run = ask(engine, lead_actor, incident, "iam_revoke_role_sessions", role_name=role)

    assert run.changed is True
    assert run.before["revoked_before"] == "2020-01-01T00:00:00Z"
    revoked_before = datetime.fromisoformat(run.outputs["revoked_before"].replace("Z", "+00:00"))
    assert revoked_before >= run.created_at


def test_the_revocation_time_is_rounded_up_to_the_next_second(role, iam, account, incident):
    with time_machine.travel(datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=UTC), tick=False):
        run_directly("iam_revoke_role_sessions", context(account, incident), role_name=role)

    # The condition is strict: a session issued at 12:00:00.1 must be revoked too.
    assert revocation_time(iam, role) == "2026-05-01T12:00:01Z"


def test_revoking_sessions_of_an_unknown_role_fails_with_the_aws_error_code(
    account, incident, lead_actor, engine
):
    run = ask(engine, lead_actor, incident, "iam_revoke_role_sessions", role_name="no-such-role")

    assert run.state == ActionState.FAILED
    assert run.error_code == "NoSuchEntity"


def test_revoked_sessions_cannot_be_undone(role, incident, lead_actor, engine):
    run = ask(engine, lead_actor, incident, "iam_revoke_role_sessions", role_name=role)

    with pytest.raises(StateConflict):
        services.request_undo(lead_actor, run)


# Denying everything


def deny_all_policy(iam, principal_type: str, name: str) -> dict:
    if principal_type == "user":
        found = iam.get_user_policy(UserName=name, PolicyName=DENY_ALL_POLICY)
    else:
        found = iam.get_role_policy(RoleName=name, PolicyName=DENY_ALL_POLICY)
    return found["PolicyDocument"]


@pytest.fixture(params=["user", "role"])
def principal(request, iam, key_id, role) -> tuple[str, str]:
    return request.param, "mallory" if request.param == "user" else role


def test_a_responder_cannot_ask_for_it_directly(principal, incident, responder_actor):
    principal_type, name = principal

    with pytest.raises(PermissionDenied):
        queued(
            responder_actor,
            incident,
            "iam_deny_all",
            principal_type=principal_type,
            principal_name=name,
        )
    assert not ActionRun.objects.exists()


def test_it_denies_everything_to_the_user_or_role(principal, iam, incident, lead_actor, engine):
    principal_type, name = principal

    run = ask(
        engine,
        lead_actor,
        incident,
        "iam_deny_all",
        principal_type=principal_type,
        principal_name=name,
    )

    assert run.state == ActionState.SUCCEEDED and run.changed is True
    assert run.target == f"{principal_type}/{name}"
    (statement,) = deny_all_policy(iam, principal_type, name)["Statement"]
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == ("Deny", "*", "*")
    assert "Condition" not in statement


def test_undo_removes_the_deny_all_policy(principal, iam, incident, lead_actor, engine):
    principal_type, name = principal
    run = ask(
        engine,
        lead_actor,
        incident,
        "iam_deny_all",
        principal_type=principal_type,
        principal_name=name,
    )

    run = undo(engine, lead_actor, run)

    assert run.state == ActionState.UNDONE
    with pytest.raises(ClientError, match="NoSuchEntity"):
        deny_all_policy(iam, principal_type, name)


def test_a_user_already_denied_everything_is_left_as_is(key_id, iam, account, incident):
    ctx = context(account, incident)

    first = run_directly("iam_deny_all", ctx, principal_type="user", principal_name="mallory")
    second = run_directly("iam_deny_all", ctx, principal_type="user", principal_name="mallory")

    assert (first.changed, second.changed) == (True, False)
    assert "already denied everything" in second.summary


def test_a_retry_after_a_crash_still_reports_the_change_so_it_can_be_undone(
    key_id, iam, incident, lead_actor, engine, monkeypatch
):
    run = queued(
        lead_actor, incident, "iam_deny_all", principal_type="user", principal_name="mallory"
    )
    crash(monkeypatch, run)

    run = retry_later(run)

    assert run.changed is True and run.before == {"attached": False}
    run = undo(engine, lead_actor, run)
    assert run.state == ActionState.UNDONE
    assert iam.list_user_policies(UserName="mallory")["PolicyNames"] == []


def test_denying_everything_to_an_unknown_role_fails_with_the_aws_error_code(
    account, incident, lead_actor, engine
):
    run = ask(
        engine,
        lead_actor,
        incident,
        "iam_deny_all",
        principal_type="role",
        principal_name="no-such-role",
    )

    assert run.state == ActionState.FAILED
    assert run.error_code == "NoSuchEntity"


@pytest.mark.parametrize(
    ("action", "inputs"),
    [
        ("iam_deny_all", {"principal_type": "role", "principal_name": "ir-portal-responder"}),
        ("iam_revoke_role_sessions", {"role_name": "ir-portal-responder"}),
    ],
)
def test_it_refuses_to_lock_out_the_role_ir_portal_responds_through(
    account, incident, lead_actor, engine, action, inputs
):
    # `account` registers arn:aws:iam::123456789012:role/ir-portal-responder.
    client("iam", REGION).create_role(
        RoleName="ir-portal-responder", AssumeRolePolicyDocument=json.dumps(TRUST_EC2)
    )
    with engine():
        run, _ = services.request_action(lead_actor, incident, action, {**inputs, **WHERE})
    run.refresh_from_db()

    assert run.state == ActionState.FAILED
    assert "refusing to lock the response out" in run.error_message
    policies = client("iam", REGION).list_role_policies(RoleName="ir-portal-responder")
    assert policies["PolicyNames"] == []
