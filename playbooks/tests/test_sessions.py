"""The sessions IR Portal acts under in an account: named for the incident and whoever asked
(a person, or the rule that started the run), read back from STS on the simulated account
with the credentials the action actually used; and the bounded cache of their credentials."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from cases.choices import EntryKind
from cases.models import AffectedResource, Incident, TimelineEntry
from findings.choices import RuleEffect
from findings.models import TriageRule
from findings.services import rule_actor
from playbooks import aws, services
from playbooks.actions.base import REGISTRY, Outcome, register
from playbooks.actions.tagging import TagResource
from playbooks.aws import AwsContext, Credentials, session_for
from playbooks.models import Playbook
from playbooks.tests.conftest import ACCOUNT_ID, REGION

pytestmark = pytest.mark.django_db

ROLE = "ir-portal-responder"  # as the `account` fixture registers it


class WhoAmI(TagResource):
    """Asks STS who it acts as, when applied and when undone; changes nothing in AWS."""

    name = "sessions_test_who_am_i"
    undoable = True

    def inspect(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, Any]:
        return {}

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        return Outcome(True, "Asked who it is", outputs={"arn": _arn(ctx)})

    def undo(self, ctx: AwsContext, inputs: dict[str, Any], done: Outcome) -> Outcome:
        return Outcome(True, "Asked again who it is", outputs={"arn": _arn(ctx)})


def _arn(ctx: AwsContext) -> str:
    return str(ctx("sts").get_caller_identity()["Arn"])


@pytest.fixture(autouse=True)
def who_am_i() -> Iterator[None]:
    register(WhoAmI)
    yield
    REGISTRY.pop(WhoAmI.name)


@pytest.fixture
def on_resource(incident: Incident, account: Any) -> Incident:
    AffectedResource.objects.create(
        incident=incident,
        account_id=ACCOUNT_ID,
        region=REGION,
        identifier="some-bucket",
        resource_type="AWS::S3::Bucket",
    )
    return incident


def session_of(arn: str) -> str:
    """`IR-2026-0001.lena` of `arn:aws:sts::…:assumed-role/<role>/IR-2026-0001.lena`."""
    prefix = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE}/"
    assert arn.startswith(prefix), arn
    return arn.removeprefix(prefix)


def inputs() -> dict[str, Any]:
    return {"resource": "some-bucket", "account_id": ACCOUNT_ID, "region": REGION}


def test_an_action_acts_under_a_session_naming_the_incident_and_its_asker(
    on_resource, lead_actor, engine
):
    with engine():
        action_run, _ = services.request_action(lead_actor, on_resource, WhoAmI.name, inputs())

    action_run.refresh_from_db()
    assert session_of(action_run.outputs["arn"]) == f"{on_resource.reference}.lena"


def test_an_undo_acts_under_a_session_naming_who_asked_for_the_undo(
    on_resource, lead_actor, responder_actor, engine
):
    with engine():
        action_run, _ = services.request_action(lead_actor, on_resource, WhoAmI.name, inputs())
    with engine():
        services.request_undo(responder_actor, action_run)

    undone = TimelineEntry.objects.get(incident=on_resource, kind=EntryKind.ACTION_UNDONE)
    assert session_of(undone.data["outputs"]["arn"]) == f"{on_resource.reference}.rui"


def test_an_action_a_rule_started_acts_under_a_session_naming_the_rule(on_resource, engine):
    rule = TriageRule.objects.create(name="Exposed buckets", effect=RuleEffect.OPEN_INCIDENT)
    step = {"id": "who", "action": WhoAmI.name, "parameters": {"resource": "${bucket.id}"}}
    playbook = Playbook.objects.create(slug="who", name="Who", definition={"steps": [step]})

    with engine():
        run = services.start_run(rule_actor(rule), on_resource, playbook, rule=rule)

    arn = run.steps.get().action_run.outputs["arn"]
    # RoleSessionName takes no spaces: the rule's name is kept with dashes for them.
    assert session_of(arn) == f"{on_resource.reference}.Exposed-buckets"


# --- The credentials cache --------------------------------------------------------------


def cached_names() -> list[str]:
    return [name for _, _, name in aws._cache]


def key_of(session: Credentials) -> str:
    return str(session.credentials["aws_access_key_id"])


def test_credentials_are_reused_until_near_their_expiry(account):
    first = session_for(account, "IR-2026-0001.lena")
    assert key_of(session_for(account, "IR-2026-0001.lena")) == key_of(first)

    # Sessions last an hour; inside the last five minutes they are assumed again.
    with time_machine.travel(timezone.now() + timedelta(minutes=56)):
        again = session_for(account, "IR-2026-0001.lena")

    assert key_of(again) != key_of(first)
    assert cached_names() == ["IR-2026-0001.lena"]


def test_credentials_near_expiry_are_dropped_when_another_session_is_assumed(account):
    session_for(account, "IR-2026-0001.lena")
    session_for(account, "IR-2026-0002.rui")

    with time_machine.travel(timezone.now() + timedelta(minutes=56)):
        session_for(account, "IR-2026-0003.rita")

    assert cached_names() == ["IR-2026-0003.rita"]


def test_the_cache_keeps_the_most_recently_used_sessions_up_to_its_bound(account, monkeypatch):
    monkeypatch.setattr(aws, "_CACHED_SESSIONS", 2, raising=False)
    session_for(account, "IR-2026-0001.lena")
    session_for(account, "IR-2026-0002.rui")
    session_for(account, "IR-2026-0001.lena")  # used again: now the most recent

    session_for(account, "IR-2026-0003.rita")

    assert cached_names() == ["IR-2026-0001.lena", "IR-2026-0003.rita"]
