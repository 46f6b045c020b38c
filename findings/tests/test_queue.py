"""The SQS consumer, against moto's SQS over HTTP."""

import json

import pytest

from findings import queue, services
from findings.demo import guardduty_event
from findings.models import Finding, QuarantinedEvent
from findings.tasks import poll_queue
from playbooks import aws as aws_clients

pytestmark = pytest.mark.django_db


@pytest.fixture
def findings_queue(aws):
    sqs = aws_clients.client("sqs")
    url = sqs.create_queue(QueueName="guardduty-findings")["QueueUrl"]
    return sqs, url


def send(findings_queue, *bodies):
    sqs, url = findings_queue
    for body in bodies:
        sqs.send_message(
            QueueUrl=url, MessageBody=body if isinstance(body, str) else json.dumps(body)
        )


def waiting(findings_queue):
    sqs, url = findings_queue
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_it_stores_findings_and_deletes_their_messages(findings_queue):
    send(
        findings_queue,
        guardduty_event("Recon:EC2/PortProbeUnprotectedPort", 2.0, instance_id="i-0aaa"),
        guardduty_event("Recon:EC2/PortProbeUnprotectedPort", 2.0, instance_id="i-0bbb"),
    )

    handled = queue.drain(findings_queue[1])

    assert handled == 2
    assert Finding.objects.count() == 2
    assert waiting(findings_queue) == 0


def test_a_message_that_is_not_json_is_kept_in_quarantine_then_deleted(findings_queue):
    send(findings_queue, "{not json")

    queue.drain(findings_queue[1])

    kept = QuarantinedEvent.objects.get()
    assert kept.payload == "{not json"
    assert kept.received_by == "integration:sqs:guardduty-findings"
    assert waiting(findings_queue) == 0


def test_a_message_delivered_twice_is_stored_once(findings_queue):
    event = guardduty_event("Recon:EC2/PortProbeUnprotectedPort", 2.0, instance_id="i-0aaa")
    send(findings_queue, event, event)

    queue.drain(findings_queue[1])

    assert Finding.objects.count() == 1


def test_messages_stay_on_the_queue_when_storing_fails(findings_queue, monkeypatch):
    send(findings_queue, guardduty_event("Recon:EC2/PortProbe", 2.0, instance_id="i-0aaa"))

    def database_down(*args, **kwargs):
        raise RuntimeError("database unavailable")

    # The one stand-in here: a failure of our own database, which cannot be staged on demand.
    monkeypatch.setattr(services, "ingest", database_down)
    with pytest.raises(RuntimeError):
        queue.drain(findings_queue[1])

    assert Finding.objects.count() == 0
    assert waiting(findings_queue) == 1


def test_the_periodic_task_polls_the_configured_queue(findings_queue, settings):
    settings.FINDINGS_QUEUE_URL = findings_queue[1]
    send(findings_queue, guardduty_event("Recon:EC2/PortProbe", 2.0, instance_id="i-0aaa"))

    assert poll_queue() == 1
    assert Finding.objects.count() == 1


def test_without_a_queue_the_task_does_nothing(settings):
    settings.FINDINGS_QUEUE_URL = ""

    assert poll_queue() == 0
