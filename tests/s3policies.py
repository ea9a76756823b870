"""The archive's S3 documents (deploy/s3/) against the S3 requests the service makes.

Pure: what each IAM policy grants, what the bucket policy denies, which rights a recorded request
needs and whose request it was. The requests are those the end-to-end suite records
(tests/e2e/s3record); tests/repo/test_s3_policies.py and tests/e2e/test_s3_policies.py compare.

The documents are written for SSE-KMS (their key ARN), so a request needs the KMS rights S3 asks
for with SSE-KMS, whatever encryption the test that recorded it used.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
S3_DOCUMENTS = ROOT / "deploy" / "s3"
BUCKET_POLICY = S3_DOCUMENTS / "bucket-policy.json"
BUCKET_ENCRYPTION = S3_DOCUMENTS / "bucket-encryption.json"

BUCKET_ARN = "arn:aws:s3:::wa-archive"
OBJECTS_ARN = BUCKET_ARN + "/*"
WORKER_ROLE_ARN = "arn:aws:iam::111122223333:role/wa-media-worker"
# Any principal but the worker's role: the bucket policy names no other.
OPERATOR_ARN = "arn:aws:iam::111122223333:role/wa-media-operator"

BUCKET, OBJECT, KEY = "bucket", "object", "key"
Right = tuple[str, str]
"""An IAM action and the kind of resource it is granted on: bucket, object or (KMS) key."""

# The IAM action that authorises each S3 API operation (AWS's "Actions, resources, and condition
# keys for Amazon S3"), on the bucket or on an object.
OPERATION_RIGHTS: dict[str, Right] = {
    "PutObject": ("s3:PutObject", OBJECT),
    "CreateMultipartUpload": ("s3:PutObject", OBJECT),
    "UploadPart": ("s3:PutObject", OBJECT),
    "CompleteMultipartUpload": ("s3:PutObject", OBJECT),
    "AbortMultipartUpload": ("s3:AbortMultipartUpload", OBJECT),
    "ListParts": ("s3:ListMultipartUploadParts", OBJECT),
    "GetObject": ("s3:GetObject", OBJECT),
    "HeadObject": ("s3:GetObject", OBJECT),
    "DeleteObject": ("s3:DeleteObject", OBJECT),
    "ListObjectsV2": ("s3:ListBucket", BUCKET),
    "ListObjects": ("s3:ListBucket", BUCKET),
    "ListMultipartUploads": ("s3:ListBucketMultipartUploads", BUCKET),
}
# Rights an operation needs beyond its own action.
EXTRA_RIGHTS: dict[str, tuple[Right, ...]] = {
    # Without s3:ListBucket, S3 answers 403 instead of 404 for a key that does not exist, and
    # both read a key that may be missing (docs/s3-archive.md, "The worker's rights").
    "HeadObject": (("s3:ListBucket", BUCKET),),
    "GetObject": (("s3:ListBucket", BUCKET), ("kms:Decrypt", KEY)),
    # SSE-KMS: a data key for each new object; the parts of a multipart upload are decrypted.
    "PutObject": (("kms:GenerateDataKey", KEY),),
    "CreateMultipartUpload": (("kms:GenerateDataKey", KEY),),
    "UploadPart": (("kms:Decrypt", KEY),),
    "CompleteMultipartUpload": (("kms:Decrypt", KEY),),
}
# What s3:ObjectCreationOperation is for each write (docs/s3-archive.md, "Bucket policy").
OBJECT_CREATION = {
    "PutObject": "true",
    "CompleteMultipartUpload": "true",
    "CreateMultipartUpload": "false",
    "UploadPart": "false",
}
# The writes that carry the encryption headers when S3_SSE is set (docs/s3-archive.md,
# "Encryption").
ENCRYPTED_WRITES = frozenset({"PutObject", "CreateMultipartUpload"})

WORKER, VERIFY, WEB, BEAT, OTHER_CLI = "worker", "wa-media verify", "web", "beat", "wa-media"
# The IAM policy of each principal that may use S3; the others are granted nothing.
POLICIES = {
    WORKER: S3_DOCUMENTS / "worker-role-policy.json",
    VERIFY: S3_DOCUMENTS / "verify-operator-policy.json",
    WEB: S3_DOCUMENTS / "web-role-policy.json",
}
# The read-only operator's commands (verify-operator-policy.json), and those that write index
# entries as the worker does (with the worker's rights).
READ_ONLY_COMMANDS = ("verify", "find")
WORKER_COMMANDS = ("reindex",)
PRINCIPALS = (WORKER, VERIFY, WEB, BEAT, OTHER_CLI)


def load(path: Path) -> Any:
    """A JSON document."""
    return json.loads(path.read_text(encoding="utf-8"))


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def resource_kind(arn: str) -> str:
    """bucket, object or key: what a policy's resource names."""
    if arn == BUCKET_ARN:
        return BUCKET
    if arn.startswith(BUCKET_ARN + "/") and arn.endswith("*"):
        return OBJECT
    if arn.startswith("arn:aws:kms:") and ":key/" in arn:
        return KEY
    raise ValueError(f"a resource that is not the archive's bucket, objects or key: {arn}")


