"""Hostile providers and payloads through the real `web` and a `worker` of the Procfile's pool
(threads): a download that trickles, values that must not reach S3's headers as they came, ids
that must not reach the archive, and webhooks describing thousands of media.

The stack is this module's own (a Redis database, `web`, a threads `worker`), configured with a
try deadline of a few seconds, so that a try cut at its deadline is seen within the test.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from click.testing import CliRunner
from redis import Redis

from devstack import webhooks
from devstack.processes import Service
from devstack.seaweed import SeaweedFS
from devstack.stack import StackEnv, start_web, start_worker
from graphsim import Simulator, SimulatorClient
from tests.conftest import redis_db
from tests.e2e.conftest import BUCKET, MAX_MEDIA_BYTES, REPLY_TEXT, Sent, Stack
from tests.lan import other_address
from wa_media.cli import main as cli
from wa_media.core.layout import build_key
from wa_media.stores.broker import FAN_OUT_TASK, MEDIA_QUEUE
from webhook import create_app
from webhook.config import WebSettings

pytestmark = pytest.mark.e2e

PHONE = webhooks.DEFAULT_PHONE_NUMBER_ID
TRY_SECONDS = 3
# Requests of more media than this are published as several fan-out tasks.
FANOUT_BATCH = 2
# A try cut at its deadline has ended within this much more: the watchdog, the failed read and
# the retry's record, on a 2-core machine that also runs everything else.
MARGIN = 2.0


@dataclass
class Hardened:
    """This module's stack, and its processes' logs."""

    stack: Stack
    worker: Service
    web: Service

    def events(self, event: str, service: Service | None = None, **fields: Any) -> list[Any]:
        """The JSON log lines of `event` (the worker's, or `service`'s) whose fields match."""
        found = []
        for line in (service or self.worker).log_text().splitlines():
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            if entry.get("event") == event and all(entry.get(k) == v for k, v in fields.items()):
                found.append(entry)
        return found


@pytest.fixture(scope="module")
def hardened(
    simulator: Simulator, seaweed: SeaweedFS, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hardened]:
    for redis_url in redis_db(5):
        env = StackEnv.local(
            simulator,
            seaweed,
            redis_url,
            BUCKET,
            max_media_bytes=MAX_MEDIA_BYTES,
            reply_text=REPLY_TEXT,
            extra=(
                ("MEDIA_TRY_SECONDS", str(TRY_SECONDS)),
                ("LEASE_SECONDS", "3"),
                ("TOKEN_PAUSE_SECONDS", "3"),
                ("FANOUT_BATCH", str(FANOUT_BATCH)),
            ),
        )
        logs: Path = tmp_path_factory.mktemp("hardened") / "logs"
        web, url = start_web(env, logs)
        worker = start_worker(env, logs, name="hardened", pool="threads", concurrency=4)
        redis = Redis.from_url(redis_url, decode_responses=True)
        stack = Stack(url, worker, env, simulator.client(), seaweed.client(), redis)
        yield Hardened(stack, worker, web)
        worker.stop()
        web.stop()
        redis.close()


@pytest.fixture
def hard(hardened: Hardened, sim: SimulatorClient) -> Hardened:
    return hardened


def test_a_trickling_download_ends_at_its_deadline_and_is_archived_on_a_later_try(
    hard: Hardened,
) -> None:
    stack = hard.stack
    item = stack.media("video", size=50_000)
    # A byte a second: every read is answered well within the 30 s read timeout, and the body
    # would take 14 hours. Once only: the next try downloads at full speed.
    stack.sim.add_fault(op="download", media_id=item.record.id, trickle_bytes=1, trickle_seconds=1)
    posted = time.monotonic()
    assert stack.post(item).status_code == 200

    stack.wait_archived(item, timeout=60)

    assert stack.verified(item)
    [retry] = hard.events("media_retry", media_id=item.record.id)
    assert retry["reason_label"] == "timeout"
    assert f"MEDIA_TRY_SECONDS={TRY_SECONDS} s" in retry["reason"]
    # The try ended at its deadline: measured from its task's start.
    assert TRY_SECONDS * 1000 <= retry["duration_ms"] < (TRY_SECONDS + MARGIN) * 1000
    assert time.monotonic() - posted < 60
    record = stack.state(item.record.id)
    assert (record["state"], record["attempts"], record.get("crashes", "0")) == (
        "archived",
        "2",
        "0",
    )
    downloads = [r for r in stack.sim.requests() if r["op"] == "download"]
    assert len([r for r in downloads if r["media_id"] == item.record.id]) == 2


# --- the credential never travels in clear text ----------------------------------------------

CELERY = str(Path(sys.executable).parent / "celery")


def test_a_worker_refuses_a_graph_url_in_clear_text_at_start_up(
    simulator: Simulator, seaweed: SeaweedFS, tmp_path: Path
) -> None:
    env = StackEnv.local(
        simulator, seaweed, "redis://127.0.0.1:1/0", BUCKET, graph_url="http://graph.example.com"
    )
    argv = [CELERY, "-A", "worker", "worker", "--pool", "threads", "--concurrency", "1"]
    done = subprocess.run(
        argv, env=env.environ(), cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 2
    assert (
        "worker: configuration error: WHATSAPP_GRAPH_URL is invalid: http:// would send the "
        "credential in clear text"
    ) in done.stderr
    assert env.access_token not in done.stdout + done.stderr


@pytest.fixture(scope="module")
def everywhere() -> Iterator[tuple[Simulator, str]]:
    """A simulator on every interface, and the machine's address that is not loopback."""
    address = other_address()
    simulator = Simulator()
    simulator.start(host="0.0.0.0")  # noqa: S104 - reached through a second address
    with simulator:
        yield simulator, address


