"""The newcomer's demo: the whole stack on one machine, one webhook of every media type, a
file from a customer known only by their username, a file the business sent from the WhatsApp
Business app, and proof that each reached the archive byte for byte; beside it, the business's
other systems on loopback: a webhook consumer the relay forwards every webhook to (checked byte
for byte, with Meta's signature), and an endpoint of archive events (each `media.archived`
verified with the standardwebhooks library, its presigned URL downloading the verified bytes).

Run it with `python -m devstack.demo` (or `make demo`). It starts a private `redis-server`, a
private SeaweedFS, the Graph API simulator, one `web` and one `worker`, and writes only to what
it created: with `--redis-url` it uses that Redis database instead, which must be empty, and
empties it again after a successful run. Everything it starts is stopped when it ends, also on
Ctrl-C. It exits 0 only if every check passed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from redis import Redis
from redis.exceptions import RedisError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from devstack import webhooks
from devstack.downstream import Downstream, Received
from devstack.processes import Service, free_port, stop_signals, wait_for
from devstack.redis_server import RedisServer, redis_answers
from devstack.seaweed import SeaweedFS
from devstack.stack import StackEnv, start_web, start_worker
from graphsim import MediaRecord, Simulator, SimulatorClient, SimulatorError
from wa_media.config.env import redis_url
from wa_media.config.settings import DEFAULT_TOO_BIG_REPLY
from wa_media.core.index import media_id_entry_key, wamid_entry_key
from wa_media.core.layout import build_key, sidecar_key
from wa_media.stores.records import MediaRef

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["main"]

BUCKET = "wa-archive"

PHONE_NUMBER_ID = webhooks.DEFAULT_PHONE_NUMBER_ID
WABA_ID = webhooks.DEFAULT_WABA_ID
SENDER = webhooks.DEFAULT_SENDER
# Customers who adopted a WhatsApp username share no phone number: Meta names them by BSUID.
USERNAME_CUSTOMER = "US.13491208655302741918"
USERNAME = "ana.delivers"
ECHO_CUSTOMER = "447700900555"
TOO_BIG_SENDER = "GB.70011122233344455566"

ARCHIVE_TIMEOUT = 120.0
REPLY_TIMEOUT = 60.0
RELAY_TIMEOUT = 60.0
HTTP_TIMEOUT = 10.0
LOG_TAIL_LINES = 40
LOG_LINE_CHARS = 300

SIDECAR_FIELDS = frozenset(
    {
        "schema", "media_id", "phone_number_id", "waba_id", "wamid", "from", "timestamp",
        "type", "caption", "filename", "voice", "animated", "mime_type", "sha256", "size",
        "bucket", "key", "archived_at", "lookup", "direction", "source", "customer",
        "url_source", "original_message_id", "received_at", "anomalies",
    }
)  # fmt: skip


class DemoFailure(Exception):
    """A check failed or a part of the stack did not come up; the message says which."""


@dataclass(frozen=True)
class Sample:
    """One media the demo customer sends: its kind, type, generated size and what it carries."""

    kind: webhooks.MediaKind
    mime_type: str
    size: int
    seed: int
    caption: str | None = None
    filename: str | None = None
    origin: str = "phone"
    """`phone`: a customer with a phone number; `username`: one known only by BSUID and
    username; `echo`: the business sent it from the WhatsApp Business app."""


# From a few KB to a few MB; the video is past one 8 MiB part, so it travels as a multipart upload.
SAMPLES: tuple[Sample, ...] = (
    Sample("image", "image/jpeg", 350_000, 1, caption="Delivery photo, parcel 4471"),
    Sample("video", "video/mp4", 9_500_000, 2, caption="Unboxing"),
    Sample("audio", "audio/mpeg", 1_200_000, 3),
    Sample("voice", "audio/ogg; codecs=opus", 18_000, 4),
    Sample(
        "document", "application/pdf", 2_500_000, 5,
        caption="Q3 numbers", filename="Quarterly report.pdf",
    ),
    Sample("sticker", "image/webp", 24_000, 6),
    Sample("image", "image/png", 120_000, 7, caption="My receipt", origin="username"),
    Sample(
        "document", "application/pdf", 640_000, 8,
        filename="Invoice 2026-118.pdf", origin="echo",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Sent:
    """A media registered in the simulator and sent in a webhook, with the key it must get."""

    sample: Sample
    record: MediaRecord
    message: dict[str, Any]
    key: str

    @property
    def wire_type(self) -> str:
        """The message `type`: a voice note is an `audio` message."""
        return str(self.message["type"])


@dataclass
class Verified:
    """The outcome of checking one archived object."""

    sent: Sent
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Posted:
    """A webhook as it was sent to `web`: what the relay destination must receive."""

    body: bytes
    signature: str


@dataclass
class Consumers:
    """The business's other systems: a webhook consumer behind the relay, and an endpoint of
    archive events."""

    relay: Downstream
    events: Downstream
    events_secret: str


@dataclass
class Stack:
    """What the demo started: processes to watch, and the logs to show when something fails."""

    workdir: Path
    exits: contextlib.ExitStack
    watched: list[Service] = field(default_factory=list)
    logs: dict[str, Path] = field(default_factory=dict)
    redis_url: str | None = None
    """The database given with --redis-url; None: a private redis-server."""
    wrote_to_redis_url: bool = False

    def log_tails(self) -> str:
        """The last lines of the web and worker logs."""
        parts = []
        for name, path in self.logs.items():
            try:
                lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            except FileNotFoundError:
                lines = ["(no log written)"]
            parts.append(f"--- {name}: {path} (last lines)")
            parts.extend(
                line if len(line) <= LOG_LINE_CHARS else line[:LOG_LINE_CHARS] + " [...]"
                for line in lines
            )
        return "\n".join(parts)


def say(text: str) -> None:
    """One progress line."""
    print(text, flush=True)


def shown(url: str) -> str:
    """A Redis URL without its password, to print."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def choose_redis(stack: Stack) -> str:
    """A private redis-server, or the empty database given with --redis-url."""
    if stack.redis_url is None:
        say("Redis: starting a private redis-server")
        server = RedisServer(stack.workdir / "redis", persistent=False)
        stack.exits.callback(server.stop)
        server.start()
        if server.service is not None:
            stack.watched.append(server.service)
        return server.url
    url = stack.redis_url
    if not redis_answers(url):
        raise DemoFailure(f"no Redis answers at {shown(url)}")
    with contextlib.closing(Redis.from_url(url, socket_connect_timeout=2)) as client:
        keys = int(client.dbsize())
    if keys:
        raise DemoFailure(
            f"the database {shown(url)} holds {keys} keys: the demo writes only to a database "
            "it may empty afterwards; give an empty one, or no --redis-url for a private Redis"
        )
    say(f"Redis: using the empty database {shown(url)}")
    stack.wrote_to_redis_url = True
    return url


