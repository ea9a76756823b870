"""The conformance corpus: the webhook shapes Meta's and 360dialog's pages document, one row
per variant, each with what the service owes it.

A row names the page its shape comes from, what it exercises, how its payloads are built (with
the builders of `devstack.webhooks`) and what is expected of them: the media jobs in
order (each ending as an archived object or as an edit record beside one), the 131052 warnings
owed and to whom, and why every other message is skipped. Every row's webhooks are answered 200.

Rows are built by a `Maker`, which supplies the media: made up for the parsing test
(tests/conformance/test_corpus.py), registered in the simulator for the end-to-end one
(tests/e2e/test_conformance.py), so that one table drives both.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from devstack import webhooks
from wa_media.core.jobs import Customer, Direction, MediaJob, Source
from webhook.payload import ParsedPayload, SkipReason, parse_cloud_payload

Json = dict[str, Any]
Route = Literal["signed", "d360"]
"""How a webhook reaches `web`: signed by Meta at `/webhook` for the Cloud API number, or at
the 360dialog number's `/webhook/<token>`."""

CLOUD_NUMBER = webhooks.DEFAULT_PHONE_NUMBER_ID
D360_NUMBER = "222000111"
NUMBERS: dict[Route, str] = {"signed": CLOUD_NUMBER, "d360": D360_NUMBER}

PHONE = webhooks.DEFAULT_SENDER
BSUID = webhooks.DEFAULT_USER_ID
PARENT = webhooks.DEFAULT_PARENT_USER_ID
USERNAME = "@sheena.nelson"
BUSINESS = webhooks.DEFAULT_DISPLAY_PHONE_NUMBER

BY_PHONE = Customer(phone=PHONE)
FULL = Customer(phone=PHONE, user_id=BSUID, parent_user_id=PARENT, username=USERNAME)
NO_PHONE = Customer(user_id=BSUID, parent_user_id=PARENT, username=USERNAME)

# The pages each row comes from.
_META = "https://developers.facebook.com/documentation/business-messaging/whatsapp"
BSUID_PAGE = f"{_META}/business-scoped-user-ids/"
EDIT_PAGE = f"{_META}/webhooks/reference/messages/edit"
ECHOES_PAGE = f"{_META}/webhooks/reference/smb_message_echoes/"
HISTORY_PAGE = f"{_META}/webhooks/reference/history/"
UNSUPPORTED_PAGE = f"{_META}/webhooks/reference/messages/unsupported"
STATUS_PAGE = f"{_META}/webhooks/reference/messages/status/"
OVERVIEW_PAGE = f"{_META}/webhooks/overview"
D360_PAGE = (
    "https://docs.360dialog.com/partner/waba-management/phone-number-and-hosting/"
    "whatsapp-coexistence/coexistence-webhooks"
)
D360_BSUID_PAGE = "https://docs.360dialog.com/docs/resources/phone-numbers/usernames-and-bsuid"
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
MEDIA_PAGES = {kind: f"{_META}/webhooks/reference/messages/{kind}" for kind in MEDIA_KINDS}

MIME_TYPES: dict[str, str] = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/mpeg",
    "voice": "audio/ogg; codecs=opus",
    "document": "application/pdf",
    "sticker": "image/webp",
}
DAY = 24 * 3600


@dataclass(frozen=True)
class Blob:
    """A media the provider holds: its id, type and digests, and the download URL a webhook
    from v24.0 on carries for it."""

    id: str
    kind: str
    mime_type: str
    sha256_hex: str
    url: str

    @property
    def sha256_b64(self) -> str:
        return base64.b64encode(bytes.fromhex(self.sha256_hex)).decode()