def granted(policy: Mapping[str, Any]) -> set[Right]:
    """The rights an IAM policy's Allow statements grant (named actions only)."""
    rights: set[Right] = set()
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        for action in _listed(statement["Action"]):
            if "*" in action:
                raise ValueError(f"{statement.get('Sid')}: grant named actions, not {action}")
            for resource in _listed(statement["Resource"]):
                rights.add((action, resource_kind(resource)))
    return rights


def needed(operations: Iterable[str]) -> set[Right]:
    """The rights the S3 API operations need, KMS ones included; KeyError for an unknown one."""
    rights: set[Right] = set()
    for operation in operations:
        rights.add(OPERATION_RIGHTS[operation])
        rights.update(EXTRA_RIGHTS.get(operation, ()))
    return rights


@dataclass(frozen=True)
class Call:
    """One recorded S3 API call (tests/e2e/s3record)."""

    process: str
    args: tuple[str, ...]
    callers: tuple[str, ...]
    operation: str
    if_none_match: bool
    encryption: str | None

    @classmethod
    def parse(cls, line: str) -> Call:
        raw = json.loads(line)
        return cls(
            raw["process"],
            tuple(raw["args"]),
            tuple(raw["callers"]),
            raw["operation"],
            raw["if_none_match"],
            raw["encryption"],
        )


def read_calls(directory: Path) -> list[Call]:
    """Every call recorded in `directory`, one file per process."""
    return [
        Call.parse(line)
        for path in sorted(directory.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def principal(call: Call) -> str | None:
    """Whose rights the call used: the process's, or for a process that is none of the
    service's (pytest, devstack), the service code that made it; None for a test's own call."""
    if call.process == "gunicorn":
        return WEB
    if call.process == "celery":
        return BEAT if "beat" in call.args else WORKER
    if call.process == "wa-media":
        if any(command in call.args for command in READ_ONLY_COMMANDS):
            return VERIFY
        return WORKER if any(c in call.args for c in WORKER_COMMANDS) else OTHER_CLI
    if not call.callers:
        return None
    if any(f"wa_media.cli.{command}" in call.callers for command in READ_ONLY_COMMANDS):
        return VERIFY
    if any(f"wa_media.cli.{command}" in call.callers for command in WORKER_COMMANDS):
        return WORKER
    if any(name == "wa_media.cli" or name.startswith("wa_media.cli.") for name in call.callers):
        return OTHER_CLI
    if any(name.partition(".")[0] == "webhook" for name in call.callers):
        return WEB
    return WORKER


@dataclass(frozen=True)
class Request:
    """What the bucket policy sees of a request: who, which action on what, its condition keys."""

    principal_arn: str
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


def request_of(call: Call, principal_arn: str) -> Request:
    """The request a recorded call would be, sent over TLS by a deployment configured as the
    documents are (S3_SSE=aws:kms with their key)."""
    action, kind = OPERATION_RIGHTS[call.operation]
    encryption = load(BUCKET_ENCRYPTION)["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    context = {"aws:SecureTransport": "true"}
    if call.operation in ENCRYPTED_WRITES:
        context["s3:x-amz-server-side-encryption"] = encryption["SSEAlgorithm"]
        context["s3:x-amz-server-side-encryption-aws-kms-key-id"] = encryption["KMSMasterKeyID"]
    if call.if_none_match:
        context["s3:if-none-match"] = "*"
    if call.operation in OBJECT_CREATION:
        context["s3:ObjectCreationOperation"] = OBJECT_CREATION[call.operation]
    resource = BUCKET_ARN if kind == BUCKET else BUCKET_ARN + "/media/key.jpg"
    return Request(principal_arn, action, resource, context)


def _condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, str]) -> bool:
    values = [str(v).lower() if isinstance(v, bool) else str(v) for v in _listed(expected)]
    present = key in context
    if operator == "Bool":
        return present and context[key].lower() in [v.lower() for v in values]
    if operator == "Null":
        return (not present) == (values[0].lower() == "true")
    if operator in ("StringNotEqualsIfExists", "StringNotEquals"):
        return not present or context[key] not in values
    if operator == "StringEqualsIfExists":
        return not present or context[key] in values
    if operator == "StringEquals":
        return present and context[key] in values
    raise ValueError(f"a condition operator this check does not know: {operator}")


def _statement_matches(statement: Mapping[str, Any], request: Request) -> bool:
    who = statement.get("Principal", "*")
    if who != "*" and request.principal_arn not in _listed(who["AWS"]):
        return False
    if not any(fnmatch.fnmatchcase(request.action, a) for a in _listed(statement["Action"])):
        return False
    if not any(fnmatch.fnmatchcase(request.resource, r) for r in _listed(statement["Resource"])):
        return False
    return all(
        _condition_holds(operator, key, expected, request.context)
        for operator, keys in statement.get("Condition", {}).items()
        for key, expected in keys.items()
    )


def denied_by(policy: Mapping[str, Any], request: Request) -> list[str]:
    """The Sids of the policy's Deny statements that refuse the request."""
    return [
        statement["Sid"]
        for statement in policy["Statement"]
        if statement["Effect"] == "Deny" and _statement_matches(statement, request)
    ]
