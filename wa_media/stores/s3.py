"""The S3 adapter: conditional, checksummed writes that stream in parts."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from botocore import httpsession
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from wa_media.config.target import ArchiveTarget
from wa_media.core.errors import ObjectExists, StorageError
from wa_media.core.ports import ObjectHead

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "MAX_CONNECTIONS",
    "PARTS_IN_FLIGHT",
    "PART_SIZE",
    "ArchiveStore",
    "ObjectHead",
    "Upload",
    "list_keys",
    "make_s3_client",
    "object_chunks",
    "presign_get",
    "read_if_present",
    "read_object",
]

# S3's smallest part is 5 MiB; 8 MiB parts keep a 100 MB file at 13 requests.
PART_SIZE = 8 * 1024 * 1024
# Parts sent side by side: S3 (and SeaweedFS) take them faster than one stream of parts, and
# the download, several times faster than the upload, refills a buffer as soon as it is free.
# An upload holds this many part buffers (16 MiB), whatever the file's size.
PARTS_IN_FLIGHT = 2
# botocore's default pool; a worker running more tasks at once asks for more (make_s3_client).
MAX_CONNECTIONS = 10


def _use_patched_ssl() -> None:
    """Under gevent's patching (`web`'s gunicorn workers, which patch after the master imported
    botocore), make botocore build its TLS contexts from gevent's SSLContext: one of the class
    it imported first would recurse forever when its options are set, and block the worker."""
    patched, bound = ssl.SSLContext, getattr(httpsession, "SSLContext", None)
    if bound is not None and bound is not patched and issubclass(patched, bound):
        setattr(httpsession, "SSLContext", patched)  # noqa: B010 (a module's global, rebound)


def make_s3_client(endpoint_url: str | None, max_connections: int = MAX_CONNECTIONS) -> S3Client:
    """One S3 client for the process, with timeouts and botocore's standard retries.

    The client is thread-safe; `max_connections` should be at least the tasks running at once
    in the process, or connections are opened and dropped instead of reused.
    """
    _use_patched_ssl()
    config = Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"mode": "standard", "max_attempts": 3},
        max_pool_connections=max(MAX_CONNECTIONS, max_connections),
        # We send our own SHA-256 checksums; don't add a second, CRC one.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)


# Every upload request sends its checksum with ChecksumAlgorithm="SHA256", so that it carries
# x-amz-sdk-checksum-algorithm beside x-amz-checksum-sha256: S3 asks for that header (or
# Content-MD5) on writes into a bucket whose Object Lock gives objects a retention period.
def _checksum(data: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _storage_error(action: str, exc: Exception) -> StorageError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "?")
        return StorageError(f"S3 {action} failed: {code}")
    return StorageError(f"S3 {action} failed: {type(exc).__name__}")


def _head(client: S3Client, bucket: str, key: str, action: str) -> ObjectHead | None:
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise _storage_error(action, exc) from None
    except BotoCoreError as exc:
        raise _storage_error(action, exc) from None
    return ObjectHead(
        etag=head.get("ETag", "").strip('"'),
        size=head.get("ContentLength", 0),
        metadata=dict(head.get("Metadata", {})),
    )


def list_keys(client: S3Client, bucket: str, prefix: str) -> Iterator[str]:
    """Every key under `prefix` (the whole bucket when empty), page after page."""
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]
    except (ClientError, BotoCoreError) as exc:
        raise _storage_error("listing", exc) from None


def read_object(client: S3Client, bucket: str, key: str) -> bytes:
    """A small object's bytes; StorageError when S3 fails or the key holds nothing."""
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise _storage_error("read", exc) from None


def read_if_present(client: S3Client, bucket: str, key: str) -> bytes | None:
    """A small object's bytes; None when the key holds nothing; StorageError when S3 fails."""
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise _storage_error("read", exc) from None
    except BotoCoreError as exc:
        raise _storage_error("read", exc) from None


