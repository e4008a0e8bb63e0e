"""DynamoDB tables as pynamodb models; keys chosen so every hot read is one GetItem or Query.

- repositories (name): existence; the `catalog` GSI makes `_catalog` a Query.
- tags (repository, sort_key): manifest GET by tag (small bodies copied inline), tags list;
  the `by_digest` LSI lists a manifest's tags, strongly consistent, for its deletion.
- manifests (repository, digest): manifest GET by digest, reference checks.
- blobs (repository, digest): a repository's right to a blob; `by_digest` GSI for mounts.
- uploads (upload_id): upload sessions (hash state, S3 multipart parts).
- blob_objects (digest): one per S3 blob object, guarding its deletion.
- referrers (subject_key = "<repository>@<subject digest>", digest): the referrers API;
  the `by_type` LSI serves `?artifactType=` with exact pages.
- v1-images (image_id, repository): Docker V1 image ids derived from V2 images, written when
  a V1 client lists tags, expiring by TTL (a cache; rebuilt on the next listing).
- accounts (pk, sk): users, organizations, robots, permissions and login-failure counters in
  one table, so a token request reads all it needs in one BatchGetItem (docs/auth.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    DiscriminatorAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import (
    AllProjection,
    GlobalSecondaryIndex,
    KeysOnlyProjection,
    LocalSecondaryIndex,
)
from pynamodb.models import MetaProtocol, Model

from chalicelib import clock, config

CATALOG_PARTITION = "catalog"


def utcnow() -> datetime:
    """Timestamps the garbage collector compares come from the registry's clock."""
    return clock.now()


def _meta(table: str, *, stream: bool = False) -> MetaProtocol:
    """A model's Meta; pynamodb supplies defaults for the settings it leaves out. `stream`:
    the table has a stream of old and new images (chalicelib/changes.py reads it)."""

    class Meta:
        table_name = table
        region = config.settings.region
        max_retry_attempts = 3

    if stream:
        Meta.stream_view_type = "NEW_AND_OLD_IMAGES"  # type: ignore[attr-defined]
    return cast(MetaProtocol, Meta)


class CatalogIndex(GlobalSecondaryIndex["RepositoryModel"]):
    """All repository names in one partition, sorted: `_catalog` is a Query, never a Scan."""

    class Meta:
        index_name = "catalog"
        projection = KeysOnlyProjection()

    listing = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute(range_key=True)


class RepositoryModel(Model):
    Meta = _meta(config.settings.repositories_table)

    name = UnicodeAttribute(hash_key=True)
    listing = UnicodeAttribute(default=CATALOG_PARTITION)
    created_at = UTCDateTimeAttribute(default=utcnow)
    catalog = CatalogIndex()


class TagsByDigest(LocalSecondaryIndex["TagModel"]):
    """The tags of one manifest, read strongly consistent: deleting a manifest deletes them
    all, however many (a CI that tags every build of one image makes thousands), without
    the manifest item keeping a list that would outgrow DynamoDB's 400 KB."""

    class Meta:
        index_name = "by_digest"
        projection = KeysOnlyProjection()

    repository = UnicodeAttribute(hash_key=True)
    digest = UnicodeAttribute(range_key=True)


class TagModel(Model):
    """A tag, carrying a copy of its manifest (when small) so a pull by tag is one read."""

    Meta = _meta(config.settings.tags_table, stream=True)

    repository = UnicodeAttribute(hash_key=True)
    sort_key = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    digest = UnicodeAttribute()
    media_type = UnicodeAttribute()
    size = NumberAttribute()
    body = BinaryAttribute(null=True, legacy_encoding=False)
    pushed_at = UTCDateTimeAttribute(default=utcnow)
    expires_at = TTLAttribute(null=True)
    # Pull-through cache tags only: when the upstream is next asked whether the tag moved.
    revalidate_at = UTCDateTimeAttribute(null=True)
    # Written by an auto-prune just before its delete: the policy's uuid, so the stream's
    # REMOVE says the tag was pruned (events/schema.py); a re-push replaces the item.
    pruned_by = UnicodeAttribute(null=True)
    by_digest = TagsByDigest()


