import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cases.choices import EntryKind, Status
from cases.models import Incident, TimelineEntry

pytestmark = pytest.mark.django_db


def test_responder_opens_incident_and_timeline_records_it(api, responder):
    answer = api(responder).post(
        "/api/v1/incidents/",
        {"title": "Root login from Tor", "severity": "sev1", "category": "compromised_credentials"},
    )

    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert body["reference"].startswith("IR-")
    assert body["status"] == Status.DETECTED
    incident = Incident.objects.get(reference=body["reference"])
    opened = TimelineEntry.objects.get(incident=incident)
    assert (opened.kind, opened.actor_name) == (EntryKind.INCIDENT_OPENED, "rui")


def test_it_rejects_bad_fields_with_messages_per_field(api, responder):
    answer = api(responder).post("/api/v1/incidents/", {"severity": "sev9"})

    assert answer.status_code == 400
    assert set(answer.json()) == {"title", "severity"}
    assert not Incident.objects.exists()


def test_references_are_sequential_within_the_year(api, responder):
    first = api(responder).post("/api/v1/incidents/", {"title": "a"}).json()["reference"]
    second = api(responder).post("/api/v1/incidents/", {"title": "b"}).json()["reference"]

    year, number = first.split("-")[1:]
    assert second == f"IR-{year}-{int(number) + 1:04d}"


def test_list_query_count_does_not_grow_with_page_size(api, lead, make_incident):
    for n in range(30):
        make_incident(title=f"incident {n}")
    client = api(lead)

    counts = []
    for size in (5, 30):
        with CaptureQueriesContext(connection) as queries:
            answer = client.get(f"/api/v1/incidents/?page_size={size}")
        assert len(answer.json()["results"]) == size
        counts.append(len(queries))
    assert counts[0] == counts[1]
