"""Webhooks: Quay-shaped repository and namespace notifications, delivered through SQS.

Events from the stream subscriber are matched to the webhooks of their repository and of
its namespace; each (webhook, event) pair becomes a delivery record and one SQS message.
The queue's consumer (chalicelib/events/deliveries.py) POSTs them, signed.

Secrets are SSM SecureStrings named after the webhook's uuid: never an item attribute,
never returned by the API, never logged.
"""

from __future__ import annotations

import json
import logging
import uuid as uuids
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib import clock, config
from chalicelib.events.schema import PUSHED, Event
from chalicelib.storage import aws
from chalicelib.storage.models import DeliveryModel, NotificationModel

logger = logging.getLogger(__name__)

METHOD = "webhook"
TEST = "test"
DELIVERED, PENDING, RETRYING, DEAD = "delivered", "pending", "retrying", "dead"
MAX_DELAY = 12 * 3600  # SQS's longest visibility timeout
KEEP_DELIVERIES = timedelta(days=7)
LOCAL_QUEUE, LOCAL_DEAD_LETTER_QUEUE = "stratus-local-webhooks", "stratus-local-webhooks-dead"


def resource_key(resource: str) -> str:
    return f"notification {resource}"


def parameter_name(notification_uuid: str) -> str:
    return f"{config.settings.webhook_secret_prefix.rstrip('/')}/{notification_uuid}"


# -- configuration ---------------------------------------------------------------------------


def create(
    resource: str,
    event: str,
    url: str,
    title: str | None,
    event_config: dict[str, Any],
    secret: str | None,
) -> NotificationModel:
    """A new webhook; its secret goes to SSM first, so no item names a missing secret."""
    notification_uuid = str(uuids.uuid4())
    if secret:
        aws.ssm().put_parameter(
            Name=parameter_name(notification_uuid), Value=secret, Type="SecureString"
        )
    item = NotificationModel(
        resource_key(resource),
        notification_uuid,
        event=event,
        method=METHOD,
        title=title,
        url=url,
        event_config=json.dumps(event_config, separators=(",", ":")),
        signed=bool(secret),
    )
    item.save()
    return item


def list_for(resource: str) -> list[NotificationModel]:
    return list(NotificationModel.query(resource_key(resource)))


def get(resource: str, notification_uuid: str) -> NotificationModel | None:
    try:
        return NotificationModel.get(resource_key(resource), notification_uuid)
    except DoesNotExist:
        return None


def delete(item: NotificationModel) -> None:
    item.delete()
    if item.signed:
        try:
            aws.ssm().delete_parameter(Name=parameter_name(item.sk))
        except aws.ssm().exceptions.ParameterNotFound:
            pass


def reset_failures(item: NotificationModel) -> None:
    item.update(actions=[NotificationModel.failures.set(0)])


def deliveries(notification_uuid: str, limit: int = 20) -> list[DeliveryModel]:
    """The latest deliveries, newest first."""
    query = DeliveryModel.query(
        f"delivery {notification_uuid}", scan_index_forward=False, limit=limit
    )
    return list(query)


# -- fan-out (the stream subscriber) ---------------------------------------------------------


@dataclass(frozen=True)
class Job:
    notification: NotificationModel
    resource: str
    body: dict[str, Any]

    def message(self, delivery_key: str) -> str:
        return json.dumps(
            {
                "resource": self.resource,
                "notification": self.notification.sk,
                "delivery": delivery_key,
                "event": self.body,
            },
            separators=(",", ":"),
        )


def payload(event: Event) -> dict[str, Any]:
    """What a receiver gets: the event document, with Quay's `repo_push` fields beside it."""
    body = event.document()
    if event.kind == PUSHED:
        body["name"] = event.repository.rpartition("/")[2]
        body["updated_tags"] = [event.tag] if event.tag else []
    return body


def jobs_for(events: Iterable[Event]) -> list[Job]:
    """Each event with each webhook of its repository or namespace that wants its kind:
    two Queries per repository in the batch."""
    found: dict[str, list[NotificationModel]] = {}
    jobs: list[Job] = []
    for event in events:
        resources = [event.repository] + ([event.namespace + "/"] if event.namespace else [])
        for resource in resources:
            if resource not in found:
                found[resource] = list_for(resource)
            jobs += [
                Job(item, resource, payload(event))
                for item in found[resource]
                if item.event == event.kind
            ]
    return jobs


def enqueue(events: Sequence[Event]) -> int:
    """Record and queue a delivery per matching webhook; the number queued."""
    return send(jobs_for(events))


def send(jobs: Sequence[Job]) -> int:
    if not jobs:
        return 0
    now = clock.now()
    entries = []
    with DeliveryModel.batch_write() as batch:
        for job in jobs:
            key = f"{now.strftime('%Y-%m-%dT%H:%M:%S.%fZ')} {job.body['id']}"
            batch.save(
                DeliveryModel(
                    f"delivery {job.notification.sk}",
                    key,
                    event_id=str(job.body["id"]),
                    event=str(job.body["event"]),
                    status=PENDING,
                    updated_at=now,
                    expires_at=now + KEEP_DELIVERIES,
                )
            )
            entries.append(job.message(key))
    for start in range(0, len(entries), 10):
        batch_entries = [
            {"Id": str(i), "MessageBody": body}
            for i, body in enumerate(entries[start : start + 10])
        ]
        answer = aws.sqs().send_message_batch(QueueUrl=queue_url(), Entries=batch_entries)
        if answer.get("Failed"):
            raise RuntimeError(f"SQS refused {len(answer['Failed'])} webhook deliveries")
    return len(entries)


def test_delivery(resource: str, item: NotificationModel) -> str:
    """Queue a test event for the webhook (Quay's `.../notification/<uuid>/test`)."""
    event_id = f"test-{uuids.uuid4()}"
    repository = resource.rstrip("/")
    body = {
        "id": event_id,
        "event": TEST,
        "time": clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "repository": repository,
        "namespace": repository.split("/", 1)[0],
        "for_event": item.event,
    }
    send([Job(item, resource, body)])
    return event_id


# -- AWS clients and queues ------------------------------------------------------------------


@cache
def _queues(configured: str, dead_letter: str) -> tuple[str, str]:
    """(queue URL, dead-letter queue URL): the stage's (infra/stratus.yaml), or local
    mode's, made by chalicelib/local/stack.py."""
    if configured and dead_letter:
        return configured, dead_letter
    client = aws.sqs()
    return (
        client.get_queue_url(QueueName=LOCAL_QUEUE)["QueueUrl"],
        client.get_queue_url(QueueName=LOCAL_DEAD_LETTER_QUEUE)["QueueUrl"],
    )


def queue_url() -> str:
    settings = config.settings
    return _queues(settings.webhook_queue, settings.webhook_dead_letter_queue)[0]


def dead_letter_url() -> str:
    settings = config.settings
    return _queues(settings.webhook_queue, settings.webhook_dead_letter_queue)[1]


def provision_local() -> None:
    """Local mode's queues, the dead-letter queue as the redrive target (the backstop:
    deliveries dead-letter themselves after the last attempt)."""
    client = aws.sqs()
    dead = client.create_queue(QueueName=LOCAL_DEAD_LETTER_QUEUE)["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = {"deadLetterTargetArn": arn, "maxReceiveCount": "50"}
    client.create_queue(QueueName=LOCAL_QUEUE, Attributes={"RedrivePolicy": json.dumps(redrive)})
