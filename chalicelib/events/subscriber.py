"""The events subscriber of the tables' stream consumer (chalicelib/changes.py).

For each batch of committed changes: the events go to EventBridge, committed pushes to the
audit log, and events to the webhooks that want them. Every step is idempotent under the
stream's redelivery: EventBridge and webhook receivers deduplicate on the event id, and a
push's audit entry written twice is the same entry twice, never a wrong one. A failure
raises, so the consumer reports the batch failed and it comes again.
"""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.events import audit, bridge, schema, webhooks


def on_changes(changes: Sequence[schema.ChangeLike]) -> None:
    events = schema.from_changes(changes)
    if not events:
        return
    bridge.publish(events)
    pushes = audit.from_events(events)
    if pushes:
        audit.write(pushes)
    webhooks.enqueue(events)