def presign_get(client: S3Client, bucket: str, key: str, seconds: int) -> str:
    """A URL that downloads one object for `seconds`, signed with the client's credentials (no
    request is made). It lets its bearer GET that key only, and only while the credentials that
    signed it are valid: temporary ones (an assumed role, instance credentials) end it sooner."""
    try:
        url: str = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=seconds
        )
    except (BotoCoreError, ClientError) as exc:
        raise _storage_error("presign", exc) from None
    return url


def object_chunks(client: S3Client, bucket: str, key: str, size: int) -> Iterator[bytes] | None:
    """An object's bytes in chunks of `size`, as they arrive; None when the key holds nothing."""
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise _storage_error("read", exc) from None
    except BotoCoreError as exc:
        raise _storage_error("read", exc) from None

    def chunks() -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(size)
        except BotoCoreError as exc:
            raise _storage_error("read", exc) from None

    return chunks()


def _precondition_failed(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") == "PreconditionFailed" or status == 412


@dataclass
class Upload:
    """An object being written: single PUT when small, multipart past one part; nothing is
    visible until `commit`, and `abort` leaves no trace.

    Full parts are sent from threads of the upload's own, PARTS_IN_FLIGHT at most, while the
    next part fills; a buffer whose part has arrived is filled again. Each part goes out as
    its bytearray, never copied.
    """

    client: S3Client
    bucket: str
    key: str
    headers: dict[str, Any]
    _buffer: bytearray = field(default_factory=bytearray)
    _filled: int = 0
    _buffers: int = 1
    _upload_id: str | None = None
    _parts: list[dict[str, Any]] = field(default_factory=list)
    _sender: ThreadPoolExecutor | None = None
    _in_flight: deque[Future[tuple[bytearray, dict[str, Any]]]] = field(default_factory=deque)

    def write(self, chunk: bytes) -> None:
        """Add bytes; each part is sent as soon as it is full."""
        view = memoryview(chunk)
        while view:
            piece = view[: PART_SIZE - self._filled]
            end = self._filled + len(piece)
            # Appends to the first buffer as it grows; overwrites a reused one in place.
            self._buffer[self._filled : end] = piece
            self._filled = end
            view = view[len(piece) :]
            if self._filled == PART_SIZE:
                self._ship()
                self._buffer = self._free_buffer()
                self._filled = 0

    def _ship(self) -> None:
        """Send the current buffer as the next part, in the background."""
        if self._upload_id is None:
            self._upload_id = self._create()
        if self._sender is None:
            self._sender = ThreadPoolExecutor(PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        number = len(self._parts) + len(self._in_flight) + 1
        self._in_flight.append(self._sender.submit(self._send_part, number, self._buffer))

    def _free_buffer(self) -> bytearray:
        """A new buffer while there are fewer than PARTS_IN_FLIGHT, else the oldest part's."""
        if self._buffers < PARTS_IN_FLIGHT:
            self._buffers += 1
            return bytearray(PART_SIZE)
        return self._settle_oldest()

    def _create(self) -> str:
        try:
            created = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ChecksumAlgorithm="SHA256", **self.headers
            )
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error("part upload", exc) from None
        return created["UploadId"]

    def _settle_oldest(self) -> bytearray:
        """Wait for the oldest part in flight to arrive; its buffer, free again."""
        buffer, part = self._in_flight.popleft().result()
        self._parts.append(part)
        return buffer

    def _send_part(self, number: int, part: bytearray) -> tuple[bytearray, dict[str, Any]]:
        assert self._upload_id is not None
        checksum = _checksum(part)
        try:
            sent = self.client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                # botocore takes a bytearray (its validator says so; the stubs only say bytes).
                Body=part,  # type: ignore[arg-type]
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=checksum,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error("part upload", exc) from None
        return part, {"PartNumber": number, "ETag": sent["ETag"], "ChecksumSHA256": checksum}

    def commit(self) -> None:
        """Make the object visible, only if the key is still free; raise ObjectExists if not."""
        try:
            if self._upload_id is None:
                # The whole file, shorter than a part: the buffer holds exactly its bytes.
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=self._buffer,  # type: ignore[arg-type]
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=_checksum(self._buffer),
                    IfNoneMatch="*",
                    **self.headers,
                )
            else:
                if self._filled:
                    del self._buffer[self._filled :]  # the last part, shorter
                    self._ship()
                while self._in_flight:
                    self._settle_oldest()
                completed = self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},  # type: ignore[typeddict-item]
                    IfNoneMatch="*",
                )
                self._upload_id = None
                self._check_visible(completed.get("ETag"))
        except ClientError as exc:
            if _precondition_failed(exc):
                raise ObjectExists(self.key) from None
            raise _storage_error("commit", exc) from None
        except BotoCoreError as exc:
            raise _storage_error("commit", exc) from None
        finally:
            self._release()

    def _check_visible(self, etag: str | None) -> None:
        """Raise ObjectExists unless the key shows the object this completion made.

        Some backends let two conditional completions of one key both succeed (SeaweedFS 4.48
        does when they arrive together; docs/architecture.md, "Never overwritten"), and only one
        of them is visible afterwards: a completion whose object is not the one visible lost,
        whatever its answer said. A single PutObject needs no such check: AWS S3 and SeaweedFS
        refuse concurrent conditional ones.
        """
        head = _head(self.client, self.bucket, self.key, "commit check")
        if head is None:
            raise StorageError("S3 commit check failed: no object after its completion")
        if etag is None or head.etag != etag.strip('"'):
            raise ObjectExists(self.key)

    def _release(self) -> None:
        self._buffer = bytearray()
        self._filled = 0

    def abort(self) -> None:
        """Drop whatever was sent; best effort (S3 lifecycle rules clean up the rest)."""
        self._release()
        while self._in_flight:
            # Every part must have landed or failed before the abort, or it could outlive it.
            with suppress(StorageError):
                self._settle_oldest()
        if self._sender is not None:
            self._sender.shutdown(wait=True)
            self._sender = None
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        with suppress(ClientError, BotoCoreError):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)


