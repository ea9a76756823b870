"""The S3 adapter: conditional, checksummed writes that stream in parts."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from worker.errors import StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["PART_SIZE", "ArchiveStore", "ObjectExists", "Upload", "make_s3_client"]

# S3's smallest part is 5 MiB; 8 MiB parts keep a 100 MB file at 13 requests and bound memory.
PART_SIZE = 8 * 1024 * 1024


class ObjectExists(Exception):
    """A conditional write found the key taken: another writer committed it first."""


def make_s3_client(endpoint_url: str | None) -> S3Client:
    """One S3 client for the process, with timeouts and botocore's standard retries."""
    config = Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"mode": "standard", "max_attempts": 3},
        # We send our own SHA-256 checksums; don't add a second, CRC one.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)


def _checksum(data: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _storage_error(action: str, exc: Exception) -> StorageError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "?")
        return StorageError(f"S3 {action} failed: {code}")
    return StorageError(f"S3 {action} failed: {type(exc).__name__}")


def _precondition_failed(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") == "PreconditionFailed" or status == 412


@dataclass
class Upload:
    """An object being written: single PUT when small, multipart past one part; nothing is
    visible until `commit`, and `abort` leaves no trace."""

    client: S3Client
    bucket: str
    key: str
    headers: dict[str, Any]
    _buffer: bytearray = field(default_factory=bytearray)
    _upload_id: str | None = None
    _parts: list[dict[str, Any]] = field(default_factory=list)

    def write(self, chunk: bytes) -> None:
        """Add bytes; full parts are sent as they fill."""
        self._buffer += chunk
        while len(self._buffer) >= PART_SIZE:
            part = bytes(self._buffer[:PART_SIZE])
            del self._buffer[:PART_SIZE]
            self._send_part(part)

    def _send_part(self, part: bytes) -> None:
        try:
            if self._upload_id is None:
                created = self.client.create_multipart_upload(
                    Bucket=self.bucket, Key=self.key, ChecksumAlgorithm="SHA256", **self.headers
                )
                self._upload_id = created["UploadId"]
            number = len(self._parts) + 1
            checksum = _checksum(part)
            sent = self.client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=part,
                ChecksumSHA256=checksum,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error("part upload", exc) from None
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"], "ChecksumSHA256": checksum})

    def commit(self) -> None:
        """Make the object visible, only if the key is still free; raise ObjectExists if not."""
        try:
            if self._upload_id is None:
                body = bytes(self._buffer)
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=body,
                    ChecksumSHA256=_checksum(body),
                    IfNoneMatch="*",
                    **self.headers,
                )
            else:
                if self._buffer:
                    self._send_part(bytes(self._buffer))
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},  # type: ignore[typeddict-item]
                    IfNoneMatch="*",
                )
                self._upload_id = None
        except ClientError as exc:
            if _precondition_failed(exc):
                raise ObjectExists(self.key) from None
            raise _storage_error("commit", exc) from None
        except BotoCoreError as exc:
            raise _storage_error("commit", exc) from None
        finally:
            self._buffer.clear()

    def abort(self) -> None:
        """Drop whatever was sent; best effort (S3 lifecycle rules clean up the rest)."""
        self._buffer.clear()
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        with suppress(ClientError, BotoCoreError):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)


@dataclass
class ArchiveStore:
    """The archive bucket."""

    client: S3Client
    bucket: str

    @contextmanager
    def upload(
        self,
        key: str,
        *,
        content_type: str,
        metadata: dict[str, str],
        content_disposition: str | None = None,
    ) -> Iterator[Upload]:
        """An upload that is aborted unless committed before the block ends."""
        headers: dict[str, Any] = {"ContentType": content_type, "Metadata": metadata}
        if content_disposition:
            headers["ContentDisposition"] = content_disposition
        upload = Upload(self.client, self.bucket, key, headers)
        try:
            yield upload
        finally:
            upload.abort()

    def metadata(self, key: str) -> dict[str, str] | None:
        """The user metadata of an object, or None when there is no such object."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _storage_error("head", exc) from None
        except BotoCoreError as exc:
            raise _storage_error("head", exc) from None
        return dict(head.get("Metadata", {}))

    def abort_uploads(self, key: str) -> int:
        """Abort the unfinished multipart uploads of exactly `key`; how many there were."""
        aborted = 0
        try:
            listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
            for upload in listing.get("Uploads", []):
                if upload.get("Key") == key and "UploadId" in upload:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload["UploadId"]
                    )
                    aborted += 1
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error("abort of stale uploads", exc) from None
        return aborted

    def put_json(self, key: str, document: dict[str, Any]) -> None:
        """Write a small JSON document if the key is free; a taken key is left as it is."""
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/json; charset=utf-8",
                ChecksumSHA256=_checksum(body),
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if _precondition_failed(exc):
                return
            raise _storage_error("sidecar write", exc) from None
        except BotoCoreError as exc:
            raise _storage_error("sidecar write", exc) from None
