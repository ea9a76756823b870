"""Hostile traffic against `POST /webhook`: over ten thousand generated and mutated requests.

Every request goes through the Flask test client of an app over a Redis database of its own with
no worker, so whatever `web` publishes stays on the `media` list, where it is read back, decoded
and validated. The expected answer of each request is worked out here from the table of
docs/webhook.md, independently of the code under test.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import re
import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from redis import Redis
from werkzeug.sansio.utils import get_content_length

from devstack import webhooks
from tests.conftest import redis_db
from wa_media.core.jobs import MediaJob, ReplyJob
from wa_media.core.layout import EXTENSIONS
from wa_media.stores.broker import FAN_OUT_TASK, MEDIA_QUEUE
from webhook import create_app
from webhook.config import MAX_BODY_BYTES, WebSettings

pytestmark = pytest.mark.e2e

SECRET = "hostile-secret"
ROTATED = "rotated-secret"
SECRETS = (ROTATED, SECRET)
VERIFY = "hostile-verify"
WABA = "whatsapp_business_account"
PHONE = webhooks.DEFAULT_PHONE_NUMBER_ID
TOO_BIG = 131052
MAX_TIMESTAMP = 253402300799
# The ids `web` takes (docs/webhook.md, "What a webhook may carry"); a media or a 131052 without
# one is skipped as malformed. Captions and filenames are cut at these lengths.
KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
WAMID = re.compile(r"[A-Za-z0-9_.:=+/-]{1,256}")
MAX_CAPTION, MAX_FILENAME = 4096, 255
# The answers to `POST /webhook` (docs/webhook.md, "HTTP answers of `web`"; 503 needs an
# unreachable broker: not here).
ANSWERS = frozenset({200, 400, 401, 403, 413})

# Examples of each property, and the requests each example sends: at least 10,000 in all.
BUDGET = {
    "test_arbitrary_bytes": (1000, 2),
    "test_json_documents": (700, 2),
    "test_mutated_cloud_payloads": (1200, 2),
    "test_a_message_field_of_any_type_is_skipped": (300, 1),
    "test_reported_errors_never_fail_the_payload": (300, 1),
    "test_signature_headers": (700, 4),
    "test_content_length_extremes": (700, 1),
    "test_valid_payloads_publish_every_job": (500, 2),
    "test_bodies_around_the_size_limit": (30, 1),
}
SENT: Counter[str] = Counter()

Json = Any
T = TypeVar("T")
Path = tuple[str | int, ...]


def budget(name: str) -> settings:
    """Hypothesis settings for one property: its share of the budget, reproducible in CI."""
    return settings(
        max_examples=BUDGET[name][0],
        deadline=None,
        # No explain phase: rerunning a failure with variations costs more than it tells here.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        derandomize=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )


# --- the app, and what it published -----------------------------------------------------------


@dataclass
class Batch:
    """One published fan-out task, its jobs validated."""

    media: list[MediaJob]
    replies: list[ReplyJob]


@dataclass
class Answer:
    """The status of one request and the tasks it left on the `media` list."""

    status: int
    batches: list[Batch] = field(default_factory=list)


def _current_test() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[-1].split(" ")[0]


class Hook:
    """Posts to `/webhook` and reads back what the request published."""

    def __init__(self, client: FlaskClient, queue: Redis) -> None:
        self.client, self.queue = client, queue

    def post(
        self,
        body: bytes,
        signature: str | None,
        *,
        content_length: str | None = None,
        chunked: bool = False,
    ) -> Answer:
        # Empty the queue, not the database: what is left afterwards is this request's work.
        self.queue.delete(MEDIA_QUEUE)
        headers = {} if signature is None else {"X-Hub-Signature-256": signature}
        if chunked:
            # As gunicorn hands a chunked body over: no Content-Length, input terminated.
            response = self.client.post(
                "/webhook",
                input_stream=io.BytesIO(body),
                headers={**headers, "Transfer-Encoding": "chunked"},
                content_type="application/json",
                environ_overrides={"wsgi.input_terminated": True},
            )
        else:
            overrides = {} if content_length is None else {"CONTENT_LENGTH": content_length}
            response = self.client.post(
                "/webhook",
                data=body,
                headers=headers,
                content_type="application/json",
                environ_overrides=overrides,
            )
        SENT[_current_test()] += 1
        return Answer(response.status_code, self.published())

    def published(self) -> list[Batch]:
        batches = []
        for raw in self.queue.lrange(MEDIA_QUEUE, 0, -1):
            envelope = json.loads(raw)
            assert envelope["headers"]["task"] == FAN_OUT_TASK
            args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
            assert kwargs == {}
            [batch] = args
            assert set(batch) == {"media", "replies"}
            assert batch["media"] or batch["replies"], "an empty batch was published"
            media = [MediaJob.model_validate(job) for job in batch["media"]]
            replies = [ReplyJob.model_validate(job) for job in batch["replies"]]
            assert [job.to_wire() for job in media] == batch["media"]
            assert [job.to_wire() for job in replies] == batch["replies"]
            assert all(reply.error_code == TOO_BIG for reply in replies)
            batches.append(Batch(media, replies))
        return batches


@pytest.fixture(scope="module")
def hostile_redis_url() -> Iterator[str]:
    yield from redis_db(11)


@pytest.fixture(scope="module")
def hook(hostile_redis_url: str) -> Iterator[Hook]:
    app = create_app(
        WebSettings(app_secrets=SECRETS, verify_token=VERIFY, redis_url=hostile_redis_url)
    )
    # An exception in the view reaches the test with its traceback instead of a bare 500.
    app.testing = True
    queue = Redis.from_url(hostile_redis_url)
    yield Hook(app.test_client(), queue)
    queue.close()


# --- the oracle: the table of docs/webhook.md -------------------------------------------------


def signature_status(body: bytes, header: str | None) -> int | None:
    """401 or 403 for a request no configured secret signed; None when one did."""
    if not header:
        return 401
    digest = header.removeprefix("sha256=")
    valid = {webhooks.sign(body, secret).removeprefix("sha256=") for secret in SECRETS}
    # Hex is case-insensitive: an upper-case digest is the same signature.
    if header.startswith("sha256=") and len(digest) == 64 and digest.lower() in valid:
        return None
    return 403


def is_whatsapp(document: Json) -> bool:
    return (
        isinstance(document, dict)
        and document.get("object") == WABA
        and isinstance(document.get("entry"), list)
    )


def body_status(body: bytes) -> int:
    """The answer to a correctly signed body."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return 400
    return 200 if is_whatsapp(document) else 400