class ManifestModel(Model):
    Meta = _meta(config.settings.manifests_table, stream=True)

    repository = UnicodeAttribute(hash_key=True)
    digest = UnicodeAttribute(range_key=True)
    media_type = UnicodeAttribute()
    size = NumberAttribute()
    # None when the manifest is too large for an item and lives in S3 instead.
    body = BinaryAttribute(null=True, legacy_encoding=False)
    # Set while a delete removes the manifest's tags in batches: a push naming the manifest
    # meanwhile clears it, so the delete stops instead of taking a tag just pushed.
    deleting = UnicodeAttribute(null=True)
    blobs = UnicodeSetAttribute(null=True)
    children = UnicodeSetAttribute(null=True)
    subject = UnicodeAttribute(null=True)
    artifact_type = UnicodeAttribute(null=True)
    annotations: MapAttribute[str, str] = MapAttribute(null=True)
    # The raw `quay.expires-after` value that applied at push: an index expires only when
    # all its children carry the same one.
    expires_after = UnicodeAttribute(null=True)
    pushed_at = UTCDateTimeAttribute(default=utcnow)
    # Set by every push that references this manifest (as an index child); garbage
    # collection only takes what nobody touched within its grace window.
    touched_at = UTCDateTimeAttribute(null=True)
    # The latest push's tag and who made it, from where: the tables' stream carries them to
    # events and the audit log, so a push adds no write of its own (docs/events.md).
    pushed_tag = UnicodeAttribute(null=True)
    pushed_by = UnicodeAttribute(null=True)
    pushed_from = UnicodeAttribute(null=True)


class BlobsByDigest(GlobalSecondaryIndex["BlobLinkModel"]):
    """Which repositories hold a blob: for mounts without `from` and for garbage collection."""

    class Meta:
        index_name = "by_digest"
        projection = KeysOnlyProjection()

    digest = UnicodeAttribute(hash_key=True)
    repository = UnicodeAttribute(range_key=True)


class BlobLinkModel(Model):
    """A repository's right to read a blob; the bytes are one shared S3 object per digest."""

    Meta = _meta(config.settings.blobs_table)

    repository = UnicodeAttribute(hash_key=True)
    digest = UnicodeAttribute(range_key=True)
    size = NumberAttribute()
    linked_at = UTCDateTimeAttribute(default=utcnow)
    # Set by every manifest push that references the blob (see docs/gc.md).
    touched_at = UTCDateTimeAttribute(null=True)
    by_digest = BlobsByDigest()


class BlobObjectModel(Model):
    """The shared S3 object of one digest, and the lock that makes deleting it safe.

    Linking a blob sets `last_linked_at` on condition that no `deleting` marker is present;
    garbage collection sets the marker on condition that the object went unlinked for its
    grace window. Whichever comes first, the other backs off (docs/gc.md).
    """

    Meta = _meta(config.settings.blob_objects_table)

    digest = UnicodeAttribute(hash_key=True)
    size = NumberAttribute()
    last_linked_at = UTCDateTimeAttribute()
    deleting = UTCDateTimeAttribute(null=True)


class PartAttribute(MapAttribute[str, Any]):
    number = NumberAttribute()
    etag = UnicodeAttribute()
    size = NumberAttribute()


class UploadModel(Model):
    """An upload session: where its bytes are in S3 and the SHA-256 state over them."""

    Meta = _meta(config.settings.uploads_table)

    upload_id = UnicodeAttribute(hash_key=True)
    repository = UnicodeAttribute()
    # "chunked" (PATCH/PUT through the registry) or "direct" (parts straight to S3).
    kind = UnicodeAttribute(default="chunked")
    declared_size = NumberAttribute(null=True)
    part_size = NumberAttribute(null=True)
    # Direct uploads verified asynchronously: "verifying", then "done" or "failed"; the
    # expected digest, and the outcome (the blob's digest, or the error JSON).
    state = UnicodeAttribute(null=True)
    expected_digest = UnicodeAttribute(null=True)
    outcome = UnicodeAttribute(null=True)
    offset = NumberAttribute(default=0)
    hash_state = BinaryAttribute(legacy_encoding=False)
    multipart_id = UnicodeAttribute(null=True)
    parts = ListAttribute(of=PartAttribute, default=list)
    # Bytes not yet in a multipart part (S3 parts must be >= 5 MiB except the last).
    buffer_key = UnicodeAttribute(null=True)
    buffer_size = NumberAttribute(default=0)
    created_at = UTCDateTimeAttribute(default=utcnow)
    expires_at = TTLAttribute(null=True)
    version = VersionAttribute()