def test_the_development_setting_lets_a_simulator_off_loopback_serve_a_worker(
    everywhere: tuple[Simulator, str], seaweed: SeaweedFS, tmp_path: Path
) -> None:
    """What a container test needs: the simulator on another container's address, over plain
    HTTP, allowed by ALLOW_INSECURE_HTTP=true."""
    simulator, address = everywhere
    port = urlsplit(simulator.url).port
    for redis_url in redis_db(6):
        env = StackEnv.local(
            simulator,
            seaweed,
            redis_url,
            BUCKET,
            max_media_bytes=MAX_MEDIA_BYTES,
            graph_url=f"http://{address}:{port}",
            media_hosts=f"{address}:{port}",
            extra=(("ALLOW_INSECURE_HTTP", "true"),),
        )
        logs = tmp_path / "logs"
        web, url = start_web(env, logs)
        worker = start_worker(env, logs, name="insecure", pool="threads", concurrency=1)
        redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            with simulator.client() as control:
                stack = Stack(url, worker, env, control, seaweed.client(), redis)
                item = stack.media("image")
                # The look-up hands out its download URL on the same address.
                control.add_fault(op="lookup", media_id=item.record.id, url_host=address)
                assert stack.post(item).status_code == 200
                stack.wait_archived(item)
                assert stack.verified(item)
                assert [r["op"] for r in control.requests() if r["media_id"] == item.record.id] == [
                    "lookup",
                    "download",
                ]
        finally:
            worker.stop()
            web.stop()
            redis.close()


# --- what reaches S3's headers --------------------------------------------------------------


def head(stack: Stack, key: str) -> dict[str, Any]:
    answer: dict[str, Any] = stack.s3.head_object(Bucket=BUCKET, Key=key)
    return answer


def test_a_webhook_mime_type_s3_would_refuse_is_recorded_and_the_lookups_stored(
    hard: Hardened,
) -> None:
    stack = hard.stack
    record = stack.sim.add_generated_media(size=20_000, seed=7, mime_type="image/jpeg")
    # A control character in a parameter: S3 answers 400 to any write carrying it.
    message = webhooks.media_message(
        "image", record.id, sha256_b64=record.sha256_b64, mime_type="image/jpeg; a=\x01"
    )
    # The webhook's type was unusable: the key ends in .bin, the object's type is the look-up's.
    key = build_key("", PHONE, int(message["timestamp"]), record.id, None)
    item = Sent(record, message, key)
    assert stack.post(item).status_code == 200

    document = stack.wait_archived(item, timeout=60)

    assert stack.verified(item)
    assert document["mime_type"] == "image/jpeg"
    assert document["anomalies"] == ["mime_type_malformed"]
    assert head(stack, key)["ContentType"] == "image/jpeg"
    assert stack.state(record.id)["attempts"] == "1"