@dataclass
class ArchiveStore:
    """An account's archive: the bucket of its target, every object written to it encrypted as
    the target asks. (The key prefix is the caller's, in the object key.)"""

    client: S3Client
    target: ArchiveTarget

    @property
    def bucket(self) -> str:
        """The target's bucket."""
        return self.target.bucket

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
        # Sent with the single PUT or with CreateMultipartUpload, whichever the size makes it;
        # the parts of a multipart upload inherit its encryption.
        headers: dict[str, Any] = {
            "ContentType": content_type,
            "Metadata": metadata,
            **self.target.encryption.request_args(),
        }
        if content_disposition:
            headers["ContentDisposition"] = content_disposition
        upload = Upload(self.client, self.bucket, key, headers)
        try:
            yield upload
        finally:
            upload.abort()

    def metadata(self, key: str) -> dict[str, str] | None:
        """The user metadata of an object, or None when there is no such object."""
        head = self.head(key)
        return None if head is None else head.metadata

    def head(self, key: str) -> ObjectHead | None:
        """The ETag, size and user metadata of an object, or None when there is no such object."""
        return _head(self.client, self.bucket, key, "head")

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

    def get_json(self, key: str) -> dict[str, Any] | None:
        """A small JSON document (a sidecar); None when there is no such object, or it holds
        no JSON object."""
        if self.head(key) is None:
            return None
        try:
            document = json.loads(read_object(self.client, self.bucket, key))
        except ValueError:
            return None
        return document if isinstance(document, dict) else None

    def put_json(self, key: str, document: dict[str, Any]) -> bool:
        """Write a small JSON document if the key is free; a taken key is left as it is.
        Whether it was written (False: the key was taken)."""
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/json; charset=utf-8",
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_checksum(body),
                IfNoneMatch="*",
                **self.target.encryption.request_args(),
            )
        except ClientError as exc:
            if _precondition_failed(exc):
                return False
            raise _storage_error("sidecar write", exc) from None
        except BotoCoreError as exc:
            raise _storage_error("sidecar write", exc) from None
        return True
