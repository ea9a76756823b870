"""`wa-media find`: a media by its wamid or media id, through the index in the bucket."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime

import click

from wa_media.cli.common import (
    EXIT_FAILED,
    EXIT_UNAVAILABLE,
    ConfigurationError,
    archive_locations,
    s3_endpoint_url,
)
from wa_media.config import variables as v
from wa_media.core.errors import ConfigError, StorageError
from wa_media.stores.index import find as find_media
from wa_media.stores.s3 import make_s3_client, presign_get

__all__ = ["find"]


def _lifetime() -> int:
    try:
        return v.PRESIGNED_URL_SECONDS.read(os.environ)
    except ConfigError as exc:
        raise ConfigurationError(str(exc)) from None


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@click.command()
@click.argument("ref", metavar="WAMID_OR_MEDIA_ID")
@click.option("--presign", is_flag=True, help="Print a presigned GET URL of the object too.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def find(ref: str, presign: bool, as_json: bool) -> None:
    """Find an archived media by its wamid or media id, in every account's bucket and prefix.

    Prints its object and its sidecar; with --presign, a URL that downloads the object for
    PRESIGNED_URL_SECONDS (signed with this command's credentials: temporary ones end it
    sooner). Exits 1 when nothing is found, 3 when S3 cannot be read. Media archived before the
    index existed are found once `wa-media reindex` ran.
    """
    lifetime = _lifetime() if presign else 0
    s3 = make_s3_client(s3_endpoint_url())
    try:
        found = find_media(s3, archive_locations(), ref)
        url = None
        if found is not None and presign:
            url = presign_get(s3, found.entry.bucket, found.entry.key, lifetime)
    except StorageError as exc:
        click.echo(f"error: {exc.reason}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    if found is None:
        click.echo(f"not found: {ref}", err=True)
        sys.exit(EXIT_FAILED)
    entry = found.entry
    expires_at = _utc(time.time() + lifetime) if url else None
    if as_json:
        document = {"entry": entry.document(), "sidecar": found.sidecar, "url": url}
        if url:
            document["expires_at"] = expires_at
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    click.echo(f"object   s3://{entry.bucket}/{entry.key}")
    click.echo(
        f"sidecar  s3://{entry.bucket}/{entry.sidecar_key}"
        + ("" if found.sidecar else " (missing)")
    )
    click.echo(f"account  {entry.phone_number_id}")
    click.echo(f"media id {entry.media_id}")
    click.echo(f"wamid    {entry.wamid}" + (" (an edit)" if entry.kind == "edit" else ""))
    if found.sidecar:
        sidecar = found.sidecar
        kind, mime, size = sidecar.get("type"), sidecar.get("mime_type"), sidecar.get("size")
        click.echo(f"type     {kind} {mime}, {size} bytes")
        click.echo(f"sha256   {sidecar.get('sha256')}")
    if url:
        click.echo(f"url      {url}")
        click.echo(f"expires  {expires_at}")
