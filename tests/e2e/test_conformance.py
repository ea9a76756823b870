"""The conformance corpus end to end: every row's webhooks through a real `web`, worker,
simulator and SeaweedFS (tests/conformance/corpus.py holds the rows).

One deployment serves a Cloud API number (signed `/webhook`) and a 360dialog number
(`/webhook/<token>`). For each row: every webhook is answered 200; every media ends as a
verified object whose sidecar says its direction, source, customer, original message and
anomalies, or as an edit record beside the object it edits; every 131052 gets exactly one
warning at the simulator, by phone number or by BSUID (`recipient`); the skipped media are
listed for `wa-media skipped`; and nothing else is archived.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from redis import Redis

from devstack import webhooks
from devstack.processes import Service, wait_for
from devstack.seaweed import SeaweedFS
from devstack.stack import StackEnv, start_web, start_worker
from graphsim import Simulator, SimulatorClient
from tests.conformance.corpus import (
    CLOUD_NUMBER,
    D360_NUMBER,
    NUMBERS,
    VARIANTS,
    Blob,
    Delivery,
    Job,
    Maker,
    Parsed,
    Variant,
    check_parsed,
)
from tests.conftest import redis_db
from tests.e2e.conftest import BUCKET, MAX_MEDIA_BYTES, REPLY_TEXT
from wa_media.core.jobs import Customer, MediaJob
from wa_media.core.layout import build_key, edit_record_key
from wa_media.stores.records import SkippedLog

pytestmark = pytest.mark.e2e

SETTLE_SECONDS = 1.0


@dataclass
class Deployment:
    web: str
    env: StackEnv
    redis: Redis
    s3: Any
    d360_token: str

    def post(self, delivery: Delivery) -> requests.Response:
        if delivery.route == "signed":
            body, headers = webhooks.signed(delivery.payload, self.env.app_secret)
            url = f"{self.web}/webhook"
        else:
            body = webhooks.encode(delivery.payload)
            headers = {"Content-Type": "application/json"}
            url = f"{self.web}/webhook/{self.d360_token}"
        return requests.post(url, data=body, headers=headers, timeout=30)

    def json_object(self, key: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except ClientError:
            return None
        document: dict[str, Any] = json.loads(body)
        return document

    def wait_json(self, key: str) -> dict[str, Any]:
        return wait_for(lambda: self.json_object(key), timeout=60, what=key)

    def object_bytes(self, key: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return body


def _accounts_file(path: Path, sim: Simulator, d360_token: str) -> Path:
    document = {
        "apps": {"main": {"secret_env": "WHATSAPP_APP_SECRET", "app_id": "1234567890"}},
        "accounts": {
            CLOUD_NUMBER: {
                "provider": "cloud",
                "token_env": "WHATSAPP_ACCESS_TOKEN",
                "url": sim.url,
                "media_hosts": [sim.media_host],
                "app": "main",
            },
            D360_NUMBER: {
                "provider": "360dialog",
                "token": sim.d360_keys[0],
                "url": sim.d360_url,
                "webhook_token": d360_token,
            },
        },
    }
    path.write_text(json.dumps(document, indent=2))
    return path


@pytest.fixture(scope="module")
def deployment(
    simulator: Simulator, seaweed: SeaweedFS, s3: Any, run_dir: Path
) -> Iterator[Deployment]:
    log_dir = run_dir / "logs-conformance"
    d360_token = secrets.token_urlsafe(24)
    accounts = _accounts_file(run_dir / "accounts-conformance.json", simulator, d360_token)
    for redis_url in redis_db(15):
        env = StackEnv.local(
            simulator,
            seaweed,
            redis_url,
            BUCKET,
            max_media_bytes=MAX_MEDIA_BYTES,
            reply_text=REPLY_TEXT,
            # Rows warn the same customers one after another: one second between warnings to
            # a customer instead of an hour.
            extra=(
                ("WHATSAPP_ACCOUNTS_FILE", str(accounts)),
                ("REPLY_RECIPIENT_INTERVAL", "1"),
            ),
        )
        web_service, url = start_web(env, log_dir)
        services: list[Service] = [web_service]
        try:
            services.append(start_worker(env, log_dir, name="conformance", concurrency=2))
            redis = Redis.from_url(redis_url, decode_responses=True)
            yield Deployment(url, env, redis, s3, d360_token)
        finally:
            for service in reversed(services):
                service.stop()


class SimMaker(Maker):
    """A row's media, registered in the simulator; the URL a webhook carries is one the
    simulator handed out."""

    def __init__(self, sim: SimulatorClient, simulator: Simulator, now: int) -> None:
        super().__init__(now)
        self._sim = sim
        self._simulator = simulator

    def new_blob(self, kind: str, mime_type: str) -> Blob:
        record = self._sim.add_generated_media(
            size=4_000 + secrets.randbelow(20_000), seed=secrets.randbits(32), mime_type=mime_type
        )
        looked_up = requests.get(
            f"{self._simulator.graph_url}/{record.id}",
            headers={"Authorization": f"Bearer {self._simulator.token}"},
            timeout=10,
        )
        looked_up.raise_for_status()
        return Blob(record.id, kind, record.mime_type, record.sha256, looked_up.json()["url"])


def _customer(customer: Customer | None) -> dict[str, str | None]:
    known = customer or Customer()
    return {
        "phone": known.phone,
        "user_id": known.user_id,
        "parent_user_id": known.parent_user_id,
        "username": known.username,
    }


def _check_object(
    deployment: Deployment,
    maker: Maker,
    job: MediaJob,
    expected: Job,
    key: str,
    started: float,
) -> None:
    sidecar = deployment.wait_json(key + ".json")
    blob = maker.blobs[job.media_id]
    data = deployment.object_bytes(key)
    assert hashlib.sha256(data).hexdigest() == blob.sha256_hex
    assert (sidecar["sha256"], sidecar["size"]) == (blob.sha256_hex, len(data))
    assert (sidecar["media_id"], sidecar["wamid"], sidecar["key"]) == (job.media_id, job.wamid, key)
    assert (sidecar["type"], sidecar["mime_type"]) == (expected.kind, blob.mime_type)
    assert (sidecar["direction"], sidecar["source"]) == (expected.direction, expected.source)
    assert sidecar["customer"] == _customer(expected.customer)
    edited = maker.wamid(expected.edit_of) if expected.edit_of else None
    assert sidecar["original_message_id"] == edited
    assert sidecar["anomalies"] == sorted(expected.anomalies)
    # A webhook's URL saves the look-up on the first try.
    assert sidecar["url_source"] == ("webhook" if expected.url else "lookup")
    assert (sidecar["caption"], sidecar["voice"], sidecar["animated"]) == (
        expected.caption,
        expected.voice,
        expected.animated,
    )
    assert (sidecar["from"], sidecar["timestamp"]) == (job.sender, job.timestamp)
    assert sidecar["phone_number_id"] == job.phone_number_id
    assert started - 1 <= sidecar["received_at"] <= time.time()
    head = deployment.s3.head_object(Bucket=BUCKET, Key=key)["Metadata"]
    assert head["direction"] == expected.direction
    assert head.get("user-id") == (expected.customer.user_id if expected.customer else None)


def _check_edit_record(
    deployment: Deployment, maker: Maker, job: MediaJob, expected: Job, object_key: str
) -> None:
    record = deployment.wait_json(edit_record_key(object_key, job.wamid))
    assert record["kind"] == "edit"
    assert (record["media_id"], record["key"]) == (job.media_id, object_key)
    assert record["wamid"] == job.wamid
    assert record["original_message_id"] == maker.wamid(expected.edit_of or "")
    assert record["caption"] == expected.caption
    assert record["customer"] == _customer(expected.customer)
    # The object itself still says what the original message said.
    sidecar = deployment.json_object(object_key + ".json") or {}
    assert sidecar["wamid"] == maker.wamid(expected.edit_of or "")
    assert sidecar["original_message_id"] is None


def _deliver(
    deployment: Deployment,
    maker: Maker,
    variant: Variant,
    deliveries: Sequence[Delivery],
    parsed: Parsed,
    started: float,
) -> None:
    """Post each webhook, and see its media archived before the next is posted (an edit
    follows the message it edits)."""
    keys: dict[str, str] = {}
    for index, delivery in enumerate(deliveries):
        answer = deployment.post(delivery)
        assert answer.status_code == 200, answer.text
        for job, expected, at in zip(parsed.media, variant.jobs, parsed.at, strict=True):
            if at != index:
                continue
            if expected.outcome == "edit_record":
                _check_edit_record(deployment, maker, job, expected, keys[job.media_id])
                continue
            key = build_key("", job.phone_number_id, job.timestamp, job.media_id, job.mime_type)
            keys.setdefault(job.media_id, key)
            _check_object(deployment, maker, job, expected, key, started)


def _sent_since(sim: SimulatorClient, started: float) -> list[dict[str, Any]]:
    return [m for m in sim.sent_messages() if m["received_at"] >= started]


def _check_replies(
    sim: SimulatorClient, variant: Variant, deliveries: Sequence[Delivery], started: float
) -> None:
    owed = len(variant.replies)
    if owed:
        wait_for(
            lambda: len(_sent_since(sim, started)) >= owed, timeout=60, what=f"{owed} warnings"
        )
    time.sleep(SETTLE_SECONDS)  # a second warning for one wamid would come as fast as the first
    sent = _sent_since(sim, started)
    assert sorted((m["to"] or "", m["recipient"] or "") for m in sent) == sorted(
        (r.to or "", r.recipient or "") for r in variant.replies
    )
    numbers = {NUMBERS[d.route] for d in deliveries}
    for message in sent:
        assert message["body"] == REPLY_TEXT
        payload = message["payload"]
        # A BSUID goes in Meta's `recipient` field, a phone number in `to`; never both.
        assert ("to" in payload) != ("recipient" in payload)
        if message["provider"] == "cloud":
            assert message["phone_number_id"] in numbers


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_row_end_to_end(
    variant: Variant,
    deployment: Deployment,
    sim: SimulatorClient,
    simulator: Simulator,
) -> None:
    maker = SimMaker(sim, simulator, int(time.time()))
    deliveries = variant.build(maker)
    # The parse `web` will make, checked against the row; the keys follow from its jobs.
    parsed = check_parsed(variant, maker, deliveries)
    started = time.time()

    _deliver(deployment, maker, variant, deliveries, parsed, started)
    _check_replies(sim, variant, deliveries, started)

    listed = {
        (entry["wamid"], entry["reason"])
        for entry in SkippedLog(deployment.redis).newest(limit=20_000)
    }
    assert set(parsed.listed) <= listed
    archived = {job.media_id for job in parsed.media}
    for media_id in maker.blobs.keys() - archived:
        assert list(deployment.redis.scan_iter(f"wa:media:*{media_id}")) == [], media_id
    for job in parsed.media:
        key = f"wa:media:{job.phone_number_id}:{job.media_id}"
        assert deployment.redis.hget(key, "state") == "archived"