class Maker:
    """Supplies a row's media and names its wamids; `new_blob` says where media come from."""

    def __init__(self, now: int) -> None:
        self.now = now
        self.blobs: dict[str, Blob] = {}
        self._wamids: dict[str, str] = {}

    def new_blob(self, kind: str, mime_type: str) -> Blob:
        """A media made up on the spot (the end-to-end test registers it in the simulator)."""
        media_id = str(secrets.randbelow(10**15) + 10**15)
        digest = hashlib.sha256(secrets.token_bytes(32)).hexdigest()
        url = (
            "https://lookaside.fbsbx.com/whatsapp_business/attachments/"
            f"?mid={media_id}&ext={self.now + 300}&hash=ATtu{secrets.token_urlsafe(12)}"
        )
        return Blob(media_id, kind, mime_type, digest, url)

    def blob(self, kind: str) -> Blob:
        made = self.new_blob(kind, MIME_TYPES[kind])
        self.blobs[made.id] = made
        return made

    def wamid(self, name: str) -> str:
        """The wamid this row calls `name` (one per name: an edit names its original's)."""
        return self._wamids.setdefault(name, webhooks.new_wamid())

    def days_ago(self, days: int) -> int:
        return self.now - days * DAY

    def media(
        self,
        kind: str,
        *,
        url: bool = False,
        blob: Blob | None = None,
        wamid: str | None = None,
        timestamp: int | None = None,
        **extra: Any,
    ) -> Json:
        """A media message of one of the simulator's kinds (voice included), of a new media
        unless `blob` is given; `url` gives it the webhook's download URL."""
        blob = blob or self.blob(kind)
        return webhooks.media_message(
            kind,  # type: ignore[arg-type]
            blob.id,
            sha256_b64=blob.sha256_b64,
            mime_type=blob.mime_type,
            wamid=self.wamid(wamid) if wamid else None,
            timestamp=self.now if timestamp is None else timestamp,
            url=blob.url if url else None,
            **extra,
        )


@dataclass(frozen=True)
class Delivery:
    """One webhook request, as `web` receives it."""

    payload: Json
    route: Route = "signed"


def signed(payload: Json) -> Delivery:
    return Delivery(payload, "signed")


def d360(payload: Json) -> Delivery:
    return Delivery(payload, "d360")


Outcome = Literal["object", "edit_record"]


@dataclass(frozen=True)
class Job:
    """A media job a row's webhooks must yield, and what becomes of it."""

    kind: str
    customer: Customer | None = BY_PHONE
    direction: Direction = "inbound"
    source: Source = "messages"
    url: bool = False
    voice: bool | None = None
    animated: bool | None = None
    caption: str | None = None
    edit_of: str | None = None
    """The name (`Maker.wamid`) of the message an edit edits."""
    outcome: Outcome = "object"
    """A new object (and sidecar), or an edit record beside the object of its media id."""
    anomalies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reply:
    """A 131052 warning owed: by phone number, or by BSUID (Meta's `recipient`)."""

    to: str | None = None
    recipient: str | None = None


@dataclass(frozen=True)
class Variant:
    """One row of the corpus."""

    id: str
    page: str
    exercises: str
    build: Callable[[Maker], Sequence[Delivery]]
    jobs: tuple[Job, ...] = ()
    replies: tuple[Reply, ...] = ()
    skipped: tuple[SkipReason, ...] = ()

    @property
    def archived(self) -> int:
        """How many objects the row's webhooks leave in the bucket."""
        return sum(job.outcome == "object" for job in self.jobs)


# --------------------------------------------------------------------------- the builders


def _audio(kind: str) -> bool | None:
    return {"audio": False, "voice": True}.get(kind)


