"""Events and audit: what happened in the registry, told to other systems (docs/events.md)."""
