"""Who may reach each findings endpoint, role by role.

The rules: integrations and leads send events; leads read and resubmit the quarantine;
anyone with a role reads triage rules and leads change them. A finding goes with its
incident, so one in a restricted incident is known only to those who may see that
incident; findings in no incident (the triage queue) are read by every role.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from cases.models import Incident, Participant
from findings import demo, services
from findings.models import Finding, QuarantinedEvent, TriageRule
from irportal.actors import Actor

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Call:
    name: str
    method: str
    path: str
    body: Any = None
    ok: int = 200

    def send(self, client: APIClient, ids: dict[str, Any]) -> Any:
        return getattr(client, self.method.lower())(self.path.format(**ids), self.body)


EVENT = {"source": "canary", "id": "access-1", "title": "Canary token used", "severity": "low"}
EVENTS = Call("events", "POST", "/api/v1/events/", EVENT)
FINDING_READS = [
    Call("findings", "GET", "/api/v1/findings/"),
    Call("finding", "GET", "/api/v1/findings/{finding}/"),
]
QUARANTINE = [
    Call("quarantine", "GET", "/api/v1/quarantine/"),
    Call("quarantined", "GET", "/api/v1/quarantine/{kept}/"),
    Call("resubmit", "POST", "/api/v1/quarantine/{kept}/resubmit/"),
]
RULE_READS = [
    Call("rules", "GET", "/api/v1/triage-rules/"),
    Call("rule", "GET", "/api/v1/triage-rules/{rule}/"),
]
SUPPRESS = {"effect": "suppress", "suppress_reason": "Our scanner"}
RULE_WRITES = [
    Call("rule-create", "POST", "/api/v1/triage-rules/", {"name": "New", **SUPPRESS}, 201),
    Call("rule-update", "PATCH", "/api/v1/triage-rules/{rule}/", {"enabled": False}),
    Call("rule-replace", "PUT", "/api/v1/triage-rules/{rule}/", {"name": "Other", **SUPPRESS}),
    Call("rule-delete", "DELETE", "/api/v1/triage-rules/{rule}/", ok=204),
    Call("rule-preview", "POST", "/api/v1/triage-rules/preview/", {"effect": "open_incident"}),
]
ENDPOINTS = [EVENTS, *FINDING_READS, *QUARANTINE, *RULE_READS, *RULE_WRITES]

EVERY_ROLE = ["lead", "superuser", "responder", "other_responder", "leadership", "integration"]
LEADS = {"lead", "superuser"}


def by_name(calls: list[Call]) -> Any:
    return pytest.mark.parametrize("call", calls, ids=[c.name for c in calls])


def ingest(*events: dict[str, Any]) -> list[Finding]:
    results = services.ingest(Actor.system("test"), list(events))
    return [Finding.objects.get(pk=f.finding.pk) for r in results for f in r.findings]


def furnish() -> dict[str, Any]:
    """An untriaged finding, a quarantined event that now parses, and a rule; their ids."""
    [finding] = ingest(demo.guardduty_event("Recon:EC2/PortProbeUnprotectedPort", 2.0))
    kept = QuarantinedEvent.objects.create(
        received_by="integration:guardduty-bridge",
        payload=json.dumps(demo.guardduty_event("Recon:EC2/PortProbeUnprotectedPort", 2.0)),
        error="was not understood then",
    )
    return {"finding": finding.pk, "kept": kept.pk, "rule": TriageRule.objects.first().pk}


def in_incident(incident: Incident) -> Finding:
    """A finding a rule attaches to `incident`."""
    TriageRule.objects.create(
        name=f"into {incident.reference}",
        position=0,
        type_patterns=["Test:EC2/*"],
        effect="attach",
        target_incident=incident,
    )
    [finding] = ingest(demo.guardduty_event("Test:EC2/Attached", 5.0, instance_id="i-0r"))
    assert finding.incident == incident
    return finding


def state() -> dict[str, Any]:
    return {
        "findings": list(Finding.objects.values_list("pk", "decision", "incident")),
        "quarantine": list(QuarantinedEvent.objects.values_list("pk", "resubmitted_at")),
        "rules": list(TriageRule.objects.values_list("pk", "name", "enabled", "updated_at")),
    }


def cast(request: pytest.FixtureRequest, name: str, incident: Incident | None = None) -> User:
    """A conftest user by fixture name; `participant` is the no-role outsider on `incident`."""
    if name == "participant":
        user = request.getfixturevalue("outsider")
        Participant.objects.create(incident=incident, user=user, role="responder")
        return user
    return request.getfixturevalue(name)


# --- Authentication -------------------------------------------------------------------------


@by_name(ENDPOINTS)
def test_anonymous_is_refused_everywhere(api, call):
    ids = furnish()
    before = state()

    answer = call.send(api(None), ids)

    assert answer.status_code == 401
    assert answer["WWW-Authenticate"] == "Token"
    assert state() == before


# --- Events -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("integration", True),
        ("lead", True),
        ("superuser", True),
        ("responder", False),
        ("other_responder", False),
        ("leadership", False),
        ("outsider", False),
    ],
)
def test_only_integrations_and_leads_send_events(request, api, name, allowed):
    client = api(request.getfixturevalue(name))

    answer = EVENTS.send(client, {})

    if allowed:
        assert answer.status_code == 200, answer.json()
        assert Finding.objects.filter(provider_id="canary:access-1").exists()
    else:
        assert answer.status_code == 403
        assert answer.json() == {"detail": "Only integrations and leads send events."}
        assert not Finding.objects.exists()
        assert not QuarantinedEvent.objects.exists()


def test_a_refused_sender_leaves_nothing_in_quarantine(api, responder):
    api(responder).post("/api/v1/events/", "{not json", content_type="application/json")

    assert not QuarantinedEvent.objects.exists()


# --- Quarantine ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*EVERY_ROLE, "outsider"])
def test_only_leads_reach_the_quarantine(request, api, name):
    ids = furnish()
    client = api(request.getfixturevalue(name))

    statuses = {call.name: call.send(client, ids).status_code for call in QUARANTINE}

    expected = 200 if name in LEADS else 403
    assert statuses == dict.fromkeys(statuses, expected)
    resubmitted = QuarantinedEvent.objects.get(pk=ids["kept"]).resubmitted_at is not None
    assert resubmitted is (name in LEADS)


# --- Triage rules -------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*EVERY_ROLE, "outsider"])
def test_anyone_with_a_role_reads_the_rules(request, api, name):
    ids = furnish()
    client = api(request.getfixturevalue(name))

    statuses = {call.name: call.send(client, ids).status_code for call in RULE_READS}

    expected = 403 if name == "outsider" else 200
    assert statuses == dict.fromkeys(statuses, expected)


@by_name(RULE_WRITES)
@pytest.mark.parametrize("name", [*EVERY_ROLE, "outsider"])
def test_only_leads_change_the_rules(request, api, name, call):
    ids = furnish()
    before = state()

    answer = call.send(api(request.getfixturevalue(name)), ids)

    if name in LEADS:
        assert answer.status_code == call.ok, answer.content
    else:
        assert answer.status_code == 403
        assert state() == before


@pytest.mark.parametrize(
    ("name", "sees"),
    [
        ("lead", True),
        ("superuser", True),
        ("responder", True),
        ("other_responder", False),
        ("leadership", False),
        ("integration", False),
    ],
)
def test_a_rule_does_not_reveal_a_restricted_incident(
    request, api, restricted_incident, name, sees
):
    saved = TriageRule.objects.create(
        name="Payroll", effect="attach", target_incident=restricted_incident
    )
    client = api(request.getfixturevalue(name))

    shown = client.get(f"/api/v1/triage-rules/{saved.pk}/").json()["target_incident"]
    listed = client.get("/api/v1/triage-rules/", {"search": "Payroll"}).json()["results"]

    expected = restricted_incident.reference if sees else None
    assert shown == expected
    assert [r["target_incident"] for r in listed] == [expected]


# --- Findings -----------------------------------------------------------------------------


def listed(client: APIClient) -> set[int]:
    return {f["id"] for f in client.get("/api/v1/findings/").json()["results"]}


@pytest.mark.parametrize(
    ("name", "sees"),
    [
        ("lead", True),
        ("superuser", True),
        ("responder", True),  # takes part in the restricted incident
        ("participant", True),
        ("other_responder", False),
        ("leadership", False),
        ("integration", False),
        ("outsider", False),
    ],
)
def test_a_finding_in_a_restricted_incident_is_known_only_to_who_may_see_it(
    request, api, restricted_incident, name, sees
):
    finding = in_incident(restricted_incident)
    client = api(cast(request, name, restricted_incident))

    detail = client.get(f"/api/v1/findings/{finding.pk}/")

    assert (finding.pk in listed(client)) is sees
    assert detail.status_code == (200 if sees else 404)
    if sees:
        assert detail.json()["incident"] == restricted_incident.reference
        assert detail.json()["raw"]["type"] == "Test:EC2/Attached"


@pytest.mark.parametrize(
    ("name", "sees"),
    [
        ("lead", True),
        ("superuser", True),
        ("responder", True),
        ("other_responder", True),
        ("leadership", True),
        ("integration", True),
        ("outsider", False),
    ],
)
def test_the_triage_queue_is_read_by_every_role(request, api, name, sees):
    ids = furnish()
    client = api(request.getfixturevalue(name))

    statuses = {call.name: call.send(client, ids).status_code for call in FINDING_READS}

    assert (ids["finding"] in listed(client)) is sees
    assert statuses == {"findings": 200, "finding": 200 if sees else 404}


def test_someone_without_a_role_sees_the_findings_of_incidents_they_take_part_in(
    api, outsider, incident
):
    finding = in_incident(incident)
    client = api(outsider)
    assert finding.pk not in listed(client)

    Participant.objects.create(incident=incident, user=outsider, role="observer")

    assert listed(client) == {finding.pk}


def test_the_rule_list_checks_named_incidents_in_one_query(
    api, responder, make_incident, django_assert_max_num_queries
):
    from findings.models import TriageRule

    for n in range(5):
        TriageRule.objects.create(
            name=f"attach {n}", effect="attach", target_incident=make_incident(), position=n
        )

    with django_assert_max_num_queries(6):
        answer = api(responder).get("/api/v1/triage-rules/?page_size=50")

    assert answer.status_code == 200
