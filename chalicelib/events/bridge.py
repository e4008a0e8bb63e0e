"""Events on Amazon EventBridge, shaped like ECR's "ECR Image Action" (docs/events.md).

Rules written for ECR carry over with `source` changed to "stratus": same detail-type,
same `action-type`, `result`, `repository-name`, `image-digest`, `image-tag`. PutEvents
takes 10 entries a call; entries it reports failed are sent again, and if they still fail
the batch raises, so the stream redelivers it (at least once: receivers deduplicate on
`detail.event-id`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

from chalicelib import config
from chalicelib.events.schema import Event

SOURCE = "stratus"
DETAIL_TYPE = "ECR Image Action"
BATCH = 10  # PutEvents' limit
ATTEMPTS = 3
OFF = "none"


class PublishFailed(RuntimeError):
    """EventBridge refused entries after retries: the stream batch must be retried."""


@cache
def client() -> Any:
    import boto3

    return boto3.client("events", region_name=config.settings.region)


def entry(event: Event, bus: str) -> dict[str, Any]:
    return {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(event.ecr_detail(), separators=(",", ":")),
        "EventBusName": bus,
        "Time": event.at,
    }


def relayed(event: Event) -> str | None:
    """The event as a message on the webhooks queue, for the webhooks function to put on
    the bus (`put_relayed`): how the API function, which may not call PutEvents, sends one
    (a quota warning). None when events are off."""
    if config.settings.event_bus == OFF:
        return None
    detail = event.ecr_detail()
    return json.dumps({"bridge": detail, "time": event.at.isoformat()}, separators=(",", ":"))


def put_relayed(message: dict[str, Any]) -> None:
    """Put a relayed event on the bus; raises PublishFailed if EventBridge refuses it."""
    from datetime import datetime

    bus = config.settings.event_bus
    if bus == OFF:
        return
    entry = {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(message["bridge"], separators=(",", ":")),
        "EventBusName": bus,
        "Time": datetime.fromisoformat(message["time"]),
    }
    if client().put_events(Entries=[entry]).get("FailedEntryCount"):
        raise PublishFailed(f"EventBridge refused a relayed event on {bus}")


def publish(events: Sequence[Event]) -> int:
    """Put the events on the configured bus, in order, 10 a call; the number of calls."""
    bus = config.settings.event_bus
    if bus == OFF or not events:
        return 0
    entries = [entry(event, bus) for event in events]
    made = 0
    for start in range(0, len(entries), BATCH):
        pending = entries[start : start + BATCH]
        for _ in range(ATTEMPTS):
            answer = client().put_events(Entries=pending)
            made += 1
            if not answer.get("FailedEntryCount"):
                break
            results = answer["Entries"]
            pending = [e for e, r in zip(pending, results, strict=True) if r.get("ErrorCode")]
        else:
            raise PublishFailed(f"EventBridge refused {len(pending)} entries on {bus}")
    return made
