"""Triage rules that start a playbook: a finding arrives, an incident opens, the playbook runs
up to its first approval gate with no person involved."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cases.choices import EntryKind, Status
from cases.models import Incident, TimelineEntry
from findings import demo
from findings.choices import Decision, RuleEffect
from findings.models import Finding, TriageRule
from irportal.actors import Actor, ActorKind
from playbooks import services as playbooks
from playbooks.aws import client
from playbooks.choices import RunStatus, StepState
from playbooks.models import Playbook, PlaybookRun
from playbooks.tests.conftest import ACCOUNT_ID, IMAGE_ID, REGION, account, engine  # noqa: F401

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/events/"
RULES = "/api/v1/triage-rules/"
CRYPTO = "CryptoCurrency:EC2/BitcoinTool.B!DNS"
# For tests in which nothing reaches AWS: a playbook refused before it starts, or none.
UNSEEN_INSTANCE = "i-0abc1234567890def"


@pytest.fixture(autouse=True)
def own_rules_only(db):
    """Without the default rules, so that only the rules a test makes decide."""
    TriageRule.objects.all().delete()


@pytest.fixture
def instance_id(account) -> str:  # noqa: F811
    ec2 = client("ec2", REGION)
    image = IMAGE_ID
    return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]


@pytest.fixture
def send(api, integration, engine):  # noqa: F811
    """POST events as the integration, with the engine's tasks run as a worker would."""
    sender = api(integration)

    def post(*events: dict[str, Any]) -> Any:
        with engine():
            answer = sender.post(EVENTS, list(events), format="json")
        assert answer.status_code in (200, 201, 207), answer.content
        return answer

    return post


def crypto_event(instance_id: str, **fields: Any) -> dict[str, Any]:
    return demo.guardduty_event(
        CRYPTO, 8.0, instance_id=instance_id, account=ACCOUNT_ID, region=REGION, **fields
    )


def tag_then_wait() -> Playbook:
    """Tag the instance, then wait for a lead before tagging it again."""
    return Playbook.objects.create(
        slug="tag-then-wait",
        name="Tag, then wait",
        definition={
            "steps": [
                {
                    "id": "tag",
                    "action": "tag_resource",
                    "parameters": {"resource": "${instance.id}"},
                },
                {
                    "id": "tag-again",
                    "action": "tag_resource",
                    "parameters": {"resource": "${instance.id}", "tags": {"stage": "two"}},
                    "approval": True,
                },
            ]
        },
    )


def opening_rule(playbook: str, **fields: Any) -> TriageRule:
    return TriageRule.objects.create(
        name=fields.pop("name", "Cryptomining: open and contain"),
        position=1,
        type_patterns=["CryptoCurrency:EC2/*"],
        effect=RuleEffect.OPEN_INCIDENT,
        incident_category="compromised_instance",
        playbook=playbook,
        **fields,
    )


def tags_of(instance_id: str) -> dict[str, str]:
    found = client("ec2", REGION).describe_tags(
        Filters=[{"Name": "resource-id", "Values": [instance_id]}]
    )
    return {t["Key"]: t["Value"] for t in found["Tags"]}


def entries(incident: Any, kind: str) -> list[TimelineEntry]:
    return list(TimelineEntry.objects.filter(incident=incident, kind=kind))


def test_a_rule_starts_its_playbook_up_to_the_first_approval_gate(send, instance_id):
    rule = opening_rule(tag_then_wait().slug)

    send(crypto_event(instance_id))

    finding = Finding.objects.get()
    assert finding.decision == Decision.OPENED
    run = PlaybookRun.objects.get()
    assert (run.incident, run.rule, run.dry_run) == (finding.incident, rule, False)
    assert run.status == RunStatus.AWAITING_APPROVAL
    assert [s.state for s in run.steps.all()] == [StepState.SUCCEEDED, StepState.AWAITING_APPROVAL]
    assert tags_of(instance_id) == {"ir-portal:incident": finding.incident.reference}
    (started,) = entries(finding.incident, EntryKind.PLAYBOOK_STARTED)
    assert (started.actor_kind, started.actor_name) == (ActorKind.RULE, rule.name)
    assert run.actor == Actor(kind=ActorKind.RULE, name=rule.name)


