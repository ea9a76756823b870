"""The archive's S3 documents (deploy/s3/): valid, consistent placeholders, linked from
docs/s3-archive.md, the bucket policy refusing what it is meant to, and the request recorder of
the e2e suite.

Whether each IAM policy grants exactly what the service's requests need is checked over the
requests the end-to-end tests record (tests/e2e/test_s3_policies.py); here over the operations
docs/s3-archive.md names.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.docs import doc, pages
from tests.s3policies import (
    BUCKET_ARN,
    BUCKET_ENCRYPTION,
    BUCKET_POLICY,
    OPERATION_RIGHTS,
    OPERATOR_ARN,
    OTHER_CLI,
    POLICIES,
    ROOT,
    S3_DOCUMENTS,
    VERIFY,
    WEB,
    WORKER,
    WORKER_ROLE_ARN,
    Call,
    Request,
    denied_by,
    granted,
    load,
    needed,
    principal,
    read_calls,
    request_of,
)

ARCHIVE_DOC = doc("s3-archive")
DOCUMENTS = sorted(S3_DOCUMENTS.glob("*.json"))
KMS_KEY = load(BUCKET_ENCRYPTION)["Rules"][0]["ApplyServerSideEncryptionByDefault"][
    "KMSMasterKeyID"
]
RECORDER = ROOT / "tests" / "e2e" / "s3record"


def _strings(document: Any) -> list[str]:
    if isinstance(document, str):
        return [document]
    if isinstance(document, dict):
        return [s for k, v in document.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(document, list):
        return [s for item in document for s in _strings(item)]
    return []


def test_every_document_is_json_and_linked_from_the_archive_page() -> None:
    assert {p.name for p in DOCUMENTS} >= {p.name for p in (*POLICIES.values(), BUCKET_POLICY)}
    # docs/s3-archive.md links them relative to docs/.
    linked = set(re.findall(r"\]\(\.\./(deploy/s3/[^)]+)\)", ARCHIVE_DOC))
    assert linked == {f"deploy/s3/{p.name}" for p in DOCUMENTS}
    for path in DOCUMENTS:
        load(path)


def test_the_documentation_shows_no_document_inline() -> None:
    """The documents live in deploy/s3/ only: docs/s3-archive.md links them."""
    for page in pages():
        assert "```json" not in page.read_text(encoding="utf-8"), page


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_placeholders_are_the_archive_page_s(path: Path) -> None:
    """One bucket, one account, one role and one key, the placeholders docs/s3-archive.md
    names."""
    for text in _strings(load(path)):
        for arn in re.findall(r"arn:aws:[a-z0-9]+:[^\s\"]*", text):
            assert arn in (BUCKET_ARN, BUCKET_ARN + "/*", WORKER_ROLE_ARN, KMS_KEY), arn
    for placeholder in ("`wa-archive`", "`111122223333`", "`wa-media-worker`"):
        assert placeholder in ARCHIVE_DOC
    assert KMS_KEY.split(":")[4] == "111122223333"


@pytest.mark.parametrize("path", [BUCKET_POLICY, *POLICIES.values()], ids=lambda p: p.name)
def test_policies_are_of_the_current_language_version(path: Path) -> None:
    policy = load(path)
    assert policy["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids))


# The operations docs/s3-archive.md says each principal makes ("The worker's rights").
DOCUMENTED_OPERATIONS = {
    WORKER: {
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "HeadObject",
        "ListMultipartUploads",
        "AbortMultipartUpload",
    },
    VERIFY: {"ListObjectsV2", "GetObject"},
    WEB: {"GetObject"},
}


@pytest.mark.parametrize("who", sorted(POLICIES))
def test_each_policy_grants_what_the_documented_operations_need(who: str) -> None:
    assert granted(load(POLICIES[who])) == needed(DOCUMENTED_OPERATIONS[who])


def test_the_documented_account_of_the_worker_s_rights_is_the_mapping_s() -> None:
    """'`s3:PutObject` covers `PutObject`, `CreateMultipartUpload`, ...' and the like."""
    text = " ".join(ARCHIVE_DOC.split())
    covers = re.search(r"`(s3:PutObject)` covers ((?:`\w+`(?:, | and )?)+)", text)
    assert covers is not None
    for operation in re.findall(r"`(\w+)`", covers.group(2)):
        assert OPERATION_RIGHTS[operation] == ("s3:PutObject", "object")
    assert re.search(r"`s3:GetObject` covers `HeadObject`", text)
    assert OPERATION_RIGHTS["HeadObject"][0] == "s3:GetObject"
    assert "`ListMultipartUploads` (`s3:ListBucketMultipartUploads`)" in text
    assert "grant no `s3:DeleteObject`" in text
    assert ("s3:DeleteObject", "object") not in granted(load(POLICIES[WORKER]))


def _write(operation: str, *, principal_arn: str = WORKER_ROLE_ARN, **context: str) -> Request:
    return Request(
        principal_arn,
        OPERATION_RIGHTS[operation][0],
        BUCKET_ARN + "/media/key.jpg",
        {"aws:SecureTransport": "true", **context},
    )


KMS = {"s3:x-amz-server-side-encryption": "aws:kms"}
KMS_WITH_KEY = {**KMS, "s3:x-amz-server-side-encryption-aws-kms-key-id": KMS_KEY}


@pytest.mark.parametrize(
    ("request_", "denied"),
    [
        # The worker's own conditional commits pass.
        (_write("PutObject", **KMS_WITH_KEY, **{"s3:if-none-match": "*"}), []),
        (_write("CompleteMultipartUpload", **{"s3:if-none-match": "*"}), []),
        (
            _write(
                "CreateMultipartUpload", **KMS_WITH_KEY, **{"s3:ObjectCreationOperation": "false"}
            ),
            [],
        ),
        (_write("UploadPart", **{"s3:ObjectCreationOperation": "false"}), []),
        # An overwrite by the worker's role is refused; another principal is not held to it.
        (
            _write("PutObject", **KMS_WITH_KEY, **{"s3:ObjectCreationOperation": "true"}),
            ["DenyWorkerOverwrites"],
        ),
        (
            _write("CompleteMultipartUpload", **{"s3:ObjectCreationOperation": "true"}),
            ["DenyWorkerOverwrites"],
        ),
        (
            _write(
                "PutObject",
                principal_arn=OPERATOR_ARN,
                **KMS_WITH_KEY,
                **{"s3:ObjectCreationOperation": "true"},
            ),
            [],
        ),
        # Another encryption, or another key, is refused to everyone.
        (
            _write(
                "PutObject",
                **{"s3:x-amz-server-side-encryption": "AES256"},
                **{"s3:if-none-match": "*"},
            ),
            ["DenyOtherEncryption"],
        ),
        (
            _write(
                "PutObject",
                **KMS,
                **{"s3:x-amz-server-side-encryption-aws-kms-key-id": KMS_KEY + "0"},
                **{"s3:if-none-match": "*"},
            ),
            ["DenyOtherKmsKeys"],
        ),
        # aws:kms without the key is refused; a write without the header is left to the
        # bucket's default encryption.
        (
            _write("PutObject", **KMS, **{"s3:if-none-match": "*"}),
            ["DenyOtherKmsKeys"],
        ),
        (
            _write("PutObject", **{"s3:if-none-match": "*", "s3:ObjectCreationOperation": "true"}),
            [],
        ),
        # Without TLS, nothing, reads included.
        (
            Request(
                OPERATOR_ARN, "s3:GetObject", BUCKET_ARN + "/k", {"aws:SecureTransport": "false"}
            ),
            ["DenyWithoutTls"],
        ),
        (
            Request(OPERATOR_ARN, "s3:ListBucket", BUCKET_ARN, {"aws:SecureTransport": "false"}),
            ["DenyWithoutTls"],
        ),
        (
            Request(
                OPERATOR_ARN, "s3:GetObject", BUCKET_ARN + "/k", {"aws:SecureTransport": "true"}
            ),
            [],
        ),
    ],
)
def test_the_bucket_policy_refuses_what_it_is_meant_to(
    request_: Request, denied: list[str]
) -> None:
    assert denied_by(load(BUCKET_POLICY), request_) == denied


def test_the_bucket_policy_s_encryption_is_the_bucket_s() -> None:
    """The statements name the default encryption's algorithm and key, and look at a request's
    encryption only when it carries the header (docs/s3-archive.md, "Bucket policy")."""
    policy = {s["Sid"]: s for s in load(BUCKET_POLICY)["Statement"]}
    default = load(BUCKET_ENCRYPTION)["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    header, key_id = (
        "s3:x-amz-server-side-encryption",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
    )
    assert policy["DenyOtherEncryption"]["Condition"] == {
        "Null": {header: "false"},
        "StringNotEquals": {header: default["SSEAlgorithm"]},
    }
    assert policy["DenyOtherKmsKeys"]["Condition"] == {
        "StringEquals": {header: "aws:kms"},
        "StringNotEquals": {key_id: default["KMSMasterKeyID"]},
    }


def _call(
    process: str, *args: str, callers: tuple[str, ...] = (), operation: str = "GetObject"
) -> Call:
    return Call(process, args, callers, operation, False, None)


@pytest.mark.parametrize(
    ("call", "who"),
    [
        (_call("gunicorn", "--config", "python:webhook.gunicorn_conf"), WEB),
        (_call("celery", "-A", "worker", "worker", "--pool", "threads"), WORKER),
        (_call("celery", "-A", "worker", "beat"), "beat"),
        (_call("wa-media", "--env-file", "x.env", "verify", "--bucket", "b"), VERIFY),
        (_call("wa-media", "status"), OTHER_CLI),
        (
            _call(
                "pytest", callers=("wa_media.stores.audit", "wa_media.cli.verify", "wa_media.cli")
            ),
            VERIFY,
        ),
        (_call("pytest", callers=("wa_media.stores.s3", "worker.archive")), WORKER),
        (_call("pytest", callers=("wa_media.cli.status", "wa_media.cli")), OTHER_CLI),
        (_call("pytest", callers=("webhook.views",)), WEB),
        (_call("pytest"), None),
    ],
)
def test_a_call_is_its_process_s_or_its_caller_s(call: Call, who: str | None) -> None:
    assert principal(call) == who


def test_a_recorded_call_is_the_request_the_documents_configuration_sends() -> None:
    put = request_of(
        Call("celery", (), ("wa_media.stores.s3",), "PutObject", True, "AES256"), WORKER_ROLE_ARN
    )
    assert put.action == "s3:PutObject"
    assert put.context["s3:x-amz-server-side-encryption"] == "aws:kms"
    assert put.context["s3:if-none-match"] == "*"
    assert put.context["s3:ObjectCreationOperation"] == "true"
    listing = request_of(Call("wa-media", (), (), "ListObjectsV2", False, None), OPERATOR_ARN)
    assert (listing.action, listing.resource) == ("s3:ListBucket", BUCKET_ARN)


def test_the_recorder_records_a_python_process_s_s3_calls(tmp_path: Path) -> None:
    """The e2e suite's sitecustomize, in a process of its own; no server needed: the calls are
    recorded before they are sent, and fail against a closed port."""
    script = """
from wa_media.config.target import ArchiveTarget
from wa_media.stores.s3 import ArchiveStore, make_s3_client
import boto3
store = ArchiveStore(make_s3_client("http://127.0.0.1:9"), ArchiveTarget("wa-archive"))
for call in (lambda: store.put_json("k.json", {}), lambda: store.head("k"),
             lambda: boto3.client("s3", endpoint_url="http://127.0.0.1:9").list_buckets()):
    try:
        call()
    except Exception:
        pass
"""
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(RECORDER), os.environ.get("PYTHONPATH", "")]),
        "TEST_S3_RECORD_DIR": str(tmp_path),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }
    subprocess.run([sys.executable, "-c", script], env=environ, cwd=ROOT, check=True, timeout=60)
    calls = read_calls(tmp_path)
    assert [(c.operation, c.callers[:1], c.if_none_match) for c in calls] == [
        ("PutObject", ("wa_media.stores.s3",), True),
        ("HeadObject", ("wa_media.stores.s3",), False),
        ("ListBuckets", (), False),
    ]
    assert [principal(c) for c in calls] == [WORKER, WORKER, None]
    assert all(json.loads(line) for p in tmp_path.iterdir() for line in p.read_text().splitlines())