def _media_rows() -> list[Variant]:
    rows = []
    for kind in MEDIA_KINDS:
        for url in (False, True):
            extra: Json = {"caption": f"a {kind}"} if kind in ("image", "video") else {}
            if kind == "document":
                extra = {"filename": "invoice.pdf", "caption": "the invoice"}
            rows.append(
                Variant(
                    id=f"{kind}-{'with' if url else 'without'}-url",
                    page=MEDIA_PAGES[kind],
                    exercises=f"an inbound {kind} "
                    + ("carrying its download url (v24.0 on)" if url else "without a url"),
                    build=lambda m, kind=kind, url=url, extra=extra: [
                        signed(webhooks.envelope([m.media(kind, url=url, **extra)]))
                    ],
                    jobs=(
                        Job(
                            "audio" if kind == "audio" else kind,
                            url=url,
                            voice=_audio(kind),
                            animated=False if kind == "sticker" else None,
                            caption=extra.get("caption"),
                        ),
                    ),
                )
            )
    return rows


def _bsuid_image(m: Maker) -> list[Delivery]:
    message = webhooks.from_user(m.media("image"), BSUID, parent_user_id=PARENT)
    contact = webhooks.contact(wa_id=PHONE, user_id=BSUID, parent_user_id=PARENT, username=USERNAME)
    return [signed(webhooks.envelope([message], contacts=[contact]))]


def _username_image(m: Maker) -> list[Delivery]:
    message = webhooks.from_user(
        m.media("image", url=True), BSUID, parent_user_id=PARENT, phone=False
    )
    contact = webhooks.contact(user_id=BSUID, parent_user_id=PARENT, username=USERNAME)
    return [signed(webhooks.envelope([message], contacts=[contact]))]


def _username_too_big(m: Maker, route: Route = "signed") -> list[Delivery]:
    message = webhooks.from_user(
        webhooks.too_big_message(), BSUID, parent_user_id=PARENT, phone=False
    )
    contact = webhooks.contact(user_id=BSUID, parent_user_id=PARENT, username=USERNAME)
    payload = webhooks.envelope([message], contacts=[contact], phone_number_id=NUMBERS[route])
    return [Delivery(payload, route)]


def _username_media_d360(m: Maker) -> list[Delivery]:
    message = webhooks.from_user(
        m.media("document", url=True, filename="id-card.pdf"),
        BSUID,
        parent_user_id=PARENT,
        phone=False,
    )
    contact = webhooks.contact(user_id=BSUID, parent_user_id=PARENT, username=USERNAME)
    return [d360(webhooks.envelope([message], contacts=[contact], phone_number_id=D360_NUMBER))]


def _bsuid_too_big(m: Maker) -> list[Delivery]:
    message = webhooks.from_user(webhooks.too_big_message(), BSUID, parent_user_id=PARENT)
    return [signed(webhooks.envelope([message]))]


def _edit_new_media(m: Maker, *, phone: bool = True) -> list[Delivery]:
    def sent(message: Json) -> Json:
        return message if phone else webhooks.from_user(message, BSUID, phone=False)

    original = sent(m.media("image", wamid="original", caption="before"))
    new = m.media("image", url=True, caption="after")
    edit = sent(webhooks.edit_message(m.wamid("original"), new, timestamp=m.now))
    return [signed(webhooks.envelope([original])), signed(webhooks.envelope([edit]))]


def _edit_same_media(m: Maker) -> list[Delivery]:
    blob = m.blob("image")
    original = m.media("image", blob=blob, wamid="original", caption="before")
    recaptioned = m.media("image", blob=blob, caption="after")
    edit = webhooks.edit_message(m.wamid("original"), recaptioned, timestamp=m.now)
    return [signed(webhooks.envelope([original])), signed(webhooks.envelope([edit]))]


def _edit_text(m: Maker) -> list[Delivery]:
    edit = webhooks.edit_message(m.wamid("original"), webhooks.text_message("fixed a typo"))
    return [signed(webhooks.envelope([edit]))]


def _echoes(m: Maker) -> list[Delivery]:
    image = webhooks.echo_message(m.media("image", url=True, caption="your receipt"), to=PHONE)
    text = webhooks.echo_message(webhooks.text_message("thanks!"), to=PHONE)
    return [signed(webhooks.echoes_envelope([image, text]))]