def expected_status(body: bytes, header: str | None) -> int:
    if len(body) > MAX_BODY_BYTES:
        return 413
    return signature_status(body, header) or body_status(body)


def check(answer: Answer, expected: int) -> Batch | None:
    """The answer is docs/webhook.md's, and only a 200 publishes, at most one task."""
    assert answer.status in ANSWERS, answer.status
    assert answer.status == expected
    if answer.status != 200:
        assert answer.batches == []
    assert len(answer.batches) <= 1
    return answer.batches[0] if answer.batches else None


# --- strategies -------------------------------------------------------------------------------

ANY_CHAR = st.characters(exclude_categories=())  # surrogates included: JSON can escape them
KEYS = [
    "object",
    "entry",
    "id",
    "changes",
    "field",
    "value",
    "metadata",
    "phone_number_id",
    "messages",
    "statuses",
    "errors",
    "code",
    "from",
    "timestamp",
    "type",
    "mime_type",
    "sha256",
    "caption",
    "filename",
    "voice",
    "animated",
    *webhooks.MEDIA_KINDS,
]
TYPES = [*webhooks.MEDIA_KINDS, "text", "unsupported", "location", "reaction", "", "IMAGE"]
TRICKY = [
    "",
    "\x00",
    "a\x00b",
    "../../etc/passwd",
    "..",
    ".",
    "/",
    "\\",
    "\ud800",
    "\udfff\ud800",
    "\u202e",
    "²",
    "١٢٣",
    "\uff11\uff12\uff13",
    "1" * 5000,
    "-1",
    "1e3",
    "0x1f",
    " 1",
    "1 ",
    "9" * 25,
    "131052",
    "00131052",
    "NaN",
    "null",
    "{}",
    "[]",
    WABA,
    "messages",
    *TYPES,
    base64.b64encode(b"\x07" * 32).decode(),
    "ab" * 32,
    "=" * 44,
]
ODD_LENGTHS = [
    *(str(n) for n in (MAX_BODY_BYTES, MAX_BODY_BYTES + 1, 2**63)),
    *("9" * 5000, "", " ", "-0", "+5", "0x10", "1e9", "\uff15", "abc", "\x00", " 10 ", "\t7\t"),
]
# Digits and a-f of the full-width forms: hex to a human eye, not to a parser.
FULLWIDTH_HEX = "".join(chr(c) for c in [*range(0xFF10, 0xFF1A), *range(0xFF41, 0xFF47)])
INTS = [0, -1, 1, TOO_BIG, 2**31, 2**63, 2**64, MAX_TIMESTAMP, MAX_TIMESTAMP + 1, 10**4299]