@pytest.mark.parametrize(
    "looked_up",
    [
        "image/jpeg; a=\x01",
        "image/jpeg; name=\u00e9",
        "image/jpeg; a=" + "x" * 10_000,
    ],
    ids=["control", "non-ascii", "long"],
)
def test_a_lookup_mime_type_s3_would_refuse_stores_the_object_as_octet_stream(
    hard: Hardened, looked_up: str
) -> None:
    stack = hard.stack
    record = stack.sim.add_generated_media(size=20_000, seed=8, mime_type=looked_up)
    message = webhooks.media_message(
        "image", record.id, sha256_b64=record.sha256_b64, mime_type="image/jpeg"
    )
    del message["image"]["mime_type"]  # the look-up's type stands in for the webhook's
    key = build_key("", PHONE, int(message["timestamp"]), record.id, None)
    item = Sent(record, message, key)
    assert stack.post(item).status_code == 200

    document = stack.wait_archived(item, timeout=60)

    assert stack.verified(item)
    assert document["mime_type"] == "application/octet-stream"
    assert document["anomalies"] == ["mime_type_malformed", "mime_type_missing"]
    assert head(stack, key)["ContentType"] == "application/octet-stream"
    assert head(stack, key)["ContentDisposition"] == "attachment"
    assert stack.state(record.id)["attempts"] == "1"


@pytest.mark.parametrize("mime_type", ["text/html", "image/svg+xml", "application/xhtml+xml"])
def test_a_type_a_browser_would_render_is_stored_as_an_attachment(
    hard: Hardened, mime_type: str
) -> None:
    stack = hard.stack
    item = stack.media("image", mime_type=mime_type)
    assert stack.post(item).status_code == 200

    stack.wait_archived(item, timeout=60)

    answer = head(stack, item.key)
    assert (answer["ContentType"], answer.get("ContentDisposition")) == (mime_type, "attachment")


def test_an_image_is_still_shown_inline(hard: Hardened) -> None:
    stack = hard.stack
    item = stack.media("image")
    assert stack.post(item).status_code == 200
    stack.wait_archived(item, timeout=60)
    answer = head(stack, item.key)
    assert (answer["ContentType"], answer.get("ContentDisposition")) == ("image/jpeg", None)


# --- ids and sizes at ingestion -----------------------------------------------------------


def test_ids_are_checked_at_ingestion_and_the_rest_is_archived(hard: Hardened) -> None:
    stack = hard.stack
    good = stack.media("image", caption="c" * 5000)
    evil_id = stack.media("image")
    evil_id.message["image"]["id"] = "../../x\x1b[2J"
    evil_wamid = stack.media("video")
    evil_wamid.message["id"] = "wamid.\x1b]0;owned\x07"
    assert stack.post(evil_id, good, evil_wamid).status_code == 200

    document = stack.wait_archived(good)

    assert document["caption"] == "c" * 4096
    assert document["anomalies"] == ["caption_truncated"]
    # Listed by `wa-media skipped`, escaped; nothing was recorded under the refused ids.
    result = CliRunner().invoke(cli, ["skipped"], env=stack.env.environ())
    assert result.exit_code == 0, result.output
    assert "image.id is not 1 to 128 of A-Z a-z 0-9 _ . -: '../../x\\x1b[2J'" in result.output
    assert "the message id is not 1 to 256 of" in result.output
    assert all(char.isprintable() or char == "\n" for char in result.output)
    assert stack.redis.zcard("wa:failed") == 0
    assert not stack.redis.keys("wa:media:../*")


# --- many media in one webhook --------------------------------------------------------------


def history_of(items: list[Sent]) -> dict[str, Any]:
    thread = webhooks.history_thread(
        webhooks.DEFAULT_SENDER, [webhooks.history_message(item.message) for item in items]
    )
    return webhooks.history_envelope([webhooks.history_chunk([thread])])


