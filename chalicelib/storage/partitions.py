"""Which partitions an AWS call reads or writes, named from its botocore parameters.

A partition is ("dynamodb", table or "table/index", partition key value) or ("s3", bucket,
object key). The read cache (storage/cache.py) drops what it holds for every partition a
write of this process touched; the hot-keys benchmark (bench/hotkeys.py) counts calls per
partition the same way. Key attribute names come from the pynamodb models.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

Partition = tuple[str, str, str]

DYNAMODB_WRITES = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
)
S3_WRITES = frozenset(
    {"PutObject", "DeleteObject", "DeleteObjects", "CopyObject", "CompleteMultipartUpload"}
)
# Calls after which nothing cached can be trusted: a table or bucket made or dropped (a new
# local stack, a test's fresh moto account).
RESETS = frozenset({"CreateTable", "DeleteTable", "CreateBucket", "DeleteBucket"})


@cache
def _hash_keys() -> dict[str, str]:
    """Table name (and "table/index") -> its partition key attribute."""
    from chalicelib.storage import models

    found: dict[str, str] = {}
    for model in models.ALL_MODELS:
        table = model.Meta.table_name
        found[table] = model._hash_key_attribute().attr_name
        for index in model._indexes.values():
            name = index.Meta.index_name
            found[f"{table}/{name}"] = index._hash_key_attribute().attr_name
    return found


@cache
def _local_indexes() -> frozenset[str]:
    """ "table/index" of the local secondary indexes: they live in the table's partitions."""
    from pynamodb.indexes import LocalSecondaryIndex

    from chalicelib.storage import models

    return frozenset(
        f"{model.Meta.table_name}/{index.Meta.index_name}"
        for model in models.ALL_MODELS
        for index in model._indexes.values()
        if isinstance(index, LocalSecondaryIndex)
    )


def _value(attribute: dict[str, Any] | None) -> str:
    if not attribute:
        return "?"
    ((_, value),) = list(attribute.items())[:1]
    return value if isinstance(value, str) else str(value)


def _from_item(table: str, item: dict[str, Any]) -> Partition:
    key = _hash_keys().get(table)
    return ("dynamodb", table, _value(item.get(key)) if key else "?")


_EQUALS = re.compile(r"(#\w+|\w+)\s*=\s*(:\w+)")


def _from_query(params: dict[str, Any]) -> Partition:
    """The partition a Query reads: the hash key's equality in its key condition."""
    table = params["TableName"]
    where = f"{table}/{params['IndexName']}" if params.get("IndexName") else table
    key = _hash_keys().get(where)
    names = params.get("ExpressionAttributeNames", {})
    values = params.get("ExpressionAttributeValues", {})
    for name, placeholder in _EQUALS.findall(params.get("KeyConditionExpression", "")):
        if names.get(name, name) == key:
            shared = table if where in _local_indexes() else where
            return ("dynamodb", shared, _value(values.get(placeholder)))
    return ("dynamodb", where, "?")


def touched(service: str, operation: str, params: dict[str, Any]) -> list[Partition]:
    """Every partition the call reads or writes, once per item (so a BatchGetItem of two
    keys in one partition names it twice: capacity is per item)."""
    if service == "s3":
        bucket = params.get("Bucket", "?")
        if operation == "DeleteObjects":
            objects = params.get("Delete", {}).get("Objects", [])
            return [("s3", bucket, o.get("Key", "?")) for o in objects]
        return [("s3", bucket, params["Key"])] if "Key" in params else []
    if service != "dynamodb":
        return []
    if operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
        item = params.get("Key") or params.get("Item") or {}
        return [_from_item(params["TableName"], item)]
    if operation == "Query":
        return [_from_query(params)]
    if operation == "BatchGetItem":
        return [
            _from_item(table, key)
            for table, request in params.get("RequestItems", {}).items()
            for key in request.get("Keys", [])
        ]
    if operation == "BatchWriteItem":
        return [
            _from_item(table, r.get("PutRequest", {}).get("Item") or r["DeleteRequest"]["Key"])
            for table, requests in params.get("RequestItems", {}).items()
            for r in requests
        ]
    if operation == "TransactWriteItems":
        found = []
        for entry in params.get("TransactItems", []):
            for kind in ("Put", "Update", "Delete", "ConditionCheck"):
                if kind in entry:
                    part = entry[kind]
                    found.append(_from_item(part["TableName"], part.get("Key") or part["Item"]))
        return found
    if operation == "Scan":
        return [("dynamodb", params.get("TableName", "?"), "*")]
    return []


def written(service: str, operation: str, params: dict[str, Any]) -> list[Partition]:
    """The partitions a call may have changed (a ConditionCheck changes nothing)."""
    if service == "dynamodb" and operation == "TransactWriteItems":
        items = [e for e in params.get("TransactItems", []) if "ConditionCheck" not in e]
        return touched(service, operation, {"TransactItems": items})
    if (service == "dynamodb" and operation in DYNAMODB_WRITES) or (
        service == "s3" and operation in S3_WRITES
    ):
        return touched(service, operation, params)
    return []
