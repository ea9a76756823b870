"""Committing an object to the archive: a taken key is left as it is, and told apart."""

from __future__ import annotations

from worker.errors import KeyConflict, StorageError
from worker.logs import get_logger
from worker.storage import ArchiveStore, ObjectExists, Upload

__all__ = ["commit_upload"]

log = get_logger(__name__)


def commit_upload(upload: Upload, store: ArchiveStore, sha256_hex: str, size: int) -> bool:
    """Commit the upload; False if the key held these bytes, KeyConflict if others."""
    key = upload.key
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