def test_a_webhook_of_more_media_than_a_batch_is_split_and_all_archived(hard: Hardened) -> None:
    stack = hard.stack
    items = [stack.media("image", size=5_000) for _ in range(5)]
    body = webhooks.encode(history_of(items))
    headers = {"X-Hub-Signature-256": webhooks.sign(body, stack.env.app_secret)}
    assert requests.post(f"{stack.web}/webhook", data=body, headers=headers, timeout=10).ok

    for item in items:
        stack.wait_archived(item)
        assert stack.verified(item)
    ids = [item.record.id for item in items]
    [enqueued] = [e for e in hard.events("enqueued", hard.web) if e["media_ids"] == ids]
    # Five media, two per fan-out task: three tasks.
    assert len(enqueued["task_id"].split(",")) == 3


def published(queue: Redis) -> list[dict[str, Any]]:
    """The fan-out tasks waiting on the media queue, decoded from Celery's wire format."""
    batches = []
    for raw in queue.lrange(MEDIA_QUEUE, 0, -1):
        envelope = json.loads(raw)
        assert envelope["headers"]["task"] == FAN_OUT_TASK
        [batch], _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        batches.append(batch)
    return batches


def test_a_history_webhook_of_2500_media_is_recorded_whole_before_its_tasks() -> None:
    """`web` alone (no worker reads this database): every media recorded, none dropped for a
    cap, published as fan-out tasks of at most 100."""
    secret = "history-secret"
    record = webhooks.media_message(
        "image", "0", sha256_b64=base64.b64encode(b"\x01" * 32).decode(), mime_type="image/jpeg"
    )
    messages = []
    for number in range(2500):
        message = webhooks.set_media(record, id=f"h{number}")
        message["id"] = f"wamid.h{number}"
        messages.append(webhooks.history_message(message))
    thread = webhooks.history_thread(webhooks.DEFAULT_SENDER, messages)
    body = webhooks.encode(webhooks.history_envelope([webhooks.history_chunk([thread])]))
    for redis_url in redis_db(6):
        app = create_app(WebSettings(app_secrets=(secret,), verify_token="v", redis_url=redis_url))
        queue = Redis.from_url(redis_url, decode_responses=True)

        answer = app.test_client().post(
            "/webhook",
            data=body,
            headers={"X-Hub-Signature-256": webhooks.sign(body, secret)},
            content_type="application/json",
        )

        assert answer.status_code == 200
        wanted = {f"h{number}" for number in range(2500)}
        assert queue.zcard("wa:pending") == 2500
        # Records are kept per account: `wa:media:{phone_number_id}:{media_id}`.
        account = webhooks.DEFAULT_PHONE_NUMBER_ID
        assert all(
            queue.hget(f"wa:media:{account}:{media_id}", "state") == "queued" for media_id in wanted
        )
        batches = published(queue)
        assert len(batches) == 25
        assert all(len(batch["media"]) == 100 and batch["replies"] == [] for batch in batches)
        ids = [job["media_id"] for batch in batches for job in batch["media"]]
        assert sorted(ids) == sorted(wanted)
        queue.close()


def test_replies_are_split_the_same_way() -> None:
    secret = "replies-secret"
    warnings = [webhooks.too_big_message(wamid=f"wamid.r{number}") for number in range(150)]
    body = webhooks.encode(webhooks.envelope(warnings))
    for redis_url in redis_db(6):
        # Above REPLY_MAX_PER_WEBHOOK's default of 10, so that all 150 are owed.
        settings = WebSettings(
            app_secrets=(secret,), verify_token="v", redis_url=redis_url, reply_max_per_webhook=150
        )
        app = create_app(settings)
        queue = Redis.from_url(redis_url, decode_responses=True)

        answer = app.test_client().post(
            "/webhook",
            data=body,
            headers={"X-Hub-Signature-256": webhooks.sign(body, secret)},
            content_type="application/json",
        )

        assert answer.status_code == 200
        assert queue.zcard("wa:replies:pending") == 150
        batches = published(queue)
        assert sorted(len(batch["replies"]) for batch in batches) == [50, 100]
        wamids = {reply["wamid"] for batch in batches for reply in batch["replies"]}
        assert wamids == {f"wamid.r{number}" for number in range(150)}
        queue.close()
