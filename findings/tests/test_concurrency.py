"""Batches that touch the same incidents at once all succeed: no deadlock reaches a client."""

import random

import pytest

from cases.models import Incident, TimelineEntry
from findings import services
from findings.demo import guardduty_event
from irportal.actors import Actor, ActorKind
from irportal.tests.concurrency import at_once

INSTANCES = [f"i-0shared{n:08d}" for n in range(6)]
BOT = Actor(kind=ActorKind.INTEGRATION, name="test-bridge")


def joining_batch(seed: int) -> list[dict]:
    """New high-severity findings about the shared instances, in an order of its own,
    plus later versions of findings other batches may hold."""
    shuffled = random.Random(seed).sample(INSTANCES * 3, len(INSTANCES) * 3)
    events = [
        guardduty_event("Backdoor:EC2/C&CActivity.B!DNS", 8.0, instance_id=i) for i in shuffled
    ]
    events += [
        guardduty_event(
            "Backdoor:EC2/C&CActivity.B!DNS",
            8.0,
            instance_id=i,
            finding_id=f"seed-{i}",
            count=seed + 2,
        )
        for i in shuffled[:4]
    ]
    return events


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_batches_on_the_same_incidents_all_succeed():
    # One incident per instance, each with a finding that later batches update.
    services.ingest(
        BOT,
        [
            guardduty_event(
                "Backdoor:EC2/C&CActivity.B!DNS", 8.0, instance_id=i, finding_id=f"seed-{i}"
            )
            for i in INSTANCES
        ],
    )
    assert Incident.objects.count() == len(INSTANCES)

    def send(worker: int) -> None:
        for round_ in range(3):
            services.ingest(BOT, joining_batch(worker * 10 + round_))

    assert at_once(4, send) == []
    assert Incident.objects.count() == len(INSTANCES), (
        "every finding joined its instance's incident"
    )
    for incident in Incident.objects.all():
        assert TimelineEntry.objects.verify_chain(incident) is None