class ReferrersByType(LocalSecondaryIndex["ReferrerModel"]):
    """Referrers of one subject ordered by artifactType: a filtered page is one Query."""

    class Meta:
        index_name = "by_type"
        projection = AllProjection()

    subject_key = UnicodeAttribute(hash_key=True)
    type_key = UnicodeAttribute(range_key=True)


class ReferrerModel(Model):
    """One manifest whose `subject` names a digest: a descriptor in the referrers index."""

    Meta = _meta(config.settings.referrers_table)

    subject_key = UnicodeAttribute(hash_key=True)
    digest = UnicodeAttribute(range_key=True)
    # "<artifactType> <digest>": a space never occurs in a media type.
    type_key = UnicodeAttribute()
    media_type = UnicodeAttribute()
    size = NumberAttribute()
    artifact_type = UnicodeAttribute(null=True)
    annotations: MapAttribute[str, str] = MapAttribute(null=True)
    # Annotations too large for the item are read from the manifest itself.
    annotations_in_body = BooleanAttribute(default=False)
    by_type = ReferrersByType()


class V1ImageModel(Model):
    """One V1 image of a V2 image, for the Docker V1 pull protocol (chalicelib/endpoints/v1.py)."""

    Meta = _meta(config.settings.v1_images_table)

    image_id = UnicodeAttribute(hash_key=True)
    repository = UnicodeAttribute(range_key=True)
    blob_sum = UnicodeAttribute()
    ancestry = ListAttribute(of=UnicodeAttribute)  # this image first, then its parents
    v1_json = UnicodeAttribute()
    expires_at = TTLAttribute()


class AccountDirectory(GlobalSecondaryIndex["AuthItem"]):
    """Accounts listed by kind ("user", "organization", "robot <namespace>"), sorted by name."""

    class Meta:
        index_name = "directory"
        projection = AllProjection()

    directory = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute(range_key=True)


class PermissionsByPrincipal(GlobalSecondaryIndex["AuthItem"]):
    """What one principal may touch: `_catalog` filtering and the admin listing."""

    class Meta:
        index_name = "by_principal"
        projection = AllProjection()

    principal = UnicodeAttribute(hash_key=True)
    resource = UnicodeAttribute(range_key=True)


class AuthItem(Model):
    """The accounts table; `kind` says which of the models below an item is."""

    Meta = _meta(config.settings.accounts_table)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    kind = DiscriminatorAttribute()
    # Index keys, present only on the items each index lists (sparse indexes).
    directory = UnicodeAttribute(null=True)
    name = UnicodeAttribute(null=True)
    principal = UnicodeAttribute(null=True)
    resource = UnicodeAttribute(null=True)
    directory_index = AccountDirectory()
    by_principal = PermissionsByPrincipal()


class AccountModel(AuthItem, discriminator="account"):
    """A user, organization or robot (`org+name`): pk "account <name>", sk "account"."""

    account_type = UnicodeAttribute()
    # "<scheme>$<params>$<salt>$<hash>" (chalicelib/auth/passwords.py); none for organizations.
    secret = UnicodeAttribute(null=True)
    superuser = BooleanAttribute(default=False)
    created_at = UTCDateTimeAttribute(default=utcnow)


class PermissionModel(AuthItem, discriminator="permission"):
    """A role on a repository ("org/app") or a namespace ("org/"): pk "permission <resource>",
    sk the principal ("*" is everyone, anonymous included: a public repository)."""

    role = UnicodeAttribute()


class LoginFailureModel(AuthItem, discriminator="login_failure"):
    """Failed logins of one user or source address in the current window."""

    # `count` in DynamoDB; in Python that name is Model.count, the item-counting query.
    failures = NumberAttribute(default=0, attr_name="count")
    expires_at = TTLAttribute(null=True)


class ProxyCacheModel(AuthItem, discriminator="proxycache"):
    """An organization's pull-through cache upstream: pk "account <org>", sk "proxycache".

    The upstream password is never here: it is an SSM SecureString named by
    `password_parameter` (docs/proxycache.md).
    """

    upstream_registry = UnicodeAttribute()
    expiration_s = NumberAttribute()
    insecure = BooleanAttribute(default=False)
    username = UnicodeAttribute(null=True)
    password_parameter = UnicodeAttribute(null=True)
    updated_at = UTCDateTimeAttribute(default=utcnow)


