"""Triage: which rule decides, what it does to incidents, and how findings are grouped."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from cases.choices import EntryKind
from cases.models import Incident, TimelineEntry
from findings import demo, services
from findings.choices import RuleEffect
from findings.models import Finding, TriageRule
from irportal.actors import Actor

pytestmark = pytest.mark.django_db

RULES = "/api/v1/triage-rules/"


@pytest.fixture
def ingest(integration):
    """Send events as the integration; the findings they became, as stored."""
    actor = Actor.for_user(integration)

    def send(*events: dict[str, Any]) -> list[Finding]:
        results = services.ingest(actor, list(events))
        assert [r.error for r in results if r.rejected] == []
        pks = [f.finding.pk for r in results for f in r.findings]
        return [Finding.objects.select_related("incident", "rule").get(pk=pk) for pk in pks]

    return send


@pytest.fixture
def own_rules_only(db):
    """Without the default rules, so that only the rules a test makes decide."""
    TriageRule.objects.all().delete()


def rule(**fields: Any) -> TriageRule:
    fields.setdefault("name", f"rule {TriageRule.objects.count() + 1}")
    fields.setdefault("position", 1)
    fields.setdefault("type_patterns", ["Test:EC2/*"])
    fields.setdefault("effect", RuleEffect.SUPPRESS)
    if fields["effect"] == RuleEffect.SUPPRESS:
        fields.setdefault("suppress_reason", "known scanner")
    return TriageRule.objects.create(**fields)


def opening(**fields: Any) -> TriageRule:
    fields.setdefault("incident_category", "compromised_instance")
    return rule(effect=RuleEffect.OPEN_INCIDENT, **fields)


def event(finding_type: str = "Test:EC2/Probe", severity: float = 5.0, **fields: Any) -> Any:
    if "access_key" not in fields and "bucket" not in fields:
        fields.setdefault("instance_id", "i-0test")
    return demo.guardduty_event(finding_type, severity, **fields)


def chains_hold() -> bool:
    return all(TimelineEntry.objects.verify_chain(i) is None for i in Incident.objects.all())


def added_entry(finding: Finding) -> TimelineEntry:
    return TimelineEntry.objects.get(
        incident=finding.incident, kind=EntryKind.FINDING_ADDED, data__finding=finding.pk
    )


# --- The default rules ----------------------------------------------------------------------


def test_default_rules_turn_the_demo_stream_into_incidents(ingest):
    crypto, bitcoin, credentials, bucket, probe, probe_2, stop = ingest(*demo.demo_stream())

    assert (crypto.decision, bitcoin.decision) == ("opened", "joined")
    assert crypto.incident == bitcoin.incident
    assert crypto.rule.name == bitcoin.rule.name == "Cryptomining on EC2"
    malware = crypto.incident
    assert (malware.category, malware.severity) == ("malware", "sev2")
    assert set(malware.objectives.values_list("kind", flat=True)) == {
        "contain",
        "preserve_evidence",
        "recover",
    }
    assert credentials.incident.category == "compromised_credentials"
    assert bucket.incident.category == "data_exposure"
    assert set(bucket.incident.objectives.values_list("kind", flat=True)) == {
        "contain",
        "preserve_evidence",
        "notify",
    }
    assert (stop.incident.category, stop.incident.severity) == ("unauthorized_change", "sev2")
    assert stop.rule.name == "Logging or detection tampered with"
    for untouched in (probe, probe_2):
        assert (untouched.decision, untouched.incident, untouched.rule) == ("untriaged", None, None)
    assert Incident.objects.count() == 4
    assert chains_hold()


def test_an_incident_opened_for_a_finding_names_its_resources(ingest):
    [crypto] = ingest(demo.demo_stream()[0])

    [resource] = crypto.incident.resources.all()
    assert (resource.identifier, resource.resource_type) == (
        "i-0d3m0web00000001",
        "AWS::EC2::Instance",
    )
    assert (resource.account_id, resource.region) == (demo.DEMO_ACCOUNT, demo.DEMO_REGION)
    assert resource.tags == {"Name": "web-1", "env": "production"}


def test_every_decision_is_in_the_incident_timeline_naming_the_rule(ingest):
    findings = [f for f in ingest(*demo.demo_stream()) if f.incident]

    assert len(findings) == 5
    for finding in findings:
        entry = added_entry(finding)
        assert (entry.actor_kind, entry.actor_name) == ("rule", finding.rule.name)
        assert finding.type in entry.summary
    for incident in Incident.objects.all():
        opened = incident.timeline.get(kind=EntryKind.INCIDENT_OPENED)
        assert opened.actor_kind == "rule"


def test_the_incident_is_detected_at_its_earliest_finding(ingest):
    crypto, bitcoin = ingest(*demo.demo_stream()[:2])

    incident = Incident.objects.get()
    assert bitcoin.first_seen < crypto.first_seen
    assert incident.detected_at == bitcoin.first_seen
    change = incident.timeline.get(kind=EntryKind.INCIDENT_UPDATED)
    assert (change.actor_kind, change.actor_name) == ("rule", "Cryptomining on EC2")
    assert list(change.data["changes"]) == ["detected_at"]
    assert chains_hold()


# --- Which rule decides -------------------------------------------------------------------


@pytest.mark.usefixtures("own_rules_only")
def test_rules_are_tried_by_position_and_the_first_match_decides(ingest):
    rule(name="second", position=2, suppress_reason="said by second")
    rule(name="first", position=1, suppress_reason="said by first")

    [finding] = ingest(event())

    assert (finding.rule.name, finding.decision, finding.decision_reason) == (
        "first",
        "suppressed",
        "said by first",
    )


@pytest.mark.usefixtures("own_rules_only")
def test_a_rule_that_does_not_match_is_passed_over(ingest):
    rule(name="other", position=1, type_patterns=["Backdoor:*"])
    rule(name="fallback", position=2)

    [finding] = ingest(event())

    assert finding.rule.name == "fallback"


@pytest.mark.usefixtures("own_rules_only")
def test_a_rule_that_continues_matching_is_overruled_by_a_later_match(ingest):
    rule(name="tentative", position=1, continue_matching=True, suppress_reason="maybe benign")
    opening(name="decisive", position=2)

    [finding] = ingest(event())

    assert (finding.rule.name, finding.decision) == ("decisive", "opened")
    assert finding.incident is not None
    assert added_entry(finding).actor_name == "decisive"


@pytest.mark.usefixtures("own_rules_only")
def test_a_rule_that_continues_matching_decides_when_no_later_rule_matches(ingest):
    rule(name="tentative", position=1, continue_matching=True, suppress_reason="maybe benign")
    opening(name="elsewhere", position=2, type_patterns=["Backdoor:*"])

    [finding] = ingest(event())

    assert (finding.rule.name, finding.decision_reason) == ("tentative", "maybe benign")


@pytest.mark.usefixtures("own_rules_only")
def test_matching_stops_at_the_first_rule_that_does_not_continue(ingest):
    rule(name="tentative", position=1, continue_matching=True)
    rule(name="final", position=2, suppress_reason="final word")
    opening(name="never", position=3)

    [finding] = ingest(event())

    assert (finding.rule.name, finding.decision_reason) == ("final", "final word")
    assert not Incident.objects.exists()


@pytest.mark.usefixtures("own_rules_only")
def test_a_suppressing_rule_records_why_and_opens_nothing(ingest):
    rule(name="scanner", suppress_reason="Our vulnerability scanner")

    [finding] = ingest(event())

    assert (finding.decision, finding.decision_reason) == (
        "suppressed",
        "Our vulnerability scanner",
    )
    assert (finding.rule.name, finding.incident) == ("scanner", None)
    assert not Incident.objects.exists()


@pytest.mark.usefixtures("own_rules_only")
@pytest.mark.parametrize(("expires_in", "matches"), [(-1, False), (60, True)])
def test_a_rule_stops_matching_when_it_expires(ingest, expires_in, matches):
    rule(name="temporary", expires_at=timezone.now() + timedelta(minutes=expires_in))

    [finding] = ingest(event())

    assert (finding.decision == "suppressed") is matches


@pytest.mark.usefixtures("own_rules_only")
def test_a_disabled_rule_does_not_match(ingest):
    rule(name="off", enabled=False)

    [finding] = ingest(event())

    assert (finding.decision, finding.rule) == ("untriaged", None)


@pytest.mark.usefixtures("own_rules_only")
def test_an_attaching_rule_puts_the_finding_in_its_incident(ingest, incident):
    rule(name="to the open case", effect=RuleEffect.ATTACH, target_incident=incident)

    [finding] = ingest(event())

    assert (finding.incident, finding.decision) == (incident, "attached")
    assert finding.decision_reason == "attached by to the open case"
    entry = added_entry(finding)
    assert (entry.actor_kind, entry.actor_name) == ("rule", "to the open case")
    assert Incident.objects.count() == 1
    assert chains_hold()


@pytest.mark.usefixtures("own_rules_only")
@pytest.mark.parametrize(
    ("carried", "wanted", "matches"),
    [
        ({"env": "production", "team": "web"}, {"env": "production"}, True),
        ({"env": "production", "team": "web"}, {"env": "production", "team": "web"}, True),
        ({"env": "staging"}, {"env": "production"}, False),
        ({"env": "production"}, {"env": "production", "team": "web"}, False),
        ({}, {"env": "production"}, False),
    ],
)
def test_a_rule_wants_every_tag_it_names(ingest, carried, wanted, matches):
    rule(name="tagged", resource_tags=wanted)

    [finding] = ingest(event(tags=carried))

    assert (finding.decision == "suppressed") is matches


@pytest.mark.usefixtures("own_rules_only")
@pytest.mark.parametrize(
    ("score", "matches"), [(2.0, False), (4.0, True), (8.9, True), (9.0, False)]
)
def test_a_rule_matches_within_its_severity_range(ingest, score, matches):
    rule(name="middling", min_severity="medium", max_severity="high")

    [finding] = ingest(event(severity=score))

    assert (finding.decision == "suppressed") is matches


@pytest.mark.usefixtures("own_rules_only")
@pytest.mark.parametrize(
    ("condition", "matches"),
    [
        ({"accounts": [demo.DEMO_ACCOUNT]}, True),
        ({"accounts": ["444455556666"]}, False),
        ({"regions": [demo.DEMO_REGION]}, True),
        ({"regions": ["us-east-1"]}, False),
        ({"sources": ["guardduty"]}, True),
        ({"sources": ["cloudtrail", "securityhub"]}, False),
        ({"type_patterns": ["Test:*/Probe"]}, True),
        ({"type_patterns": ["test:ec2/*"]}, False),
        ({"type_patterns": ["Backdoor:*", "Test:EC2/Pro?e"]}, True),
    ],
)
def test_a_rule_matches_what_it_names(ingest, condition, matches):
    rule(name="narrow", **condition)

    [finding] = ingest(event())

    assert (finding.decision == "suppressed") is matches


# --- Grouping -----------------------------------------------------------------------------


@pytest.fixture
def later():
    """Run the rest of a test some hours from now."""
    travels = []

    def travel(hours: float) -> None:
        traveller = time_machine.travel(timezone.now() + timedelta(hours=hours))
        traveller.start()
        travels.append(traveller)

    yield travel
    for traveller in reversed(travels):
        traveller.stop()


@pytest.mark.usefixtures("own_rules_only")
def test_a_finding_about_the_same_resource_joins_the_open_incident(ingest, later):
    opening(name="instances")
    [first] = ingest(event("Test:EC2/One", instance_id="i-1"))
    later(hours=2)

    [second] = ingest(event("Test:EC2/Two", instance_id="i-1"))

    assert second.incident == first.incident
    assert (second.decision, second.rule.name) == ("joined", "instances")
    assert second.decision_reason.startswith(f"joined {first.incident.reference}")
    assert added_entry(second).actor_name == "instances"
    assert Incident.objects.count() == 1
    assert chains_hold()


@pytest.mark.usefixtures("own_rules_only")
def test_a_finding_after_the_window_opens_its_own_incident(ingest, later):
    opening(name="instances")
    [first] = ingest(event("Test:EC2/One", instance_id="i-1"))
    later(hours=25)

    [second] = ingest(event("Test:EC2/Two", instance_id="i-1"))

    assert second.decision == "opened"
    assert second.incident != first.incident


@pytest.mark.usefixtures("own_rules_only")
def test_the_window_is_the_setting(ingest, later, settings):
    settings.FINDING_GROUPING_WINDOW = timedelta(hours=1)
    opening(name="instances")
    [first] = ingest(event("Test:EC2/One", instance_id="i-1"))
    later(hours=2)

    [second] = ingest(event("Test:EC2/Two", instance_id="i-1"))

    assert second.incident != first.incident


@pytest.mark.usefixtures("own_rules_only")
def test_a_closed_incident_is_not_joined(ingest):
    opening(name="instances")
    [first] = ingest(event("Test:EC2/One", instance_id="i-1"))
    first.incident.move_to(Actor.system("test"), "closed", resolution="false_positive")

    [second] = ingest(event("Test:EC2/Two", instance_id="i-1"))

    assert second.decision == "opened"
    assert second.incident != first.incident


@pytest.mark.usefixtures("own_rules_only")
def test_a_finding_of_another_category_is_not_joined(ingest):
    opening(name="instances", type_patterns=["Test:EC2/*"])
    opening(name="miners", type_patterns=["Mining:EC2/*"], incident_category="malware")
    [first] = ingest(event("Test:EC2/One", instance_id="i-1"))

    [second] = ingest(event("Mining:EC2/Two", instance_id="i-1"))

    assert second.incident != first.incident
    assert second.incident.category == "malware"


@pytest.mark.usefixtures("own_rules_only")
def test_a_finding_about_another_resource_is_not_joined(ingest):
    opening(name="instances")
    [first] = ingest(event("Test:EC2/One", instance_id="i-1"))

    [second] = ingest(event("Test:EC2/One", instance_id="i-2"))

    assert second.incident != first.incident


@pytest.mark.usefixtures("own_rules_only")
def test_a_user_of_the_same_name_in_another_account_is_another_resource(ingest):
    opening(name="credentials", type_patterns=["Test:IAMUser/*"])
    [first] = ingest(event("Test:IAMUser/One", access_key=("deployer", "AKIA1")))

    [second] = ingest(
        event("Test:IAMUser/One", access_key=("deployer", "AKIA2"), account="444455556666")
    )

    assert second.incident != first.incident
    assert second.decision == "opened"


@pytest.mark.usefixtures("own_rules_only")
def test_findings_that_name_no_resource_are_not_grouped_by_their_kind(ingest):
    opening(name="sequences", type_patterns=["AttackSequence:*"])
    sequences = [event("AttackSequence:IAM/CompromisedCredentials", 9.0) for _ in range(2)]
    for sequence in sequences:
        sequence["detail"]["resource"] = {"resourceType": "AttackSequence"}

    first, second = ingest(*sequences)

    assert first.incident != second.incident


@pytest.mark.usefixtures("own_rules_only")
def test_joining_moves_detected_at_to_the_earliest_first_seen(ingest):
    opening(name="instances")
    [first] = ingest(event("Test:EC2/One", instance_id="i-1"))
    earlier = timezone.now() - timedelta(hours=6)

    [second] = ingest(event("Test:EC2/Two", instance_id="i-1", first_seen=earlier))

    assert second.incident == first.incident
    first.incident.refresh_from_db()
    assert first.incident.detected_at == second.first_seen < first.first_seen
    assert chains_hold()


@pytest.mark.usefixtures("own_rules_only")
def test_a_later_finding_leaves_detected_at_alone(ingest, later):
    opening(name="instances")
    [first] = ingest(event("Test:EC2/One", instance_id="i-1"))
    detected = Incident.objects.get().detected_at
    later(hours=1)

    ingest(event("Test:EC2/Two", instance_id="i-1"))

    assert Incident.objects.get().detected_at == detected == first.first_seen


# --- Preview ------------------------------------------------------------------------------


def snapshot() -> dict[str, Any]:
    return {
        "rules": list(TriageRule.objects.values_list("pk", "updated_at")),
        "findings": list(
            Finding.objects.order_by("pk").values_list("pk", "decision", "rule", "incident")
        ),
        "incidents": Incident.objects.count(),
        "timeline": TimelineEntry.objects.count(),
    }


def test_preview_shows_what_a_rule_would_match_and_changes_nothing(api, lead, ingest):
    ingest(*demo.demo_stream())
    before = snapshot()

    answer = api(lead).post(
        RULES + "preview/",
        {"type_patterns": ["Recon:EC2/*"], "effect": "suppress", "suppress_reason": "scanner"},
    )

    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert (body["tried"], body["matched"]) == (7, 2)
    assert {f["type"] for f in body["findings"]} == {"Recon:EC2/PortProbeUnprotectedPort"}
    assert snapshot() == before


def test_preview_tries_only_the_latest_findings(api, lead, ingest):
    ingest(*demo.demo_stream())

    answer = api(lead).post(
        RULES + "preview/", {"effect": "open_incident", "min_severity": "high", "limit": 3}
    )

    assert answer.json()["tried"] == 3


def test_preview_may_reuse_the_name_of_a_saved_rule(api, lead, ingest):
    ingest(*demo.demo_stream())

    answer = api(lead).post(
        RULES + "preview/", {"name": "Cryptomining on EC2", "effect": "open_incident"}
    )

    assert answer.status_code == 200
    assert answer.json()["matched"] == 7


def test_preview_refuses_a_rule_that_could_not_be_saved(api, lead):
    answer = api(lead).post(RULES + "preview/", {"effect": "attach"})

    assert answer.status_code == 400
    assert answer.json() == {"target_incident": ["A rule that attaches names the incident."]}


# --- Writing rules ----------------------------------------------------------------------

VALID = {"name": "Backdoors", "effect": "open_incident", "type_patterns": ["Backdoor:EC2/*"]}


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        pytest.param(
            {"accounts": ["12345", "123456789012"]},
            {"accounts": ["An AWS account id is 12 digits: 12345."]},
            id="account-id",
        ),
        pytest.param(
            {"sources": ["splunk"]},
            {
                "sources": [
                    "Unknown source splunk; known: guardduty, securityhub, cloudtrail, other."
                ]
            },
            id="source",
        ),
        pytest.param(
            {"effect": "attach"},
            {"target_incident": ["A rule that attaches names the incident."]},
            id="attach-without-target",
        ),
        pytest.param(
            {"effect": "suppress"},
            {"suppress_reason": ["Say why these findings are benign."]},
            id="suppress-without-reason",
        ),
        pytest.param(
            {"min_severity": "high", "max_severity": "low"},
            {"max_severity": ["Lower than min_severity."]},
            id="severity-range",
        ),
        pytest.param(
            {"type_patterns": "Backdoor:EC2/*"},
            {"type_patterns": ["Give a list of finding type patterns such as 'Backdoor:EC2/*'."]},
            id="patterns-not-a-list",
        ),
        pytest.param(
            {"objectives": ["pray"]},
            {
                "objectives": [
                    "Unknown objective pray; known: contain, mitigate, recover, "
                    "preserve_evidence, attribute, notify, other."
                ]
            },
            id="objective",
        ),
        pytest.param(
            {"resource_tags": {"env": 1}},
            {"resource_tags": ["Give tags as an object of strings to strings."]},
            id="tags",
        ),
        pytest.param(
            {"name": "Cryptomining on EC2"},
            {"name": ["triage rule with this name already exists."]},
            id="name-taken",
        ),
    ],
)
def test_a_rule_that_makes_no_sense_is_refused_with_the_reason(api, lead, change, errors):
    rules = TriageRule.objects.count()

    answer = api(lead).post(RULES, {**VALID, **change})

    assert answer.status_code == 400
    assert answer.json() == errors
    assert TriageRule.objects.count() == rules


def test_a_change_is_checked_against_what_the_rule_already_says(api, lead):
    saved = opening(name="instances")

    answer = api(lead).patch(f"{RULES}{saved.pk}/", {"effect": "suppress"})

    assert answer.status_code == 400
    assert answer.json() == {"suppress_reason": ["Say why these findings are benign."]}


@pytest.mark.usefixtures("own_rules_only")
def test_a_rule_a_lead_writes_triages_the_next_finding(api, lead, incident, ingest):
    answer = api(lead).post(
        RULES,
        {
            "name": "Into the open case",
            "effect": "attach",
            "target_incident": incident.reference,
            "type_patterns": ["Test:EC2/*"],
            "accounts": [demo.DEMO_ACCOUNT],
        },
    )
    assert answer.status_code == 201, answer.json()
    assert answer.json()["target_incident"] == incident.reference

    [finding] = ingest(event())

    assert (finding.incident, finding.rule.name) == (incident, "Into the open case")


def test_an_untriaged_finding_that_grows_severe_is_triaged_again(api, integration):
    from findings.demo import guardduty_event

    client = api(integration)
    quiet = guardduty_event(
        "Backdoor:EC2/C&CActivity.B", 2.0, instance_id="i-0grows", finding_id="f-1"
    )
    client.post("/api/v1/events/", quiet, format="json")
    assert Finding.objects.get(provider_id="f-1").decision == "untriaged"

    loud = guardduty_event(
        "Backdoor:EC2/C&CActivity.B", 8.0, instance_id="i-0grows", finding_id="f-1", count=3
    )
    answer = client.post("/api/v1/events/", loud, format="json").json()

    finding = Finding.objects.get(provider_id="f-1")
    assert answer["outcome"] == "updated"
    assert finding.decision == "opened"
    assert finding.incident is not None and finding.incident.category == "compromised_instance"
