"""Server-side encryption of what the worker writes to S3: the setting and its request arguments.

S3 encrypts with keys it holds (SSE-S3, `AES256`) or with a KMS key (SSE-KMS, `aws:kms`); the
worker only names which, so no key material ever passes through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, TypedDict

__all__ = [
    "NO_ENCRYPTION",
    "SSE_ALGORITHMS",
    "Encryption",
    "SseAlgorithm",
    "SseArgs",
    "checked_encryption",
    "kms_key_id",
    "sse_algorithm",
]

SseAlgorithm = Literal["AES256", "aws:kms"]
SSE_ALGORITHMS: tuple[SseAlgorithm, ...] = ("AES256", "aws:kms")

# A key id, key ARN, alias name or alias ARN on AWS; S3-compatible stores (MinIO's KES, Ceph)
# take names of their own, so anything printable without spaces, as long as KMS allows.
_KMS_KEY_ID = re.compile(r"[\x21-\x7e]{1,2048}")


class SseArgs(TypedDict, total=False):
    """The encryption arguments of a boto3 write, none of them when S3 is not asked to encrypt."""

    ServerSideEncryption: SseAlgorithm
    SSEKMSKeyId: str


@dataclass(frozen=True)
class Encryption:
    """How S3 is asked to encrypt each write: not at all (the bucket's default), or by name."""

    algorithm: SseAlgorithm | None = None
    kms_key_id: str | None = None

    def request_args(self) -> SseArgs:
        """The arguments of PutObject and CreateMultipartUpload that ask for this encryption."""
        if self.algorithm is None:
            return {}
        args: SseArgs = {"ServerSideEncryption": self.algorithm}
        if self.kms_key_id is not None:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args


NO_ENCRYPTION = Encryption()


def sse_algorithm(value: str) -> SseAlgorithm:
    """`AES256` or `aws:kms`, spelled as S3 spells them."""
    for algorithm in SSE_ALGORITHMS:
        if value == algorithm:
            return algorithm
    raise ValueError(f"expected {' or '.join(SSE_ALGORITHMS)}")


def kms_key_id(value: str) -> str:
    """A KMS key id, key ARN or alias: printable characters without spaces."""
    if not _KMS_KEY_ID.fullmatch(value):
        # The value is not repeated: a mistyped setting may hold anything, a secret included.
        raise ValueError("expected a KMS key id, key ARN or alias, without spaces")
    return value


def checked_encryption(
    algorithm: SseAlgorithm | None,
    key_id: str | None,
    *,
    algorithm_name: str,
    key_name: str,
) -> Encryption:
    """The encryption asked for; ValueError, naming the setting, when the two do not fit."""
    if algorithm == "aws:kms" and key_id is None:
        raise ValueError(f"{key_name} is required when {algorithm_name} is aws:kms")
    if key_id is not None and algorithm != "aws:kms":
        raise ValueError(f"{key_name} is set, but {algorithm_name} is not aws:kms")
    return Encryption(algorithm, key_id)
