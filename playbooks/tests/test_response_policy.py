"""The demo response role's policy (`estate.RESPONSE_ACTIONS`) allows every AWS call IR
Portal makes through a response role: read from the source here, including calls on paths
no test takes; and, for every test of the suite, from the requests the test made
(`response_policy`, which this file also tests)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError, DataNotFoundError

from playbooks.aws import AwsContext, session_for
from playbooks.estate import RESPONSE_ACTIONS
from playbooks.tests import response_policy
from playbooks.tests.conftest import REGION
from playbooks.tests.response_policy import allows, iam_actions, iam_prefix

ROOT = Path(__file__).resolve().parents[2]
# What calls AWS through a response role: the actions, and the evidence kept in the
# security account through its role.
THROUGH_A_RESPONSE_ROLE = [
    *(
        p
        for p in sorted((ROOT / "playbooks" / "actions").glob("*.py"))
        if p.stem not in ("__init__", "base")
    ),
    *(ROOT / "evidence" / f"{name}.py" for name in ("actions", "stores", "snapshots", "services")),
]


@cache
def _botocore() -> botocore.session.Session:
    return botocore.session.get_session()


@cache
def _operations(service: str) -> dict[str, str]:
    """The service's client methods (`describe_instances`) and their operations."""
    model = _botocore().get_service_model(service)
    return {xform_name(name): name for name in model.operation_names}


def _operation(service: str, method: str, named: str) -> str | None:
    """The operation a client method calls: its own, or that of the paginator or waiter
    `named`."""
    if method == "get_paginator":
        return _operations(service).get(named)
    if method != "get_waiter":
        return _operations(service).get(method)
    try:
        model = _botocore().get_waiter_model(service)
    except DataNotFoundError:  # a service without waiters
        return None
    waiters = {xform_name(name): name for name in model.waiter_names}
    return str(model.get_waiter(waiters[named]).operation) if named in waiters else None


def _calls(source: str) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)]


def services_named(*sources: str) -> set[str]:
    """The AWS services the sources make clients for: those named in a call (`ctx("ec2")`,
    `session_client(session, "s3", region)`)."""
    available = set(_botocore().get_available_services())
    return {
        arg.value
        for source in sources
        for call in _calls(source)
        for arg in call.args
        # `parts.get("events")` reads a dict, not EventBridge.
        if not (isinstance(call.func, ast.Attribute) and call.func.attr == "get")
        and isinstance(arg, ast.Constant)
        and arg.value in available
    }


@cache
def _all_services() -> set[str]:
    # A module may use a client another one made (the evidence store's S3 client).
    return services_named(*(path.read_text() for path in THROUGH_A_RESPONSE_ROLE))


def calls_in(source: str, services: set[str]) -> dict[str, set[tuple[str, str]]]:
    """Each boto3 call written out in `source`, by client method: the (service, operation)
    pairs it may be among `services`. A paginator or waiter counts as the operation it
    calls. A method name built at run time (`getattr(iam, f"put_{kind}_policy")`) is not
    seen: the requests the tests make are."""
    found: dict[str, set[tuple[str, str]]] = {}
    for call in _calls(source):
        if not isinstance(call.func, ast.Attribute):
            continue
        method, named = call.func.attr, ""
        if method in ("get_paginator", "get_waiter") and call.args:
            named = str(getattr(call.args[0], "value", ""))
        for service in services:
            operation = _operation(service, method, named)
            if operation:
                found.setdefault(f"{method}({named})" if named else method, set()).add(
                    (service, operation)
                )
    return found


def _needs(service: str, operation: str) -> set[str]:
    prefix = iam_prefix(_botocore().get_service_model(service))
    return iam_actions(prefix, operation, {})


def not_allowed(source: str, services: set[str]) -> list[str]:
    """The calls in `source` that the policy allows for none of the services they may be of."""
    return sorted(
        method
        for method, candidates in calls_in(source, services).items()
        if not any(
            all(allows(RESPONSE_ACTIONS, action) for action in _needs(*candidate))
            for candidate in candidates
        )
    )


@pytest.mark.parametrize("path", THROUGH_A_RESPONSE_ROLE, ids=lambda path: path.name)
def test_the_response_role_may_make_every_call_written_in(path):
    source = path.read_text()

    assert calls_in(source, _all_services()), f"no AWS call found in {path}"
    assert not_allowed(source, _all_services()) == []


def test_a_call_the_policy_lacks_is_found_in_the_source():
    source = """
def apply(ctx):
    ctx("ec2").describe_instances(InstanceIds=["i-1"])
    ctx("ec2").terminate_instances(InstanceIds=["i-1"])
    for page in ctx("s3").get_paginator("list_object_versions").paginate(Bucket="b"):
        pass
    ctx("ec2").get_waiter("snapshot_completed").wait(SnapshotIds=["snap-1"])
"""

    services = services_named(source)

    assert services == {"ec2", "s3"}
    waited = calls_in(source, services)["get_waiter(snapshot_completed)"]
    assert waited == {("ec2", "DescribeSnapshots")}
    assert not_allowed(source, services) == [
        "get_paginator(list_object_versions)",
        "terminate_instances",
    ]


@pytest.mark.parametrize(
    ("request_made", "needed"),
    [
        (("s3", "HeadObject", {}), {"s3:GetObject"}),
        (("s3", "GetObject", {"VersionId": "v1"}), {"s3:GetObjectVersion"}),
        (("s3", "DeletePublicAccessBlock", {}), {"s3:PutBucketPublicAccessBlock"}),
        (("s3", "ListObjectsV2", {}), {"s3:ListBucket"}),
        (
            ("s3", "CreateMultipartUpload", {"ObjectLockMode": "COMPLIANCE", "Tagging": "a=b"}),
            {"s3:PutObject", "s3:PutObjectRetention", "s3:PutObjectTagging"},
        ),
        (
            ("ec2", "CreateSnapshot", {"TagSpecifications": [{}]}),
            {"ec2:CreateSnapshot", "ec2:CreateTags"},
        ),
        (("iam", "CreateRole", {"Tags": [{}]}), {"iam:CreateRole", "iam:TagRole"}),
        (
            ("ec2", "AssociateIamInstanceProfile", {}),
            {"ec2:AssociateIamInstanceProfile", "iam:PassRole"},
        ),
        (("sts", "GetCallerIdentity", {}), set()),
    ],
)
def test_a_request_is_read_as_the_iam_actions_it_needs(request_made, needed):
    assert iam_actions(*request_made) == needed


def test_policy_actions_match_as_iam_matches_them():
    assert allows(["ec2:Describe*"], "ec2:DescribeInstances")
    assert allows(["s3:getobject"], "s3:GetObject")  # case does not matter
    assert not allows(["ec2:Describe*"], "ec2:DeleteTags")
    assert not allows(["s3:GetObject"], "s3:GetObjectVersion")


@pytest.mark.django_db
def test_a_request_the_policy_lacks_fails_the_test_that_made_it(
    account, response_role_calls, monkeypatch
):
    # A test's own requests are not checked: these are taken for an action's.
    monkeypatch.setattr(response_policy, "_caller", lambda: "playbooks.actions.ec2")
    ctx = AwsContext(session_for(account, "tests"), REGION, incident_reference="IR-1")

    ec2: Any = ctx("ec2")
    ec2.describe_instances()
    with pytest.raises(ClientError):
        ec2.terminate_instances(InstanceIds=["i-0123456789abcdef0"])

    assert response_role_calls.denied() == {"ec2:TerminateInstances": {"ec2:TerminateInstances"}}
    # Only this test meant to make it.
    response_role_calls.needed.clear()
