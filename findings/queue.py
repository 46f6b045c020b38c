"""Read findings from an SQS queue that an EventBridge rule feeds.

A message is deleted only after what it carried is committed: as a finding, or, if it could
not be parsed, in quarantine. A crash in between leaves the message on the queue, and the
second delivery is a duplicate that changes nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from findings import services
from irportal.actors import Actor, ActorKind
from playbooks import aws

logger = logging.getLogger(__name__)


def drain(queue_url: str, *, max_messages: int = 500, wait_seconds: int = 0) -> int:
    """Handle messages until the queue is empty or `max_messages` were handled."""
    sqs = aws.client("sqs", region=_region_of(queue_url))
    actor = Actor(kind=ActorKind.INTEGRATION, name=f"sqs:{queue_url.rsplit('/', 1)[-1]}")
    handled = 0
    while handled < max_messages:
        answer = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, max_messages - handled),
            WaitTimeSeconds=wait_seconds,
        )
        messages = answer.get("Messages", [])
        if not messages:
            break
        _ingest(actor, messages)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)
            ],
        )
        handled += len(messages)
    if handled:
        logger.info("findings.queue_drained messages=%s queue=%s", handled, queue_url)
    return handled


def _ingest(actor: Actor, messages: list[dict[str, Any]]) -> None:
    events = []
    for message in messages:
        try:
            events.append(json.loads(message["Body"]))
        except ValueError as error:
            services.quarantine_raw(actor, message["Body"], f"not JSON: {error}")
    if events:
        services.ingest(actor, events)


def _region_of(queue_url: str) -> str | None:
    # https://sqs.eu-west-1.amazonaws.com/123456789012/name
    host = queue_url.split("/")[2] if "//" in queue_url else ""
    parts = host.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "sqs" else None
