"""Re-reading archived objects and checking them against their sidecars (through the S3
adapter, wa_media/stores/s3.py, which translates S3's errors into StorageError)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wa_media.core.index import is_index_key
from wa_media.stores.s3 import list_keys, object_chunks, read_object

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["Finding", "audit_object", "compare", "sidecar_keys"]

SIDECAR_SUFFIX = ".json"
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Finding:
    """A sidecar whose object is missing or differs from what the sidecar records."""

    bucket: str
    sidecar_key: str
    problem: str

    @property
    def object_key(self) -> str:
        """The archived object the sidecar describes (its key without `.json`)."""
        return self.sidecar_key.removesuffix(SIDECAR_SUFFIX)


def compare(sidecar: Any, digest_hex: str | None, size: int | None) -> str | None:
    """Why an object of this digest and size does not match its sidecar, or None (pure)."""
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("sha256"), str):
        return "sidecar is not a schema 1 or 2 document with a sha256"
    if digest_hex is None or size is None:
        return "object is missing"
    if sidecar.get("size") != size:
        return f"object has {size} bytes, sidecar says {sidecar.get('size')}"
    if sidecar["sha256"] != digest_hex:
        return "sha256 of the object differs from the sidecar's"
    return None


def sidecar_keys(s3: S3Client, bucket: str, prefix: str) -> Iterator[str]:
    """Every sidecar key under `prefix` (the whole bucket when empty); never an index entry
    (`_index/`), whatever its name ends with."""
    listed = prefix.strip("/") + "/" if prefix.strip("/") else ""
    for key in list_keys(s3, bucket, listed):
        if key.endswith(SIDECAR_SUFFIX) and not is_index_key(key):
            yield key


def _hash_object(s3: S3Client, bucket: str, key: str) -> tuple[str | None, int | None]:
    chunks = object_chunks(s3, bucket, key, _CHUNK)
    if chunks is None:
        return None, None
    hasher, size = hashlib.sha256(), 0
    for chunk in chunks:
        hasher.update(chunk)
        size += len(chunk)
    return hasher.hexdigest(), size


def audit_object(s3: S3Client, bucket: str, sidecar_key: str) -> Finding | None:
    """Re-read one archived object and its sidecar; a Finding when they disagree."""
    raw = read_object(s3, bucket, sidecar_key)
    try:
        sidecar = json.loads(raw)
    except ValueError:
        return Finding(bucket, sidecar_key, "sidecar is not JSON")
    object_key = sidecar_key.removesuffix(SIDECAR_SUFFIX)
    if isinstance(sidecar, dict) and sidecar.get("key") not in (None, object_key):
        return Finding(bucket, sidecar_key, f"sidecar names another key: {sidecar.get('key')}")
    digest, size = _hash_object(s3, bucket, object_key)
    problem = compare(sidecar, digest, size)
    return Finding(bucket, sidecar_key, problem) if problem else None
