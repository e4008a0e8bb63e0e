"""Storage raises its own conditions (chalicelib/storage/errors.py); the one renderer
(endpoints/routes.py) answers them as OCI errors (chalicelib.errors.for_storage)."""

from __future__ import annotations

import pytest

from chalicelib import errors
from chalicelib.storage import errors as storage
from chalicelib.storage import transactions
from tests.client import Client


def _conditions(kind: type[storage.StorageError]) -> list[type[storage.StorageError]]:
    return [kind, *(c for sub in kind.__subclasses__() for c in _conditions(sub))]


def test_every_storage_condition_has_an_oci_answer() -> None:
    for kind in _conditions(storage.StorageError)[1:]:
        assert not isinstance(errors.for_storage(kind()), errors.Internal), kind


def test_storage_contention_is_answered_429_toomanyrequests_with_its_detail() -> None:
    answer = errors.for_storage(storage.Contention({"reason": "concurrent updates; retry"}))
    assert (answer.status, answer.code) == (429, "TOOMANYREQUESTS")
    assert answer.body()["errors"][0]["detail"] == {"reason": "concurrent updates; retry"}


def test_retried_writes_that_keep_losing_races_raise_contention() -> None:
    def always_loses() -> None:
        raise transactions.LostRace

    with pytest.raises(storage.Contention) as raised:
        transactions.retried(always_loses, what="tag")
    assert raised.value.detail == {"reason": "concurrent updates to this tag; retry"}


def test_a_request_meeting_contention_answers_429_and_changes_nothing(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.storage import blobs

    def contended(*args: object, **kwargs: object) -> None:
        raise storage.Contention({"reason": "concurrent writes of this object; retry"})

    digest = client.push_blob("r", b"data")
    monkeypatch.setattr(blobs, "presigned_get_url", contended)
    answer = client.get(f"/v2/r/blobs/{digest}")
    assert answer.status == 429
    assert answer.error_codes == ["TOOMANYREQUESTS"]
    monkeypatch.undo()
    assert client.get(f"/v2/r/blobs/{digest}").status == 307