def huge(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Strings of 1,000 to 10,000 characters, cheap to draw."""
    return st.builds(
        lambda unit, n: (unit * n)[:10_000],
        st.text(alphabet, min_size=1, max_size=8),
        st.integers(1_000, 10_000),
    )


def mostly(
    common: st.SearchStrategy[T], rare: st.SearchStrategy[T], odds: int = 4
) -> st.SearchStrategy[T]:
    """`common`, but `rare` once in `odds + 1` draws."""
    # Repeating a branch in `one_of` would not weight it: nested `one_of`s are flattened.
    return st.integers(0, odds).flatmap(lambda n: common if n else rare)


def nest(value: Json, depth: int, as_list: bool) -> Json:
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


short_texts = st.text(ANY_CHAR, max_size=30)
# 10,000-character strings one time in ten: they are what makes a request slow.
texts = mostly(st.one_of(short_texts, st.sampled_from(TRICKY)), huge(ANY_CHAR), odds=9)
ints = st.one_of(
    st.integers(), st.integers(-(2**70), 2**70), st.sampled_from(INTS + [-i for i in INTS])
)
scalars = st.one_of(st.none(), st.booleans(), ints, st.floats(), texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=4),
    ),
    max_leaves=12,
)
hostile = st.one_of(
    scalars,
    json_values,
    st.builds(nest, scalars, st.integers(1, 50), st.booleans()),
)
# Codes as Meta writes them, and strings that look like digits to str.isdigit() but not to int():
# superscripts, more digits than int() converts; Arabic-Indic digits do convert.
CODES = [TOO_BIG, str(TOO_BIG), "00131052", " 131052", "\u00b2", "\u00b9\u00b2", "1" * 5000, "١٢٣"]
codes = mostly(st.sampled_from(CODES), st.one_of(ints, hostile), odds=1)
error_objects = mostly(
    st.builds(lambda code, title: {"code": code, "title": title}, codes, texts), hostile, odds=3
)

MIME_TYPES = [*sorted(EXTENSIONS), "audio/ogg; codecs=opus", "application/octet-stream"]
mime_types = st.one_of(st.sampled_from(MIME_TYPES), st.text(ANY_CHAR, max_size=40))
senders = st.text(string.digits, min_size=1, max_size=15)
# A 131052 is answered only at a phone number (6 to 15 digits) or a BSUID.
recipients = st.text(string.digits, min_size=6, max_size=15)
WAMID_CHARS = string.ascii_letters + string.digits + "_.:=+/-"
# Mostly ids of Meta's alphabet, a fifth of them anything at all.
wamids = mostly(
    st.text(WAMID_CHARS, min_size=1, max_size=40), st.text(ANY_CHAR, min_size=1, max_size=40)
).map(lambda s: "wamid." + s)
media_ids = mostly(
    st.text(string.ascii_letters + string.digits + "_.-", min_size=1, max_size=64),
    st.text(ANY_CHAR, min_size=1, max_size=64),
)


def is_id(value: str, rule: re.Pattern[str]) -> bool:
    return rule.fullmatch(value) is not None and set(value) != {"."}


timestamps = st.integers(0, MAX_TIMESTAMP)
free_text = mostly(st.none() | short_texts, huge(ANY_CHAR), odds=9)


@st.composite
def digests(draw: st.DrawFn) -> tuple[str, str]:
    """A SHA-256 as the webhook may write it, and its hex form."""
    raw = draw(st.binary(min_size=32, max_size=32))
    written = draw(
        st.sampled_from(
            [
                base64.b64encode(raw).decode(),
                base64.urlsafe_b64encode(raw).decode(),
                raw.hex(),
                raw.hex().upper(),
            ]
        )
    )
    return written, raw.hex()


@dataclass
class Expect:
    """What an untouched message must produce: a media job, a 131052 reply, or (ids `web` does
    not take) a skip."""

    kind: str  # "media", "reply" or "skip"
    wamid: str
    sender: str
    media_id: str | None = None
    job: dict[str, Any] | None = None


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(value: Any) -> Any:
    """Text as the service keeps it: a lone half of a UTF-16 pair becomes U+FFFD."""
    return LONE_SURROGATE.sub("\ufffd", value) if isinstance(value, str) else value


@st.composite
def media_messages(draw: st.DrawFn, media_id: str | None = None) -> tuple[Json, Expect]:
    """A media message; with `media_id` (a witness), one whose ids are always taken."""
    kind = draw(st.sampled_from(webhooks.MEDIA_KINDS))
    witness = media_id is not None
    media_id = media_id or draw(media_ids)
    written, hex_digest = draw(digests())
    mime_type = draw(mime_types)
    sender, timestamp = draw(senders), draw(timestamps)
    wamid = draw(wamids.filter(lambda w: is_id(w, WAMID)) if witness else wamids)
    caption = draw(free_text) if kind in ("image", "video", "document") else None
    filename = draw(free_text) if kind == "document" else None
    message = webhooks.media_message(
        kind,
        media_id,
        sha256_b64=written,
        mime_type=mime_type,
        sender=sender,
        wamid=wamid,
        timestamp=timestamp,
        caption=caption,
        filename=filename,
    )
    wire = "audio" if kind == "voice" else kind
    job = {
        "phone_number_id": PHONE,
        "waba_id": webhooks.DEFAULT_WABA_ID,
        "wamid": wamid,
        "sender": sender,
        "timestamp": timestamp,
        "type": wire,
        "media_id": media_id,
        "mime_type": mime_type,
        "sha256": hex_digest,
        "caption": caption[:MAX_CAPTION] if caption is not None else None,
        "filename": (f"file-{media_id}" if filename is None else filename)[:MAX_FILENAME]
        if kind == "document"
        else None,
        "voice": (kind == "voice") if wire == "audio" else None,
        "animated": False if kind == "sticker" else None,
    }
    job = {name: encodable(value) for name, value in job.items()}
    taken = is_id(media_id, KEY_ID) and is_id(wamid, WAMID)
    what = "media" if taken else "skip"
    return message, Expect(what, encodable(wamid), encodable(sender), encodable(media_id), job)


@st.composite
def too_big_messages(draw: st.DrawFn) -> tuple[Json, Expect]:
    sender, wamid = draw(recipients), draw(wamids)
    message = webhooks.too_big_message(sender=sender, wamid=wamid, timestamp=draw(timestamps))
    what = "reply" if is_id(wamid, WAMID) else "skip"
    return message, Expect(what, encodable(wamid), encodable(sender))


@st.composite
def text_messages(draw: st.DrawFn) -> tuple[Json, None]:
    message = webhooks.text_message(
        draw(st.text(ANY_CHAR, max_size=80)),
        sender=draw(senders),
        wamid=draw(wamids),
        timestamp=draw(timestamps),
    )
    return message, None


messages = st.one_of(media_messages(), too_big_messages(), text_messages())


@st.composite
def statuses(draw: st.DrawFn, damaged: bool = True) -> Json:
    """A delivery receipt; when `damaged`, with hostile errors or replaced outright."""
    errors = error_objects if damaged else st.builds(webhooks.error_object, ints, texts)
    update = webhooks.status_update(
        draw(wamids),
        status=draw(st.sampled_from(["sent", "delivered", "read", "failed"])),
        timestamp=draw(timestamps),
        errors=draw(st.none() | st.lists(errors, max_size=2)),
    )
    return draw(st.one_of(st.just(update), hostile)) if damaged and draw(st.booleans()) else update


# --- mutations --------------------------------------------------------------------------------


def paths(value: Json, prefix: Path = ()) -> list[Path]:
    """Every place in a JSON value, the root first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def at(value: Json, path: Path) -> Json:
    for step in path:
        value = value[step]
    return value


def put(value: Json, path: Path, new: Json) -> None:
    at(value, path[:-1])[path[-1]] = new


def remove(value: Json, path: Path) -> None:
    del at(value, path[:-1])[path[-1]]


MUTATIONS = [
    "replace",
    "replace",
    "delete",
    "set",
    "nest",
    "errors",
    "type",
    "whole",
    "field",
    "media_field",
]


@st.composite
def mutated(draw: st.DrawFn, message: Json) -> Json:
    """One hostile change to a message: a field deleted, retyped, nested, added..."""
    message = copy.deepcopy(message)
    op = draw(st.sampled_from(MUTATIONS))
    if not isinstance(message, dict | list) or op == "whole":
        return draw(hostile)
    if op == "field" and isinstance(message, dict):
        # Negative, huge, fractional or textual timestamps; ids and senders of any type.
        name = draw(st.sampled_from(["timestamp", "timestamp", "id", "from"]))
        message[name] = draw(st.one_of(ints, st.floats(), st.sampled_from(TRICKY), hostile))
        return message
    media = message.get(str(message.get("type"))) if isinstance(message, dict) else None
    if op == "media_field" and isinstance(media, dict):
        name = draw(st.sampled_from(["id", "mime_type", "sha256", "caption", "filename", "voice"]))
        media[name] = draw(hostile)
        return message
    if op == "errors" and isinstance(message, dict):
        message["errors"] = draw(st.lists(error_objects, min_size=1, max_size=3))
        return message
    if op == "type" and isinstance(message, dict):
        message["type"] = draw(st.one_of(st.sampled_from(TYPES), hostile))
        return message
    if op == "set":
        targets = [path for path in paths(message) if isinstance(at(message, path), dict)]
        if targets:
            target = at(message, draw(st.sampled_from(targets)))
            key = draw(st.one_of(st.sampled_from(KEYS), st.text(ANY_CHAR, max_size=8)))
            target[key] = draw(hostile)
            return message
    inner = paths(message)[1:]
    if not inner:
        return draw(hostile)
    path = draw(st.sampled_from(inner))
    if op == "delete":
        remove(message, path)
    elif op == "nest":
        put(message, path, nest(at(message, path), draw(st.integers(1, 50)), draw(st.booleans())))
    else:
        put(message, path, draw(hostile))
    return message


@dataclass
class Scenario:
    """A mutated payload and what its untouched messages must still produce."""

    document: Json
    expects: list[Expect]
    intact: bool  # the envelope still delivers every untouched message
    waba_changed: bool  # the entry's id was replaced: jobs may carry another waba_id


# Changes to the envelope after which every untouched message must still be archived.
BENIGN = [
    "value_errors",
    "statuses",
    "extra_entry",
    "extra_change",
    "duplicate_entry",
    "contacts",
    "waba_id",
    "no_field",
    "extra_key",
]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    items: list[tuple[Json, Expect | None]] = draw(st.lists(messages, max_size=4))
    for _ in range(draw(st.integers(0, 4))):
        if not items:
            break
        index = draw(st.integers(0, len(items) - 1))
        op = draw(st.sampled_from(["mutate", "mutate", "mutate", "duplicate", "delete", "junk"]))
        if op == "mutate":
            items[index] = (draw(mutated(items[index][0])), None)
        elif op == "duplicate":
            items.insert(index, (copy.deepcopy(items[index][0]), items[index][1]))
        elif op == "delete":
            del items[index]
        else:
            items.insert(index, (draw(hostile), None))
    if draw(st.integers(0, 4)):
        witness = draw(media_messages(media_id="witness"))
        items.insert(draw(st.integers(0, len(items))), witness)

    document = webhooks.envelope([message for message, _ in items if isinstance(message, dict)])
    value = document["entry"][0]["changes"][0]["value"]
    if items:
        value["messages"] = [message for message, _ in items]
    intact, waba_changed = True, False
    entry = document["entry"][0]
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from([*BENIGN, "destroy", "destroy", "delete"]))
        if op == "value_errors":
            value["errors"] = draw(st.one_of(st.lists(error_objects, max_size=3), hostile))
        elif op == "statuses":
            value["statuses"] = draw(st.one_of(st.lists(statuses(), max_size=3), hostile))
        elif op == "extra_entry":
            document["entry"].append(draw(st.one_of(hostile, mutated(entry))))
        elif op == "extra_change":
            entry["changes"].append(draw(st.one_of(hostile, mutated(entry["changes"][0]))))
        elif op == "duplicate_entry":
            document["entry"].append(copy.deepcopy(entry))
        elif op == "contacts":
            value["contacts"] = draw(hostile)
        elif op == "waba_id":
            entry["id"] = draw(hostile)
            waba_changed = True
        elif op == "no_field":
            entry["changes"][0].pop("field", None)
        elif op == "extra_key":
            key = draw(st.text(ANY_CHAR, max_size=8).filter(lambda k: k not in ("object", "entry")))
            document[key] = draw(hostile)
        else:
            # Anywhere but inside a message: the object, an entry, a change, the metadata...
            outside = [
                path
                for path in paths(document)[1:]
                if not any(step == "messages" and len(path) > i + 1 for i, step in enumerate(path))
            ]
            path = draw(st.sampled_from(outside))
            if op == "delete":
                remove(document, path)
            else:
                put(document, path, draw(hostile))
            intact = False
            break  # `entry` and `value` may no longer be part of the document
    expects = [expect for _, expect in items if expect is not None]
    return Scenario(document, expects, intact, waba_changed)