def s3_client(endpoint_url: str, env: dict[str, str]) -> S3Client:
    """A boto3 client for the private SeaweedFS, with the credentials the worker gets."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
        config=Config(
            connect_timeout=5,
            read_timeout=30,
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def register_media(client: SimulatorClient, timestamp: int) -> list[Sent]:
    """Store every sample in the simulator and build its webhook message."""
    sent = []
    for sample in SAMPLES:
        record = client.add_generated_media(
            sample.size, sample.seed, sample.mime_type, phone_number_id=PHONE_NUMBER_ID
        )
        message = webhooks.media_message(
            sample.kind,
            record.id,
            sha256_b64=record.sha256_b64,
            mime_type=record.mime_type,
            sender=SENDER,
            wamid=webhooks.new_wamid(),
            timestamp=timestamp,
            caption=sample.caption,
            filename=sample.filename,
        )
        if sample.origin == "username":
            message = webhooks.from_user(message, USERNAME_CUSTOMER, phone=False)
        elif sample.origin == "echo":
            message = webhooks.echo_message(message, to=ECHO_CUSTOMER)
        key = build_key("", PHONE_NUMBER_ID, timestamp, record.id, record.mime_type)
        sent.append(Sent(sample, record, message, key))
    return sent


def messages_payload(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A `messages` webhook; a customer without a phone number has a contact with a username."""
    contacts = [
        webhooks.contact(wa_id=sender, name="Customer")
        for sender in dict.fromkeys(m["from"] for m in messages if "from" in m)
    ]
    if any("from" not in message for message in messages):
        contacts.append(webhooks.contact(user_id=USERNAME_CUSTOMER, username=USERNAME, name="Ana"))
    return webhooks.envelope(
        messages, phone_number_id=PHONE_NUMBER_ID, waba_id=WABA_ID, contacts=contacts
    )


