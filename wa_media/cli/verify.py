"""`wa-media verify`: re-read archived objects and re-hash them against their sidecars."""

from __future__ import annotations

import sys

import click

from wa_media.cli.common import (
    EXIT_FAILED,
    EXIT_UNAVAILABLE,
    archive_locations,
    s3_endpoint_url,
)
from wa_media.core.errors import StorageError
from wa_media.stores.audit import Finding, audit_object, sidecar_keys
from wa_media.stores.s3 import make_s3_client

__all__ = ["verify"]


@click.command()
@click.option("--bucket", help="Verify this bucket only (default: every account's bucket).")
@click.option("--prefix", help="Verify under this prefix only (default: each account's).")
@click.option("--limit", type=int, help="Stop after this many objects.")
def verify(bucket: str | None, prefix: str | None, limit: int | None) -> None:
    """Re-read archived objects, re-hash them and compare with their sidecars.

    Counts archived objects (each with its sidecar, found by listing the sidecars); names
    each object that is missing or differs. Exits 1 when any does, 3 when S3 cannot be read.
    """
    locations = [(bucket, prefix or "")] if bucket else archive_locations()
    if prefix is not None and not bucket:
        locations = [(b, prefix) for b, _ in locations]
    s3 = make_s3_client(s3_endpoint_url())
    findings: list[Finding] = []
    checked = 0
    try:
        keys = sorted(
            {(b, k) for b, p in dict.fromkeys(locations) for k in sidecar_keys(s3, b, p)}
        )[:limit]
        with click.progressbar(
            keys, label="verifying objects", file=sys.stderr, show_pos=True
        ) as bar:
            for bucket_name, key in bar:
                finding = audit_object(s3, bucket_name, key)
                checked += 1
                if finding is not None:
                    findings.append(finding)
    except StorageError as exc:
        click.echo(f"error: {exc.reason} after {checked} objects", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    for finding in findings:
        click.echo(
            f"MISMATCH s3://{finding.bucket}/{finding.object_key}: {finding.problem} "
            f"(sidecar {finding.sidecar_key})"
        )
    click.echo(
        f"{checked} objects checked against their sidecars: {checked - len(findings)} verified, "
        f"{len(findings)} mismatched"
    )
    if findings:
        sys.exit(EXIT_FAILED)
