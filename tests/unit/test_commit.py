"""The commit of an archived object: what a taken key means (the same bytes, or a conflict), over
the unit fake S3."""

from __future__ import annotations

import hashlib

import pytest
from structlog.testing import capture_logs

from tests.unit.test_storage_upload import FakeS3
from worker.commit import commit_upload
from worker.errors import KeyConflict
from worker.reasons import reason_of
from worker.storage import PART_SIZE, ArchiveStore

BUCKET = "b"


def _commit(s3: FakeS3, data: bytes) -> bool:
    store = ArchiveStore(s3, BUCKET)  # type: ignore[arg-type]
    digest = hashlib.sha256(data).hexdigest()
    with store.upload("k", content_type="image/jpeg", metadata={"sha256": digest}) as upload:
        upload.write(data)
        return commit_upload(upload, store, digest, len(data))


@pytest.mark.parametrize("size", [100, PART_SIZE + 100])
def test_a_free_key_is_committed(size: int) -> None:
    s3 = FakeS3()
    data = bytes(size)
    assert _commit(s3, data) is True
    assert s3.objects["k"] == data


@pytest.mark.parametrize("size", [100, PART_SIZE + 100])
def test_the_same_bytes_already_there_are_a_duplicate(size: int) -> None:
    s3 = FakeS3()
    data = b"\1" * size
    s3.objects["k"] = data
    s3.metadata["k"] = {"sha256": hashlib.sha256(data).hexdigest(), "writer": "earlier"}
    assert _commit(s3, data) is False
    assert s3.metadata["k"]["writer"] == "earlier"


@pytest.mark.parametrize("size", [100, PART_SIZE + 100])
def test_other_bytes_already_there_are_a_loud_conflict(size: int) -> None:
    s3 = FakeS3()
    theirs = b"\2" * size
    theirs_hex = hashlib.sha256(theirs).hexdigest()
    s3.objects["k"], s3.metadata["k"] = theirs, {"sha256": theirs_hex}
    ours = b"\3" * size
    with capture_logs() as logs, pytest.raises(KeyConflict) as conflict:
        _commit(s3, ours)
    assert reason_of(conflict.value) == "key_conflict"
    assert theirs_hex in conflict.value.reason
    assert s3.objects["k"] == theirs
    [line] = [entry for entry in logs if entry["event"] == "key_conflict"]
    assert line["log_level"] == "error"
    assert (line["bucket"], line["key"]) == (BUCKET, "k")
    assert line["sha256"] == hashlib.sha256(ours).hexdigest()
    assert (line["existing_sha256"], line["existing_size"]) == (theirs_hex, size)


def test_the_same_digest_with_another_size_is_a_conflict() -> None:
    s3 = FakeS3()
    data = b"\4" * 100
    s3.objects["k"] = data + b"tail"
    s3.metadata["k"] = {"sha256": hashlib.sha256(data).hexdigest()}
    with pytest.raises(KeyConflict):
        _commit(s3, data)


def test_a_completion_another_writer_overtook_is_settled_as_a_taken_key() -> None:
    s3 = FakeS3()
    s3.landing_after_completion = b"another writer's bytes"
    with pytest.raises(KeyConflict):
        _commit(s3, b"\5" * (PART_SIZE + 1))
    assert s3.objects["k"] == b"another writer's bytes"
