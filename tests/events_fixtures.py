"""The tables' stream records on moto, read as the stream consumer reads them.

moto's in-process backend holds each table's stream; `Streams.read()` turns the records
since the last read into `chalicelib.changes.Change` objects with the consumer's own
`change_of`, so the tests drive the events subscriber with what the stream really carries
after real requests, without the other subscribers running.
"""

from __future__ import annotations

from chalicelib import changes, config
from chalicelib.changes import Change

__all__ = ["Change", "Streams"]


class Streams:
    def __init__(self) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][config.settings.region]
        self.tables = {
            name: backend.get_table(name)
            for name in (config.settings.tags_table, config.settings.manifests_table)
        }
        for table in self.tables.values():
            if table.stream_shard is None:  # a checkout whose tables have no stream yet
                table.set_stream_specification(
                    {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
                )
        self.seen = {name: len(t.stream_shard.items) for name, t in self.tables.items()}

    def read(self) -> list[Change]:
        found: list[Change] = []
        for name, table in self.tables.items():
            records = table.stream_shard.items[self.seen[name] :]
            self.seen[name] += len(records)
            arn = f"arn:aws:dynamodb:us-east-1:000000000000:table/{name}/stream/local"
            found += [changes.change_of({**r.record, "eventSourceARN": arn}) for r in records]
        return found