Encoding = tuple[bool, int | None, tuple[str, str]]
encodings: st.SearchStrategy[Encoding] = st.tuples(
    st.booleans(), st.sampled_from([None, None, 1]), st.sampled_from([(",", ":"), (", ", ": ")])
)


def encode(document: Json, encoding: Encoding) -> bytes:
    """JSON text as a client may write it: compact or indented, escaped or raw UTF-8."""
    ensure_ascii, indent, separators = encoding
    text = json.dumps(document, ensure_ascii=ensure_ascii, indent=indent, separators=separators)
    # A lone surrogate written raw is no UTF-8: such a body is not JSON, and must be a 400.
    return text.encode("utf-8", "surrogatepass")


# How a request signs its body, drawn apart from the body so that failures read plainly.
Signing = tuple[Any, ...]
NO_NEWLINE = st.characters(exclude_categories=(), exclude_characters="\r\n")
good_signings: st.SearchStrategy[Signing] = st.tuples(
    st.sampled_from(["valid", "valid", "upper"]), st.sampled_from(SECRETS)
)
bad_signings: st.SearchStrategy[Signing] = st.one_of(
    st.just(("none",)),
    st.just(("empty",)),
    st.tuples(st.just("secret"), st.text(max_size=20).filter(lambda s: s not in SECRETS)),
    st.tuples(
        st.just("prefix"),
        st.sampled_from(
            ["sha1=", "SHA256=", "sha256:", "sha256 ", "sha256==", "sha512=", "", " sha256="]
        ),
    ),
    st.tuples(st.just("truncate"), st.integers(0, 63)),
    st.tuples(st.just("append"), st.text(string.hexdigits, min_size=1, max_size=8)),
    st.tuples(st.just("digest"), st.text(NO_NEWLINE, min_size=64, max_size=64)),
    st.tuples(st.just("digest"), st.text(st.sampled_from(FULLWIDTH_HEX), min_size=64, max_size=64)),
    st.tuples(st.just("swap"), st.integers(0, 63), NO_NEWLINE),
    st.tuples(st.just("raw"), st.one_of(st.text(NO_NEWLINE, max_size=100), huge(NO_NEWLINE))),
)
# Mostly Meta's header, sometimes anything else.
signings = mostly(good_signings, bad_signings)