def _echo_no_phone(m: Maker) -> list[Delivery]:
    echo = webhooks.echo_message(
        m.media("document", filename="quote.pdf"),
        to=None,
        to_user_id=BSUID,
        to_parent_user_id=PARENT,
    )
    return [signed(webhooks.echoes_envelope([echo]))]


def _echo_d360(m: Maker) -> list[Delivery]:
    echo = webhooks.echo_message(m.media("video"), to=PHONE)
    return [d360(webhooks.echoes_envelope([echo], phone_number_id=D360_NUMBER))]


def _history_with_ids(m: Maker) -> list[Delivery]:
    old = m.days_ago(10)
    theirs = webhooks.history_message(m.media("image", timestamp=old))
    ours = webhooks.history_message(
        m.media("document", timestamp=old + 60, filename="menu.pdf"), to=PHONE
    )
    thread = webhooks.history_thread(PHONE, [theirs, ours])
    chunk = webhooks.history_chunk([thread], phase=0, chunk_order=1, progress=100)
    return [signed(webhooks.history_envelope([chunk]))]


def _history_without_ids(m: Maker) -> list[Delivery]:
    old = m.days_ago(30)
    theirs = webhooks.history_message(
        webhooks.without_media_id(m.media("image", timestamp=old, caption="old photo"))
    )
    ours = webhooks.history_message(
        webhooks.without_media_id(m.media("voice", timestamp=old + 60)), to=PHONE
    )
    text = webhooks.history_message(webhooks.text_message("hello", timestamp=old - 60))
    thread = webhooks.history_thread(PHONE, [text, theirs, ours])
    chunk = webhooks.history_chunk([thread], phase=1, chunk_order=1, progress=40)
    return [signed(webhooks.history_envelope([chunk]))]


BULK = 1000


def _history_bulk(m: Maker) -> list[Delivery]:
    old = m.days_ago(3)
    messages = []
    for n in range(BULK):
        messages.append(webhooks.history_message(webhooks.text_message(f"#{n}", timestamp=old)))
        described = webhooks.media_message(
            "image",
            "0",
            sha256_b64=base64.b64encode(bytes(32)).decode(),
            mime_type="image/jpeg",
            timestamp=old,
        )
        messages.append(webhooks.history_message(webhooks.without_media_id(described)))
    messages.append(webhooks.history_message(m.media("sticker", timestamp=old)))
    chunk = webhooks.history_chunk([webhooks.history_thread(PHONE, messages)], chunk_order=7)
    return [signed(webhooks.history_envelope([chunk]))]


def _partner_history(m: Maker) -> list[Delivery]:
    old = m.days_ago(10)
    theirs = webhooks.history_message(m.media("image", timestamp=old, url=True))
    described = webhooks.history_message(
        webhooks.without_media_id(m.media("audio", timestamp=old)), to=PHONE
    )
    chunk = webhooks.history_chunk([webhooks.history_thread(PHONE, [theirs, described])])
    payload = webhooks.history_envelope([chunk], phone_number_id=D360_NUMBER)
    return [d360(webhooks.partner_envelope(payload))]


def _partner_state_sync(m: Maker) -> list[Delivery]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": BUSINESS, "phone_number_id": D360_NUMBER},
        "state_sync": [
            {
                "type": "contact",
                "contact": {"full_name": "Sheena Nelson", "phone_number": PHONE},
                "action": "add",
                "metadata": {"timestamp": str(m.now)},
            }
        ],
    }
    payload = webhooks.field_envelope("smb_app_state_sync", value)
    return [d360(webhooks.partner_envelope(payload))]


def _statuses(m: Maker) -> list[Delivery]:
    statuses = [
        webhooks.status_update(webhooks.new_wamid(), status="delivered"),
        webhooks.status_update(
            webhooks.new_wamid(), status="read", recipient=None, recipient_user_id=BSUID
        ),
        webhooks.status_update(
            webhooks.new_wamid(),
            status="failed",
            errors=[webhooks.error_object(131047, "Re-engagement message")],
        ),
    ]
    return [signed(webhooks.envelope([], statuses=statuses))]