def test_the_built_in_instance_playbook_contains_up_to_the_lead_s_decision(send, instance_id):
    call_command("load_playbooks", verbosity=0)
    opening_rule("compromised-ec2-instance")

    send(crypto_event(instance_id))

    run = PlaybookRun.objects.get()
    assert run.status == RunStatus.AWAITING_APPROVAL
    states = dict(run.steps.values_list("key", "state"))
    assert states == {
        "mark-instance": StepState.SUCCEEDED,
        "snapshot-volumes": StepState.SUCCEEDED,
        "take-out-of-service": StepState.SUCCEEDED,
        "isolate": StepState.SUCCEEDED,
        "quarantine-instance-profile": StepState.AWAITING_APPROVAL,
    }
    assert tags_of(instance_id)["ir-portal:state"] == "under-investigation"
    ec2 = client("ec2", REGION)
    snapshot_ids = run.steps.get(key="snapshot-volumes").action_run.outputs["snapshots"]
    assert snapshot_ids and ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    isolation = run.steps.get(key="isolate").action_run.outputs["isolation_group_id"]
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    groups = {g["GroupId"] for eni in instance["NetworkInterfaces"] for g in eni["Groups"]}
    assert groups == {isolation}


def test_a_second_finding_joining_the_incident_starts_no_second_run(send, instance_id):
    opening_rule(tag_then_wait().slug)
    send(crypto_event(instance_id))

    send(crypto_event(instance_id), crypto_event(instance_id))

    first, *joined = Finding.objects.order_by("pk")
    assert [f.decision for f in joined] == [Decision.JOINED, Decision.JOINED]
    assert {f.incident_id for f in joined} == {first.incident_id}
    assert PlaybookRun.objects.count() == 1
    assert len(entries(first.incident, EntryKind.PLAYBOOK_STARTED)) == 1


def test_findings_of_one_batch_start_one_run_per_incident(send, instance_id):
    opening_rule(tag_then_wait().slug)

    send(crypto_event(instance_id), crypto_event(instance_id), crypto_event(instance_id))

    assert Finding.objects.values("incident").distinct().count() == 1
    assert PlaybookRun.objects.count() == 1


def test_a_finding_after_the_run_was_cancelled_starts_it_again(send, instance_id, lead):
    opening_rule(tag_then_wait().slug)
    send(crypto_event(instance_id))
    playbooks.cancel(Actor.for_user(lead), PlaybookRun.objects.get(), "wrong playbook version")

    send(crypto_event(instance_id))

    assert [run.status for run in PlaybookRun.objects.order_by("pk")] == [
        RunStatus.CANCELLED,
        RunStatus.AWAITING_APPROVAL,
    ]


def test_a_dry_run_rule_records_the_steps_and_changes_nothing(send, instance_id):
    opening_rule(tag_then_wait().slug, playbook_dry_run=True)

    send(crypto_event(instance_id))

    run = PlaybookRun.objects.get()
    assert run.dry_run
    assert run.status == RunStatus.SUCCEEDED  # a dry run waits for no approval
    assert tags_of(instance_id) == {}


def test_a_playbook_missing_an_input_keeps_the_finding_and_says_why(send):
    rule = opening_rule("public-s3-bucket")
    call_command("load_playbooks", verbosity=0)

    answer = send(crypto_event(UNSEEN_INSTANCE))

    finding = Finding.objects.get()
    assert answer.json()["results"][0]["outcome"] == "new"
    assert finding.decision == Decision.OPENED and finding.incident is not None
    assert not PlaybookRun.objects.exists()
    (refused,) = entries(finding.incident, EntryKind.PLAYBOOK_NOT_STARTED)
    assert (refused.actor_kind, refused.actor_name) == (ActorKind.RULE, rule.name)
    assert refused.data["playbook"] == "public-s3-bucket"
    assert "bucket.name" in refused.data["reason"]
    assert "bucket.name" in refused.summary


def test_a_refused_playbook_is_not_tried_again_by_every_later_finding(send):
    opening_rule("public-s3-bucket")
    call_command("load_playbooks", verbosity=0)
    send(crypto_event(UNSEEN_INSTANCE))

    send(crypto_event(UNSEEN_INSTANCE))

    incident = Finding.objects.first().incident
    assert Finding.objects.filter(incident=incident).count() == 2
    assert len(entries(incident, EntryKind.PLAYBOOK_NOT_STARTED)) == 1


def test_a_playbook_on_a_closed_incident_is_refused_and_the_finding_kept(send, incident):
    Incident.objects.filter(pk=incident.pk).update(status=Status.CLOSED)
    TriageRule.objects.create(
        name="Into the old incident",
        position=1,
        type_patterns=["CryptoCurrency:EC2/*"],
        effect=RuleEffect.ATTACH,
        target_incident=incident,
        playbook=tag_then_wait().slug,
    )

    send(crypto_event(UNSEEN_INSTANCE))

    assert Finding.objects.get().incident == incident
    (refused,) = entries(incident, EntryKind.PLAYBOOK_NOT_STARTED)
    assert "closed" in refused.data["reason"]