def header_for(body: bytes, signing: Signing) -> str | None:
    """The `X-Hub-Signature-256` value a signing recipe gives for a body."""
    kind, *args = signing
    valid = webhooks.sign(body, args[0] if kind in ("valid", "upper") else SECRET)
    digest = valid.removeprefix("sha256=")
    if kind == "valid":
        return valid
    if kind == "upper":
        return "sha256=" + digest.upper()
    if kind == "none":
        return None
    if kind == "empty":
        return ""
    if kind == "secret":
        return webhooks.sign(body, args[0])
    if kind == "prefix":
        return str(args[0]) + digest
    if kind == "truncate":
        return "sha256=" + digest[: args[0]]
    if kind == "append":
        return valid + str(args[0])
    if kind == "digest":
        return "sha256=" + str(args[0])
    if kind == "swap":
        index, char = args
        # Hex compares case-insensitively: swapping in the same digit changes nothing.
        char = "g" if char.lower() == digest[index] else char
        return "sha256=" + digest[:index] + char + digest[index + 1 :]
    assert kind == "raw"
    return str(args[0])


@st.composite
def valid_bodies(draw: st.DrawFn) -> bytes:
    """A valid payload with at least one media message `web` takes."""
    taken = media_messages().filter(lambda item: item[1].kind == "media")
    items = [draw(taken), *draw(st.lists(messages, max_size=2))]
    return webhooks.encode(webhooks.envelope([message for message, _ in items]))


