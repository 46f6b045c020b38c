import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cases.choices import EntryKind, Status
from cases.models import Incident, TimelineEntry
from irportal.actors import Actor
from irportal.tests.concurrency import at_once

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


def number_of(reference: str) -> int:
    return int(reference.rsplit("-", 1)[1])


def test_a_creation_that_fails_hands_its_number_to_the_next(responder, monkeypatch):
    from cases import services

    actor = Actor.for_user(responder)
    first = services.open_incident(actor, title="first")

    def timeline_down(*args, **kwargs):
        raise RuntimeError("the timeline refused the entry")

    with monkeypatch.context() as patched:
        patched.setattr(TimelineEntry.objects, "append", timeline_down)
        with pytest.raises(RuntimeError):
            services.open_incident(actor, title="failed")
    after = services.open_incident(actor, title="after")

    assert not Incident.objects.filter(title="failed").exists()
    assert number_of(after.reference) == number_of(first.reference) + 1


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_creations_take_distinct_consecutive_references(responder):
    from cases import services

    creators, per_creator = 4, 10
    references: list[str] = []

    def create(_creator: int) -> None:
        for n in range(per_creator):
            incident = services.open_incident(Actor.for_user(responder), title=f"n{n}")
            references.append(incident.reference)

    assert at_once(creators, create) == []
    numbers = sorted(number_of(reference) for reference in references)
    assert numbers == list(range(numbers[0], numbers[0] + creators * per_creator))


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
