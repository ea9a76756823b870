"""Committing an object to the archive: one commit of a key at a time, a taken key left as it is.

The commit is conditional (`If-None-Match: *`): AWS S3 and SeaweedFS refuse it once the key is
taken, but not every backend refuses one of two that arrive together. SeaweedFS 4.48 lets two or
three concurrent CompleteMultipartUpload calls of one key succeed (docs/architecture.md, "Never
overwritten").
The media's lease keeps two workers off one media, but a lease can run out under a worker that
still works (its renewals failed while Redis was away). So a commit also holds its key's claim
in Redis, for the commit alone: a second writer of the key waits for it, then meets a taken key,
which those backends do refuse.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from redis import Redis

from wa_media.core.errors import (
    BusyError,
    KeyConflict,
    ObjectExists,
    RedisUnavailable,
    StorageError,
)
from wa_media.core.keys import commit_key
from wa_media.core.ports import ArchiveBucket, CommitGuard, ObjectUpload
from wa_media.observability.logs import get_logger
from wa_media.stores.records import holder_died, holder_token
from wa_media.stores.redis_client import decoded, failure_name

__all__ = ["COMMIT_CLAIM_SECONDS", "COMMIT_WAIT_SECONDS", "CommitClaims", "commit_upload"]

log = get_logger(__name__)

# Longer than any commit (botocore's 60 s read timeout, three attempts, then a HEAD), so that
# a live holder never loses it; a holder that died leaves it to expire.
COMMIT_CLAIM_SECONDS = 300
# A second writer of a key waits this long for the first one's commit, then retries later.
COMMIT_WAIT_SECONDS = 30.0


_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


@dataclass
class CommitClaims:
    """`wa:commit:{bucket}/{key}`: held by the one worker committing that key right now."""

    redis: Redis
    ttl: int = COMMIT_CLAIM_SECONDS
    wait: float = COMMIT_WAIT_SECONDS
    poll: float = 0.05

    @contextmanager
    def hold(self, bucket: str, key: str) -> Iterator[None]:
        """Hold the key's claim, waiting up to `wait` for its holder; BusyError after that."""
        name = commit_key(bucket, key)
        token = holder_token()
        deadline = time.monotonic() + self.wait
        try:
            while not self.redis.set(name, token, nx=True, ex=self.ttl):
                holder = self.redis.get(name)
                if holder is not None and holder_died(decoded(holder)):
                    # Its process on this host is gone (a killed worker): no need to wait
                    # for the claim to expire.
                    self.redis.eval(_RELEASE, 1, name, holder)
                    continue
                if time.monotonic() >= deadline:
                    raise BusyError("another worker is committing this key", retry_after=self.wait)
                time.sleep(self.poll)
        except RedisUnavailable as exc:
            raise RedisUnavailable(f"Redis commit claim failed: {failure_name(exc)}") from None
        try:
            yield
        finally:
            # Unreachable Redis now: the claim expires by itself.
            with suppress(RedisUnavailable):
                self.redis.eval(_RELEASE, 1, name, token)


def commit_upload(
    upload: ObjectUpload, store: ArchiveBucket, claims: CommitGuard, sha256_hex: str, size: int
) -> bool:
    """Commit under the key's claim; False if the key held these bytes, KeyConflict if others."""
    key = upload.key
    with claims.hold(store.bucket, key):
        try:
            upload.commit()
        except ObjectExists:
            pass
        else:
            return True
    existing = store.head(key)
    if existing is None:
        raise StorageError("S3 commit failed: the key was taken, then found empty")
    theirs = existing.metadata.get("sha256")
    if theirs == sha256_hex and existing.size == size:
        return False
    log.error(
        "key_conflict",
        bucket=store.bucket,
        key=key,
        sha256=sha256_hex,
        size=size,
        existing_sha256=theirs,
        existing_size=existing.size,
    )
    raise KeyConflict(f"the key holds other bytes already (sha256 {theirs}); left as they are")