@st.composite
def mangled_bytes(draw: st.DrawFn) -> bytes:
    """A valid payload's bytes, damaged: truncated, flipped, padded, re-encoded."""
    body = draw(valid_bodies())
    op = draw(st.sampled_from(["truncate", "flip", "insert", "trail", "bom", "utf16", "utf32"]))
    if op == "truncate":
        return body[: draw(st.integers(0, len(body) - 1))]
    if op in ("flip", "insert"):
        data = bytearray(body)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            byte = draw(st.integers(0, 255))
            if op == "flip":
                data[i] = byte
            else:
                data.insert(i, byte)
        return bytes(data)
    if op == "trail":
        return body + draw(st.binary(min_size=1, max_size=20))
    if op == "bom":
        return b"\xef\xbb\xbf" + body
    return body.decode().encode("utf-16" if op == "utf16" else "utf-32")


# --- the properties ---------------------------------------------------------------------------


def exchange(hook: Hook, body: bytes, signing: Signing) -> tuple[int, Batch | None]:
    """Post a body signed by a recipe; check the answer against the table."""
    header = header_for(body, signing)
    expected = expected_status(body, header)
    return expected, check(hook.post(body, header), expected)


@given(
    body=st.one_of(
        st.binary(max_size=2048),
        st.text(ANY_CHAR, max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
        mangled_bytes(),
    ),
    bad=bad_signings,
)
@example(body=b"", bad=("none",))
@example(body=b"[" * 100_000 + b"]" * 100_000, bad=("none",))
@example(body=b'{"object":"whatsapp_business_account","entry":[NaN]}', bad=("none",))
@budget("test_arbitrary_bytes")
def test_arbitrary_bytes(hook: Hook, body: bytes, bad: Signing) -> None:
    """Any bytes: docs/webhook.md's answer, and only a signed WhatsApp payload gets a 200."""
    exchange(hook, body, ("valid", SECRET))
    exchange(hook, body, bad)


@given(
    document=st.one_of(
        json_values,
        st.builds(lambda entry: {"object": WABA, "entry": entry}, json_values),
        st.builds(lambda entry: {"object": WABA, "entry": entry}, st.lists(json_values)),
        st.builds(lambda obj: {"object": obj, "entry": []}, json_values),
        st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6),
    ),
    encoding=encodings,
    signing=good_signings,
    bad=bad_signings,
)
@budget("test_json_documents")
def test_json_documents(
    hook: Hook, document: Json, encoding: Encoding, signing: Signing, bad: Signing
) -> None:
    """Arbitrary JSON: 400 unless it is a WhatsApp payload; unsigned 401, missigned 403."""
    body = encode(document, encoding)
    exchange(hook, body, signing)
    exchange(hook, body, bad)