def _unknown_fields(m: Maker) -> list[Delivery]:
    payload = webhooks.envelope([m.media("image", url=True)])
    return [signed(webhooks.with_unknown_fields(payload))]


def _unknown_field(m: Maker) -> list[Delivery]:
    payload = webhooks.envelope([m.media("video")])
    future = {"field": "a_future_field", "value": {"anything": [1, 2, 3]}}
    payload["entry"][0]["changes"].insert(0, future)
    return [signed(payload)]


VARIANTS: tuple[Variant, ...] = (
    *_media_rows(),
    Variant(
        id="voice-with-url",
        page=MEDIA_PAGES["audio"],
        exercises="a voice note: audio with voice: true",
        build=lambda m: [signed(webhooks.envelope([m.media("voice", url=True)]))],
        jobs=(Job("audio", url=True, voice=True),),
    ),
    Variant(
        id="sticker-animated",
        page=MEDIA_PAGES["sticker"],
        exercises="an animated sticker: animated: true",
        build=lambda m: [
            signed(webhooks.envelope([webhooks.set_media(m.media("sticker"), animated=True)]))
        ],
        jobs=(Job("sticker", animated=True),),
    ),
    Variant(
        id="bsuid-with-phone",
        page=BSUID_PAGE,
        exercises="a customer with a phone number, BSUID, parent BSUID and username",
        build=_bsuid_image,
        jobs=(Job("image", customer=FULL),),
    ),
    Variant(
        id="bsuid-username-without-phone",
        page=BSUID_PAGE,
        exercises="a username customer who shares no phone: from_user_id instead of from",
        build=_username_image,
        jobs=(Job("image", customer=NO_PHONE, url=True),),
    ),
    Variant(
        id="too-big-by-phone",
        page=UNSUPPORTED_PAGE,
        exercises="131052 (file too big) from a customer named by phone number",
        build=lambda m: [signed(webhooks.envelope([webhooks.too_big_message()]))],
        replies=(Reply(to=PHONE),),
    ),
    Variant(
        id="too-big-bsuid-with-phone",
        page=BSUID_PAGE,
        exercises="131052 from a customer with a phone and a BSUID: warned by phone",
        build=_bsuid_too_big,
        replies=(Reply(to=PHONE),),
    ),
    Variant(
        id="too-big-bsuid-without-phone",
        page=BSUID_PAGE,
        exercises="131052 from a username customer without phone: warned by BSUID (recipient)",
        build=_username_too_big,
        replies=(Reply(recipient=BSUID),),
    ),
    Variant(
        id="360dialog-bsuid-without-phone",
        page=D360_BSUID_PAGE,
        exercises="a document from a username customer without phone, on the 360dialog number",
        build=_username_media_d360,
        jobs=(Job("document", customer=NO_PHONE, url=True),),
    ),
    Variant(
        id="360dialog-too-big-bsuid-without-phone",
        page=D360_BSUID_PAGE,
        exercises="131052 from a username customer on the 360dialog number: warned by BSUID "
        "through 360dialog",
        build=lambda m: _username_too_big(m, "d360"),
        replies=(Reply(recipient=BSUID),),
    ),
    Variant(
        id="edit-new-media",
        page=EDIT_PAGE,
        exercises="an edit that replaces the image: a new object naming the original",
        build=_edit_new_media,
        jobs=(
            Job("image", caption="before"),
            Job("image", source="edit", url=True, caption="after", edit_of="original"),
        ),
    ),
    Variant(
        id="edit-new-media-without-phone",
        page=EDIT_PAGE,
        exercises="the same edit by a username customer without phone",
        build=lambda m: _edit_new_media(m, phone=False),
        jobs=(
            Job("image", customer=Customer(user_id=BSUID), caption="before"),
            Job(
                "image",
                customer=Customer(user_id=BSUID),
                source="edit",
                url=True,
                caption="after",
                edit_of="original",
            ),
        ),
    ),
    Variant(
        id="edit-same-media-new-caption",
        page=EDIT_PAGE,
        exercises="an edit that keeps the media and changes its caption: an edit record",
        build=_edit_same_media,
        jobs=(
            Job("image", caption="before"),
            Job(
                "image",
                source="edit",
                caption="after",
                edit_of="original",
                outcome="edit_record",
            ),
        ),
    ),
    Variant(
        id="edit-of-text",
        page=EDIT_PAGE,
        exercises="an edit of a text message: nothing to archive",
        build=_edit_text,
        skipped=("not_media",),
    ),
    Variant(
        id="echo-by-phone",
        page=ECHOES_PAGE,
        exercises="an image and a text the business sent from the app: the image, outbound",
        build=_echoes,
        jobs=(
            Job(
                "image",
                direction="outbound",
                source="smb_message_echoes",
                url=True,
                caption="your receipt",
            ),
        ),
        skipped=("not_media",),
    ),
    Variant(
        id="echo-to-bsuid-without-phone",
        page=ECHOES_PAGE,
        exercises="a document sent to a customer known by BSUID only (to_user_id)",
        build=_echo_no_phone,
        jobs=(
            Job(
                "document",
                customer=Customer(user_id=BSUID, parent_user_id=PARENT),
                direction="outbound",
                source="smb_message_echoes",
            ),
        ),
    ),
    Variant(
        id="echo-360dialog",
        page=D360_PAGE,
        exercises="an echo to the 360dialog number's webhook URL, in Meta's envelope",
        build=_echo_d360,
        jobs=(Job("video", direction="outbound", source="smb_message_echoes"),),
    ),
    Variant(
        id="history-with-media-ids-10-days-old",
        page=HISTORY_PAGE,
        exercises="history media of both directions sent 10 days before the webhook: the "
        "7 days count from the webhook's arrival",
        build=_history_with_ids,
        jobs=(
            Job("image", source="history"),
            Job("document", direction="outbound", source="history"),
        ),
    ),
    Variant(
        id="history-without-media-ids",
        page=HISTORY_PAGE,
        exercises="the first history webhooks, which describe media without their ids",
        build=_history_without_ids,
        skipped=("not_media", "no_media_id", "no_media_id"),
    ),
    Variant(
        id="history-thousands-of-messages",
        page=HISTORY_PAGE,
        exercises=f"one history webhook of {2 * BULK + 1} messages, one media with its id",
        build=_history_bulk,
        jobs=(Job("sticker", source="history", animated=False),),
        skipped=("not_media", "no_media_id") * BULK,
    ),
    Variant(
        id="history-360dialog-partner-envelope",
        page=D360_PAGE,
        exercises='360dialog\'s {"event": "history", "data": ...}: a 10-day-old image with '
        "its id, an audio without",
        build=_partner_history,
        jobs=(Job("image", source="history", url=True),),
        skipped=("no_media_id",),
    ),
    Variant(
        id="360dialog-partner-other-event",
        page=D360_PAGE,
        exercises="a partner event of another field (smb_app_state_sync)",
        build=_partner_state_sync,
        skipped=("other_field",),
    ),
    Variant(
        id="unsupported-131051",
        page=UNSUPPORTED_PAGE,
        exercises="a type Cloud API does not support, with its 131051 error",
        build=lambda m: [signed(webhooks.envelope([webhooks.unsupported_message()]))],
        skipped=("unsupported",),
    ),
    Variant(
        id="statuses",
        page=STATUS_PAGE,
        exercises="receipts of sent messages: by phone, by BSUID only, failed with an error",
        build=_statuses,
        skipped=("status", "status", "status"),
    ),
    Variant(
        id="unknown-future-type",
        page=OVERVIEW_PAGE,
        exercises="a message type no release knows yet",
        build=lambda m: [signed(webhooks.envelope([webhooks.future_message("hologram")]))],
        skipped=("unknown_type",),
    ),
    Variant(
        id="unknown-fields-everywhere",
        page=OVERVIEW_PAGE,
        exercises="an image whose every object carries a field no release knows",
        build=_unknown_fields,
        jobs=(Job("image", url=True),),
    ),
    Variant(
        id="unknown-webhook-field",
        page=OVERVIEW_PAGE,
        exercises="a change of a field no release knows beside a messages change",
        build=_unknown_field,
        jobs=(Job("video"),),
        skipped=("other_field",),
    ),
)


