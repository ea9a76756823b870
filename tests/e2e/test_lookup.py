"""Lookup that outlives Redis, against real processes: media archived by `web` and `worker` for
two accounts of an accounts file, Redis flushed, then found by wamid and by media id through the
index in the bucket, with `wa-media find` and with `web`'s read API (GET /v1/media/...), whose
presigned URLs download the exact bytes; API keys scoped to accounts (another account's media
is a 404 like a missing one), refused without a known key (401), limited per key (429); and
`wa-media reindex` building the index of media archived without it.

The module runs its own Redis (it is flushed here) and its own `web` and `worker`.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from devstack import webhooks
from devstack.processes import Service, free_port, wait_for
from devstack.redis_server import RedisServer
from devstack.seaweed import SeaweedFS
from devstack.stack import StackEnv, start_web, start_worker
from graphsim import MediaRecord, Simulator
from tests.e2e.conftest import BUCKET
from wa_media.cli import main
from wa_media.core.index import wamid_entry_key
from wa_media.core.layout import build_key

pytestmark = pytest.mark.e2e

ALPHA = "100000021"
BETA = "100000022"
PREFIX = "lookup-e2e"
ALPHA_KEY = "alpha-" + secrets.token_urlsafe(24)
BOTH_KEY = "both-" + secrets.token_urlsafe(24)
BURST_KEY = "burst-" + secrets.token_urlsafe(24)
RATE = 20
PRESIGNED_SECONDS = 900


@dataclass(frozen=True)
class Archived:
    number: str
    record: MediaRecord
    wamid: str
    key: str

    @property
    def media_id(self) -> str:
        return self.record.id


@dataclass
class Lookups:
    web: str
    env: StackEnv
    redis: Redis
    s3: Any
    web_log: Service
    metrics_port: int
    media: list[Archived]

    def get(self, ref: str, key: str | None, **params: str) -> requests.Response:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        return requests.get(
            f"{self.web}/v1/media/{ref}",
            headers=headers,
            params=params,
            allow_redirects=False,
            timeout=10,
        )

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=self.env.environ())

    def of(self, number: str) -> list[Archived]:
        return [m for m in self.media if m.number == number]

    def index_keys(self) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=f"{PREFIX}/_index/"
        )
        return sorted(o["Key"] for p in pages for o in p.get("Contents", []))


def _accounts_file(path: Path, sim: Simulator) -> Path:
    def cloud() -> dict[str, Any]:
        return {
            "provider": "cloud",
            "token_env": "WHATSAPP_ACCESS_TOKEN",
            "url": sim.url,
            "media_hosts": [sim.media_host],
        }

    document = {
        "apps": {"acme": {"secret_env": "WHATSAPP_APP_SECRET"}},
        "accounts": {ALPHA: cloud(), BETA: cloud()},
        "api_keys": {
            "alpha": {"key_env": "ALPHA_LOOKUP_KEY", "accounts": [ALPHA]},
            "both": {"key": BOTH_KEY, "accounts": [ALPHA, BETA]},
            "burst": {"key": BURST_KEY, "accounts": [ALPHA]},
        },
    }
    path.write_text(json.dumps(document, indent=2))
    path.chmod(0o600)
    return path


def _archive(
    env: StackEnv, web: str, simulator: Simulator, s3: Any, number: str, kind: str, mime: str
) -> Archived:
    sim = simulator.client()
    try:
        record = sim.add_generated_media(size=30_000, seed=secrets.randbits(32), mime_type=mime)
    finally:
        sim.close()
    message = webhooks.media_message(kind, record.id, sha256_b64=record.sha256_b64, mime_type=mime)
    body, headers = webhooks.signed(
        webhooks.envelope([message], phone_number_id=number), env.app_secret
    )
    assert requests.post(f"{web}/webhook", data=body, headers=headers, timeout=30).ok
    key = build_key(PREFIX, number, int(message["timestamp"]), record.id, mime)
    return Archived(number, record, message["id"], key)


def _sidecar(s3: Any, key: str) -> dict[str, Any] | None:
    try:
        document: dict[str, Any] = json.loads(
            s3.get_object(Bucket=BUCKET, Key=key + ".json")["Body"].read()
        )
    except s3.exceptions.NoSuchKey:
        return None
    return document


@pytest.fixture(scope="module")
def lookups(simulator: Simulator, seaweed: SeaweedFS, s3: Any, run_dir: Path) -> Iterator[Lookups]:
    log_dir = run_dir / "logs-lookup"
    redis_server = RedisServer(run_dir / "lookup-redis", persistent=False).start()
    services: list[Service] = []
    try:
        env = StackEnv.local(
            simulator,
            seaweed,
            redis_server.url,
            BUCKET,
            s3_prefix=PREFIX,
            extra=(
                ("WHATSAPP_ACCOUNTS_FILE", str(_accounts_file(run_dir / "lookup.json", simulator))),
                ("ALPHA_LOOKUP_KEY", ALPHA_KEY),
                ("LOOKUP_RATE_LIMIT", str(RATE)),
                ("PRESIGNED_URL_SECONDS", str(PRESIGNED_SECONDS)),
            ),
        )
        metrics_port = free_port()
        web_service, url = start_web(env, log_dir, metrics_port=metrics_port)
        services.append(web_service)
        services.append(start_worker(env, log_dir, name="lookup"))
        media = [
            _archive(env, url, simulator, s3, ALPHA, "image", "image/jpeg"),
            _archive(env, url, simulator, s3, ALPHA, "document", "application/pdf"),
            _archive(env, url, simulator, s3, BETA, "image", "image/jpeg"),
        ]
        for item in media:
            key = item.key
            wait_for(lambda key=key: _sidecar(s3, key), timeout=60, what=f"{key} archived")
        redis = Redis.from_url(redis_server.url, decode_responses=True)
        # Redis forgets everything: the bucket alone must find the media from now on.
        redis.flushdb()
        yield Lookups(url, env, redis, s3, web_service, metrics_port, media)
    finally:
        for service in reversed(services):
            service.stop()
        redis_server.stop()
        # Leave the shared bucket as other modules expect it: no index of media they did not
        # archive under this prefix is left behind for their listings.
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/")
        for page in pages:
            for item in page.get("Contents", []):
                s3.delete_object(Bucket=BUCKET, Key=item["Key"])


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- The index in the bucket ------------------------------------------------------------------


def test_each_media_is_indexed_by_wamid_and_media_id_and_no_entry_is_a_sidecar(
    lookups: Lookups,
) -> None:
    expected = sorted(
        key
        for m in lookups.media
        for key in (wamid_entry_key(PREFIX, m.wamid), f"{PREFIX}/_index/by-media-id/{m.media_id}")
    )
    assert lookups.index_keys() == expected
    entry = json.loads(
        lookups.s3.get_object(
            Bucket=BUCKET, Key=f"{PREFIX}/_index/by-media-id/{lookups.media[0].media_id}"
        )["Body"].read()
    )
    assert entry["key"] == lookups.media[0].key
    assert entry["sidecar_key"] == lookups.media[0].key + ".json"
    assert (entry["phone_number_id"], entry["wamid"]) == (ALPHA, lookups.media[0].wamid)
    # `wa-media verify` lists the sidecars: the index entries beside them are not taken for any.
    verified = lookups.cli("verify", "--bucket", BUCKET, "--prefix", PREFIX)
    assert verified.exit_code == 0, verified.output
    assert f"{len(lookups.media)} objects checked against their sidecars: " in verified.stdout


# -- wa-media find ----------------------------------------------------------------------------


def test_find_prints_the_object_and_sidecar_by_wamid_after_redis_was_flushed(
    lookups: Lookups,
) -> None:
    item = lookups.media[1]
    assert not lookups.redis.keys("wa:media:*")
    result = lookups.cli("find", item.wamid)
    assert result.exit_code == 0, result.output
    assert f"object   s3://{BUCKET}/{item.key}\n" in result.stdout
    assert f"sidecar  s3://{BUCKET}/{item.key}.json\n" in result.stdout
    assert f"account  {ALPHA}\n" in result.stdout
    assert f"sha256   {item.record.sha256}\n" in result.stdout
    assert "url" not in result.stdout


def test_find_by_media_id_with_a_presigned_url_that_downloads_the_exact_bytes(
    lookups: Lookups,
) -> None:
    for item in lookups.media:
        result = lookups.cli("find", item.media_id, "--presign", "--json")
        assert result.exit_code == 0, result.output
        found = json.loads(result.stdout)
        assert found["entry"]["key"] == item.key
        assert found["sidecar"]["sha256"] == item.record.sha256
        download = requests.get(found["url"], timeout=30)
        assert download.status_code == 200
        assert _sha256(download.content) == item.record.sha256
        assert found["expires_at"].endswith("Z")


def test_find_of_an_unknown_reference_exits_1(lookups: Lookups) -> None:
    result = lookups.cli("find", "wamid.never-archived")
    assert result.exit_code == 1
    assert "not found: wamid.never-archived" in result.stderr


# -- The read API -------------------------------------------------------------------------------


def test_the_api_answers_the_sidecar_and_a_url_by_wamid_and_by_media_id(lookups: Lookups) -> None:
    for item in lookups.media:
        for ref in (item.wamid, item.media_id):
            answer = lookups.get(ref, BOTH_KEY)
            assert answer.status_code == 200, answer.text
            assert answer.headers["Cache-Control"] == "no-store"
            body = answer.json()
            assert set(body) == {"sidecar", "url", "expires_at"}
            assert body["sidecar"]["key"] == item.key
            assert body["sidecar"]["wamid"] == item.wamid
            assert body["sidecar"]["phone_number_id"] == item.number
            expires = time.mktime(time.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%SZ"))
            assert abs(expires - time.mktime(time.gmtime()) - PRESIGNED_SECONDS) < 60
            download = requests.get(body["url"], timeout=30)
            assert _sha256(download.content) == item.record.sha256


def test_redirect_1_answers_302_to_the_presigned_url(lookups: Lookups) -> None:
    item = lookups.media[2]
    answer = lookups.get(item.media_id, BOTH_KEY, redirect="1")
    assert answer.status_code == 302
    assert answer.headers["Cache-Control"] == "no-store"
    download = requests.get(answer.headers["Location"], timeout=30)
    assert _sha256(download.content) == item.record.sha256


def test_a_key_of_one_account_gets_404_for_another_s_media_as_for_a_missing_one(
    lookups: Lookups,
) -> None:
    missing = lookups.get("wamid.never-archived", ALPHA_KEY)
    assert missing.status_code == 404
    for item in lookups.of(BETA):
        for ref in (item.wamid, item.media_id):
            refused = lookups.get(ref, ALPHA_KEY)
            assert refused.status_code == 404
            assert refused.content == missing.content
            assert refused.headers.get("Content-Type") == missing.headers.get("Content-Type")
            # The key for both accounts reads it.
            assert lookups.get(ref, BOTH_KEY).status_code == 200
    for item in lookups.of(ALPHA):
        assert lookups.get(item.wamid, ALPHA_KEY).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-key-0123456789abcdef",
        f"Basic {ALPHA_KEY}",
        f"Bearer {ALPHA_KEY}x",
        "Bearer",
    ],
    ids=["none", "unknown", "basic", "longer", "empty"],
)
def test_without_a_known_key_the_answer_is_401(lookups: Lookups, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = requests.get(
        f"{lookups.web}/v1/media/{lookups.media[0].wamid}", headers=headers, timeout=10
    )
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert "sidecar" not in answer.text


def test_a_key_past_its_rate_is_answered_429_with_retry_after(lookups: Lookups) -> None:
    ref = lookups.media[0].media_id
    answers: list[requests.Response] = []
    with requests.Session() as session:
        while not any(a.status_code == 429 for a in answers):
            assert len(answers) < 20 * RATE, [a.status_code for a in answers]
            answers.append(
                session.get(
                    f"{lookups.web}/v1/media/{ref}",
                    headers={"Authorization": f"Bearer {BURST_KEY}"},
                    timeout=10,
                )
            )
    limited = answers[-1]
    assert limited.headers["Retry-After"] == "1"
    assert sum(a.status_code == 200 for a in answers) >= RATE
    # Another key is not held to this one's rate.
    assert lookups.get(ref, ALPHA_KEY).status_code == 200
    # Counted through Redis, by the key's fingerprint, never the key.
    assert lookups.redis.keys("wa:lookup-rate:*")
    assert not [k for k in lookups.redis.keys("*") if BURST_KEY in k]
    # The next second admits it again.
    wait_for(lambda: lookups.get(ref, BURST_KEY).status_code == 200, timeout=5, what="a new window")


def test_the_api_is_counted_and_its_log_lines_never_carry_a_key(lookups: Lookups) -> None:
    text = requests.get(f"http://127.0.0.1:{lookups.metrics_port}/metrics", timeout=10).text
    counted = {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "wa_lookup_requests_total"
    }
    for status in ("200", "302", "401", "404", "429"):
        assert counted.get(status, 0) > 0, counted
    assert "wa_lookup_request_seconds_bucket" in text
    log = lookups.web_log.log_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    lookups_logged = [line for line in lines if line.get("event") == "lookup"]
    assert {line["status"] for line in lookups_logged} >= {200, 302, 401, 404, 429}
    assert {line.get("api_key") for line in lookups_logged} >= {"alpha", "both", "burst", None}
    for secret in (ALPHA_KEY, BOTH_KEY, BURST_KEY):
        assert secret not in log


def test_without_a_key_configured_the_api_is_off(web: str) -> None:
    """The session's `web` has no key: its read API does not exist."""
    answer = requests.get(
        f"{web}/v1/media/wamid.x", headers={"Authorization": f"Bearer {ALPHA_KEY}"}, timeout=10
    )
    assert answer.status_code == 404