def _matches(job: MediaJob, wanted: dict[str, Any]) -> bool:
    """The job says what the message said; a MIME type the service refuses to pass on is
    dropped and recorded as an anomaly instead."""
    found = job.model_dump(mode="json", include=set(wanted))
    if job.mime_type is None and wanted["mime_type"] is not None:
        found["mime_type"] = wanted["mime_type"]
        if "mime_type_malformed" not in job.anomalies:
            return False
    return found == wanted


@given(scenario=scenarios(), encoding=encodings, signing=good_signings, bad=bad_signings)
@budget("test_mutated_cloud_payloads")
def test_mutated_cloud_payloads(
    hook: Hook, scenario: Scenario, encoding: Encoding, signing: Signing, bad: Signing
) -> None:
    """A damaged message is skipped, never the rest: every untouched message is still published."""
    body = encode(scenario.document, encoding)
    exchange(hook, body, bad)
    expected, batch = exchange(hook, body, signing)
    if expected != 200 or not scenario.intact:
        return
    if any(expect.kind != "skip" for expect in scenario.expects):
        assert batch is not None, "untouched messages were not published"
    ignored = {"waba_id"} if scenario.waba_changed else set()
    for expect in scenario.expects:
        if expect.kind == "skip":
            # Ids `web` does not take: counted and listed, never published.
            if expect.media_id is None:  # a 131052: its wamid is what `web` refused
                published = [] if batch is None else [r.wamid for r in batch.replies]
                assert expect.wamid not in published, expect
            else:
                ids = [] if batch is None else [(j.wamid, j.media_id) for j in batch.media]
                assert (expect.wamid, expect.media_id) not in ids, expect
            continue
        assert batch is not None
        if expect.kind == "media":
            assert expect.job is not None
            wanted = {k: v for k, v in expect.job.items() if k not in ignored}
            assert any(_matches(job, wanted) for job in batch.media), wanted
        else:
            reply = ReplyJob(
                phone_number_id=PHONE, wamid=expect.wamid, to=expect.sender, error_code=TOO_BIG
            )
            assert reply in batch.replies


@given(
    witness=media_messages(media_id="witness"),
    noisy=messages,
    name=st.sampled_from(["type", "type", "id", "from", "timestamp", *webhooks.MEDIA_KINDS]),
    value=hostile,
    signing=good_signings,
)
@budget("test_a_message_field_of_any_type_is_skipped")
def test_a_message_field_of_any_type_is_skipped(
    hook: Hook,
    witness: tuple[Json, Expect],
    noisy: tuple[Json, Expect | None],
    name: str,
    value: Json,
    signing: Signing,
) -> None:
    """Any JSON value in a message's type, id, sender, timestamp or media: the rest is archived."""
    message = copy.deepcopy(noisy[0])
    message[name] = value
    document = webhooks.envelope([message, witness[0]])
    _, batch = exchange(hook, webhooks.encode(document), signing)
    assert batch is not None
    assert witness[1].job is not None
    assert any(_matches(job, witness[1].job) for job in batch.media)


@given(
    witness=media_messages(media_id="witness"),
    noisy=messages,
    errors=st.lists(error_objects, min_size=1, max_size=3),
    places=st.sets(st.sampled_from(["message", "value", "status"]), min_size=1),
    signing=good_signings,
)
@budget("test_reported_errors_never_fail_the_payload")
def test_reported_errors_never_fail_the_payload(
    hook: Hook,
    witness: tuple[Json, Expect],
    noisy: tuple[Json, Expect | None],
    errors: list[Json],
    places: set[str],
    signing: Signing,
) -> None:
    """Whatever `errors` a message, the account or a status reports, the rest is archived."""
    message = copy.deepcopy(noisy[0])
    if "message" in places:
        message["errors"] = errors
    update = webhooks.status_update("wamid.sent", errors=errors if "status" in places else None)
    document = webhooks.envelope(
        [witness[0], message],
        statuses=[update],
        errors=errors if "value" in places else None,
    )
    _, batch = exchange(hook, webhooks.encode(document), signing)
    assert batch is not None
    assert witness[1].job is not None
    assert any(_matches(job, witness[1].job) for job in batch.media)