# ------------------------------------------------------------------------------ checking


def parse(delivery: Delivery, *, received_at: int) -> ParsedPayload:
    """What `web` makes of a delivery on its route (each route accepts its own number)."""
    number = NUMBERS[delivery.route]
    return parse_cloud_payload(
        delivery.payload, accepts=lambda n: n == number, received_at=received_at
    )


@dataclass
class Parsed:
    """A row's deliveries parsed, in order; `media[i]` belongs to `deliveries[at[i]]`."""

    media: list[MediaJob] = field(default_factory=list)
    at: list[int] = field(default_factory=list)
    replies: list[tuple[str | None, str | None]] = field(default_factory=list)
    skipped: list[SkipReason] = field(default_factory=list)
    listed: list[tuple[str | None, SkipReason]] = field(default_factory=list)


def parse_all(deliveries: Sequence[Delivery], *, received_at: int) -> Parsed:
    out = Parsed()
    for index, delivery in enumerate(deliveries):
        parsed = parse(delivery, received_at=received_at)
        out.media += parsed.media
        out.at += [index] * len(parsed.media)
        number = NUMBERS[delivery.route]
        for reply in parsed.replies:
            assert (reply.phone_number_id, reply.error_code) == (number, 131052)
            out.replies.append((reply.to, reply.recipient))
        out.skipped += [skip.reason for skip in parsed.skipped]
        out.listed += [(skip.wamid, skip.reason) for skip in parsed.skipped if skip.listed]
        assert not [n for n in parsed.notices if n.code == 131052 and n.event == "message_error"]
    return out


