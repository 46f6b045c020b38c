import pytest
from django.urls import reverse

from findings.demo import guardduty_event
from findings.models import Finding

pytestmark = pytest.mark.django_db


@pytest.fixture
def probe(api, integration):
    event = guardduty_event("Recon:EC2/PortProbeUnprotectedPort", 2.0, instance_id="i-0probe")
    api(integration).post("/api/v1/events/", event, format="json")
    return Finding.objects.get()


def test_the_queue_shows_untriaged_findings(client, responder, probe):
    client.force_login(responder)

    answer = client.get(reverse("finding-list"))

    assert "Recon:EC2/PortProbeUnprotectedPort" in answer.text


def test_opening_an_incident_from_the_queue(client, responder, probe):
    client.force_login(responder)

    answer = client.post(
        reverse("finding-triage", args=[probe.pk]),
        {"decision": "opened", "category": "compromised_instance"},
    )

    probe.refresh_from_db()
    assert answer.status_code == 302
    assert answer.url == reverse("incident-detail", args=[probe.incident.reference])


def test_suppressing_from_the_queue_needs_a_reason(client, responder, probe):
    client.force_login(responder)

    client.post(reverse("finding-triage", args=[probe.pk]), {"decision": "suppressed"})
    probe.refresh_from_db()
    assert probe.decision == "untriaged"

    client.post(
        reverse("finding-triage", args=[probe.pk]), {"decision": "suppressed", "reason": "scanner"}
    )
    probe.refresh_from_db()
    assert probe.decision == "suppressed"


def test_leadership_reads_the_queue_but_cannot_decide(client, leadership, probe):
    client.force_login(leadership)

    assert client.get(reverse("finding-list")).status_code == 200
    refused = client.post(reverse("finding-triage", args=[probe.pk]), {"decision": "opened"})
    assert refused.status_code == 403