def test_a_playbook_with_no_enabled_version_is_not_started(send):
    playbook = tag_then_wait()
    playbook.enabled = False
    playbook.save()
    opening_rule(playbook.slug)

    send(crypto_event(UNSEEN_INSTANCE))

    incident = Finding.objects.get().incident
    (refused,) = entries(incident, EntryKind.PLAYBOOK_NOT_STARTED)
    assert "no enabled version" in refused.data["reason"]


def test_a_fault_in_the_engine_costs_no_finding(send, monkeypatch):
    opening_rule(tag_then_wait().slug)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(playbooks, "start_run", broken)
    send(crypto_event(UNSEEN_INSTANCE))

    incident = Finding.objects.get().incident
    (refused,) = entries(incident, EntryKind.PLAYBOOK_NOT_STARTED)
    assert "failed to start" in refused.data["reason"]


def test_the_newest_enabled_version_is_the_one_started(send, instance_id):
    tag_then_wait()
    newest = Playbook.objects.create(
        slug="tag-then-wait",
        version=2,
        name="Tag once",
        definition={
            "steps": [
                {
                    "id": "tag",
                    "action": "tag_resource",
                    "parameters": {"resource": "${instance.id}"},
                }
            ]
        },
    )
    Playbook.objects.create(
        slug="tag-then-wait", version=3, name="Broken", enabled=False, definition=newest.definition
    )
    opening_rule("tag-then-wait")

    send(crypto_event(instance_id))

    assert PlaybookRun.objects.get().playbook == newest


def test_ingest_asks_nothing_about_playbooks_when_no_rule_names_one(send):
    opening_rule("")

    with CaptureQueriesContext(connection) as queries:
        send(*(crypto_event(UNSEEN_INSTANCE) for _ in range(3)))

    assert Finding.objects.count() == 3
    assert not [q["sql"] for q in queries if "playbooks_" in q["sql"]]


def test_playbook_queries_do_not_grow_with_the_findings_that_join(send, instance_id):
    opening_rule(tag_then_wait().slug)
    send(crypto_event(instance_id))

    def playbook_queries(count: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            send(*(crypto_event(instance_id) for _ in range(count)))
        return len([q for q in queries if "playbooks_" in q["sql"]])

    assert playbook_queries(1) == playbook_queries(5) == 1


# --- Saying which playbook a rule starts --------------------------------------------------


def rule_body(**fields: Any) -> dict[str, Any]:
    return {
        "name": "Crypto",
        "type_patterns": ["CryptoCurrency:EC2/*"],
        "effect": RuleEffect.OPEN_INCIDENT,
        **fields,
    }


def test_a_lead_names_a_playbook_for_a_rule(api, lead):
    tag_then_wait()

    answer = api(lead).post(
        RULES, rule_body(playbook="tag-then-wait", playbook_dry_run=True), format="json"
    )

    assert answer.status_code == 201, answer.content
    assert (answer.json()["playbook"], answer.json()["playbook_dry_run"]) == ("tag-then-wait", True)
    assert TriageRule.objects.get().playbook == "tag-then-wait"


def test_a_rule_cannot_name_a_playbook_that_does_not_exist(api, lead):
    tag_then_wait()

    answer = api(lead).post(RULES, rule_body(playbook="tag-then-run"), format="json")

    assert answer.status_code == 400
    assert "tag-then-wait" in answer.json()["playbook"][0]  # the known ones are listed
    assert not TriageRule.objects.exists()


def test_a_suppressing_rule_cannot_name_a_playbook(api, lead):
    tag_then_wait()
    body = rule_body(
        effect=RuleEffect.SUPPRESS, suppress_reason="scanner", playbook="tag-then-wait"
    )

    answer = api(lead).post(RULES, body, format="json")

    assert answer.status_code == 400
    assert "playbook" in answer.json()


def test_the_admin_form_offers_the_playbooks_and_refuses_others(client, lead):
    tag_then_wait()
    client.force_login(lead)

    page = client.get("/admin/findings/triagerule/add/")
    assert 'value="tag-then-wait"' in page.text

    form = {
        "name": "Crypto",
        "position": 1,
        "sources": "[]",
        "type_patterns": '["CryptoCurrency:EC2/*"]',
        "accounts": "[]",
        "regions": "[]",
        "resource_tags": "{}",
        "objectives": "[]",
        "effect": RuleEffect.OPEN_INCIDENT,
        "incident_category": "other",
        "playbook": "tag-then-run",
    }
    refused = client.post("/admin/findings/triagerule/add/", form)
    assert refused.status_code == 200 and not TriageRule.objects.exists()

    saved = client.post("/admin/findings/triagerule/add/", {**form, "playbook": "tag-then-wait"})
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    assert TriageRule.objects.get().playbook == "tag-then-wait"