class ProxyCopyModel(AuthItem, discriminator="proxycache_copy"):
    """One blob being copied from an upstream into S3: pk "proxycache_copy <repo>@<digest>",
    sk "copy"; written conditionally so one copy runs at a time, gone by TTL."""

    state = UnicodeAttribute()  # "copying" or "failed"
    reason = UnicodeAttribute(null=True)
    expires_at = TTLAttribute(null=True)


class NotificationModel(AuthItem, discriminator="notification"):
    """A webhook on a repository ("org/app") or a namespace ("org/"): pk "notification
    <resource>", sk its uuid. The secret is an SSM SecureString (chalicelib/events/
    webhooks.py), never an attribute."""

    event = UnicodeAttribute()
    method = UnicodeAttribute(default="webhook")
    title = UnicodeAttribute(null=True)
    url = UnicodeAttribute()
    event_config = UnicodeAttribute(default="{}")  # JSON, as given
    signed = BooleanAttribute(default=False)
    failures = NumberAttribute(default=0)
    created_at = UTCDateTimeAttribute(default=utcnow)


class DeliveryModel(AuthItem, discriminator="delivery"):
    """One event's delivery to one webhook: pk "delivery <uuid>", sk "<time> <event id>";
    its latest state, kept a week."""

    event_id = UnicodeAttribute()
    event = UnicodeAttribute()
    status = UnicodeAttribute()  # "pending", "delivered", "retrying", "dead"
    attempts = NumberAttribute(default=0)
    http_status = NumberAttribute(null=True)
    error = UnicodeAttribute(null=True)
    updated_at = UTCDateTimeAttribute(default=utcnow)
    expires_at = TTLAttribute(null=True)


class AuditByNamespace(GlobalSecondaryIndex["AuditModel"]):
    """A namespace's entries (its repositories' and its own), newest first."""

    class Meta:
        index_name = "by_namespace"
        projection = AllProjection()

    namespace_key = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class AuditByPerformer(GlobalSecondaryIndex["AuditModel"]):
    """What one account did, newest first."""

    class Meta:
        index_name = "by_performer"
        projection = AllProjection()

    performer_key = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class AuditModel(Model):
    """One audit log entry (chalicelib/events/audit.py).

    pk "repo <repository>#<shard>" (or "ns <namespace>#<shard>" for what concerns no one
    repository), sk "<UTC time> <id>": the shard, chosen at random per entry, spreads a busy
    repository over several partitions; reads query every shard and merge. The index keys
    carry the same shard suffix.
    """

    Meta = _meta(config.settings.audit_table)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()
    result = UnicodeAttribute()  # "success" or "failure"
    reason = UnicodeAttribute(null=True)
    performer = UnicodeAttribute(null=True)
    performer_kind = UnicodeAttribute()  # "user", "robot" or "anonymous"
    ip = UnicodeAttribute(null=True)
    repository = UnicodeAttribute(null=True)
    namespace = UnicodeAttribute(null=True)
    reference = UnicodeAttribute(null=True)
    metadata: MapAttribute[str, str] = MapAttribute(null=True)
    at = UTCDateTimeAttribute()
    expires_at = TTLAttribute()
    # Index keys, present only where the entry has a namespace or a named performer.
    namespace_key = UnicodeAttribute(null=True)
    performer_key = UnicodeAttribute(null=True)
    by_namespace = AuditByNamespace()
    by_performer = AuditByPerformer()


class GcCandidateModel(Model):
    """Where garbage may be, from the tables' streams: the collector's work list.

    One item per repository (`key` is its name) whose tags or manifests changed, due when
    what changed can first be collected (a tag's expiry, a push's grace window end); one
    per blob object (`key` "@blob <digest>") whose last link went. `changes` counts the
    enqueues, so the collector settles an item only if nothing arrived while it worked.
    """

    Meta = _meta(config.settings.table_prefix + "gc-candidates")

    key = UnicodeAttribute(hash_key=True)
    due_at = NumberAttribute()  # epoch seconds
    changes = NumberAttribute(default=0)
    expires_at = TTLAttribute(null=True)  # a forgotten item goes; the backstop covers it


ALL_MODELS: tuple[type[Model], ...] = (
    RepositoryModel,
    TagModel,
    ManifestModel,
    BlobLinkModel,
    UploadModel,
    ReferrerModel,
    BlobObjectModel,
    AuthItem,
    V1ImageModel,
    AuditModel,
    GcCandidateModel,
)


def create_tables() -> None:
    """Create every table if missing (local stand-ins; AWS stages use infra/)."""
    for model in ALL_MODELS:
        if not model.exists():
            model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
