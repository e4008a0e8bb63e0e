"""Webhook signatures: HMAC-SHA256 over `<timestamp>.<body>`, as GitHub and Stripe sign.

Headers on every delivery:
    Stratus-Webhook-Id: <event id>               (deduplicate on it: delivery is at least once)
    Stratus-Webhook-Timestamp: <unix seconds>
    Stratus-Webhook-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
A receiver recomputes the HMAC over the raw body, compares in constant time, and refuses a
timestamp further than REPLAY_WINDOW from its clock (docs/events.md has the recipe).
"""

from __future__ import annotations

import hashlib
import hmac

ID, TIMESTAMP, SIGNATURE, EVENT = (
    "Stratus-Webhook-Id",
    "Stratus-Webhook-Timestamp",
    "Stratus-Webhook-Signature",
    "Stratus-Event",
)
REPLAY_WINDOW = 300  # seconds a receiver should accept a timestamp either side of its clock


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, header: str, now: float) -> bool:
    """The receiver's check (also used by the tests): signature and replay window."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > REPLAY_WINDOW:
        return False
    expected = signature(secret, sent, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in header.split(","))
