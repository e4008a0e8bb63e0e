"""Blob uploads: end-4a, end-4b, end-5, end-6, end-11, end-13 and cancellation.

distribution-spec "Pushing blobs", "Pushing a blob in chunks", "Mounting a blob from
another repository".
"""

from __future__ import annotations

import os

import boto3
import pytest

from chalicelib import config
from chalicelib.storage.uploads import PART_MIN
from tests.client import Client, Response, follow_blob
from tests.images import sha256

OCTET = {"Content-Type": "application/octet-stream"}


def start(client: Client, repo: str = "org/app") -> Response:
    answer = client.post(f"/v2/{repo}/blobs/uploads/")
    assert answer.status == 202
    return answer


def patch(client: Client, location: str, data: bytes, start_at: int | None) -> Response:
    headers = dict(OCTET)
    if start_at is not None:
        headers["Content-Range"] = f"{start_at}-{start_at + len(data) - 1}"
    return client.patch(location, headers=headers, body=data)


def s3_keys(prefix: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=config.settings.bucket, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_upload_post_opens_a_session_with_location_range_and_uuid(client: Client) -> None:
    answer = start(client)
    location = answer.header("Location") or ""
    uuid = answer.header("Docker-Upload-UUID")
    assert location == f"/v2/org/app/blobs/uploads/{uuid}"
    assert answer.header("Range") == "0-0"
    assert answer.header("Content-Length") == "0"


def test_monolithic_post_then_put_stores_the_blob(client: Client) -> None:
    data = b"monolithic"
    location = start(client).header("Location")
    answer = client.put(f"{location}?digest={sha256(data)}", headers=OCTET, body=data)
    assert answer.status == 201
    assert answer.header("Location") == f"/v2/org/app/blobs/{sha256(data)}"
    assert answer.header("Docker-Content-Digest") == sha256(data)
    assert client.head(f"/v2/org/app/blobs/{sha256(data)}").header("Content-Length") == "10"


def test_single_post_with_digest_stores_the_blob(client: Client) -> None:
    data = b"single post"
    answer = client.post(
        f"/v2/org/app/blobs/uploads/?digest={sha256(data)}", headers=OCTET, body=data
    )
    assert answer.status == 201
    assert answer.header("Location") == f"/v2/org/app/blobs/{sha256(data)}"


def test_single_post_with_wrong_digest_is_rejected_and_stores_nothing(client: Client) -> None:
    wrong = sha256(b"other")
    answer = client.post(f"/v2/org/app/blobs/uploads/?digest={wrong}", headers=OCTET, body=b"x")
    assert answer.status == 400
    assert answer.error_codes == ["DIGEST_INVALID"]
    assert client.head(f"/v2/org/app/blobs/{wrong}").status == 404
    assert s3_keys("blobs/") == []


def test_empty_blob_can_be_pushed(client: Client) -> None:
    location = start(client).header("Location")
    answer = client.put(f"{location}?digest={sha256(b'')}", headers=OCTET)
    assert answer.status == 201
    assert client.head(f"/v2/org/app/blobs/{sha256(b'')}").header("Content-Length") == "0"


def test_chunked_upload_with_content_range_assembles_the_blob(client: Client) -> None:
    data = os.urandom(10_000)
    location = start(client).header("Location")
    for offset in range(0, len(data), 3000):
        answer = patch(client, location, data[offset : offset + 3000], offset)
        assert answer.status == 202
        assert answer.header("Range") == f"0-{min(offset + 3000, len(data)) - 1}"
        location = answer.header("Location")
    answer = client.put(f"{location}?digest={sha256(data)}")
    assert answer.status == 201
    assert follow_blob(client, "org/app", sha256(data)) == data


def test_chunks_without_content_range_are_appended_in_order(client: Client) -> None:
    data = b"streamed-" * 100
    location = start(client).header("Location")
    for offset in range(0, len(data), 250):
        location = patch(client, location, data[offset : offset + 250], None).header("Location")
    answer = client.put(f"{location}?digest={sha256(data)}")
    assert answer.status == 201


def test_final_chunk_may_come_with_the_closing_put(client: Client) -> None:
    data = b"first half|second half"
    location = start(client).header("Location")
    location = patch(client, location, data[:10], 0).header("Location")
    answer = client.put(
        f"{location}?digest={sha256(data)}",
        headers={**OCTET, "Content-Range": f"10-{len(data) - 1}"},
        body=data[10:],
    )
    assert answer.status == 201
    assert client.head(f"/v2/org/app/blobs/{sha256(data)}").header("Content-Length") == str(
        len(data)
    )


def test_out_of_order_chunk_is_416_and_status_tells_where_to_resume(client: Client) -> None:
    location = start(client).header("Location")
    location = patch(client, location, b"0123456789", 0).header("Location")
    answer = patch(client, location, b"abc", 20)
    assert answer.status == 416
    assert answer.error_codes == ["BLOB_UPLOAD_INVALID"]
    status = client.get(location)
    assert status.status == 204
    assert status.header("Range") == "0-9"
    assert status.header("Location") == location
    # resuming at the advertised offset works
    assert patch(client, location, b"abc", 10).status == 202


def test_content_range_that_disagrees_with_the_body_is_416(client: Client) -> None:
    location = start(client).header("Location")
    answer = client.patch(location, headers={**OCTET, "Content-Range": "0-99"}, body=b"short")
    assert answer.status == 416


def test_malformed_content_range_is_400_blob_upload_invalid(client: Client) -> None:
    location = start(client).header("Location")
    answer = client.patch(location, headers={**OCTET, "Content-Range": "bytes=a-b"}, body=b"x")
    assert answer.status == 400
    assert answer.error_codes == ["BLOB_UPLOAD_INVALID"]


def test_digest_mismatch_on_close_is_400_and_stores_nothing(client: Client) -> None:
    location = start(client).header("Location")
    location = patch(client, location, b"actual content", 0).header("Location")
    wrong = sha256(b"something else")
    answer = client.put(f"{location}?digest={wrong}")
    assert answer.status == 400
    assert answer.error_codes == ["DIGEST_INVALID"]
    assert client.head(f"/v2/org/app/blobs/{wrong}").status == 404
    assert s3_keys("blobs/") == []
    # the session is as it was: still resumable at the same offset
    assert client.get(location).header("Range") == "0-13"


def test_close_without_digest_is_400_digest_invalid(client: Client) -> None:
    location = start(client).header("Location")
    answer = client.put(location)
    assert answer.status == 400
    assert answer.error_codes == ["DIGEST_INVALID"]


def test_unknown_or_malformed_upload_id_is_404_blob_upload_unknown(client: Client) -> None:
    for upload in ("0d9c6ad0-8e8c-4cf7-8e58-6a5c7f0f7e1f", "not-a-uuid", "ZZZ"):
        answer = client.get(f"/v2/org/app/blobs/uploads/{upload}")
        assert answer.status == 404
        assert answer.error_codes == ["BLOB_UPLOAD_UNKNOWN"]


def test_upload_session_is_bound_to_its_repository(client: Client) -> None:
    upload = start(client, "org/app").header("Docker-Upload-UUID")
    answer = client.get(f"/v2/org/other/blobs/uploads/{upload}")
    assert answer.status == 404


def test_cancelled_upload_is_gone_and_leaves_no_objects(client: Client) -> None:
    location = start(client).header("Location")
    location = patch(client, location, b"partial", 0).header("Location")
    upload = location.rsplit("/", 1)[1]
    assert s3_keys(f"uploads/{upload}/")
    assert client.delete(location).status == 204
    assert client.get(location).status == 404
    assert s3_keys(f"uploads/{upload}/") == []


def test_large_chunks_go_to_s3_multipart_and_small_ones_are_merged(client: Client) -> None:
    """Chunks of any size work although S3 parts must be >= 5 MiB (but the last)."""
    data = os.urandom(2 * PART_MIN + 12345)
    sizes = [1000, PART_MIN + 10, 700_000, 3_000_000, 2_000_000]
    location = start(client).header("Location")
    offset = 0
    for size in sizes:
        answer = patch(client, location, data[offset : offset + size], offset)
        assert answer.status == 202, answer.body
        location = answer.header("Location")
        offset += size
    answer = client.put(f"{location}?digest={sha256(data)}", headers=OCTET, body=data[offset:])
    assert answer.status == 201, answer.body
    assert follow_blob(client, "org/app", sha256(data)) == data
    assert s3_keys("uploads/") == []


def test_mount_from_a_readable_repository_is_201(client: Client) -> None:
    digest = client.push_blob("source/repo", b"layer")
    answer = client.post(f"/v2/target/repo/blobs/uploads/?mount={digest}&from=source/repo")
    assert answer.status == 201
    assert answer.header("Location") == f"/v2/target/repo/blobs/{digest}"
    assert answer.header("Docker-Content-Digest") == digest
    assert client.head(f"/v2/target/repo/blobs/{digest}").status == 200


def test_mount_of_a_blob_missing_from_source_opens_a_normal_session(client: Client) -> None:
    digest = sha256(b"never pushed")
    answer = client.post(f"/v2/target/repo/blobs/uploads/?mount={digest}&from=source/repo")
    assert answer.status == 202
    assert answer.header("Docker-Upload-UUID")
    assert client.head(f"/v2/target/repo/blobs/{digest}").status == 404


def test_mount_without_from_finds_a_repository_holding_the_blob(client: Client) -> None:
    digest = client.push_blob("somewhere/else", b"auto-mounted")
    answer = client.post(f"/v2/target/repo/blobs/uploads/?mount={digest}")
    assert answer.status == 201
    assert client.head(f"/v2/target/repo/blobs/{digest}").status == 200


def test_mount_with_malformed_digest_or_source_is_400(client: Client) -> None:
    bad_digest = client.post("/v2/t/blobs/uploads/?mount=sha256:nope&from=s")
    assert (bad_digest.status, bad_digest.error_codes) == (400, ["DIGEST_INVALID"])
    digest = sha256(b"x")
    bad_from = client.post(f"/v2/t/blobs/uploads/?mount={digest}&from=Bad//Name")
    assert (bad_from.status, bad_from.error_codes) == (400, ["NAME_INVALID"])


def test_concurrent_writers_on_one_session_cannot_both_win(client: Client) -> None:
    """Optimistic locking: a writer holding a stale session version gets 416."""
    from chalicelib.storage import uploads

    location = start(client).header("Location")
    upload_id = location.rsplit("/", 1)[1]
    stale = uploads.load("org/app", upload_id)
    assert patch(client, location, b"winner", 0).status == 202
    from chalicelib.errors import RangeNotSatisfiable

    with pytest.raises(RangeNotSatisfiable):
        uploads.append(stale, b"loser", 0)
    assert client.get(location).header("Range") == "0-5"


def test_chunked_upload_refuses_clearly_past_s3s_part_limit(client: Client, monkeypatch) -> None:
    from chalicelib.storage import uploads

    monkeypatch.setattr(uploads, "MAX_PARTS", 2)  # S3's 10,000, scaled down
    data = os.urandom(PART_MIN)
    location = start(client).header("Location")
    location = patch(client, location, data, 0).header("Location")
    answer = patch(client, location, data, PART_MIN)
    assert (answer.status, answer.error_codes) == (400, ["BLOB_UPLOAD_INVALID"])
    assert "stratus push" in answer.json()["errors"][0]["message"]
    assert client.get(location).header("Range") == f"0-{PART_MIN - 1}"


def test_closing_an_upload_links_the_blob_and_deletes_the_session_in_one_write(
    client: Client,
) -> None:
    from chalicelib.storage import calls

    calls.install()
    start = client.post("/v2/up/once/blobs/uploads/")
    location = start.header("Location")
    client.patch(location, body=b"one write")
    before = dict(calls.counter)
    closed = client.put(f"{location}?digest={sha256(b'one write')}")
    assert closed.status == 201
    used = {k: v - before.get(k, 0) for k, v in calls.counter.items() if v - before.get(k, 0)}
    assert used.get(("dynamodb", "TransactWriteItems")) == 1
    assert ("dynamodb", "DeleteItem") not in used
    assert client.get(location).error_codes == ["BLOB_UPLOAD_UNKNOWN"]


def test_close_racing_a_patch_is_refused_and_links_nothing(client: Client) -> None:
    """The close read the session, then a PATCH changed it: the close's transaction fails on
    the session's version, so nothing is linked and the client can retry."""
    from chalicelib.errors import BlobUploadInvalid
    from chalicelib.registry.digests import parse_digest
    from chalicelib.storage import blobs
    from chalicelib.storage import uploads as sessions

    start = client.post("/v2/up/race/blobs/uploads/")
    upload_id = start.header("Docker-Upload-UUID")
    client.patch(start.header("Location"), body=b"first")
    stale = sessions.load_chunked("up/race", upload_id)
    client.patch(start.header("Location"), body=b"second")  # lands between read and close
    with pytest.raises(BlobUploadInvalid):
        sessions.finish(stale, b"", parse_digest(sha256(b"first")))
    assert blobs.get_link("up/race", sha256(b"first")) is None
