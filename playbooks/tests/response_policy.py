"""Every AWS request a test makes through a response role must be one the demo response role's
policy (`playbooks.estate.RESPONSE_ACTIONS`) allows: that list is the only place the
permissions IR Portal needs in an account are written down, and moto does not enforce it.

Loaded for the whole suite from the root conftest, so that the evidence collection tests
check their calls too. Each request made with assumed-role credentials is noted by a botocore
hook as the IAM actions it needs; a test whose requests needed an action the policy lacks
errors at teardown, naming it. What it cannot see: calls on paths no test takes (the static
check in test_response_policy.py reads those from the source), and what an API needs
beyond what its request shows (TagResources needs each service's own tagging permission).
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from playbooks import aws

# IAM actions whose names are not `<service>:<operation>`.
_RENAMED = {
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "s3:PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "s3:DeletePublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "s3:DeleteBucketTagging": "s3:PutBucketTagging",
    "s3:GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
    "s3:CreateMultipartUpload": "s3:PutObject",
    "s3:UploadPart": "s3:PutObject",
    "s3:CompleteMultipartUpload": "s3:PutObject",
}
# Reading or deleting one version of an object is its own action.
_VERSIONED = {
    "s3:GetObject": "s3:GetObjectVersion",
    "s3:DeleteObject": "s3:DeleteObjectVersion",
    "s3:GetObjectTagging": "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging": "s3:PutObjectVersionTagging",
}
# What EBS needs of a customer managed key to write an encrypted copy with it.
_KMS_FOR_EBS = (
    "kms:DescribeKey",
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKeyWithoutPlaintext",
)
# Needs no permission: STS answers it for any credentials.
_UNCONDITIONAL = {"sts:GetCallerIdentity"}


def iam_prefix(service_model: Any) -> str:
    """The service's prefix in IAM actions: its signing name, but for the tagging API's."""
    name = str(service_model.signing_name)
    return "tag" if name == "tagging" else name


def iam_actions(prefix: str, operation: str, params: dict[str, Any]) -> set[str]:
    """The IAM actions one request needs: its own, and those its parameters add."""
    named = f"{prefix}:{operation}"
    if named in _UNCONDITIONAL:
        return set()
    own = _RENAMED.get(named, named)
    if params.get("VersionId") and own in _VERSIONED:
        own = _VERSIONED[own]
    needed = {own}

    # Tags given at creation are written with the service's tagging permission.
    if params.get("TagSpecifications"):
        needed.add("ec2:CreateTags")
    if prefix == "iam" and params.get("Tags") and operation.startswith("Create"):
        needed.add(f"iam:Tag{operation.removeprefix('Create')}")
    # Giving an instance a role's profile passes the role to EC2.
    if operation in (
        "AssociateIamInstanceProfile",
        "ReplaceIamInstanceProfileAssociation",
        "AddRoleToInstanceProfile",
    ):
        needed.add("iam:PassRole")
    if prefix == "s3":
        if params.get("ObjectLockMode") or params.get("ObjectLockRetainUntilDate"):
            needed.add("s3:PutObjectRetention")
        if params.get("ObjectLockLegalHoldStatus"):
            needed.add("s3:PutObjectLegalHold")
        if params.get("Tagging") and operation in ("PutObject", "CreateMultipartUpload"):
            needed.add("s3:PutObjectTagging")
        if params.get("BypassGovernanceRetention"):
            needed.add("s3:BypassGovernanceRetention")
    if named == "ec2:CopySnapshot" and params.get("KmsKeyId"):
        needed.update(_KMS_FOR_EBS)
    return needed


def allows(policy: list[str], action: str) -> bool:
    """Whether an Allow of `policy`'s actions covers `action` (case-insensitive, with
    IAM's `*` and `?` wildcards)."""
    return any(fnmatch.fnmatchcase(action.lower(), allowed.lower()) for allowed in policy)


@dataclass
class ResponseRoleCalls:
    """The IAM actions a test's requests through a response role needed, by request."""

    needed: dict[str, set[str]] = field(default_factory=dict)

    def note(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        # A test's own setup and checks, and the demo estate's seeding, are not IR Portal
        # responding.
        caller = _caller()
        if ".tests." in caller or caller == "playbooks.estate":
            return
        prefix = iam_prefix(model.service_model)
        for action in iam_actions(prefix, model.name, params):
            self.needed.setdefault(action, set()).add(f"{prefix}:{model.name}")

    def denied(self) -> dict[str, set[str]]:
        from playbooks.estate import RESPONSE_ACTIONS

        return {a: why for a, why in self.needed.items() if not allows(RESPONSE_ACTIONS, a)}


def _caller() -> str:
    """The module that made the request: the first frame outside botocore and boto3 (which
    paginators, waiters and hooks run through)."""
    frame = sys._getframe(1)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if not module.startswith(("botocore", "boto3", __name__)):
            return module
        frame = frame.f_back
    return ""


@pytest.fixture(autouse=True)
def response_role_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[ResponseRoleCalls]:
    calls = ResponseRoleCalls()
    made_by_aws = aws.Credentials.client

    def noting(session: aws.Credentials, service: str, **options: Any) -> Any:
        made = made_by_aws(session, service, **options)
        # The deployment's own credentials are not the response role's.
        if session is not aws._deployment:
            made.meta.events.register("before-parameter-build", calls.note)
        return made

    monkeypatch.setattr(aws.Credentials, "client", noting)
    yield calls

    denied = calls.denied()
    if denied:
        listed = "; ".join(f"{a} (for {', '.join(sorted(w))})" for a, w in sorted(denied.items()))
        pytest.fail(f"the demo response role's policy (estate.RESPONSE_ACTIONS) lacks {listed}")