@given(
    body=valid_bodies(), signing=good_signings, bad=st.lists(bad_signings, min_size=3, max_size=3)
)
@budget("test_signature_headers")
def test_signature_headers(hook: Hook, body: bytes, signing: Signing, bad: list[Signing]) -> None:
    """Unsigned is 401; any header but a configured secret's signature 403; nothing published."""
    for recipe in bad:
        assert exchange(hook, body, recipe)[0] in (401, 403)
    # The same body signed right is 200 and one task: the refusals were the header's doing.
    assert exchange(hook, body, signing)[1] is not None


@given(
    body=st.one_of(valid_bodies(), st.binary(max_size=128)),
    declared=st.one_of(
        st.integers(-(2**64), 2**70).map(str),
        st.integers(0, 600).map(str),
        st.sampled_from(ODD_LENGTHS),
        st.text(ANY_CHAR, max_size=12),
    ),
    signing=signings,
    sign_what_is_read=st.booleans(),
    chunked=st.sampled_from([False] * 9 + [True]),
)
@budget("test_content_length_extremes")
def test_content_length_extremes(
    hook: Hook, body: bytes, declared: str, signing: Signing, sign_what_is_read: bool, chunked: bool
) -> None:
    """Whatever Content-Length says: over 4 MiB is 413 before anything else; never a 5xx."""
    # Werkzeug reads the declared length (0 when unparsable); a short body is a disconnect (400).
    length = get_content_length(declared, None)
    assert length is not None
    read = body if chunked else body[:length]
    header = header_for(read if sign_what_is_read else body, signing)
    if chunked:
        expected = expected_status(body, header)
    elif length > MAX_BODY_BYTES:
        expected = 413
    elif length > len(body):
        expected = 400
    else:
        expected = expected_status(read, header)
    answer = hook.post(body, header, content_length=None if chunked else declared, chunked=chunked)
    check(answer, expected)


@given(
    items=st.lists(messages, min_size=1, max_size=6),
    updates=st.none() | st.lists(statuses(damaged=False), max_size=2),
    signing=good_signings,
    bad=bad_signings,
)
@budget("test_valid_payloads_publish_every_job")
def test_valid_payloads_publish_every_job(
    hook: Hook,
    items: list[tuple[Json, Expect | None]],
    updates: list[Json] | None,
    signing: Signing,
    bad: Signing,
) -> None:
    """A valid payload is one task carrying exactly its media jobs and 131052 replies, in order."""
    body = webhooks.encode(webhooks.envelope([message for message, _ in items], statuses=updates))
    exchange(hook, body, bad)
    _, batch = exchange(hook, body, signing)
    media = [expect.job for _, expect in items if expect and expect.kind == "media" and expect.job]
    replies = [
        ReplyJob(phone_number_id=PHONE, wamid=expect.wamid, to=expect.sender, error_code=TOO_BIG)
        for _, expect in items
        if expect and expect.kind == "reply"
    ]
    if not media and not replies:
        assert batch is None
        return
    assert batch is not None
    assert len(batch.media) == len(media)
    assert all(_matches(job, want) for job, want in zip(batch.media, media, strict=True))
    assert batch.replies == replies


@given(
    excess=st.integers(-64, 128 * 1024),
    signing=st.sampled_from(["none", "body", "prefix"]),
    chunked=st.booleans(),
)
@example(excess=0, signing="body", chunked=False)
@example(excess=0, signing="body", chunked=True)
@example(excess=1, signing="none", chunked=False)
@example(excess=1, signing="none", chunked=True)
@budget("test_bodies_around_the_size_limit")
def test_bodies_around_the_size_limit(hook: Hook, excess: int, signing: str, chunked: bool) -> None:
    """A body over 4 MiB is 413 whether its length is declared or chunked, signed or not."""
    payload = webhooks.encode(webhooks.envelope([]))
    body = (payload + b" " * (MAX_BODY_BYTES + excess))[: MAX_BODY_BYTES + excess]
    header = {
        "none": None,
        "body": webhooks.sign(body, SECRET),
        # Signs only the first 4 MiB, as if the rest would be cut off and never read.
        "prefix": webhooks.sign(body[:MAX_BODY_BYTES], SECRET),
    }[signing]
    check(hook.post(body, header, chunked=chunked), expected_status(body, header))


def test_request_budget() -> None:
    """Run as a whole, the module sent at least the 10,000 requests it promises."""
    assert sum(examples * requests for examples, requests in BUDGET.values()) >= 10_000
    if set(SENT) != set(BUDGET):
        pytest.skip("run the whole module to count its requests")
    # A property that fails stops generating (and shrinks): it falls short of its budget.
    short = {name: SENT[name] for name, (n, k) in BUDGET.items() if SENT[name] < n * k}
    if short:
        pytest.skip(f"properties stopped before their budget, failing? {short}")
    assert sum(SENT.values()) >= 10_000, dict(SENT)