def check_parsed(variant: Variant, maker: Maker, deliveries: Sequence[Delivery]) -> Parsed:
    """Assert that the deliveries parse to exactly the row's jobs, replies and skips."""
    parsed = parse_all(deliveries, received_at=maker.now)
    assert len(parsed.media) == len(variant.jobs), [j.media_id for j in parsed.media]
    for index, (job, expected) in enumerate(zip(parsed.media, variant.jobs, strict=True)):
        route = deliveries[parsed.at[index]].route
        blob = maker.blobs[job.media_id]
        assert job.phone_number_id == NUMBERS[route]
        assert job.waba_id == webhooks.DEFAULT_WABA_ID
        assert (job.type, job.mime_type, job.sha256) == (
            expected.kind,
            blob.mime_type,
            blob.sha256_hex,
        )
        assert job.customer == expected.customer
        assert (job.direction, job.source) == (expected.direction, expected.source)
        assert job.url == (blob.url if expected.url else None)
        assert (job.voice, job.animated) == (expected.voice, expected.animated)
        assert job.caption == expected.caption
        edited = maker.wamid(expected.edit_of) if expected.edit_of else None
        assert job.original_message_id == edited
        assert job.anomalies == expected.anomalies
        assert job.received_at == maker.now
        # `from`: the customer's phone (None without one) inbound, the business's outbound.
        customer_phone = expected.customer.phone if expected.customer else None
        assert job.sender == (customer_phone if job.direction == "inbound" else BUSINESS)
    assert parsed.replies == [(r.to, r.recipient) for r in variant.replies]
    assert parsed.skipped == list(variant.skipped)
    return parsed
