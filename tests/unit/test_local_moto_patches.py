"""moto, patched by chalicelib.local.moto_patches, keeps DynamoDB's and S3's guarantees
under concurrent callers, at a cost that does not grow with the tables."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from chalicelib.local import moto_patches

TABLE = "items"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    moto_patches.install()
    with mock_aws():
        client = boto3.client(
            "dynamodb", region_name="us-east-1", config=Config(max_pool_connections=32)
        )
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        yield client


def _put(client: Any, key: str, **extra: Any) -> None:
    client.put_item(TableName=TABLE, Item={"pk": {"S": key}}, **extra)


def _failing_transaction(client: Any, key: str) -> None:
    """Writes `key`, then fails a condition: DynamoDB writes nothing."""
    with pytest.raises(ClientError, match="TransactionCanceled"):
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {"pk": {"S": key}}}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "never-written"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )


def _keys(client: Any) -> set[str]:
    pages = client.get_paginator("scan").paginate(TableName=TABLE)
    return {item["pk"]["S"] for page in pages for item in page["Items"]}


def test_failed_transaction_does_not_erase_concurrent_writes(dynamodb: Any) -> None:
    for n in range(2000):  # a table worth copying: moto's snapshot took a while
        _put(dynamodb, f"seed-{n}")
    acknowledged: list[str] = []
    stop = threading.Event()

    def write(worker: int) -> None:
        for n in range(60):
            key = f"w{worker}-{n}"
            _put(dynamodb, key)
            acknowledged.append(key)
        stop.set()

    def fail(worker: int) -> None:
        n = 0
        while not stop.is_set():
            _failing_transaction(dynamodb, f"failed-{worker}-{n}")
            n += 1

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(write, w) for w in range(4)] + [
            pool.submit(fail, w) for w in range(4)
        ]
        for future in futures:
            future.result()
    keys = _keys(dynamodb)
    assert set(acknowledged) <= keys
    assert not any(key.startswith("failed-") for key in keys)


def test_failed_transaction_restores_every_item_it_touched(dynamodb: Any) -> None:
    _put(dynamodb, "kept")
    dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "kept"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"N": "1"}},
    )
    with pytest.raises(ClientError, match="TransactionCanceled"):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "new"}}}},
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "kept"}},
                        "UpdateExpression": "SET v = :v",
                        "ExpressionAttributeValues": {":v": {"N": "2"}},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "absent"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    assert _keys(dynamodb) == {"kept"}
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "kept"}})["Item"]
    assert item["v"] == {"N": "1"}
    records = _stream_records(dynamodb)
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY"]


def test_transactions_copy_no_table(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.models.table import Table

    copies: list[str] = []
    monkeypatch.setattr(
        Table, "__deepcopy__", lambda self, memo: copies.append(self.name), raising=False
    )
    for n in range(50):
        _put(dynamodb, f"seed-{n}")
    dynamodb.transact_write_items(
        TransactItems=[{"Put": {"TableName": TABLE, "Item": {"pk": {"S": "one"}}}}]
    )
    _failing_transaction(dynamodb, "two")
    assert copies == []
    assert "one" in _keys(dynamodb) and "two" not in _keys(dynamodb)


def test_concurrent_conditional_creates_admit_exactly_one(dynamodb: Any) -> None:
    def create(n: int) -> bool:
        try:
            _put(dynamodb, "contested", ConditionExpression="attribute_not_exists(pk)")
            return True
        except ClientError:
            return False

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(create, range(32))) == 1


def _stream_records(client: Any) -> list[dict[str, Any]]:
    """The records moto would hand to GetRecords from the shard's start."""
    shard = _table().stream_shard
    return shard.get(shard.starting_sequence_number, 1000)


def _table() -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends["123456789012"]["us-east-1"].tables[TABLE]


def test_stream_records_are_trimmed_after_24_hours(dynamodb: Any) -> None:
    _put(dynamodb, "old-1")
    _put(dynamodb, "old-2")
    table = _table()
    for record in table.stream_shard.items:
        record.record["dynamodb"]["ApproximateCreationDateTime"] -= timedelta(hours=25)
    _put(dynamodb, "fresh")
    assert len(table.stream_shard.items) == 1
    records = _stream_records(dynamodb)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in records] == ["fresh"]


def test_concurrent_puts_of_one_s3_key_all_succeed() -> None:
    moto_patches.install()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1", config=Config(max_pool_connections=32))
        s3.create_bucket(Bucket="stratus-test")
        bodies = [bytes([n]) * 300_000 for n in range(20)]

        def put(body: bytes) -> bytes:
            s3.put_object(Bucket="stratus-test", Key="same", Body=body)
            return s3.get_object(Bucket="stratus-test", Key="same")["Body"].read()

        with ThreadPoolExecutor(20) as pool:
            read = list(pool.map(put, bodies))
        assert all(body in bodies for body in read)
        assert s3.get_object(Bucket="stratus-test", Key="same")["Body"].read() in bodies
