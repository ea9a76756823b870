"""The S3 upload: parts sent side by side while the next fills, bounded memory, clean aborts."""

from __future__ import annotations

import base64
import hashlib
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from wa_media.config.encryption import NO_ENCRYPTION, Encryption
from wa_media.config.target import ArchiveTarget
from wa_media.core.errors import ObjectExists, StorageError
from wa_media.providers.transfer import new_session
from wa_media.stores.s3 import PART_SIZE, PARTS_IN_FLIGHT, ArchiveStore


def _b64sha256(data: bytes | bytearray) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'  # noqa: S324 - an ETag, as S3 makes it


def _precondition_failed(operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "PreconditionFailed"}, "ResponseMetadata": {"HTTPStatusCode": 412}},  # type: ignore[typeddict-item]
        operation,
    )


class UnconditionalWrite(AssertionError):
    """The code under test wrote an object without `If-None-Match: *`."""


class FakeS3:
    """Records the calls an upload makes; parts can be held back or refused.

    Writes are conditional as S3's are: a write of a key already in `objects` is refused (412),
    and a write without `If-None-Match: *` fails the test (UnconditionalWrite) instead of
    overwriting, whether the key is taken or not.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[str] = []
        self.objects: dict[str, bytes] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        self.parts: dict[int, bytes] = {}
        self.buffers: set[int] = set()
        self.running = 0
        self.most_running = 0
        self.release = threading.Event()
        self.release.set()
        self.fail_part: int | None = None
        self.completed: list[dict[str, Any]] = []
        self.aborted: list[str] = []
        self.arguments: list[tuple[str, dict[str, Any]]] = []
        # What another writer's completion, let through by the backend at the same moment,
        # leaves visible right after ours (the race SeaweedFS 4.48 loses).
        self.landing_after_completion: bytes | None = None
        self.complete_error: ClientError | None = None
        self.upload_metadata: dict[str, str] = {}

    def _note(self, name: str, kwargs: dict[str, Any]) -> None:
        with self.lock:
            self.calls.append(name)
            self.arguments.append((name.split()[0], kwargs))

    @staticmethod
    def _conditional(operation: str, kwargs: dict[str, Any]) -> None:
        if kwargs.get("IfNoneMatch") != "*":
            raise UnconditionalWrite(f"{operation} of {kwargs['Key']} without If-None-Match: *")

    def _store(self, key: str, body: bytes, metadata: dict[str, str]) -> None:
        self.objects[key] = body
        self.metadata[key] = dict(metadata)

    def put_object(self, **kwargs: Any) -> dict[str, Any]:
        self._note("put_object", kwargs)
        self._conditional("PutObject", kwargs)
        body = bytes(kwargs["Body"])
        assert kwargs["ChecksumSHA256"] == _b64sha256(body)
        assert kwargs["ChecksumAlgorithm"] == "SHA256"
        if kwargs["Key"] in self.objects:
            raise _precondition_failed("PutObject")
        self._store(kwargs["Key"], body, kwargs.get("Metadata", {}))
        return {"ETag": _etag(body)}

    def create_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        self._note("create", kwargs)
        assert kwargs["ChecksumAlgorithm"] == "SHA256"
        self.upload_metadata = kwargs.get("Metadata", {})
        return {"UploadId": "u1"}

    def upload_part(self, **kwargs: Any) -> dict[str, Any]:
        self._note(f"part {kwargs['PartNumber']}", kwargs)
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.buffers.add(id(kwargs["Body"]))
        try:
            self.release.wait(5)
            if kwargs["PartNumber"] == self.fail_part:
                raise EndpointConnectionError(endpoint_url="http://s3")
            body = bytes(kwargs["Body"])
            assert kwargs["ChecksumSHA256"] == _b64sha256(body)
            assert kwargs["ChecksumAlgorithm"] == "SHA256"
            with self.lock:
                self.parts[kwargs["PartNumber"]] = body
            return {"ETag": f'"{kwargs["PartNumber"]}"'}
        finally:
            with self.lock:
                self.running -= 1

    def complete_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        self._note("complete", kwargs)
        self._conditional("CompleteMultipartUpload", kwargs)
        parts = kwargs["MultipartUpload"]["Parts"]
        self.completed = parts
        if self.complete_error is not None:
            raise self.complete_error
        key = kwargs["Key"]
        if key in self.objects:
            raise _precondition_failed("CompleteMultipartUpload")
        body = b"".join(self.parts[p["PartNumber"]] for p in parts)
        self._store(key, body, self.upload_metadata)
        answer = {"ETag": _etag(body)}
        if self.landing_after_completion is not None:
            self._store(key, self.landing_after_completion, {"sha256": "theirs"})
        return answer

    def head_object(self, **kwargs: Any) -> dict[str, Any]:
        self._note("head", kwargs)
        key = kwargs["Key"]
        if key not in self.objects:
            raise ClientError(
                {"Error": {"Code": "404"}, "ResponseMetadata": {"HTTPStatusCode": 404}},  # type: ignore[typeddict-item]
                "HeadObject",
            )
        body = self.objects[key]
        return {"ETag": _etag(body), "ContentLength": len(body), "Metadata": self.metadata[key]}

    def abort_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        self._note("abort", kwargs)
        self.aborted.append(kwargs["UploadId"])
        return {}


def _write(
    store: ArchiveStore, data: bytes, *, chunk: int = 256 * 1024 + 3, commit: bool = True
) -> None:
    with store.upload("k", content_type="application/pdf", metadata={"sha256": "x"}) as upload:
        for start in range(0, len(data), chunk):
            upload.write(data[start : start + chunk])
        if commit:
            upload.commit()


def _data(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + bytes(size % 256)


@pytest.mark.parametrize("size", [0, 1, 300_000, PART_SIZE - 1])
def test_a_file_smaller_than_a_part_is_one_conditional_put(size: int) -> None:
    s3 = FakeS3()
    _write(ArchiveStore(s3, ArchiveTarget("b")), _data(size))  # type: ignore[arg-type]
    assert s3.calls == ["put_object"]
    assert s3.objects["k"] == _data(size)


@pytest.mark.parametrize(
    ("size", "parts"),
    [(PART_SIZE, 1), (PART_SIZE + 1, 2), (2 * PART_SIZE, 2), (5 * PART_SIZE + 12_345, 6)],
)
def test_a_larger_file_goes_in_numbered_parts_in_order(size: int, parts: int) -> None:
    s3 = FakeS3()
    _write(ArchiveStore(s3, ArchiveTarget("b")), _data(size))  # type: ignore[arg-type]
    assert [p["PartNumber"] for p in s3.completed] == list(range(1, parts + 1))
    assert all(p["ChecksumSHA256"] == _b64sha256(s3.parts[p["PartNumber"]]) for p in s3.completed)
    assert s3.objects["k"] == _data(size)
    assert s3.calls[0] == "create"
    # Completed, then looked at: the object visible must be the one this completion made.
    assert s3.calls[-2:] == ["complete", "head"]
    assert not s3.aborted


def test_parts_travel_side_by_side_from_a_bounded_set_of_buffers() -> None:
    s3 = FakeS3()
    _write(ArchiveStore(s3, ArchiveTarget("b")), _data(7 * PART_SIZE + 5), chunk=PART_SIZE // 3)  # type: ignore[arg-type]
    assert s3.most_running <= PARTS_IN_FLIGHT
    # Every part went out in one of a fixed set of buffers (the last one may be trimmed in
    # place): memory does not grow with the file.
    assert len(s3.buffers) <= PARTS_IN_FLIGHT


def test_the_download_waits_while_every_buffer_is_in_flight() -> None:
    s3 = FakeS3()
    s3.release.clear()
    store = ArchiveStore(s3, ArchiveTarget("b"))  # type: ignore[arg-type]
    done = threading.Event()

    def writer() -> None:
        _write(store, _data(4 * PART_SIZE))
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert not done.wait(0.3)
    assert s3.running == PARTS_IN_FLIGHT
    s3.release.set()
    thread.join(10)
    assert done.is_set()
    assert s3.objects["k"] == _data(4 * PART_SIZE)


def test_a_failed_part_fails_the_commit_and_the_upload_is_aborted() -> None:
    s3 = FakeS3()
    s3.fail_part = 2
    with pytest.raises(StorageError, match="part upload"):
        _write(ArchiveStore(s3, ArchiveTarget("b")), _data(3 * PART_SIZE + 1))  # type: ignore[arg-type]
    assert s3.aborted == ["u1"]
    assert "complete" not in s3.calls
    assert s3.running == 0


def test_an_upload_left_uncommitted_is_aborted_after_its_parts_settled() -> None:
    s3 = FakeS3()
    _write(ArchiveStore(s3, ArchiveTarget("b")), _data(3 * PART_SIZE), commit=False)  # type: ignore[arg-type]
    assert s3.calls[-1] == "abort"
    assert s3.running == 0
    assert "complete" not in s3.calls


@pytest.mark.parametrize("size", [10, 2 * PART_SIZE + 1])
def test_a_taken_key_raises_object_exists_keeps_the_first_bytes_and_leaves_no_upload(
    size: int,
) -> None:
    s3 = FakeS3()
    s3.objects["k"], s3.metadata["k"] = b"first", {"sha256": "first"}
    with pytest.raises(ObjectExists):
        _write(ArchiveStore(s3, ArchiveTarget("b")), _data(size))  # type: ignore[arg-type]
    assert s3.objects["k"] == b"first"
    assert s3.metadata["k"] == {"sha256": "first"}
    assert s3.aborted == ([] if size < PART_SIZE else ["u1"])


def test_the_fake_refuses_every_write_without_the_condition() -> None:
    # The positive control of the tests above: a commit that dropped If-None-Match would fail
    # them loudly, not pass because the fake refused it anyway.
    s3 = FakeS3()
    body = b"x"
    with pytest.raises(UnconditionalWrite):
        s3.put_object(
            Bucket="b",
            Key="k",
            Body=body,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=_b64sha256(body),
        )
    with pytest.raises(UnconditionalWrite):
        s3.complete_multipart_upload(
            Bucket="b", Key="k", UploadId="u1", MultipartUpload={"Parts": []}
        )
    assert s3.objects == {}


@pytest.mark.parametrize("size", [10, 2 * PART_SIZE + 1])
def test_every_commit_and_the_sidecar_send_the_condition(size: int) -> None:
    s3 = FakeS3()
    store = ArchiveStore(s3, ArchiveTarget("b"))  # type: ignore[arg-type]
    _write(store, _data(size))
    store.put_json("k.json", {"schema": 1})
    writes = [sent for name, sent in s3.arguments if name in ("put_object", "complete")]
    assert len(writes) == 2
    assert all(sent["IfNoneMatch"] == "*" for sent in writes)
    assert s3.objects["k"] == _data(size)


def test_a_taken_sidecar_key_is_left_as_it_is() -> None:
    s3 = FakeS3()
    store = ArchiveStore(s3, ArchiveTarget("b"))  # type: ignore[arg-type]
    store.put_json("k.json", {"sha256": "first"})
    store.put_json("k.json", {"sha256": "second"})
    assert s3.objects["k.json"] == b'{"sha256":"first"}'
    assert [name for name, _ in s3.arguments] == ["put_object", "put_object"]


def test_a_completion_whose_object_is_not_the_one_visible_lost() -> None:
    # The backend answered success to two completions that arrived together; the other one
    # is what the key shows.
    s3 = FakeS3()
    s3.landing_after_completion = b"another writer's bytes"
    with pytest.raises(ObjectExists):
        _write(ArchiveStore(s3, ArchiveTarget("b")), _data(2 * PART_SIZE + 1))  # type: ignore[arg-type]
    assert s3.calls[-2:] == ["complete", "head"]
    assert s3.objects["k"] == b"another writer's bytes"


def test_a_conflicting_concurrent_commit_is_retried_not_taken_for_a_taken_key() -> None:
    # AWS answers 409 ConditionalRequestConflict to a completion that raced another write of
    # the key: the upload is gone, and the next try starts afresh.
    s3 = FakeS3()
    s3.complete_error = ClientError(
        {
            "Error": {"Code": "ConditionalRequestConflict"},
            "ResponseMetadata": {"HTTPStatusCode": 409},  # type: ignore[typeddict-item]
        },
        "CompleteMultipartUpload",
    )
    with pytest.raises(StorageError, match="ConditionalRequestConflict"):
        _write(ArchiveStore(s3, ArchiveTarget("b")), _data(2 * PART_SIZE + 1))  # type: ignore[arg-type]
    assert "k" not in s3.objects


def test_a_new_session_keeps_a_connection_per_task_running_at_once() -> None:
    session = new_session(pool_size=48)
    adapter: Any = session.get_adapter("https://graph.facebook.com")
    assert adapter._pool_maxsize == 48
    default: Any = new_session().get_adapter("http://x")
    assert default._pool_maxsize == 10


SSE_KMS = Encryption("aws:kms", "arn:aws:kms:eu-west-1:111122223333:key/k-1")
SSE_ARGS = {"ServerSideEncryption", "SSEKMSKeyId"}


@pytest.mark.parametrize("encryption", [Encryption("AES256"), SSE_KMS])
def test_a_single_put_asks_for_the_encryption(encryption: Encryption) -> None:
    s3 = FakeS3()
    _write(ArchiveStore(s3, ArchiveTarget("b", encryption=encryption)), _data(1000))  # type: ignore[arg-type]
    [(name, sent)] = s3.arguments
    assert name == "put_object"
    assert {k: v for k, v in sent.items() if k in SSE_ARGS} == encryption.request_args()
    assert sent["IfNoneMatch"] == "*"
    assert sent["ContentType"] == "application/pdf"


def test_a_multipart_upload_asks_for_it_when_created_and_its_parts_inherit_it() -> None:
    s3 = FakeS3()
    _write(ArchiveStore(s3, ArchiveTarget("b", encryption=SSE_KMS)), _data(2 * PART_SIZE + 1))  # type: ignore[arg-type]
    by_call = {name: sent for name, sent in s3.arguments}
    assert by_call["create"]["ServerSideEncryption"] == "aws:kms"
    assert by_call["create"]["SSEKMSKeyId"] == SSE_KMS.kms_key_id
    # S3 applies what the upload was created with to its parts; only SSE-C is repeated on each.
    for name, sent in s3.arguments:
        if name != "create":
            assert not SSE_ARGS & set(sent), name


@pytest.mark.parametrize("encryption", [Encryption("AES256"), SSE_KMS])
def test_the_sidecar_asks_for_the_encryption(encryption: Encryption) -> None:
    s3 = FakeS3()
    ArchiveStore(s3, ArchiveTarget("b", encryption=encryption)).put_json("k.json", {"schema": 1})  # type: ignore[arg-type]
    [(name, sent)] = s3.arguments
    assert name == "put_object"
    assert {k: v for k, v in sent.items() if k in SSE_ARGS} == encryption.request_args()
    assert sent["ContentType"] == "application/json; charset=utf-8"


@pytest.mark.parametrize("size", [10, 2 * PART_SIZE])
def test_no_encryption_asked_sends_no_encryption_argument(size: int) -> None:
    s3 = FakeS3()
    store = ArchiveStore(s3, ArchiveTarget("b"))  # type: ignore[arg-type]
    assert store.target.encryption == NO_ENCRYPTION
    _write(store, _data(size))
    store.put_json("k.json", {})
    assert all(not SSE_ARGS & set(sent) for _, sent in s3.arguments)
