"""Webhook deliveries: the SQS queue's consumer (a Lambda on AWS stages, a thread in local
mode), with the stream consumer's role.

Each message is one event for one webhook, POSTed signed (chalicelib/events/signing.py) to
the checked address (chalicelib/events/addresses.py). A failure makes the message visible
again after an exponentially growing delay (its visibility timeout: the first retry after
STRATUS_WEBHOOK_BACKOFF_SECONDS, each next one twice as late, at most 12 hours); the
STRATUS_WEBHOOK_ATTEMPTS-th failure sends it to the dead-letter queue, and the delivery
record says so. An address refused is dead at once: retrying cannot help.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib import clock, config
from chalicelib.events import addresses, signing
from chalicelib.events.webhooks import (
    DEAD,
    DELIVERED,
    KEEP_DELIVERIES,
    MAX_DELAY,
    RETRYING,
    dead_letter_url,
    get,
    parameter_name,
    queue_url,
)
from chalicelib.storage import aws
from chalicelib.storage.models import DeliveryModel, NotificationModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: str  # DELIVERED, RETRYING or DEAD
    http_status: int | None = None
    error: str | None = None


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to the address that was checked, whatever DNS says now."""

    def __init__(self, target: addresses.Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the checked address, the certificate verified for the host's name."""

    def __init__(self, target: addresses.Target, timeout: float) -> None:
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self.address = target.address

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST to the checked address; the answer's status (redirects are not followed)."""
    target = addresses.resolve(url)
    timeout = config.settings.webhook_timeout_seconds
    connection: http.client.HTTPConnection = (
        _PinnedHTTPSConnection(target, timeout)
        if target.scheme == "https"
        else _PinnedHTTPConnection(target, timeout)
    )
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        answer = connection.getresponse()
        answer.read(64 * 1024)
        return answer.status
    finally:
        connection.close()


_secrets: dict[str, tuple[float, str]] = {}
_SECRET_SECONDS = 300.0


def secret_of(item: NotificationModel) -> str | None:
    """The webhook's secret, read from SSM at most every five minutes per container."""
    if not item.signed:
        return None
    cached = _secrets.get(item.sk)
    if cached is not None and time.monotonic() - cached[0] < _SECRET_SECONDS:
        return cached[1]
    answer = aws.ssm().get_parameter(Name=parameter_name(item.sk), WithDecryption=True)
    value: str = answer["Parameter"]["Value"]
    _secrets[item.sk] = (time.monotonic(), value)
    return value


def attempt(message: dict[str, Any], attempt_number: int) -> Outcome:
    """One delivery attempt of one queued message."""
    item = get(message["resource"], message["notification"])
    if item is None:
        return Outcome(DEAD, error="the webhook was deleted")
    body = json.dumps(message["event"], separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Stratus-Webhooks/1",
        signing.ID: str(message["event"]["id"]),
        signing.TIMESTAMP: str(timestamp),
        signing.EVENT: str(message["event"]["event"]),
    }
    secret = secret_of(item)
    if secret is not None:
        headers[signing.SIGNATURE] = signing.signature(secret, timestamp, body)
    last = attempt_number >= config.settings.webhook_attempts
    try:
        status = post(item.url, body, headers)
    except addresses.AddressRefused as error:
        return Outcome(DEAD, error=str(error))  # retrying cannot help
    except (OSError, http.client.HTTPException) as error:
        return Outcome(DEAD if last else RETRYING, error=type(error).__name__)
    if 200 <= status < 300:
        return Outcome(DELIVERED, status)
    return Outcome(DEAD if last else RETRYING, status, f"HTTP {status}")


def delay(attempt_number: int) -> int:
    """Seconds before the next try after `attempt_number` failed ones."""
    base = config.settings.webhook_backoff_seconds
    return int(min(MAX_DELAY, base * 2 ** max(0, attempt_number - 1)))


def _record(message: dict[str, Any], attempt_number: int, outcome: Outcome) -> None:
    now = clock.now()
    DeliveryModel(
        f"delivery {message['notification']}",
        message["delivery"],
        event_id=str(message["event"]["id"]),
        event=str(message["event"]["event"]),
        status=outcome.status,
        attempts=attempt_number,
        http_status=outcome.http_status,
        error=outcome.error,
        updated_at=now,
        expires_at=now + KEEP_DELIVERIES,
    ).save()
    if outcome.status in (DELIVERED, DEAD):
        item = get(message["resource"], message["notification"])
        if item is not None:
            failures = NotificationModel.failures
            item.update(
                actions=[failures.set(0) if outcome.status == DELIVERED else failures.add(1)]
            )


def handle(body: str, receipt: str, receive_count: int) -> bool:
    """Deliver one queued message; True when it is settled (delivered or dead-lettered),
    False when it will come again after its backoff."""
    message = json.loads(body)
    if "bridge" in message:  # an event the API function relays to EventBridge
        from chalicelib.events import bridge

        bridge.put_relayed(message)
        aws.sqs().delete_message(QueueUrl=queue_url(), ReceiptHandle=receipt)
        return True
    outcome = attempt(message, receive_count)
    _record(message, receive_count, outcome)
    queue = queue_url()
    if outcome.status == RETRYING:
        aws.sqs().change_message_visibility(
            QueueUrl=queue, ReceiptHandle=receipt, VisibilityTimeout=delay(receive_count)
        )
        return False
    if outcome.status == DEAD:
        aws.sqs().send_message(QueueUrl=dead_letter_url(), MessageBody=body)
        logger.warning(
            "webhook %s: event %s dead-lettered after %d attempts (%s)",
            message["notification"],
            message["event"]["id"],
            receive_count,
            outcome.error,
        )
    aws.sqs().delete_message(QueueUrl=queue, ReceiptHandle=receipt)
    return True


class RetryLater(RuntimeError):
    """Some deliveries of the batch failed: they come back after their backoff."""


def handle_sqs_event(records: Iterable[Any]) -> None:
    """The queue Lambda: settled messages are deleted one by one; if any is to be retried,
    raise, so Lambda leaves it (with its new visibility timeout) on the queue."""
    pending = 0
    for record in records:
        count = int(record.attributes.get("ApproximateReceiveCount", "1"))
        if not handle(record.body, record.receipt_handle, count):
            pending += 1
    if pending:
        raise RetryLater(f"{pending} webhook deliveries will be retried")


def poll() -> int:
    """Local mode: receive and deliver what is due; the number of messages handled."""
    answer = aws.sqs().receive_message(
        QueueUrl=queue_url(),
        MaxNumberOfMessages=10,
        WaitTimeSeconds=0,
        AttributeNames=["ApproximateReceiveCount"],
    )
    messages = answer.get("Messages", [])
    for message in messages:
        count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        try:
            handle(message["Body"], message["ReceiptHandle"], count)
        except Exception:
            logger.exception("local webhook delivery failed")
    return len(messages)
