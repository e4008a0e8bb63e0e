"""Storage raises its own conditions (chalicelib/storage/errors.py); the one renderer
(endpoints/routes.py) answers them as OCI errors (chalicelib.errors.for_storage)."""

from __future__ import annotations

from chalicelib import errors
from chalicelib.storage import errors as storage


def _conditions(kind: type[storage.StorageError]) -> list[type[storage.StorageError]]:
    return [kind, *(c for sub in kind.__subclasses__() for c in _conditions(sub))]


def test_every_storage_condition_has_an_oci_answer() -> None:
    for kind in _conditions(storage.StorageError)[1:]:
        assert not isinstance(errors.for_storage(kind()), errors.Internal), kind


def test_storage_contention_is_answered_429_toomanyrequests_with_its_detail() -> None:
    answer = errors.for_storage(storage.Contention({"reason": "concurrent updates; retry"}))
    assert (answer.status, answer.code) == (429, "TOOMANYREQUESTS")
    assert answer.body()["errors"][0]["detail"] == {"reason": "concurrent updates; retry"}
