"""Where, and how, an account's media are written to S3: the value the S3 adapter takes.

A per-account S3 option is one row in wa_media/config/variables.py (the deployment's default),
one field here (with its key in the accounts file, which overrides the default) and one use in
wa_media/stores/s3.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from wa_media.config.encryption import NO_ENCRYPTION, Encryption

__all__ = ["ArchiveTarget"]


@dataclass(frozen=True)
class ArchiveTarget:
    """An archive location: its bucket, its key prefix and the encryption of every write."""

    bucket: str
    """Empty only in the deployment's default when S3_BUCKET is unset: every account of the
    accounts file then names its own."""
    prefix: str = ""
    encryption: Encryption = NO_ENCRYPTION

    def overridden(
        self,
        *,
        bucket: str | None = None,
        prefix: str | None = None,
        encryption: Encryption | None = None,
    ) -> ArchiveTarget:
        """This target with an account's own settings in place of those it gives (None: the
        default stays)."""
        return ArchiveTarget(
            bucket or self.bucket,
            self.prefix if prefix is None else prefix,
            self.encryption if encryption is None else encryption,
        )