def post_webhook(web_url: str, payload: dict[str, Any], secret: str) -> Posted:
    """Sign a Cloud API payload and POST it as Meta would; 200 expected."""
    messages = payload["entry"][0]["changes"][0]["value"]
    count = len(messages.get("messages", messages.get("message_echoes", [])))
    body = webhooks.encode(payload)
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": webhooks.sign(body, secret),
    }
    try:
        answer = requests.post(
            f"{web_url}/webhook", data=body, headers=headers, timeout=HTTP_TIMEOUT
        )
    except requests.RequestException as exc:
        raise DemoFailure(f"POST /webhook failed: {exc}") from exc
    if answer.status_code != 200:
        raise DemoFailure(f"POST /webhook answered {answer.status_code}: {answer.text[:200]}")
    field_name = payload["entry"][0]["changes"][0]["field"]
    say(f"POST /webhook, {field_name}, {count} message(s): {answer.status_code} {answer.text}")
    return Posted(body, headers["X-Hub-Signature-256"])


def object_exists(s3: S3Client, key: str) -> bool:
    """True when `key` is in the bucket."""
    try:
        s3.head_object(Bucket=BUCKET, Key=key)
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return False
        raise DemoFailure(f"HEAD {key} failed: {exc}") from exc
    except BotoCoreError as exc:
        raise DemoFailure(f"HEAD {key} failed: {exc}") from exc
    return True


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def media_state(redis: Redis, media_id: str) -> str:
    """`state` and `last_error` of the service's record of a media, for messages."""
    try:
        record = redis.hgetall(MediaRef(PHONE_NUMBER_ID, media_id).key)
    except (RedisError, OSError) as exc:
        return f"(Redis unreadable: {type(exc).__name__})"
    fields = {_text(name): _text(value) for name, value in record.items()}
    if not fields:
        return "no record in Redis"
    state = f"state={fields.get('state', '?')}, attempts={fields.get('attempts', '0')}"
    if fields.get("last_error"):
        state += f", last_error={fields['last_error']!r}"
    return state


def check_alive(stack: Stack) -> None:
    """Fail at once when a process the demo started has exited."""
    for service in stack.watched:
        if not service.alive():
            raise DemoFailure(f"{service.name} exited unexpectedly")


def wait_for_archive(stack: Stack, s3: S3Client, redis: Redis, sent: list[Sent]) -> None:
    """Wait until every sidecar exists; fail early on a media recorded as failed."""
    pending = {item.key: item for item in sent}

    def all_archived() -> bool:
        check_alive(stack)
        for key, item in list(pending.items()):
            if object_exists(s3, sidecar_key(key)):
                del pending[key]
                say(f"  archived: {key}")
                continue
            state = media_state(redis, item.record.id)
            if state.startswith("state=failed"):
                raise DemoFailure(f"the worker gave up on the {item.sample.kind}: {state}")
        return not pending

    try:
        wait_for(all_archived, timeout=ARCHIVE_TIMEOUT, interval=0.2, what="every sidecar")
    except TimeoutError as exc:
        missing = "\n".join(
            f"  {item.sample.kind} {key}: {media_state(redis, item.record.id)}"
            for key, item in pending.items()
        )
        raise DemoFailure(f"{exc}; still missing:\n{missing}") from exc


