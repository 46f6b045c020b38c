from datetime import timedelta

import pytest
from django.utils import timezone

from cases.choices import EntryKind, Resolution, Status
from cases.models import TimelineEntry, TransitionNotAllowed
from irportal.actors import Actor

pytestmark = pytest.mark.django_db


@pytest.fixture
def actor(lead):
    return Actor.for_user(lead)


def walk(incident, actor, *statuses):
    for status in statuses:
        incident.move_to(actor, status)


def test_each_phase_sets_its_timestamp(incident, actor):
    walk(incident, actor, Status.TRIAGED, Status.CONTAINED, Status.ERADICATED, Status.RECOVERED)
    incident.move_to(actor, Status.CLOSED, resolution=Resolution.RESOLVED)

    incident.refresh_from_db()
    stamps = [
        incident.acknowledged_at,
        incident.contained_at,
        incident.eradicated_at,
        incident.recovered_at,
        incident.closed_at,
    ]
    assert all(stamps) and stamps == sorted(stamps)
    assert incident.resolution == Resolution.RESOLVED


def test_metrics_derive_from_timestamps(make_incident, actor):
    now = timezone.now()
    incident = make_incident(
        detected_at=now - timedelta(hours=3), reported_at=now - timedelta(hours=2)
    )
    incident.move_to(actor, Status.TRIAGED, at=now - timedelta(minutes=110))
    incident.move_to(actor, Status.CONTAINED, at=now - timedelta(hours=1))

    assert incident.time_to_detect == timedelta(hours=1)
    assert incident.time_to_acknowledge == timedelta(minutes=10)
    assert incident.time_to_contain == timedelta(hours=2)
    assert incident.time_to_recover is None


def test_it_refuses_a_skipped_phase_with_the_reason(incident, actor):
    with pytest.raises(TransitionNotAllowed, match="cannot go from detected to recovered"):
        incident.move_to(actor, Status.RECOVERED)


def test_it_refuses_closing_as_resolved_before_recovery(incident, actor):
    with pytest.raises(TransitionNotAllowed, match="only once recovered"):
        incident.move_to(actor, Status.CLOSED, resolution=Resolution.RESOLVED)


def test_closing_needs_a_resolution(incident, actor):
    with pytest.raises(TransitionNotAllowed, match="needs a resolution"):
        incident.move_to(actor, Status.CLOSED)


def test_false_positive_closes_from_detected(incident, actor):
    incident.move_to(
        actor, Status.CLOSED, resolution=Resolution.FALSE_POSITIVE, reason="test traffic"
    )

    entry = TimelineEntry.objects.filter(incident=incident).last()
    assert entry.kind == EntryKind.INCIDENT_STATUS_CHANGED
    assert entry.data == {
        "from": "detected",
        "to": "closed",
        "resolution": "false_positive",
        "reason": "test traffic",
    }


def test_reopening_clears_closure(incident, actor):
    incident.move_to(actor, Status.CLOSED, resolution=Resolution.BENIGN)
    incident.move_to(actor, Status.TRIAGED)

    incident.refresh_from_db()
    assert (incident.status, incident.closed_at, incident.resolution) == ("triaged", None, "")


def test_refused_transition_changes_nothing(incident, actor):
    before = TimelineEntry.objects.count()
    with pytest.raises(TransitionNotAllowed):
        incident.move_to(actor, Status.ERADICATED)

    incident.refresh_from_db()
    assert incident.status == Status.DETECTED
    assert TimelineEntry.objects.count() == before


def test_a_change_cannot_be_dated_in_the_future(incident, actor):
    with pytest.raises(TransitionNotAllowed, match="future"):
        incident.move_to(actor, Status.TRIAGED, at=timezone.now() + timedelta(hours=1))


def test_transition_sees_a_change_made_by_someone_else(incident, actor):
    stale = type(incident).objects.get(pk=incident.pk)
    incident.move_to(actor, Status.TRIAGED)

    with pytest.raises(TransitionNotAllowed, match="already triaged"):
        stale.move_to(actor, Status.TRIAGED)


def test_acknowledging_twice_records_once(incident, actor):
    assert incident.acknowledge(actor) is True
    assert incident.acknowledge(actor) is False

    kinds = TimelineEntry.objects.filter(incident=incident).values_list("kind", flat=True)
    assert list(kinds).count(EntryKind.INCIDENT_ACKNOWLEDGED) == 1


def test_api_answers_409_with_the_reason(api, responder, incident):
    answer = api(responder).post(
        f"/api/v1/incidents/{incident.reference}/transition/", {"status": "recovered"}
    )

    assert answer.status_code == 409
    assert "cannot go from detected to recovered" in answer.json()["detail"]


def test_api_transition_returns_the_moved_incident(api, responder, incident):
    answer = api(responder).post(
        f"/api/v1/incidents/{incident.reference}/transition/",
        {"status": "triaged", "reason": "confirmed by on-call"},
    )

    assert answer.status_code == 200
    assert answer.json()["status"] == "triaged"
    assert answer.json()["acknowledged_at"] is not None


def test_api_rejects_an_unknown_status_as_bad_input(api, responder, incident):
    answer = api(responder).post(
        f"/api/v1/incidents/{incident.reference}/transition/", {"status": "fixed"}
    )

    assert answer.status_code == 400
    assert "status" in answer.json()


def test_api_refuses_detection_after_report(api, responder, incident):
    answer = api(responder).patch(
        f"/api/v1/incidents/{incident.reference}/",
        {"detected_at": (incident.reported_at + timedelta(minutes=1)).isoformat()},
    )

    assert answer.status_code == 400
    assert "detected_at" in answer.json()


def test_status_cannot_be_patched_directly(api, responder, incident):
    answer = api(responder).patch(f"/api/v1/incidents/{incident.reference}/", {"status": "closed"})

    incident.refresh_from_db()
    assert answer.status_code == 200
    assert incident.status == Status.DETECTED


def test_a_responder_who_restricts_an_incident_stays_on_it(api, other_responder, incident):
    client = api(other_responder)

    client.patch(f"/api/v1/incidents/{incident.reference}/", {"restricted": True})

    assert client.get(f"/api/v1/incidents/{incident.reference}/").status_code == 200
    participants = client.get(f"/api/v1/incidents/{incident.reference}/participants/").json()
    assert [p["user"] for p in participants["results"]] == ["rita"]


def test_a_responder_who_opens_a_restricted_incident_takes_part_in_it(api, responder):
    client = api(responder)

    opened = client.post("/api/v1/incidents/", {"title": "HR case", "restricted": True}).json()

    assert client.get(f"/api/v1/incidents/{opened['reference']}/").status_code == 200
