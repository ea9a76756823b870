"""Relay and archive events against real processes: `web`, a worker and beat of the Procfile,
a private Redis with AOF, and local downstream servers (devstack/downstream.py) that answer 200,
500, 429 with Retry-After, hang, and come back.

Every webhook reaches every destination of its account exactly as received (at least once;
duplicates are counted and printed), through worker kills and a Redis restart; unsigned ones
verify with the standardwebhooks library as a consumer would; `web` answers 200 while the
destinations are down.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from devstack import webhooks
from devstack.downstream import Downstream, Received
from devstack.processes import Service, free_port, wait_for
from devstack.redis_server import RedisServer
from devstack.seaweed import SeaweedFS
from devstack.stack import StackEnv, deployed_pool, start_beat, start_web, start_worker
from graphsim import Simulator
from tests.e2e.conftest import BUCKET, MAX_MEDIA_BYTES, REPLY_TEXT
from wa_media.cli import main as cli
from wa_media.core.events import event_id
from wa_media.stores.broker import FAN_OUT_TASK, MEDIA_QUEUE, make_celery

pytestmark = pytest.mark.e2e

CLOUD_NUMBER = webhooks.DEFAULT_PHONE_NUMBER_ID
ONPREM_NUMBER = "5550001"
MAX_AGE = 60
PAUSE_AFTER = 3
PAUSE_SECONDS = 4
HELD_MAX = 300_000
TIMEOUT = 2
DEPLOYED = deployed_pool()


def _secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Relaying:
    """A stack of its own whose accounts relay to `a` and `b` and send events to `ev`."""

    web: str
    web_metrics: int
    env: StackEnv
    logs: Path
    redis_server: RedisServer
    redis: Redis
    a: Downstream
    b: Downstream
    ev: Downstream
    secrets: dict[str, str]
    onprem_token: str
    worker: Service | None = None

    def start_worker(self, name: str) -> Service:
        if self.worker is not None:
            self.worker.stop()
        self.worker = start_worker(
            self.env, self.logs, name=name, pool=DEPLOYED.name, concurrency=DEPLOYED.concurrency
        )
        return self.worker

    def post(
        self, payload: dict[str, Any], *, pad: int = 0
    ) -> tuple[requests.Response, bytes, str]:
        """A signed Cloud API webhook; `pad` adds that many bytes of JSON whitespace inside
        (its bytes must still arrive as they were)."""
        body = webhooks.encode(payload)
        if pad:
            body = body[:-1] + b" " * pad + body[-1:]
        signature = webhooks.sign(body, self.env.app_secret)
        answer = requests.post(
            f"{self.web}/webhook",
            data=body,
            headers={"X-Hub-Signature-256": signature, "Content-Type": "application/json"},
            timeout=10,
        )
        return answer, body, signature

    def post_onprem(self, payload: dict[str, Any]) -> tuple[requests.Response, bytes]:
        body = webhooks.encode(payload)
        answer = requests.post(
            f"{self.web}/webhook/{self.onprem_token}",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        return answer, body

    def worker_samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        assert self.worker is not None
        port = self.worker.env["WORKER_METRICS_PORT"]
        return _samples(f"http://127.0.0.1:{port}/metrics")

    def fanouts_done(self) -> float:
        samples = self.worker_samples()
        key = ("wa_tasks_total", (("outcome", "done"), ("reason", ""), ("task", "fanout")))
        return samples.get(key, 0.0)

    def web_samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return _samples(f"http://127.0.0.1:{self.web_metrics}/metrics")


def _labelled(name: str, destination: str, reason: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, (("destination", destination), ("reason", reason)))


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(url, timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _accounts_file(path: Path, sim: Simulator, urls: dict[str, str], keys: dict[str, str]) -> Path:
    document = {
        "apps": {"main": {"secret_env": "WHATSAPP_APP_SECRET"}},
        "destinations": {name: {"url": url, "secret": keys[name]} for name, url in urls.items()},
        "accounts": {
            CLOUD_NUMBER: {
                "provider": "cloud",
                "token_env": "WHATSAPP_ACCESS_TOKEN",
                "url": sim.url,
                "media_hosts": [sim.media_host],
                "relay_to": ["a", "b"],
                "events_to": ["ev"],
            },
            ONPREM_NUMBER: {
                "provider": "onprem",
                "token": sim.onprem_tokens[0],
                "url": sim.onprem_url,
                "webhook_token_env": "ONPREM_WEBHOOK_TOKEN",
                "relay_to": ["a"],
            },
        },
    }
    path.write_text(json.dumps(document, indent=2))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def relaying(
    simulator: Simulator, seaweed: SeaweedFS, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Relaying]:
    root = tmp_path_factory.mktemp("relay")
    redis_server = RedisServer(root / "redis", persistent=True).start()
    onprem_token = secrets.token_urlsafe(24)
    with Downstream() as a, Downstream() as b, Downstream() as ev:
        keys = {"a": _secret(), "b": _secret(), "ev": _secret()}
        accounts = _accounts_file(
            root / "accounts.json", simulator, {"a": a.url, "b": b.url, "ev": ev.url}, keys
        )
        env = StackEnv.local(
            simulator,
            seaweed,
            redis_server.url,
            BUCKET,
            max_media_bytes=MAX_MEDIA_BYTES,
            reply_text=REPLY_TEXT,
            extra=(
                ("WHATSAPP_ACCOUNTS_FILE", str(accounts)),
                ("ONPREM_WEBHOOK_TOKEN", onprem_token),
                ("SWEEP_STALLED_AFTER", "5"),
                ("DELIVERY_TIMEOUT", str(TIMEOUT)),
                ("DELIVERY_MAX_AGE", str(MAX_AGE)),
                ("DELIVERY_PAUSE_AFTER", str(PAUSE_AFTER)),
                ("DELIVERY_PAUSE_SECONDS", str(PAUSE_SECONDS)),
                ("RELAY_HELD_BYTES_MAX", str(HELD_MAX)),
                ("EVENT_PRESIGNED_URLS", "true"),
                ("PRESIGNED_URL_SECONDS", "600"),
            ),
        )
        logs = root / "logs"
        web_metrics = free_port()
        web, url = start_web(env, logs, metrics_port=web_metrics)
        beat = start_beat(env, logs)
        client = Redis.from_url(redis_server.url, decode_responses=True)
        state = Relaying(
            url, web_metrics, env, logs, redis_server, client, a, b, ev, keys, onprem_token
        )
        try:
            state.start_worker("relay")
            yield state
        finally:
            if state.worker is not None:
                state.worker.stop()
            beat.stop()
            web.stop()
            redis_server.stop()


@pytest.fixture
def rel(relaying: Relaying) -> Iterator[Relaying]:
    for downstream in (relaying.a, relaying.b, relaying.ev):
        downstream.answer(200)
        downstream.clear()
    for key in relaying.redis.scan_iter("wa:deliver-pause:*"):
        relaying.redis.delete(key)
    for key in relaying.redis.scan_iter("wa:deliver-failures:*"):
        relaying.redis.delete(key)
    if relaying.worker is None or not relaying.worker.alive():
        relaying.start_worker("relay-again")
    yield relaying
    for downstream in (relaying.a, relaying.b, relaying.ev):
        downstream.answer(200)


def _status_payload() -> dict[str, Any]:
    return webhooks.envelope([], statuses=[webhooks.status_update("wamid." + secrets.token_hex(8))])


def _text_payload() -> dict[str, Any]:
    return webhooks.envelope([webhooks.text_message("hello " + secrets.token_hex(4))])


def _by_body(received: list[Received]) -> Counter[bytes]:
    return Counter(r.body for r in received)


def _wait_all(downstream: Downstream, bodies: list[bytes], timeout: float = 60) -> Counter[bytes]:
    """Wait until every body was taken (2xx) by `downstream`; how many times each was."""

    def arrived() -> Counter[bytes] | None:
        counts = _by_body(downstream.taken())
        return counts if all(counts[body] for body in bodies) else None

    return wait_for(arrived, timeout=timeout, interval=0.1, what=f"{len(bodies)} bodies")


def _duplicates(counts: Counter[bytes], bodies: list[bytes]) -> int:
    return sum(counts[body] - 1 for body in bodies if counts[body] > 1)


# --- as received -------------------------------------------------------------------------------


def test_every_webhook_reaches_every_destination_exactly_as_received(rel: Relaying) -> None:
    sent: list[tuple[bytes, str]] = []
    for payload in [_status_payload(), _text_payload(), _status_payload()]:
        answer, body, signature = rel.post(payload, pad=7)
        assert answer.status_code == 200
        sent.append((body, signature))
    bodies = [body for body, _ in sent]
    for downstream in (rel.a, rel.b):
        counts = _wait_all(downstream, bodies)
        print(f"\n{downstream.url}: duplicates {_duplicates(counts, bodies)}")
        for body, signature in sent:
            got = next(r for r in downstream.taken() if r.body == body)
            assert got.headers["x-hub-signature-256"] == signature
            assert got.headers["content-type"] == "application/json"
            assert got.headers["webhook-id"].startswith("dlv_")
    samples = rel.worker_samples()
    assert samples[("wa_delivery_sent_total", (("destination", "a"),))] >= 3
    assert ("wa_delivery_latency_seconds_count", (("destination", "b"),)) in samples
    gauges = rel.web_samples()
    assert ("wa_queue_depth", (("queue", "deliveries"),)) in gauges
    assert gauges[("wa_delivery_oldest_pending_seconds", (("destination", "a"),))] >= 0


def test_a_webhook_with_media_is_archived_and_relayed(rel: Relaying, simulator: Simulator) -> None:
    client = simulator.client()
    record = client.add_generated_media(
        size=5000, seed=secrets.randbits(32), mime_type="image/jpeg"
    )
    message = webhooks.media_message(
        "image", record.id, sha256_b64=record.sha256_b64, mime_type="image/jpeg"
    )
    answer, body, _ = rel.post(webhooks.envelope([message]))
    assert answer.status_code == 200
    for downstream in (rel.a, rel.b):
        got = _wait_all(downstream, [body])
        assert got[body] >= 1
    wait_for(
        lambda: rel.redis.hget(f"wa:media:{CLOUD_NUMBER}:{record.id}", "state") == "archived",
        timeout=60,
        what="archived",
    )


def test_an_unsigned_delivery_is_signed_for_its_destination(rel: Relaying) -> None:
    payload = webhooks.onprem_envelope(
        [], statuses=[webhooks.status_update(webhooks.new_onprem_id())]
    )
    answer, body = rel.post_onprem(payload)
    assert answer.status_code == 200
    _wait_all(rel.a, [body])
    got = next(r for r in rel.a.taken() if r.body == body)
    assert "x-hub-signature-256" not in got.headers
    # As a consumer verifies it: the library, the destination's secret, the headers as sent.
    Webhook(rel.secrets["a"]).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(rel.secrets["b"]).verify(got.body, got.headers)
    # The On-Premises account relays to `a` only.
    assert not [r for r in rel.b.all() if r.body == body]


# --- failures -------------------------------------------------------------------------------


def test_web_answers_200_while_destinations_fail_and_retries_them(rel: Relaying) -> None:
    rel.a.answer(500)
    rel.b.answer(429, retry_after=1)
    bodies = []
    for _ in range(3):
        answer, body, _ = rel.post(_status_payload())
        assert answer.status_code == 200
        bodies.append(body)
    rel.a.wait_count(2, taken=False)
    rel.b.wait_count(2, taken=False)
    rel.a.answer(200)
    rel.b.answer(200)
    _wait_all(rel.a, bodies, timeout=MAX_AGE + 20)
    _wait_all(rel.b, bodies, timeout=MAX_AGE + 20)
    # b's Retry-After (1 s) was honoured: no retry of one body came sooner.
    for body in bodies:
        times = sorted(r.at for r in rel.b.all() if r.body == body)
        assert all(later - earlier >= 0.9 for earlier, later in itertools.pairwise(times))
    samples = rel.worker_samples()
    assert samples[_labelled("wa_delivery_failed_total", "a", "http_5xx")] >= 1
    assert samples[_labelled("wa_delivery_failed_total", "b", "http_429")] >= 1


def test_a_hanging_destination_times_out_and_a_redirect_is_not_followed(rel: Relaying) -> None:
    rel.a.hang(60)
    rel.b.answer(302, location=rel.b.url + "/elsewhere")
    answer, body, _ = rel.post(_status_payload())
    assert answer.status_code == 200
    rel.b.wait_count(1, taken=False)
    wait_for(
        lambda: rel.worker_samples().get(_labelled("wa_delivery_failed_total", "a", "timeout")),
        timeout=30,
        what="a timeout counted",
    )
    assert not [r for r in rel.b.all() if r.path.endswith("/elsewhere")]
    samples = rel.worker_samples()
    assert samples[_labelled("wa_delivery_failed_total", "b", "redirect")] >= 1
    rel.a.answer(200)
    rel.b.answer(200)
    _wait_all(rel.a, [body], timeout=MAX_AGE + 20)
    _wait_all(rel.b, [body], timeout=MAX_AGE + 20)


def test_a_destination_failing_in_a_row_is_paused(rel: Relaying) -> None:
    rel.a.answer(500)
    bodies = [rel.post(_status_payload())[1] for _ in range(4)]
    wait_for(
        lambda: rel.redis.exists("wa:deliver-pause:a"), timeout=30, what="destination a paused"
    )
    # While paused, nothing is sent to it (an attempt already on its way when the pause
    # began is given half a second to land).
    ends = float(rel.redis.get("wa:deliver-pause:a") or 0)
    began = ends - PAUSE_SECONDS
    wait_for(lambda: time.time() > ends, timeout=PAUSE_SECONDS + 5, what="the pause's end")
    assert [r.at - began for r in rel.a.all() if began + 0.5 < r.at < ends - 0.05] == []
    retries = rel.worker_samples()
    assert (
        sum(
            v
            for k, v in retries.items()
            if k[0] == "wa_tasks_total" and ("outcome", "paused") in k[1]
        )
        >= 1
    )
    # b went on meanwhile.
    _wait_all(rel.b, bodies)
    rel.a.answer(200)
    _wait_all(rel.a, bodies, timeout=MAX_AGE + 20)


def test_dead_letters_after_the_maximum_age_are_listed_and_replayed(rel: Relaying) -> None:
    rel.a.answer(500)
    answer, body, signature = rel.post(_status_payload())
    assert answer.status_code == 200
    _wait_all(rel.b, [body])

    def dead() -> list[str] | None:
        members = rel.redis.zrange("wa:deliver:dead", 0, -1)
        found = [m for m in members if rel.redis.hget(f"wa:delivery:{m}", "destination") == "a"]
        return found or None

    ids = wait_for(dead, timeout=MAX_AGE + 30, what="a dead letter")
    env = rel.env.environ()
    listed = CliRunner().invoke(cli, ["dead-letters", "--destination", "a"], env=env)
    assert listed.exit_code == 0, listed.output
    assert ids[0] in listed.output
    assert "max_age" in listed.output
    samples = rel.worker_samples()
    assert samples[_labelled("wa_delivery_dead_letters_total", "a", "max_age")] >= 1
    rel.a.answer(200)
    rel.a.clear()
    replayed = CliRunner().invoke(cli, ["redeliver", "--all", "--destination", "a"], env=env)
    assert replayed.exit_code == 0, replayed.output
    _wait_all(rel.a, [body])
    got = next(r for r in rel.a.taken() if r.body == body)
    assert got.headers["x-hub-signature-256"] == signature
    assert rel.redis.zscore("wa:deliver:dead", ids[0]) is None


def test_past_the_held_bytes_cap_new_bodies_are_dead_letters(rel: Relaying) -> None:
    rel.a.hang(60)
    rel.b.hang(60)
    first = rel.post(_status_payload(), pad=HELD_MAX // 2 + 1000)
    assert first[0].status_code == 200
    second = rel.post(_status_payload(), pad=HELD_MAX // 2 + 1000)
    # web answers 200: the cap is the worker's business.
    assert second[0].status_code == 200

    def capped() -> bool:
        samples = rel.worker_samples()
        return all(
            samples.get(
                (
                    "wa_delivery_dead_letters_total",
                    (("destination", name), ("reason", "held_bytes_cap")),
                )
            )
            for name in ("a", "b")
        )

    wait_for(capped, timeout=30, what="dead letters at the cap")
    held = rel.web_samples()[("wa_delivery_held_bytes", ())]
    assert HELD_MAX // 2 < held <= HELD_MAX
    rel.a.answer(200)
    rel.b.answer(200)
    _wait_all(rel.a, [first[1]], timeout=MAX_AGE + 20)
    _wait_all(rel.b, [first[1]], timeout=MAX_AGE + 20)
    assert not [r for r in rel.a.taken() if r.body == second[1]]
    wait_for(
        lambda: rel.web_samples()[("wa_delivery_held_bytes", ())] == 0,
        timeout=30,
        what="the held bytes given back",
    )


# --- nothing lost -------------------------------------------------------------------------------


def test_nothing_is_lost_across_a_worker_kill_and_a_redis_restart(rel: Relaying) -> None:
    rel.a.hang(60)
    bodies = []
    for _ in range(5):
        answer, body, _ = rel.post(_status_payload())
        assert answer.status_code == 200
        bodies.append(body)
    rel.a.wait_count(1, taken=False)
    assert rel.worker is not None
    rel.worker.kill()
    for _ in range(3):
        answer, body, _ = rel.post(_status_payload())
        assert answer.status_code == 200
        bodies.append(body)
    rel.redis_server.stop()
    rel.redis_server.start()
    wait_for(
        lambda: requests.get(f"{rel.web}/readyz", timeout=5).status_code == 200,
        timeout=30,
        what="readyz after the restart",
    )
    for _ in range(2):
        answer, body, _ = rel.post(_status_payload())
        assert answer.status_code == 200
        bodies.append(body)
    rel.a.answer(200)
    rel.start_worker("after-kill")
    for downstream in (rel.a, rel.b):
        counts = _wait_all(downstream, bodies, timeout=90)
        print(f"\n{downstream.url}: {len(bodies)} bodies, duplicates {_duplicates(counts, bodies)}")


# --- archive events -------------------------------------------------------------------------------


def test_events_are_signed_deduplicated_and_carry_a_presigned_url(
    rel: Relaying, seaweed: SeaweedFS
) -> None:
    key = f"events-test/{secrets.token_hex(6)}.jpg"
    data_bytes = secrets.token_bytes(3000)
    seaweed.client().put_object(Bucket=BUCKET, Key=key, Body=data_bytes)
    wamid = "wamid." + secrets.token_hex(8)
    ident = event_id("media.archived", CLOUD_NUMBER, wamid, "m1")
    event = {
        "type": "media.archived",
        "phone_number_id": CLOUD_NUMBER,
        "id": ident,
        "timestamp": time.time(),
        "data": {"wamid": wamid, "media_id": "m1", "bucket": BUCKET, "key": key},
    }
    celery = make_celery(rel.env.redis_url)
    fanouts = rel.fanouts_done()
    for _ in range(2):  # emitted twice: delivered once
        celery.send_task(FAN_OUT_TASK, args=[{"events": [event]}], queue=MEDIA_QUEUE)
    got = rel.ev.wait_count(1)[0]
    Webhook(rel.secrets["ev"]).verify(got.body, got.headers)
    assert got.headers["webhook-id"] == ident
    document = json.loads(got.body)
    assert document["type"] == "media.archived"
    assert document["timestamp"].endswith("Z")
    assert document["data"]["wamid"] == wamid
    assert requests.get(document["data"]["url"], timeout=10).content == data_bytes
    # Both fan-outs ran: the second made no delivery (its id was taken), so none can come.
    wait_for(lambda: rel.fanouts_done() >= fanouts + 2, timeout=30, what="both fan-outs")
    assert rel.redis.zcard("wa:deliver:due") == 0
    assert len([r for r in rel.ev.all() if r.headers.get("webhook-id") == ident]) == 1


# --- start-up -----------------------------------------------------------------------------------


def _start(argv: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=environ, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_worker_refuses_to_delete_media_a_destination_may_still_need(rel: Relaying) -> None:
    environ = {**rel.env.environ(), "DELETE_AFTER_ARCHIVE": "true"}
    celery = str(Path(sys.executable).parent / "celery")
    done = _start([celery, "-A", "worker", "worker", "--pool", "solo"], environ)
    assert done.returncode == 2
    assert "worker: configuration error: DELETE_AFTER_ARCHIVE is refused with relay" in done.stderr
    assert "DELETE_WITH_RELAY_ACCEPTED" in done.stderr


def test_web_refuses_a_destination_off_loopback_in_clear(rel: Relaying) -> None:
    environ = {
        **rel.env.environ(),
        "WHATSAPP_ACCOUNTS_FILE": "",
        "RELAY_DESTINATIONS": "crm=http://crm.example.com/hook?token=s3cr3t",
    }
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    argv = [
        gunicorn,
        "--config",
        "python:webhook.gunicorn_conf",
        "--bind",
        f"127.0.0.1:{free_port()}",
    ]
    done = _start([*argv, "webhook.app:create_app()"], environ)
    assert done.returncode != 0
    assert "RELAY_DESTINATIONS is invalid: crm: http:// is taken for a loopback host only" in (
        done.stderr
    )
    assert "s3cr3t" not in done.stderr + done.stdout
