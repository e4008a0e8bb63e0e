"""The events subscriber of the tables' stream consumer (chalicelib/changes.py).

For each batch of committed changes, the events go to EventBridge. Every step is
idempotent under the stream's redelivery (receivers deduplicate on the event id); a
failure raises, so the consumer reports the batch failed and it comes again.
"""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.events import bridge, schema


def on_changes(changes: Sequence[schema.ChangeLike]) -> None:
    events = schema.from_changes(changes)
    if not events:
        return
    bridge.publish(events)