# -- wa-media reindex -------------------------------------------------------------------------


def test_reindex_builds_the_index_of_media_archived_without_it(lookups: Lookups) -> None:
    """As media of an earlier release: objects and sidecars, no index."""
    for key in lookups.index_keys():
        lookups.s3.delete_object(Bucket=BUCKET, Key=key)
    item = lookups.media[0]
    assert lookups.cli("find", item.wamid).exit_code == 1
    assert lookups.cli("find", item.media_id).exit_code == 1

    first = lookups.cli("reindex")
    assert first.exit_code == 0, first.output
    count = len(lookups.media)
    summary = re.search(
        r"(\d+) sidecars read: (\d+) entries written, (\d+) already there", first.stdout
    )
    assert summary is not None, first.stdout
    assert summary.groups() == (str(count), str(2 * count), "0")

    for item in lookups.media:
        found = lookups.cli("find", item.wamid, "--json")
        assert found.exit_code == 0, found.output
        assert json.loads(found.stdout)["entry"]["key"] == item.key
        # (web may answer from its memory of media it found: docs/consuming.md.)
        answer = lookups.get(item.media_id, BOTH_KEY)
        assert answer.status_code == 200
        assert _sha256(requests.get(answer.json()["url"], timeout=30).content) == item.record.sha256

    again = lookups.cli("reindex")
    assert again.exit_code == 0, again.output
    assert f"{count} sidecars read: 0 entries written, {2 * count} already there" in again.stdout
