"""What the collector reads: rows of only the attributes it decides on, never manifest bodies.

Each reader is a Query of one repository (or a Scan segment), projected with
`attributes_to_get` (a ProjectionExpression), and turns items into small frozen rows that the
pure planning functions (plan.py) take.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chalicelib.storage.models import BlobLinkModel, BlobObjectModel, ManifestModel, TagModel

TAG_ATTRIBUTES = ["repository", "sort_key", "name", "digest", "expires_at", "pushed_at"]
MANIFEST_ATTRIBUTES = [
    "repository",
    "digest",
    "size",
    "pushed_at",
    "touched_at",
    "blobs",
    "children",
    "subject",
]
LINK_ATTRIBUTES = ["repository", "digest", "linked_at", "touched_at"]
OBJECT_ATTRIBUTES = ["digest", "size", "last_linked_at", "deleting"]


@dataclass(frozen=True)
class Tag:
    repository: str
    sort_key: str
    name: str
    digest: str
    expires_at: datetime | None
    pushed_at: datetime | None


@dataclass(frozen=True)
class Manifest:
    repository: str
    digest: str
    size: int
    pushed_at: datetime
    touched_at: datetime | None
    blobs: frozenset[str]
    children: frozenset[str]
    subject: str | None

    @property
    def last_used(self) -> datetime:
        return max(self.pushed_at, self.touched_at or self.pushed_at)


@dataclass(frozen=True)
class Link:
    repository: str
    digest: str
    linked_at: datetime
    touched_at: datetime | None

    @property
    def last_used(self) -> datetime:
        return max(self.linked_at, self.touched_at or self.linked_at)


@dataclass(frozen=True)
class BlobObject:
    digest: str
    size: int
    last_linked_at: datetime
    deleting: datetime | None


def _tag(item: TagModel) -> Tag:
    return Tag(
        item.repository, item.sort_key, item.name, item.digest, item.expires_at, item.pushed_at
    )


def _manifest(item: ManifestModel) -> Manifest:
    return Manifest(
        item.repository,
        item.digest,
        int(item.size or 0),
        item.pushed_at,
        item.touched_at,
        frozenset(item.blobs or ()),
        frozenset(item.children or ()),
        item.subject,
    )


def _link(item: BlobLinkModel) -> Link:
    return Link(item.repository, item.digest, item.linked_at, item.touched_at)


def blob_object(item: BlobObjectModel) -> BlobObject:
    return BlobObject(item.digest, int(item.size), item.last_linked_at, item.deleting)


def tags_of(repository: str) -> list[Tag]:
    return [_tag(i) for i in TagModel.query(repository, attributes_to_get=TAG_ATTRIBUTES)]


def manifests_of(repository: str) -> list[Manifest]:
    query = ManifestModel.query(repository, attributes_to_get=MANIFEST_ATTRIBUTES)
    return [_manifest(i) for i in query]


def links_of(repository: str) -> list[Link]:
    query = BlobLinkModel.query(repository, attributes_to_get=LINK_ATTRIBUTES)
    return [_link(i) for i in query]


def object_record(digest: str) -> BlobObject | None:
    for item in BlobObjectModel.query(digest, attributes_to_get=OBJECT_ATTRIBUTES):
        return blob_object(item)
    return None
