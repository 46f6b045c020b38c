"""Batches that touch the same incidents at once all succeed: no deadlock reaches a client."""

import random
import threading

import pytest
from django.db import connection

from cases.models import Incident, TimelineEntry
from findings import services
from findings.demo import guardduty_event
from irportal.actors import Actor, ActorKind

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

    failures = []
    start = threading.Barrier(4)

    def send(worker: int) -> None:
        try:
            start.wait()
            for round_ in range(3):
                services.ingest(BOT, joining_batch(worker * 10 + round_))
        except Exception as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert Incident.objects.count() == len(INSTANCES), (
        "every finding joined its instance's incident"
    )
    for incident in Incident.objects.all():
        assert TimelineEntry.objects.verify_chain(incident) is None
