"""Repository policies: immutable tags, auto-prune retention, storage quotas (docs/policies.md)."""
