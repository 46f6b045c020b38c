from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from cases.choices import EntryKind, Resolution, Severity, Status
from cases.models import TimelineEntry
from cases.tasks import flag_missed_acknowledgements
from irportal.actors import Actor

pytestmark = pytest.mark.django_db


def missed_entries(incident):
    return TimelineEntry.objects.filter(incident=incident, kind=EntryKind.ACKNOWLEDGEMENT_MISSED)


@pytest.fixture
def reported(make_incident):
    """Opened now, with each severity; the clock is then moved forward."""
    return {severity: make_incident(title=severity, severity=severity) for severity in Severity}


def test_sev1_is_flagged_after_fifteen_minutes(reported):
    with time_machine.travel(timezone.now() + timedelta(minutes=14)):
        assert flag_missed_acknowledgements() == []
    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        assert flag_missed_acknowledgements() == [reported[Severity.SEV1].reference]

    entry = missed_entries(reported[Severity.SEV1]).get()
    assert entry.actor_name == "acknowledgement-deadline"
    assert entry.summary == "Not acknowledged within 15 min (SEV1)"


def test_each_severity_has_its_own_deadline(reported):
    with time_machine.travel(timezone.now() + timedelta(hours=5)):
        flagged = flag_missed_acknowledgements()

    assert sorted(flagged) == sorted(reported[s].reference for s in ("sev1", "sev2", "sev3"))


def test_an_incident_is_flagged_once(reported):
    with time_machine.travel(timezone.now() + timedelta(days=2)):
        flag_missed_acknowledgements()
        assert flag_missed_acknowledgements() == []

    assert missed_entries(reported[Severity.SEV4]).count() == 1


def test_acknowledged_and_closed_incidents_are_not_flagged(reported, lead):
    actor = Actor.for_user(lead)
    reported[Severity.SEV1].acknowledge(actor)
    reported[Severity.SEV2].move_to(actor, Status.CLOSED, resolution=Resolution.FALSE_POSITIVE)

    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert flag_missed_acknowledgements() == []
