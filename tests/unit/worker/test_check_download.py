import hashlib

import pytest

from wa_media.core.errors import IntegrityError, PermanentError
from wa_media.core.jobs import MediaJob
from wa_media.core.provider import Fetched
from wa_media.providers.graphflow import MediaInfo
from wa_media.providers.transfer import Tally
from worker.archive import check_download

DATA = b"customer photo"
HEX = hashlib.sha256(DATA).hexdigest()
OTHER = hashlib.sha256(b"other").hexdigest()


def info(sha256: str | None = HEX, size: int | None = len(DATA)) -> Fetched:
    return Fetched(sha256=sha256, size=size, lookup={}, chunks=iter(()))


def job(sha256: str | None = HEX) -> MediaJob:
    return MediaJob(
        phone_number_id="p", waba_id=None, wamid="w", sender="s", timestamp=0,
        type="image", media_id="1", mime_type="image/jpeg", sha256=sha256,
    )  # fmt: skip


def test_matching_download_passes() -> None:
    check_download(HEX, len(DATA), info(), job())
    check_download(HEX, len(DATA), info(), job(sha256=None))
    # On-Premises announces no look-up: the webhook's digest alone must match.
    check_download(HEX, len(DATA), info(sha256=None, size=None), job())


@pytest.mark.parametrize(
    ("look_up", "webhook", "size", "reason"),
    [
        (info(sha256=OTHER), job(), len(DATA), "look-up"),
        (info(), job(sha256=OTHER), len(DATA), "webhook"),
        (info(), job(), len(DATA) - 1, "bytes"),
        (info(size=len(DATA) + 1), job(), len(DATA), "bytes"),
        (info(sha256=None, size=None), job(sha256=OTHER), len(DATA), "webhook"),
    ],
)
def test_any_disagreement_is_an_integrity_error(
    look_up: Fetched, webhook: MediaJob, size: int, reason: str
) -> None:
    with pytest.raises(IntegrityError, match=reason):
        check_download(HEX, size, look_up, webhook)


def test_lookup_accepts_string_file_size_and_base64_digest() -> None:
    import base64

    parsed = MediaInfo.model_validate(
        {
            "messaging_product": "whatsapp",
            "url": "https://lookaside.fbsbx.com/x",
            "mime_type": "image/jpeg",
            "sha256": base64.b64encode(hashlib.sha256(DATA).digest()).decode(),
            "file_size": "14",
            "id": "1",
        }
    )
    assert parsed.file_size == 14
    assert parsed.sha256 == HEX
    assert parsed.without_url() == {
        "messaging_product": "whatsapp",
        "mime_type": "image/jpeg",
        "sha256": HEX,
        "file_size": 14,
        "id": "1",
    }


def test_a_stream_without_announced_size_stops_at_the_limit() -> None:
    tally = Tally(limit=10)
    passed: list[bytes] = []
    with pytest.raises(PermanentError, match="MAX_MEDIA_BYTES=10"):
        passed.extend(tally.through(iter([b"x" * 6, b"x" * 6, b"x" * 6])))
    assert passed == [b"x" * 6]


def test_a_stream_longer_than_announced_stops_right_there() -> None:
    tally = Tally(limit=100)
    with pytest.raises(IntegrityError, match="passed the 8 bytes announced"):
        list(tally.through(iter([b"x" * 6, b"x" * 6, b"x" * 6]), announced=8))
    assert tally.size == 12
