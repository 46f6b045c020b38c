"""People decide for the findings no rule took into an incident."""

import pytest

from cases.choices import EntryKind
from cases.models import TimelineEntry
from findings.demo import guardduty_event
from findings.models import Finding

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting(api, integration):
    event = guardduty_event("Recon:EC2/PortProbeUnprotectedPort", 2.0, instance_id="i-0probe")
    api(integration).post("/api/v1/events/", event, format="json")
    finding = Finding.objects.get()
    assert finding.decision == "untriaged"
    return finding


def triage(client, finding, **decision):
    return client.post(f"/api/v1/findings/{finding.pk}/triage/", decision, format="json")


def test_a_responder_opens_an_incident_for_a_finding(api, responder, waiting):
    answer = triage(api(responder), waiting, decision="opened", category="compromised_instance")

    assert answer.status_code == 200, answer.json()
    waiting.refresh_from_db()
    assert (waiting.decision, waiting.incident.category) == ("opened", "compromised_instance")
    entry = TimelineEntry.objects.get(incident=waiting.incident, kind=EntryKind.FINDING_ADDED)
    assert (entry.actor_kind, entry.actor_name) == ("user", "rui")


def test_a_responder_attaches_a_finding_to_an_incident(api, responder, waiting, incident):
    answer = triage(api(responder), waiting, decision="attached", incident=incident.reference)

    assert answer.status_code == 200, answer.json()
    assert answer.json()["incident"] == incident.reference


def test_suppressing_needs_a_reason(api, responder, waiting):
    refused = triage(api(responder), waiting, decision="suppressed")
    accepted = triage(api(responder), waiting, decision="suppressed", reason="our scanner")

    assert refused.status_code == 400 and "reason" in refused.json()
    assert accepted.json()["decision"] == "suppressed"
    assert "our scanner" in accepted.json()["decision_reason"]


def test_a_hidden_incident_cannot_be_named(api, other_responder, waiting, restricted_incident):
    answer = triage(
        api(other_responder), waiting, decision="attached", incident=restricted_incident.reference
    )

    assert answer.status_code == 400
    assert "does not exist" in answer.json()["incident"][0]


def test_leadership_cannot_triage(api, leadership, waiting):
    assert triage(api(leadership), waiting, decision="opened").status_code == 403


def test_a_finding_in_an_incident_is_not_triaged_again(api, responder, waiting, incident):
    triage(api(responder), waiting, decision="attached", incident=incident.reference)

    again = triage(api(responder), waiting, decision="opened")

    assert again.status_code == 409
