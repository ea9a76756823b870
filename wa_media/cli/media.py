"""`wa-media upload`, `url`, `download` and `delete`: the providers' media API."""

from __future__ import annotations

import json
from pathlib import Path

import click

from wa_media.cli.common import api_errors, phone_number_option, progress_bar, provider_for
from wa_media.core.errors import Unsupported
from wa_media.core.mediatypes import guess_mime_type
from wa_media.core.numbers import ascii_int
from wa_media.core.provider import MediaUrls, Provider, ResumableUploads
from wa_media.providers.registry import plugin_of

__all__ = ["delete", "download", "upload", "url"]


def _unsupported(provider: Provider, what: str) -> Unsupported:
    """The refusal of an operation the provider's API does not have (a capability its client
    does not implement)."""
    return Unsupported(f"the {plugin_of(provider.connection.kind).title} has {what}")


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--type", "mime_type", help="MIME type (default: from the file's extension).")
@click.option("--resumable", is_flag=True, help="Upload through a resumable session.")
@phone_number_option
def upload(file: Path, mime_type: str | None, resumable: bool, phone_number_id: str | None) -> None:
    """Upload FILE; print the media id (or, with --resumable, the file handle)."""
    mime_type = mime_type or guess_mime_type(file)
    if mime_type is None:
        raise click.UsageError(f"cannot tell the type of {file.name}: pass --type")
    provider, number = provider_for(phone_number_id)
    with api_errors(), progress_bar("uploading", file.stat().st_size) as progress:
        if resumable:
            if not isinstance(provider, ResumableUploads):
                raise _unsupported(provider, "no resumable uploads; use upload")
            result = provider.upload_resumable(file, mime_type, progress)
        else:
            result = provider.upload(file, mime_type, number, progress)
    click.echo(result)


@click.command()
@click.argument("media_id")
@phone_number_option
def url(media_id: str, phone_number_id: str | None) -> None:
    """Print the provider's look-up of MEDIA_ID (with its short-lived URL) as JSON."""
    provider, number = provider_for(phone_number_id)
    with api_errors():
        if not isinstance(provider, MediaUrls):
            raise _unsupported(provider, "no media URLs; download the media by id")
        click.echo(json.dumps(provider.media_url(media_id, number), indent=2))


@click.command()
@click.argument("media_id")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to write the bytes.",
)
@phone_number_option
def download(media_id: str, output: Path, phone_number_id: str | None) -> None:
    """Download MEDIA_ID to a file, verified against the provider's sha256 and size."""
    provider, number = provider_for(phone_number_id)
    partial = output.with_name(output.name + ".part")
    with api_errors():
        size = None
        if isinstance(provider, MediaUrls):
            # Its look-up tells the size for the progress bar; a provider without one, not.
            size = ascii_int(provider.media_url(media_id, number).get("file_size"))
        try:
            with partial.open("wb") as out, progress_bar("downloading", size) as progress:
                fetched = provider.download(media_id, number, out, progress)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    partial.replace(output)
    click.echo(f"{output} ({output.stat().st_size} bytes, sha256 {fetched.sha256 or '-'})")


@click.command()
@click.argument("media_id")
@phone_number_option
def delete(media_id: str, phone_number_id: str | None) -> None:
    """Delete MEDIA_ID from the provider."""
    provider, number = provider_for(phone_number_id)
    with api_errors():
        provider.delete(media_id, number)
    click.echo(f"deleted {media_id}")