def _get(s3: S3Client, key: str) -> tuple[bytes, dict[str, Any]]:
    try:
        answer = s3.get_object(Bucket=BUCKET, Key=key)
        body = answer["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise DemoFailure(f"GET {key} failed: {exc}") from exc
    return body, dict(answer)


def check_object(s3: S3Client, item: Sent) -> Verified:
    """Download one object and its sidecar; compare them with what the simulator holds."""
    result = Verified(item)
    problems = result.problems
    record, message = item.record, item.message
    media = message[item.wire_type]

    body, head = _get(s3, item.key)
    digest = hashlib.sha256(body).hexdigest()
    if not hmac.compare_digest(digest, record.sha256):
        problems.append(f"sha256 {digest[:12]} differs from the simulator's {record.sha256[:12]}")
    if len(body) != record.file_size:
        problems.append(f"{len(body)} bytes, the simulator holds {record.file_size}")
    if head.get("ContentType") != record.mime_type:
        problems.append(f"ContentType {head.get('ContentType')!r}, expected {record.mime_type!r}")
    direction = "outbound" if item.sample.origin == "echo" else "inbound"
    expected_metadata = {
        "sha256": record.sha256,
        "wamid": message["id"],
        "from": message.get("from"),
        "media-type": item.wire_type,
        "direction": direction,
    }
    if item.sample.origin == "username":
        expected_metadata["user-id"] = USERNAME_CUSTOMER
    metadata = head.get("Metadata", {})
    for name, expected in expected_metadata.items():
        if metadata.get(name) != expected:
            problems.append(f"metadata {name}={metadata.get(name)!r}, expected {expected!r}")
    disposition = str(head.get("ContentDisposition") or "")
    if item.sample.kind == "document":
        wanted = f'filename="{item.sample.filename}"'
        if not disposition.startswith("attachment") or wanted not in disposition:
            problems.append(f"Content-Disposition {disposition!r}, expected attachment; {wanted}")
    elif disposition:
        problems.append(f"unexpected Content-Disposition {disposition!r}")

    raw, _ = _get(s3, sidecar_key(item.key))
    try:
        document = json.loads(raw.decode("utf-8"))
    except ValueError:
        problems.append("the sidecar is not UTF-8 JSON")
        return result
    if not isinstance(document, dict):
        problems.append("the sidecar is not a JSON object")
        return result
    if missing := sorted(SIDECAR_FIELDS - document.keys()):
        problems.append(f"sidecar lacks {', '.join(missing)}")
    expected_sidecar: dict[str, Any] = {
        "schema": 2,
        "media_id": record.id,
        "phone_number_id": PHONE_NUMBER_ID,
        "waba_id": WABA_ID,
        "wamid": message["id"],
        "from": message.get("from"),
        "type": item.wire_type,
        "caption": media.get("caption"),
        "filename": media.get("filename"),
        "voice": media.get("voice"),
        "animated": media.get("animated"),
        "mime_type": record.mime_type,
        "sha256": digest,
        "size": len(body),
        "bucket": BUCKET,
        "key": item.key,
        "direction": direction,
        "source": "smb_message_echoes" if item.sample.origin == "echo" else "messages",
        "customer": expected_customer(item.sample),
        "anomalies": [],
    }
    for name, expected in expected_sidecar.items():
        if name in document and document[name] != expected:
            problems.append(f"sidecar {name}={document[name]!r}, expected {expected!r}")
    if str(document.get("timestamp")) != message["timestamp"]:
        problems.append(f"sidecar timestamp {document.get('timestamp')!r}")
    try:
        datetime.fromisoformat(str(document.get("archived_at")))
    except ValueError:
        problems.append(f"sidecar archived_at {document.get('archived_at')!r} is no RFC 3339 time")
    lookup = document.get("lookup")
    if not isinstance(lookup, dict) or "url" in lookup:
        problems.append("sidecar lookup is missing or still holds the download url")
    elif lookup.get("id") != record.id:
        problems.append(f"sidecar lookup id {lookup.get('id')!r}")
    return result


def expected_customer(sample: Sample) -> dict[str, str | None]:
    """Who the sidecar must name as the customer of a sample."""
    customer: dict[str, str | None] = {
        "phone": SENDER,
        "user_id": None,
        "parent_user_id": None,
        "username": None,
    }
    if sample.origin == "username":
        customer.update(phone=None, user_id=USERNAME_CUSTOMER, username=USERNAME)
    elif sample.origin == "echo":
        customer["phone"] = ECHO_CUSTOMER
    return customer


def check_bucket(s3: S3Client, sent: list[Sent]) -> list[str]:
    """The bucket must hold exactly the objects, sidecars and index entries (by media id and by
    wamid) of the media sent, nothing else."""
    expected = {item.key for item in sent} | {sidecar_key(item.key) for item in sent}
    expected |= {media_id_entry_key("", item.record.id) or "" for item in sent}
    expected |= {wamid_entry_key("", str(item.message["id"])) for item in sent}
    found: set[str] = set()
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            found.update(entry["Key"] for entry in page.get("Contents", []) if "Key" in entry)
    except (ClientError, BotoCoreError) as exc:
        raise DemoFailure(f"listing the bucket failed: {exc}") from exc
    return [f"unexpected object in the bucket: {key}" for key in sorted(found - expected)]


def wait_for_warning(stack: Stack, client: SimulatorClient, wamid: str) -> dict[str, Any]:
    """Wait until the simulator received the 131052 warning for TOO_BIG_SENDER (a BSUID)."""

    def warning() -> dict[str, Any] | None:
        check_alive(stack)
        for message in client.sent_messages():
            if message.get("recipient") == TOO_BIG_SENDER:
                return message
        return None

    try:
        return wait_for(warning, timeout=REPLY_TIMEOUT, what=f"the warning for {wamid}")
    except TimeoutError as exc:
        raise DemoFailure(str(exc)) from exc


def check_warning(client: SimulatorClient, warning: dict[str, Any]) -> list[str]:
    """The warning must be the configured text, sent once, from the right number."""
    problems = []
    if warning.get("body") != DEFAULT_TOO_BIG_REPLY:
        problems.append(f"warning text {warning.get('body')!r} is not TOO_BIG_REPLY_TEXT")
    if warning.get("phone_number_id") != PHONE_NUMBER_ID:
        problems.append(f"warning sent from {warning.get('phone_number_id')!r}")
    sent = client.sent_messages()
    count = sum(1 for message in sent if message.get("recipient") == TOO_BIG_SENDER)
    if count != 1:
        problems.append(f"{count} warnings sent to {TOO_BIG_SENDER}, expected 1")
    if warning.get("to") is not None:
        problems.append(f"the warning was addressed to a phone number, {warning.get('to')!r}")
    others = [
        m.get("to") or m.get("recipient") for m in sent if m.get("recipient") != TOO_BIG_SENDER
    ]
    if others:
        problems.append(f"unexpected messages sent to {others}")
    return problems


def human_size(size: int) -> str:
    """`350000` → `341.8 KiB`."""
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns separated by two spaces, with a rule under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def report(results: list[Verified]) -> str:
    """The table of archived objects."""
    rows: list[tuple[str, ...]] = [("S3 key", "size", "MIME type", "sha256", "from", "check")]
    for result in results:
        record, sample = result.sent.record, result.sent.sample
        origin = {
            "phone": f"+{SENDER}",
            "username": f"@{USERNAME} (BSUID only)",
            "echo": f"business to +{ECHO_CUSTOMER}",
        }[sample.origin]
        rows.append(
            (
                result.sent.key,
                human_size(record.file_size),
                record.mime_type,
                record.sha256[:16] + "...",
                origin,
                "verified" if not result.problems else "FAILED",
            )
        )
    return table(rows)


def start_consumers(stack: Stack) -> Consumers:
    """The business's other systems, on loopback: a webhook consumer the relay forwards every
    webhook to, and an endpoint of archive events."""
    relay = stack.exits.enter_context(Downstream("/crm/webhook"))
    events = stack.exits.enter_context(Downstream("/crm/archive-events"))
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    say(f"Relay destination `crm`: {relay.url}")
    say(f"Event endpoint `crm-events`: {events.url}")
    return Consumers(relay, events, secret)


def consumer_variables(consumers: Consumers) -> tuple[tuple[str, str], ...]:
    """The variables that relay every webhook to the consumer and send it archive events."""
    return (
        ("RELAY_DESTINATIONS", f"crm={consumers.relay.url}"),
        ("EVENT_ENDPOINTS", f"crm-events={consumers.events.url}"),
        ("EVENT_SIGNING_SECRET", consumers.events_secret),
        ("EVENT_PRESIGNED_URLS", "true"),
        ("PRESIGNED_URL_SECONDS", "600"),
    )


def check_relayed(consumers: Consumers, posted: list[Posted]) -> list[str]:
    """Every webhook sent to `web` reached the relay destination byte for byte, with Meta's
    signature and Content-Type as sent (at least once)."""
    with contextlib.suppress(TimeoutError):  # what arrived is checked below
        consumers.relay.wait_count(len(posted), timeout=RELAY_TIMEOUT)
    received = consumers.relay.taken()
    problems = []
    for index, sent in enumerate(posted, 1):
        copies = [r for r in received if r.body == sent.body]
        if not copies:
            problems.append(f"webhook {index} never reached the relay destination")
            continue
        for copy in copies:
            if copy.headers.get("x-hub-signature-256") != sent.signature:
                problems.append(f"webhook {index} reached the relay without Meta's signature")
            if copy.headers.get("content-type") != "application/json":
                problems.append(f"webhook {index} reached the relay with another Content-Type")
    return problems


def _event_of(consumers: Consumers, request: Received) -> dict[str, Any] | None:
    try:
        event = Webhook(consumers.events_secret).verify(request.body, request.headers)
    except WebhookVerificationError:
        return None
    return event if isinstance(event, dict) else None


def arrived_so_far(consumers: Consumers) -> dict[str, dict[str, Any]]:
    """The verified `media.archived` events received until now, by media id."""
    found = {}
    for request in consumers.events.taken():
        event = _event_of(consumers, request)
        if event is not None and event.get("type") == "media.archived":
            found[str(event["data"].get("media_id"))] = event
    return found


def wait_for_events(consumers: Consumers, sent: list[Sent]) -> dict[str, dict[str, Any]]:
    """The verified `media.archived` events, by media id, once one arrived for every media (or
    what arrived by RELAY_TIMEOUT)."""
    wanted = {item.record.id for item in sent}

    def arrived() -> dict[str, dict[str, Any]] | None:
        found = arrived_so_far(consumers)
        return found if wanted <= set(found) else None

    with contextlib.suppress(TimeoutError):
        return wait_for(arrived, timeout=RELAY_TIMEOUT, interval=0.1, what="archive events")
    return arrived_so_far(consumers)


def check_events(
    consumers: Consumers, sent: list[Sent], events: dict[str, dict[str, Any]]
) -> list[str]:
    """Each media's `media.archived` event verified with the standardwebhooks library, names its
    object, and carries a presigned URL that downloads exactly the archived bytes."""
    problems = [
        f"an event endpoint request failed its signature check ({len(r.body)} bytes)"
        for r in consumers.events.taken()
        if _event_of(consumers, r) is None
    ]
    for item in sent:
        event = events.get(item.record.id)
        if event is None:
            problems.append(f"{item.record.id}: no media.archived event")
            continue
        data = event["data"]
        if data.get("key") != item.key or data.get("sha256") != item.record.sha256:
            problems.append(f"{item.record.id}: the event names another object or digest")
        try:
            answer = requests.get(str(data.get("url")), timeout=HTTP_TIMEOUT)
        except requests.RequestException as exc:
            problems.append(f"{item.record.id}: the event's URL failed: {exc}")
            continue
        digest = hashlib.sha256(answer.content).hexdigest()
        if answer.status_code != 200 or digest != item.record.sha256:
            problems.append(
                f"{item.record.id}: the event's URL answered {answer.status_code} with other bytes"
            )
    return problems


def start_stack(stack: Stack, consumers: Consumers) -> tuple[StackEnv, str, Redis, SimulatorClient]:
    """Redis, SeaweedFS, the simulator, web and worker; each stopped when `stack.exits` closes."""
    redis_url = choose_redis(stack)
    redis = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    stack.exits.callback(redis.close)

    say(f"SeaweedFS: starting `weed mini` with bucket {BUCKET}")
    seaweed = SeaweedFS(stack.workdir / "seaweedfs", buckets=(BUCKET,))
    stack.exits.callback(seaweed.stop)
    seaweed.start()
    if seaweed.service is not None:
        stack.watched.append(seaweed.service)

    sim = Simulator()
    sim.start()
    stack.exits.callback(sim.stop)
    client = sim.client()
    stack.exits.callback(client.close)
    say(f"Graph API simulator: {sim.url}")

    env = StackEnv.local(sim, seaweed, redis_url, BUCKET, extra=consumer_variables(consumers))
    logs = stack.workdir / "logs"
    # The port is chosen here so that the log's path is known even if web never comes up.
    web_port = free_port()
    stack.logs["web"] = logs / f"web-{web_port}.log"
    web, web_url = start_web(env, logs, port=web_port)
    stack.exits.callback(web.stop)
    stack.watched.append(web)
    say(f"web: {web_url}")
    stack.logs["worker"] = logs / "worker-demo.log"
    worker = start_worker(env, logs, name="demo")
    stack.exits.callback(worker.stop)
    stack.watched.append(worker)
    say("worker: ready")
    return env, web_url, redis, client


def run(stack: Stack) -> bool:
    """Start everything, send the webhooks, check the archive and the warning; True if every
    check passed. Raises DemoFailure when the stack cannot do its work at all."""
    consumers = start_consumers(stack)
    env, web_url, redis, client = start_stack(stack, consumers)
    s3 = s3_client(env.s3_endpoint_url, env.environ())

    timestamp = int(time.time())
    sent = register_media(client, timestamp)
    total = human_size(sum(item.record.file_size for item in sent))
    say(f"Simulator: {len(sent)} media registered, {total} in all")
    inbound = [item for item in sent if item.sample.origin != "echo"]
    echoed = [item.message for item in sent if item.sample.origin == "echo"]
    first, rest = inbound[:3], inbound[3:]
    posted = [
        post_webhook(web_url, messages_payload([item.message for item in first]), env.app_secret),
        post_webhook(web_url, messages_payload([item.message for item in rest]), env.app_secret),
        post_webhook(
            web_url,
            webhooks.echoes_envelope(echoed, phone_number_id=PHONE_NUMBER_ID, waba_id=WABA_ID),
            env.app_secret,
        ),
    ]
    too_big_wamid = webhooks.new_wamid()
    # From a customer who shares no phone number: the warning goes to their BSUID.
    too_big = webhooks.from_user(
        webhooks.too_big_message(wamid=too_big_wamid, timestamp=timestamp),
        TOO_BIG_SENDER,
        phone=False,
    )
    posted.append(post_webhook(web_url, messages_payload([too_big]), env.app_secret))

    say("Waiting for the worker to archive every media ...")
    wait_for_archive(stack, s3, redis, sent)
    results = [check_object(s3, item) for item in sent]
    bucket_problems = check_bucket(s3, sent)
    say("Waiting for the 131052 warning ...")
    warning = wait_for_warning(stack, client, too_big_wamid)
    warning_problems = check_warning(client, warning)
    say("Waiting for the relay destination and the event endpoint ...")
    relay_problems = check_relayed(consumers, posted)
    events = wait_for_events(consumers, sent)
    event_problems = check_events(consumers, sent, events)

    say("")
    say(f"Archived into s3://{BUCKET}/ (each object with a sidecar <key>.json):")
    say(report(results))
    say("")
    say(f"Error 131052 (file over 100 MB) on message {too_big_wamid[:20]}...:")
    say(
        f"  warning sent to BSUID {warning.get('recipient')} (no phone number) from phone "
        f"number id {PHONE_NUMBER_ID}:"
    )
    say(f"  {warning.get('body')!r}")
    say("")
    relayed = consumers.relay.taken()
    say(
        f"Relayed to `crm`: {len(relayed)} request(s) for {len(posted)} webhooks, each body "
        "byte for byte with Meta's X-Hub-Signature-256"
    )
    say(
        f"Events at `crm-events`: {len(events)} media.archived, each verified with the "
        "standardwebhooks library; its presigned URL downloads the verified bytes"
    )
    for event in list(events.values())[:1]:
        data = event["data"]
        say(
            f"  e.g. {event['type']} {data.get('media_id')} -> s3://{data.get('bucket')}/{data.get('key')}"
        )

    problems = [
        f"{result.sent.sample.kind} {result.sent.key}: {problem}"
        for result in results
        for problem in result.problems
    ]
    problems += bucket_problems + warning_problems + relay_problems + event_problems
    say("")
    if problems:
        say("FAILED checks:")
        for problem in problems:
            say(f"  - {problem}")
        return False
    say(
        f"All checks passed: {len(results)} files archived and verified (bytes, sha256, size, "
        "ContentType, metadata, sidecar), one of them from a customer known only by username, "
        "one sent by the business from the WhatsApp Business app; one warning sent, once, to a "
        "BSUID; every webhook relayed as received; a signed media.archived event for each "
        "file, its presigned URL downloading the verified bytes."
    )
    return True


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line: --help, and where the demo may write."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        help="use this Redis database (redis://host:port/N) instead of a private redis-server; "
        "it must hold no key, and is emptied again after a successful run",
    )
    args = parser.parse_args(argv)
    if args.redis_url is not None:
        try:
            redis_url(args.redis_url)
        except ValueError as exc:
            parser.error(f"--redis-url: {exc}")
    return args


def empty_again(stack: Stack) -> None:
    """After a successful run, empty the database given with --redis-url: it was empty."""
    if stack.redis_url is None:
        return
    with contextlib.closing(Redis.from_url(stack.redis_url, socket_connect_timeout=2)) as client:
        client.flushdb()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; 0 when every check passed."""
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="wa-demo-"))
    ok = False
    interrupted = False
    stack = Stack(workdir, contextlib.ExitStack(), redis_url=args.redis_url)
    # Registered first, so it runs last, after every Service was stopped the normal way.
    try:
        with stop_signals(signal.SIGINT, signal.SIGTERM), stack.exits:
            ok = run(stack)
    except KeyboardInterrupt:
        interrupted = True
    except (DemoFailure, SimulatorError, RedisError, OSError, RuntimeError, TimeoutError) as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
    if interrupted:
        print("\nInterrupted: everything the demo started is stopped.", file=sys.stderr)
        if stack.redis_url is not None and stack.wrote_to_redis_url:
            print(f"What it wrote is left in {shown(stack.redis_url)}.", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
        return 130
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
        try:
            empty_again(stack)
        except (RedisError, OSError) as exc:
            print(f"could not empty {shown(stack.redis_url or '')}: {exc}", file=sys.stderr)
        return 0
    print(f"\n{stack.log_tails()}", file=sys.stderr)
    print(f"\nDEMO FAILED; logs and data are kept in {workdir}", file=sys.stderr)
    if stack.redis_url is not None and stack.wrote_to_redis_url:
        print(f"and what it wrote in {shown(stack.redis_url)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
