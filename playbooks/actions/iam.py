"""Response actions on IAM: an access key switched off, a role's sessions revoked, a user or
role denied everything.

The two inline policies carry the action run's id in their statement id, so a second
attempt of the same run (its worker died after AWS answered) knows the policy it finds is
its own and reports the change, which keeps the deny-all policy undoable.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from django.utils import timezone
from rest_framework import serializers

from playbooks.actions.base import Action, ActionInputs, Outcome, register
from playbooks.aws import AwsContext
from playbooks.models import ActionRun

DENY_ALL_POLICY = "ir-portal-deny-all"
# The name AWS's console gives the policy behind "Revoke active sessions".
REVOKE_SESSIONS_POLICY = "AWSRevokeOlderSessions"

# IAM's own rule for user and role names.
_PRINCIPAL_NAME = r"^[\w+=,.@-]{1,64}$"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class AccessKeyInputs(ActionInputs):
    access_key_id = serializers.RegexField(
        r"^[A-Z0-9]{16,128}$", help_text="The access key id (AKIA…).", max_length=128
    )
    user_name = serializers.RegexField(
        _PRINCIPAL_NAME,
        required=False,
        help_text="The key's owner; looked up from the key when not given.",
    )


@register
class DeactivateAccessKey(Action):
    name = "iam_deactivate_access_key"
    title = "Deactivate an IAM access key"
    target_kind = "access_key"
    target_input = "access_key_id"
    inputs = AccessKeyInputs
    undoable = True

    def inspect(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, Any]:
        key_id = inputs["access_key_id"]
        owner, found_by = _key_owner(ctx, inputs)
        # A user holds at most two keys: one page always lists them all.
        keys = ctx("iam").list_access_keys(UserName=owner)["AccessKeyMetadata"]
        status = next((key["Status"] for key in keys if key["AccessKeyId"] == key_id), None)
        if status is None:
            raise LookupError(f"user {owner} has no access key {key_id}")
        return {"user_name": owner, "owner_found_by": found_by, "status": status}

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        key = f"access key {inputs['access_key_id']} of {_owner_phrase(state)}"
        first = ctx.first_seen or state
        done = {"user_name": state["user_name"], "status": "Inactive"}
        if state["status"] == "Inactive":
            if first["status"] != "Inactive":  # an earlier attempt did it, then its worker died
                return Outcome(True, f"Deactivated {key}", before=first, outputs=done)
            return Outcome(False, f"{key} is already inactive", before=state)
        ctx("iam").update_access_key(
            UserName=state["user_name"], AccessKeyId=inputs["access_key_id"], Status="Inactive"
        )
        return Outcome(True, f"Deactivated {key}", before=first, outputs=done)

    def undo(self, ctx: AwsContext, inputs: dict[str, Any], done: Outcome) -> Outcome:
        owner = done.before["user_name"]
        ctx("iam").update_access_key(
            UserName=owner, AccessKeyId=inputs["access_key_id"], Status=done.before["status"]
        )
        return Outcome(
            True,
            f"Reactivated access key {inputs['access_key_id']} of user {owner}",
            outputs={"status": done.before["status"]},
        )


def _key_owner(ctx: AwsContext, inputs: dict[str, Any]) -> tuple[str, str]:
    """(the key's owner, how it was found). GetAccessKeyLastUsed names the owner of any
    key in the account in one call, where listing would read every user's keys."""
    if inputs.get("user_name"):
        return inputs["user_name"], "given"
    found = ctx("iam").get_access_key_last_used(AccessKeyId=inputs["access_key_id"])
    return found["UserName"], "GetAccessKeyLastUsed"


def _owner_phrase(state: dict[str, Any]) -> str:
    if state["owner_found_by"] == "given":
        return f"user {state['user_name']}"
    return f"user {state['user_name']} (owner found by {state['owner_found_by']})"


class RoleInputs(ActionInputs):
    role_name = serializers.RegexField(_PRINCIPAL_NAME, help_text="The role's name.")


@register
class RevokeRoleSessions(Action):
    """AWS's documented way: an inline policy denying everything to sessions issued before
    a moment. Sessions issued later (a legitimate user signing in again) are untouched."""

    name = "iam_revoke_role_sessions"
    title = "Revoke a role's active sessions"
    target_kind = "role"
    target_input = "role_name"
    inputs = RoleInputs

    def inspect(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, Any]:
        policies = _InlinePolicies(ctx, "role", inputs["role_name"])
        document = policies.get(REVOKE_SESSIONS_POLICY)
        revoked_before = _revocation_time(document) if document else None
        return {
            "revoked_before": revoked_before.strftime(_TIME_FORMAT) if revoked_before else None,
            "statement_ids": _statement_ids(document),
        }

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        role = inputs["role_name"]
        _refuse_own_role(ctx, "role", role)

        # A revocation at or after the moment this run was asked for already ends every
        # session that was live then: keeping its time makes a second attempt of this run
        # (or a repeated request) write nothing and report the same time.
        existing = state["revoked_before"]
        if existing and _parse_time(existing) >= _requested_at(ctx):
            outputs = {"revoked_before": existing}
            if _written_by_this_run(ctx, state):
                summary = f"Revoked the sessions of role {role} issued before {existing}"
                return Outcome(True, summary, before=state, outputs=outputs)
            summary = f"Role {role} already revokes sessions issued before {existing}"
            return Outcome(False, summary, before=state, outputs=outputs)

        cutoff = _next_whole_second(timezone.now()).strftime(_TIME_FORMAT)
        document = _policy(
            _statement_id(ctx),
            condition={"DateLessThan": {"aws:TokenIssueTime": cutoff}},
        )
        _InlinePolicies(ctx, "role", role).put(REVOKE_SESSIONS_POLICY, document)
        return Outcome(
            True,
            f"Revoked the sessions of role {role} issued before {cutoff}",
            before=state,
            outputs={"revoked_before": cutoff},
        )


def _requested_at(ctx: AwsContext) -> datetime:
    """When this action run was asked for: the same on every attempt, unlike the clock."""
    if ctx.action_run_id is not None:
        requested = (
            ActionRun.objects.filter(pk=ctx.action_run_id)
            .values_list("created_at", flat=True)
            .first()
        )
        if requested is not None:
            return requested
    return timezone.now()


def _next_whole_second(moment: datetime) -> datetime:
    # The condition is strict and written to the second: rounding up revokes every session
    # issued up to now, including those issued earlier in this very second.
    whole = moment.astimezone(UTC).replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    # A time written without a zone is taken as UTC.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _revocation_time(document: dict[str, Any]) -> datetime | None:
    """The latest issue time before which the document denies everything, if it does."""
    found = []
    for statement in _statements(document):
        if statement.get("Effect") != "Deny" or not _covers_everything(statement):
            continue
        before = (statement.get("Condition") or {}).get("DateLessThan") or {}
        # Condition keys are case-insensitive.
        times = [value for key, value in before.items() if key.lower() == "aws:tokenissuetime"]
        for value in times:
            try:
                found.append(_parse_time(value))
            except (TypeError, ValueError, AttributeError):
                continue  # not a single time: not a revocation this action reads
    return max(found, default=None)


class PrincipalInputs(ActionInputs):
    principal_type = serializers.ChoiceField(["user", "role"], help_text="user or role.")
    principal_name = serializers.RegexField(
        _PRINCIPAL_NAME, help_text="The user's or the role's name."
    )


@register
class DenyAll(Action):
    name = "iam_deny_all"
    title = "Deny everything to an IAM user or role"
    # Users and roles alike: no single kind of resource supplies the account by default,
    # so a playbook step takes the incident's account (or gives one).
    target_kind = "principal"
    target_input = "principal_name"
    inputs = PrincipalInputs
    requires_approval = True
    undoable = True

    def target(self, inputs: dict[str, Any]) -> str:
        # "role/web" and "user/web" are different targets.
        return f"{inputs['principal_type']}/{inputs['principal_name']}"

    def inspect(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, Any]:
        policies = _InlinePolicies(ctx, inputs["principal_type"], inputs["principal_name"])
        document = policies.get(DENY_ALL_POLICY)
        attached = document is not None and any(
            statement.get("Effect") == "Deny"
            and _covers_everything(statement)
            and not statement.get("Condition")
            for statement in _statements(document)
        )
        return {"attached": attached, "statement_ids": _statement_ids(document)}

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        target = self.target(inputs)
        summary = f"Attached the inline policy {DENY_ALL_POLICY} (deny all) to {target}"
        outputs = {"policy_name": DENY_ALL_POLICY}
        if state["attached"]:
            if _written_by_this_run(ctx, state):
                # Attached by an earlier attempt of this run: before it, there was none.
                return Outcome(True, summary, before={"attached": False}, outputs=outputs)
            return Outcome(False, f"{target} is already denied everything", before=state)

        _refuse_own_role(ctx, inputs["principal_type"], inputs["principal_name"])
        policies = _InlinePolicies(ctx, inputs["principal_type"], inputs["principal_name"])
        policies.put(DENY_ALL_POLICY, _policy(_statement_id(ctx)))
        return Outcome(True, summary, before=state, outputs=outputs)

    def undo(self, ctx: AwsContext, inputs: dict[str, Any], done: Outcome) -> Outcome:
        target = self.target(inputs)
        policies = _InlinePolicies(ctx, inputs["principal_type"], inputs["principal_name"])
        removed = policies.delete(DENY_ALL_POLICY)
        if not removed:
            return Outcome(False, f"{target} no longer had the policy {DENY_ALL_POLICY}")
        return Outcome(True, f"Removed the inline policy {DENY_ALL_POLICY} from {target}")


class _InlinePolicies:
    """The inline policies of one user or role: IAM names the same calls differently."""

    def __init__(self, ctx: AwsContext, principal_type: str, name: str) -> None:
        self.iam = ctx("iam")
        self.kind = principal_type
        self.named = {"UserName" if principal_type == "user" else "RoleName": name}

    def names(self) -> list[str]:
        """Fails with NoSuchEntity when the user or role does not exist."""
        pages = self.iam.get_paginator(f"list_{self.kind}_policies").paginate(**self.named)
        return [name for page in pages for name in page["PolicyNames"]]

    def get(self, policy: str) -> dict[str, Any] | None:
        # Listing first tells "no such policy" apart from "no such user or role", which
        # GetUserPolicy reports with the same error code.
        if policy not in self.names():
            return None
        call = getattr(self.iam, f"get_{self.kind}_policy")
        document: dict[str, Any] = call(**self.named, PolicyName=policy)["PolicyDocument"]
        return document

    def put(self, policy: str, document: dict[str, Any]) -> None:
        call = getattr(self.iam, f"put_{self.kind}_policy")
        call(**self.named, PolicyName=policy, PolicyDocument=_json(document))

    def delete(self, policy: str) -> bool:
        """Whether there was a policy to delete."""
        call = getattr(self.iam, f"delete_{self.kind}_policy")
        try:
            call(**self.named, PolicyName=policy)
        except ClientError as error:
            if error.response["Error"]["Code"] == "NoSuchEntity":
                return False
            raise
        return True


def _refuse_own_role(ctx: AwsContext, principal_type: str, name: str) -> None:
    """Denying IR Portal's own response role would end the response it is running."""
    if principal_type == "role" and ctx.response_role and name == ctx.response_role:
        raise ValueError(
            f"{name} is the role IR Portal responds through in this account; "
            "refusing to lock the response out"
        )


def _statement_id(ctx: AwsContext) -> str:
    return f"IrPortalRun{ctx.action_run_id or 0}"


def _written_by_this_run(ctx: AwsContext, state: dict[str, Any]) -> bool:
    return ctx.action_run_id is not None and _statement_id(ctx) in state["statement_ids"]


def _policy(statement_id: str, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": statement_id,
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
    }
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def _statements(document: dict[str, Any] | None) -> list[dict[str, Any]]:
    statements = (document or {}).get("Statement") or []
    return [statements] if isinstance(statements, dict) else list(statements)


def _statement_ids(document: dict[str, Any] | None) -> list[str]:
    return [s["Sid"] for s in _statements(document) if s.get("Sid")]


def _covers_everything(statement: dict[str, Any]) -> bool:
    return all(statement.get(field) in ("*", ["*"]) for field in ("Action", "Resource"))


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))
