"""The whole path once per provider, from one deployment serving three accounts of a file.

Cloud API (signed `/webhook`), 360dialog and On-Premises (`/webhook/<token>`), each archiving
real media from the simulator's dialect into SeaweedFS, and each sending its 131052 warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
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
from tests.conftest import redis_db
from tests.e2e.conftest import BUCKET, REPLY_TEXT, task_counts, wait_tasks
from wa_media.core.layout import build_key

CLOUD_NUMBER = webhooks.DEFAULT_PHONE_NUMBER_ID
D360_NUMBER = "222000111"
ONPREM_NUMBER = "15550001111"
UNKNOWN_NUMBER = "999000999"
AGENCY_BUCKET = "wa-agency"
WA_MEDIA = str(Path(sys.executable).parent / "wa-media")
D360_PREFIX = "clients/d360"


@dataclass
class Deployment:
    web: str
    env: StackEnv
    redis: Redis
    s3: Any
    d360_token: str
    onprem_token: str
    log_dir: Path
    d360_key: str
    worker: Service

    def post_signed(self, payload: dict[str, Any]) -> requests.Response:
        body, headers = webhooks.signed(payload, self.env.app_secret)
        return requests.post(f"{self.web}/webhook", data=body, headers=headers, timeout=10)

    def post_token(self, token: str, payload: dict[str, Any]) -> requests.Response:
        return requests.post(
            f"{self.web}/webhook/{token}",
            data=webhooks.encode(payload),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )

    def sidecar(self, bucket: str, key: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key + ".json")["Body"].read()
        except ClientError:
            return None
        document: dict[str, Any] = json.loads(body)
        return document

    def wait_sidecar(self, bucket: str, key: str) -> dict[str, Any]:
        return wait_for(lambda: self.sidecar(bucket, key), timeout=60, what=key)

    def object_bytes(self, bucket: str, key: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def web_log(self) -> str:
        return "".join(p.read_text() for p in self.log_dir.glob("web-*.log"))


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
                "bucket": AGENCY_BUCKET,
                "prefix": D360_PREFIX,
                "delete_after_archive": True,
            },
            ONPREM_NUMBER: {
                "provider": "onprem",
                "token_env": "ONPREM_TOKEN",
                "url": sim.onprem_url,
                "webhook_token_env": "ONPREM_WEBHOOK_TOKEN",
            },
        },
    }
    path.write_text(json.dumps(document, indent=2))
    return path


@pytest.fixture(scope="module")
def deployment(
    simulator: Simulator, seaweed: SeaweedFS, s3: Any, run_dir: Path
) -> Iterator[Deployment]:
    log_dir = run_dir / "logs-providers"
    try:
        s3.create_bucket(Bucket=AGENCY_BUCKET)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    d360_token = secrets.token_urlsafe(24)
    onprem_token = secrets.token_urlsafe(24)
    accounts = _accounts_file(run_dir / "accounts.json", simulator, d360_token)
    for redis_url in redis_db(12):
        env = StackEnv.local(
            simulator,
            seaweed,
            redis_url,
            BUCKET,
            reply_text=REPLY_TEXT,
            extra=(
                ("WHATSAPP_ACCOUNTS_FILE", str(accounts)),
                ("ONPREM_TOKEN", simulator.onprem_tokens[0]),
                ("ONPREM_WEBHOOK_TOKEN", onprem_token),
            ),
        )
        web_service, url = start_web(env, log_dir)
        services: list[Service] = [web_service]
        try:
            worker = start_worker(env, log_dir, name="providers", concurrency=2)
            services.append(worker)
            yield Deployment(
                url,
                env,
                Redis.from_url(redis_url, decode_responses=True),
                s3,
                d360_token,
                onprem_token,
                log_dir,
                simulator.d360_keys[0],
                worker,
            )
        finally:
            for service in reversed(services):
                service.stop()


@pytest.fixture
def sim(simulator: Simulator) -> Iterator[SimulatorClient]:
    client = simulator.client()
    client.reset()
    yield client
    client.reset()
    client.close()


def _generated(sim: SimulatorClient, mime_type: str, media_id: str | None = None) -> Any:
    return sim.add_generated_media(
        size=30_000, seed=secrets.randbits(32), mime_type=mime_type, media_id=media_id
    )


def test_cloud_account_archives_through_the_graph_api(
    deployment: Deployment, sim: SimulatorClient
) -> None:
    record = _generated(sim, "image/jpeg")
    message = webhooks.media_message(
        "image", record.id, sha256_b64=record.sha256_b64, mime_type="image/jpeg"
    )
    assert deployment.post_signed(webhooks.envelope([message])).status_code == 200

    key = build_key("", CLOUD_NUMBER, int(message["timestamp"]), record.id, "image/jpeg")
    document = deployment.wait_sidecar(BUCKET, key)
    assert document["sha256"] == record.sha256
    assert {r["provider"] for r in sim.requests() if r["media_id"] == record.id} == {"cloud"}


def test_360dialog_account_archives_into_its_own_bucket_and_deletes_the_original(
    deployment: Deployment, sim: SimulatorClient, simulator: Simulator
) -> None:
    record = _generated(sim, "application/pdf")
    message = webhooks.media_message(
        "document",
        record.id,
        sha256_b64=record.sha256_b64,
        mime_type="application/pdf",
        filename="invoice.pdf",
    )
    payload = webhooks.envelope([message], phone_number_id=D360_NUMBER)
    assert deployment.post_token(deployment.d360_token, payload).status_code == 200

    key = build_key(
        D360_PREFIX, D360_NUMBER, int(message["timestamp"]), record.id, record.mime_type
    )
    document = deployment.wait_sidecar(AGENCY_BUCKET, key)
    assert document["bucket"] == AGENCY_BUCKET
    data = deployment.object_bytes(AGENCY_BUCKET, key)
    assert len(data) == record.file_size

    ops = [(r["op"], r["provider"]) for r in sim.requests() if r["media_id"] == record.id]
    assert ("lookup", "360dialog") in ops
    assert ("download", "360dialog") in ops
    # Deleted from the provider once its archive copy was verified.
    wait_for(
        lambda: (
            ("delete", "360dialog")
            in [(r["op"], r["provider"]) for r in sim.requests() if r["media_id"] == record.id]
        ),
        timeout=30,
        what="delete after archive",
    )
    looked_up = requests.get(
        f"{simulator.d360_url}/{record.id}",
        headers={"D360-API-KEY": simulator.d360_keys[0]},
        timeout=10,
    )
    assert looked_up.status_code == 404


def test_onprem_account_archives_bytes_from_v1_media(
    deployment: Deployment, sim: SimulatorClient
) -> None:
    voice = _generated(sim, "audio/ogg; codecs=opus", media_id=str(uuid.uuid4()))
    message = webhooks.onprem_media_message(
        "voice", voice.id, sha256_hex=voice.sha256, mime_type="audio/ogg; codecs=opus"
    )
    payload = webhooks.onprem_envelope([message])
    assert deployment.post_token(deployment.onprem_token, payload).status_code == 200

    key = build_key("", ONPREM_NUMBER, int(message["timestamp"]), voice.id, "audio/ogg")
    document = deployment.wait_sidecar(BUCKET, key)
    assert (document["type"], document["voice"]) == ("audio", True)
    assert document["phone_number_id"] == ONPREM_NUMBER
    assert document["sha256"] == voice.sha256
    ops = {(r["op"], r["provider"]) for r in sim.requests() if r["media_id"] == voice.id}
    assert ops == {("download", "onprem")}
    # Off by default: the On-Premises copy stays.
    assert sim.stats()["downloads"][voice.id] == 1


def test_each_provider_sends_its_131052_warning_once(
    deployment: Deployment, sim: SimulatorClient
) -> None:
    senders = {"cloud": "16505550001", "360dialog": "16505550002", "onprem": "16505550003"}
    cloud = webhooks.too_big_message(sender=senders["cloud"])
    d360 = webhooks.too_big_message(sender=senders["360dialog"])
    onprem = webhooks.too_big_message(sender=senders["onprem"], wamid=webhooks.new_onprem_id())
    before = task_counts(deployment.worker)
    for _ in range(2):  # delivered twice, answered once
        assert deployment.post_signed(webhooks.envelope([cloud])).status_code == 200
        d360_payload = webhooks.envelope([d360], phone_number_id=D360_NUMBER)
        assert deployment.post_token(deployment.d360_token, d360_payload).status_code == 200
        onprem_payload = webhooks.onprem_envelope([onprem])
        assert deployment.post_token(deployment.onprem_token, onprem_payload).status_code == 200

    def all_sent() -> list[dict[str, Any]] | None:
        sent = sim.sent_messages()
        return sent if len(sent) >= 3 else None

    sent = wait_for(all_sent, timeout=60, what="three warnings")
    by_provider = {m["provider"]: m for m in sent}
    assert {p: m["to"] for p, m in by_provider.items()} == senders
    assert all(m["body"] == REPLY_TEXT for m in sent)
    assert by_provider["cloud"]["phone_number_id"] == CLOUD_NUMBER
    # The second copies' reply tasks have ended, skipped as duplicates; a copy that came while
    # its first was sending met the claim and looked again a minute later.
    more = {("reply", "sent"): 3, ("reply", "duplicate"): 3}
    wait_tasks(deployment.worker, before, more, timeout=150)
    assert len(sim.sent_messages()) == 3


def test_unknown_token_is_404_and_never_parses_the_body(deployment: Deployment) -> None:
    answer = deployment.post_token(secrets.token_urlsafe(24), {"not": "even whatsapp"})
    assert answer.status_code == 404
    # The Cloud route's token is not a path token.
    assert deployment.post_token(deployment.env.app_secret, {}).status_code == 404


def test_payload_for_a_number_no_account_serves_is_acknowledged_and_dropped(
    deployment: Deployment, sim: SimulatorClient
) -> None:
    record = _generated(sim, "image/png")
    message = webhooks.media_message(
        "image", record.id, sha256_b64=record.sha256_b64, mime_type="image/png"
    )
    signed = webhooks.envelope([message], phone_number_id=UNKNOWN_NUMBER)
    assert deployment.post_signed(signed).status_code == 200
    # A 360dialog token only speaks for its own number.
    other = webhooks.envelope([message], phone_number_id=CLOUD_NUMBER)
    assert deployment.post_token(deployment.d360_token, other).status_code == 200

    wait_for(
        lambda: (
            deployment.web_log().count(f"phone_number_id {UNKNOWN_NUMBER}") >= 1
            and deployment.web_log().count(f"phone_number_id {CLOUD_NUMBER}") >= 1
        ),
        timeout=10,
        what="unknown_account warnings",
    )
    assert list(deployment.redis.scan_iter(f"wa:media:*{record.id}")) == []
    assert sim.stats()["lookups"].get(record.id) is None


def test_onprem_payload_that_is_not_onprem_is_400(deployment: Deployment) -> None:
    answer = deployment.post_token(deployment.onprem_token, {"messages": "nope"})
    assert answer.status_code == 400


@pytest.mark.parametrize("number", [CLOUD_NUMBER, D360_NUMBER])
def test_wa_media_resumable_upload_completes_after_an_interruption(
    deployment: Deployment, sim: SimulatorClient, tmp_path: Path, number: str
) -> None:
    clip = tmp_path / f"clip-{number}.mp4"
    clip.write_bytes(os.urandom(600_000))
    sim.add_fault(op="upload", media_id=clip.name, interrupt_after=250_000)
    command = [WA_MEDIA, "upload", "--resumable", str(clip), "--phone-number-id", number]
    done = subprocess.run(
        command, env=deployment.env.environ(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    [session] = sim.upload_sessions()
    assert session["complete"] is True
    assert done.stdout.strip() == session["handle"]
    assert session["sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()
    statuses = [r["status"] for r in sim.requests() if r["op"] == "upload"]
    assert statuses == [None, 200]  # broken off once, then resumed to the end


def test_no_credential_or_webhook_token_reaches_the_logs(deployment: Deployment) -> None:
    secrets_in_play = {
        "webhook token (360dialog)": deployment.d360_token,
        "webhook token (On-Premises)": deployment.onprem_token,
        "app secret": deployment.env.app_secret,
        "On-Premises token": deployment.env.environ()["ONPREM_TOKEN"],
        "360dialog API key": deployment.d360_key,
    }
    logs = {p.name: p.read_text() for p in deployment.log_dir.glob("*.log")}
    assert logs, "no logs to search"
    for name, text in logs.items():
        for what, value in secrets_in_play.items():
            assert value not in text, f"{what} found in {name}"


def test_a_failed_delete_after_archive_keeps_the_archive_and_is_logged(
    deployment: Deployment, sim: SimulatorClient
) -> None:
    record = _generated(sim, "image/jpeg")
    sim.add_fault(op="delete", media_id=record.id, status=500, times=5)
    message = webhooks.media_message(
        "image", record.id, sha256_b64=record.sha256_b64, mime_type="image/jpeg"
    )
    payload = webhooks.envelope([message], phone_number_id=D360_NUMBER)
    assert deployment.post_token(deployment.d360_token, payload).status_code == 200

    key = build_key(D360_PREFIX, D360_NUMBER, int(message["timestamp"]), record.id, "image/jpeg")
    deployment.wait_sidecar(AGENCY_BUCKET, key)

    def logged() -> bool:
        text = "".join(p.read_text() for p in deployment.log_dir.glob("worker-*.log"))
        return "media_delete_failed" in text and record.id in text

    wait_for(logged, timeout=30, what="media_delete_failed")
    assert deployment.redis.hget(f"wa:media:{D360_NUMBER}:{record.id}", "state") == "archived"
    deletes = [r["status"] for r in sim.requests() if r["op"] == "delete"]
    assert deletes == [500]  # tried once, not retried
