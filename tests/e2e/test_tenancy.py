"""Accounts are kept apart, and the 131052 warning is no spam cannon: one deployment serving
several Cloud API accounts of an accounts file, each of two Meta apps, against the simulator.

- a payload signed by one account's app for another account's number is dropped, counted and
  logged: nothing is archived or answered for it;
- the same media id, or the same wamid, in two accounts is archived, or answered, by each;
- records written by the previous release (their shape written here directly) are honoured for
  the account their job names, and for no other;
- a warning goes only to a valid recipient, at most REPLY_MAX_PER_WEBHOOK per webhook, once an
  hour per recipient and at most REPLY_RATE_PER_ACCOUNT a minute per account;
- each account archives what its own archive policy says (its `policy` in the file): the rest is
  skipped, counted and listed, and an account that sends no 131052 warning sends none.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from devstack import webhooks
from devstack.processes import Service, free_port, wait_for
from devstack.seaweed import SeaweedFS
from devstack.stack import StackEnv, start_beat, start_web, start_worker
from graphsim import MediaRecord, Simulator, SimulatorClient
from tests.conftest import redis_db
from tests.e2e.conftest import BUCKET, REPLY_TEXT
from wa_media.cli import main as cli
from wa_media.core.jobs import MediaJob
from wa_media.core.layout import build_key

pytestmark = pytest.mark.e2e

ALPHA = "100000001"  # app alpha
BETA = "100000002"  # app beta, its own access token
CAPPED = "100000003"  # app alpha: the thousand warnings
CHECKED = "100000004"  # app alpha: recipients checked, once an hour
BUSY = "100000005"  # app alpha: over its rate
POLICED = "100000006"  # app alpha: images and PDF documents only, images up to 30 kB, no warning
IMAGE_LIMIT = 30_000
ACCOUNT_RATE = 3  # warnings a minute per account, in this deployment
BETA_TOKEN = "beta-" + secrets.token_hex(16)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Tenants:
    web: str
    env: StackEnv
    redis: Redis
    s3: Any
    alpha_secret: str
    beta_secret: str
    metrics_port: int
    log_dir: Path
    web_metrics_port: int

    def post(self, number: str, messages: list[dict[str, Any]], secret: str) -> int:
        payload = webhooks.envelope(messages, phone_number_id=number)
        body, headers = webhooks.signed(payload, secret)
        return requests.post(
            f"{self.web}/webhook", data=body, headers=headers, timeout=30
        ).status_code

    def sidecar(self, key: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=BUCKET, Key=key + ".json")["Body"].read()
        except ClientError:
            return None
        document: dict[str, Any] = json.loads(body)
        return document

    def object_exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=BUCKET, Key=key)
        except ClientError:
            return False
        return True

    def web_counts(self) -> Samples:
        return _scrape(f"http://127.0.0.1:{self.web_metrics_port}/metrics")

    def worker_counts(self) -> Samples:
        return _scrape(f"http://127.0.0.1:{self.metrics_port}/metrics")

    def log(self, name: str) -> str:
        return "".join(p.read_text(errors="replace") for p in self.log_dir.glob(f"{name}-*.log"))

    def reply_jobs(self, number: str) -> list[dict[str, Any]]:
        """Every warning recorded as owed to a customer of this number, whatever its key."""
        found = []
        for key in self.redis.scan_iter("wa:reply-job:*", count=1000):
            job = json.loads(self.redis.get(key) or "{}")
            if job.get("phone_number_id") == number:
                found.append(job)
        return found

    def settled(self, number: str, wamids: list[str]) -> bool:
        """No warning of these wamids is owed any more (sent, given up or dropped)."""
        members = set(self.redis.zrange("wa:replies:pending", 0, -1))
        return not any(w in members or f"{number}:{w}" in members for w in wamids)


def _scrape(url: str) -> Samples:
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def _count(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _accounts_file(path: Path, sim: Simulator) -> Path:
    def cloud(**extra: Any) -> dict[str, Any]:
        return {
            "provider": "cloud",
            "token_env": "WHATSAPP_ACCESS_TOKEN",
            "url": sim.url,
            "media_hosts": [sim.media_host],
            **extra,
        }

    document = {
        "apps": {
            "alpha": {"secret_env": "ALPHA_APP_SECRET"},
            "beta": {"secret_env": "BETA_APP_SECRET"},
        },
        "accounts": {
            ALPHA: cloud(app="alpha"),
            BETA: {**cloud(apps=["beta"]), "token_env": "BETA_ACCESS_TOKEN"},
            CAPPED: cloud(app="alpha"),
            CHECKED: cloud(app="alpha"),
            BUSY: cloud(app="alpha"),
            POLICED: cloud(
                app="alpha",
                policy={
                    "media_types": ["image", "document"],
                    "mime_types": ["image/*", "application/pdf"],
                    "max_bytes": {"image": "30KB"},
                    "too_large_reply": False,
                },
            ),
        },
    }
    path.write_text(json.dumps(document, indent=2))
    return path


@pytest.fixture(scope="module")
def tenants(simulator: Simulator, seaweed: SeaweedFS, s3: Any, run_dir: Path) -> Iterator[Tenants]:
    log_dir = run_dir / "logs-tenancy"
    alpha_secret, beta_secret = secrets.token_hex(32), secrets.token_hex(32)
    accounts = _accounts_file(run_dir / "tenancy-accounts.json", simulator)
    for redis_url in redis_db(7):
        env = StackEnv.local(
            simulator,
            seaweed,
            redis_url,
            BUCKET,
            reply_text=REPLY_TEXT,
            extra=(
                ("WHATSAPP_ACCOUNTS_FILE", str(accounts)),
                ("ALPHA_APP_SECRET", alpha_secret),
                ("BETA_APP_SECRET", beta_secret),
                ("BETA_ACCESS_TOKEN", BETA_TOKEN),
                ("REPLY_RATE_PER_ACCOUNT", str(ACCOUNT_RATE)),
            ),
        )
        metrics_port, web_metrics_port = free_port(), free_port()
        web_service, url = start_web(env, log_dir, metrics_port=web_metrics_port)
        services: list[Service] = [web_service]
        try:
            services.append(start_worker(env, log_dir, name="tenancy", metrics_port=metrics_port))
            services.append(start_beat(env, log_dir))
            yield Tenants(
                url,
                env,
                Redis.from_url(redis_url, decode_responses=True),
                s3,
                alpha_secret,
                beta_secret,
                metrics_port,
                log_dir,
                web_metrics_port,
            )
        finally:
            for service in reversed(services):
                service.stop()


@pytest.fixture
def sim(simulator: Simulator) -> Iterator[SimulatorClient]:
    client = simulator.client()
    client.reset()
    client.set_tokens([simulator.token, BETA_TOKEN])
    yield client
    client.reset()
    client.close()


def _media(sim: SimulatorClient) -> MediaRecord:
    return sim.add_generated_media(size=20_000, seed=secrets.randbits(32), mime_type="image/jpeg")


def _message(record: MediaRecord, **extra: Any) -> dict[str, Any]:
    return webhooks.media_message(
        "image", record.id, sha256_b64=record.sha256_b64, mime_type="image/jpeg", **extra
    )


def _key(number: str, message: dict[str, Any], record: MediaRecord) -> str:
    return build_key("", number, int(message["timestamp"]), record.id, "image/jpeg")


def _sender() -> str:
    return "1650" + "".join(secrets.choice("0123456789") for _ in range(7))


def _sent(sim: SimulatorClient, **match: str) -> list[dict[str, Any]]:
    return [m for m in sim.sent_messages() if all(m.get(k) == v for k, v in match.items())]


def _provider_calls(sim: SimulatorClient, media_id: str) -> list[str]:
    return [r["op"] for r in sim.requests() if r["media_id"] == media_id]


# --- accounts are separated ---------------------------------------------------------------------


def test_a_payload_signed_by_another_app_for_a_number_is_dropped(
    tenants: Tenants, sim: SimulatorClient
) -> None:
    """Signed by alpha (ALPHA's app) for BETA's number: answered 200 so that Meta does not
    retry, but nothing is archived or answered; counted, logged and listed."""
    record, sender = _media(sim), _sender()
    media, too_big = _message(record), webhooks.too_big_message(sender=sender)
    before = tenants.web_counts()
    assert tenants.post(BETA, [media, too_big], tenants.alpha_secret) == 200

    # web records every job before it answers: nothing is recorded for BETA.
    assert list(tenants.redis.scan_iter(f"wa:media:*{record.id}")) == []
    assert tenants.reply_jobs(BETA) == []
    after = tenants.web_counts()
    skipped = "wa_messages_skipped_total"
    assert (
        _count(after, skipped, reason="wrong_app") - _count(before, skipped, reason="wrong_app")
        == 2
    )
    log = tenants.log("web")
    assert "webhook_wrong_app" in log
    assert BETA in log
    assert "alpha" in log
    assert tenants.alpha_secret not in log
    assert tenants.beta_secret not in log

    # Signed by beta, the same payload is BETA's: archived, and the warning sent from BETA.
    assert tenants.post(BETA, [media, too_big], tenants.beta_secret) == 200
    document = wait_for(
        lambda: tenants.sidecar(_key(BETA, media, record)), timeout=60, what="BETA's media"
    )
    assert document["phone_number_id"] == BETA
    wait_for(lambda: _sent(sim, to=sender), timeout=60, what="BETA's warning")
    [warning] = _sent(sim, to=sender)
    assert warning["phone_number_id"] == BETA
    assert warning["body"] == REPLY_TEXT
    assert _provider_calls(sim, record.id).count("download") == 1


def test_the_same_media_id_in_two_accounts_is_archived_for_each(
    tenants: Tenants, sim: SimulatorClient
) -> None:
    record = _media(sim)
    to_alpha, to_beta = _message(record), _message(record)
    assert tenants.post(ALPHA, [to_alpha], tenants.alpha_secret) == 200
    alpha = wait_for(
        lambda: tenants.sidecar(_key(ALPHA, to_alpha, record)), timeout=60, what="ALPHA's copy"
    )
    assert tenants.post(BETA, [to_beta], tenants.beta_secret) == 200
    beta = wait_for(
        lambda: tenants.sidecar(_key(BETA, to_beta, record)), timeout=30, what="BETA's copy"
    )
    assert (alpha["phone_number_id"], alpha["wamid"]) == (ALPHA, to_alpha["id"])
    assert (beta["phone_number_id"], beta["wamid"]) == (BETA, to_beta["id"])
    assert tenants.redis.hget(f"wa:media:{ALPHA}:{record.id}", "state") == "archived"
    assert tenants.redis.hget(f"wa:media:{BETA}:{record.id}", "state") == "archived"


def test_the_same_wamid_in_two_accounts_is_answered_by_each(
    tenants: Tenants, sim: SimulatorClient
) -> None:
    wamid = webhooks.new_wamid()
    alpha_sender, beta_sender = _sender(), _sender()
    alpha = webhooks.too_big_message(sender=alpha_sender, wamid=wamid)
    beta = webhooks.too_big_message(sender=beta_sender, wamid=wamid)
    assert tenants.post(ALPHA, [alpha], tenants.alpha_secret) == 200
    wait_for(lambda: _sent(sim, to=alpha_sender), timeout=60, what="ALPHA's warning")
    assert tenants.post(BETA, [beta], tenants.beta_secret) == 200
    wait_for(lambda: _sent(sim, to=beta_sender), timeout=30, what="BETA's warning")
    assert [m["phone_number_id"] for m in _sent(sim, to=alpha_sender)] == [ALPHA]
    assert [m["phone_number_id"] for m in _sent(sim, to=beta_sender)] == [BETA]
    # Each ledger reads "sending" until its worker records the send that the simulator holds.
    for number in (ALPHA, BETA):
        wait_for(
            lambda n=number: tenants.redis.get(f"wa:reply:{n}:{wamid}") == "sent",
            timeout=30,
            what=f"{number}'s warning recorded as sent",
        )


def _old_record(job: MediaJob, state: str, **fields: str) -> dict[str, str]:
    """A `wa:media:{media_id}` hash as the previous release wrote it."""
    now = f"{time.time():.3f}"
    return {
        "state": state,
        "wamid": job.wamid,
        "job": job.model_dump_json(exclude_defaults=True),
        "queued_at": now,
        "updated_at": now,
        "attempts": "1" if state != "queued" else "0",
        **fields,
    }


def _job(number: str, message: dict[str, Any], record: MediaRecord) -> MediaJob:
    return MediaJob(
        phone_number_id=number,
        waba_id=webhooks.DEFAULT_WABA_ID,
        wamid=message["id"],
        sender=message["from"],
        timestamp=int(message["timestamp"]),
        type="image",
        media_id=record.id,
        mime_type="image/jpeg",
        sha256=record.sha256,
    )


def test_records_of_the_previous_release_are_honoured_for_their_account_only(
    tenants: Tenants, sim: SimulatorClient
) -> None:
    redis = tenants.redis
    # Archived by the previous release for ALPHA (its object is where that release put it).
    archived = _media(sim)
    message = _message(archived)
    old_key = _key(ALPHA, message, archived)
    redis.hset(
        f"wa:media:{archived.id}",
        mapping=_old_record(_job(ALPHA, message, archived), "archived", key=old_key),
    )
    redis.expire(f"wa:media:{archived.id}", 8 * 24 * 3600)
    # Queued by the previous release's web for ALPHA, its fan-out lost with a worker.
    queued = _media(sim)
    queued_message = _message(queued)
    redis.hset(
        f"wa:media:{queued.id}",
        mapping=_old_record(_job(ALPHA, queued_message, queued), "queued"),
    )
    redis.zadd("wa:pending", {queued.id: time.time() - 1})
    # Failed for good in the previous release.
    failed = _media(sim)
    failed_message = _message(failed)
    redis.hset(
        f"wa:media:{failed.id}",
        mapping=_old_record(
            _job(ALPHA, failed_message, failed), "failed", last_error="not found: gone"
        ),
    )
    redis.zadd("wa:failed", {failed.id: time.time() - 60})
    # A warning the previous release sent.
    replied, replied_sender = webhooks.new_wamid(), _sender()
    redis.set(f"wa:reply:{replied}", "sent", ex=8 * 24 * 3600)

    # Meta delivers them all again, to ALPHA.
    again = [
        message,
        failed_message,
        webhooks.too_big_message(sender=replied_sender, wamid=replied),
    ]
    assert tenants.post(ALPHA, again, tenants.alpha_secret) == 200
    # The same media id in BETA is BETA's own: ALPHA's old record does not settle it.
    for_beta = _message(archived)
    assert tenants.post(BETA, [for_beta], tenants.beta_secret) == 200

    wait_for(lambda: tenants.sidecar(_key(BETA, for_beta, archived)), timeout=60, what="BETA's")
    swept = wait_for(lambda: tenants.sidecar(_key(ALPHA, queued_message, queued)), timeout=60,
                     what="the previous release's queued media, found by the sweep")  # fmt: skip
    assert swept["phone_number_id"] == ALPHA
    wait_for(lambda: tenants.settled(ALPHA, [replied]), timeout=30, what="the warning settled")

    # Honoured: not archived again, not retried, not warned again.
    assert redis.hget(f"wa:media:{ALPHA}:{archived.id}", "state") == "archived"
    assert redis.hget(f"wa:media:{ALPHA}:{archived.id}", "key") == old_key
    assert not tenants.object_exists(old_key)  # nothing was written for it
    assert _provider_calls(sim, archived.id).count("download") == 1  # BETA's only
    assert redis.hget(f"wa:media:{ALPHA}:{failed.id}", "state") == "failed"
    assert _provider_calls(sim, failed.id) == []
    assert _sent(sim, to=replied_sender) == []
    # The old records moved under their account, and their places in the indexes with them.
    assert redis.exists(f"wa:media:{archived.id}", f"wa:media:{queued.id}") == 0
    assert redis.exists(f"wa:media:{failed.id}") == 0
    assert redis.zscore("wa:pending", queued.id) is None
    assert redis.zscore("wa:failed", failed.id) is None
    assert redis.zscore("wa:failed", f"{ALPHA}:{failed.id}") is not None
    assert redis.hget(f"wa:media:{ALPHA}:{queued.id}", "state") == "archived"


# --- the warning is no spam cannon ------------------------------------------------------------


def test_a_webhook_of_a_thousand_warnings_queues_at_most_the_cap(
    tenants: Tenants, sim: SimulatorClient
) -> None:
    messages = [webhooks.too_big_message(sender=f"1650777{i:04d}") for i in range(1000)]
    before = tenants.web_counts()
    assert tenants.post(CAPPED, messages, tenants.alpha_secret) == 200

    owed = tenants.reply_jobs(CAPPED)
    assert sorted(job["wamid"] for job in owed) == sorted(m["id"] for m in messages[:10])
    dropped = _count(tenants.web_counts(), "wa_replies_dropped_total", reason="request_cap")
    assert dropped - _count(before, "wa_replies_dropped_total", reason="request_cap") == 990
    assert "reply_dropped" in tenants.log("web")
    wait_for(
        lambda: tenants.settled(CAPPED, [m["id"] for m in messages]), timeout=60, what="settled"
    )
    sent = _sent(sim, phone_number_id=CAPPED)
    assert 1 <= len(sent) <= 10
    assert {m["to"] for m in sent} <= {m["from"] for m in messages[:10]}


def test_an_invalid_recipient_is_refused(tenants: Tenants, sim: SimulatorClient) -> None:
    bad = [
        webhooks.too_big_message(sender="12"),
        webhooks.too_big_message(sender="1-650-555-FLOWERS"),
    ]
    before = tenants.web_counts()
    assert tenants.post(CHECKED, bad, tenants.alpha_secret) == 200
    assert tenants.reply_jobs(CHECKED) == []
    after = tenants.web_counts()
    name = "wa_replies_dropped_total"
    assert (
        _count(after, name, reason="invalid_recipient")
        - _count(before, name, reason="invalid_recipient")
        == 2
    )
    assert "invalid_recipient" in tenants.log("web")
    assert _sent(sim, phone_number_id=CHECKED) == []


def test_the_same_recipient_twice_within_the_hour_gets_one_warning(
    tenants: Tenants, sim: SimulatorClient
) -> None:
    sender = _sender()
    first = webhooks.too_big_message(sender=sender)
    second = webhooks.too_big_message(sender=sender)
    before = tenants.worker_counts()
    assert tenants.post(CHECKED, [first], tenants.alpha_secret) == 200
    wait_for(lambda: _sent(sim, to=sender), timeout=60, what="the first warning")
    assert tenants.post(CHECKED, [second], tenants.alpha_secret) == 200
    wait_for(
        lambda: tenants.settled(CHECKED, [first["id"], second["id"]]), timeout=60, what="settled"
    )
    assert len(_sent(sim, to=sender)) == 1
    assert tenants.redis.get(f"wa:reply:{CHECKED}:{second['id']}") == "dropped: recipient_rate"
    name = "wa_replies_dropped_total"
    after = tenants.worker_counts()
    assert (
        _count(after, name, reason="recipient_rate") - _count(before, name, reason="recipient_rate")
        == 1
    )
    assert "reply_dropped" in tenants.log("worker")


def test_an_account_over_its_rate_sends_no_more_warnings(
    tenants: Tenants, sim: SimulatorClient
) -> None:
    messages = [webhooks.too_big_message(sender=_sender()) for _ in range(10)]
    before = tenants.worker_counts()
    assert tenants.post(BUSY, messages, tenants.alpha_secret) == 200
    wait_for(lambda: tenants.settled(BUSY, [m["id"] for m in messages]), timeout=60, what="settled")
    sent = len(_sent(sim, phone_number_id=BUSY))
    name = "wa_replies_dropped_total"
    dropped = _count(tenants.worker_counts(), name, reason="account_rate") - _count(
        before, name, reason="account_rate"
    )
    # One minute's budget, or two should the minute turn while they are sent.
    assert 1 <= sent <= 2 * ACCOUNT_RATE
    assert sent + dropped == len(messages)


# --- each account's archive policy ------------------------------------------------------------


def _generated(sim: SimulatorClient, size: int, mime_type: str) -> MediaRecord:
    return sim.add_generated_media(size=size, seed=secrets.randbits(32), mime_type=mime_type)


def _skipped_rows(tenants: Tenants) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["skipped", "--json"], env=tenants.env.environ())
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_an_account_archives_what_its_policy_says_and_skips_the_rest(
    tenants: Tenants, sim: SimulatorClient
) -> None:
    small = _generated(sim, 20_000, "image/jpeg")
    large = _generated(sim, 40_000, "image/jpeg")
    streamed = _generated(sim, 40_000, "image/jpeg")  # no look-up: its size comes with its bytes
    video = _generated(sim, 5_000, "video/mp4")
    archive = _generated(sim, 5_000, "application/zip")
    pdf = _generated(sim, 5_000, "application/pdf")
    sender = _sender()

    def message(kind: Any, record: MediaRecord, mime_type: str, **extra: Any) -> dict[str, Any]:
        return webhooks.media_message(
            kind, record.id, sha256_b64=record.sha256_b64, mime_type=mime_type, **extra
        )

    messages = [
        message("image", small, "image/jpeg"),
        message("image", large, "image/jpeg"),
        message("image", streamed, "image/jpeg", url=sim.download_url(streamed.id)),
        message("video", video, "video/mp4"),
        message("document", archive, "application/zip"),
        message("document", pdf, "application/pdf"),
        webhooks.too_big_message(sender=sender),
    ]
    web_before, worker_before = tenants.web_counts(), tenants.worker_counts()
    assert tenants.post(POLICED, messages, tenants.alpha_secret) == 200

    # Archived: the small image and the PDF.
    for record, msg, mime_type in (
        (small, messages[0], "image/jpeg"),
        (pdf, messages[5], "application/pdf"),
    ):
        key = build_key("", POLICED, int(msg["timestamp"]), record.id, mime_type)
        wait_for(lambda k=key: tenants.sidecar(k), timeout=60, what=f"{record.id} archived")

    # Skipped by the worker once the size is known (the look-up's, or the bytes passing it):
    # settled, nothing written, never retried.
    for record in (large, streamed):
        media_key = f"wa:media:{POLICED}:{record.id}"
        wait_for(
            lambda k=media_key: tenants.redis.hget(k, "skipped") == "policy_size",
            timeout=60,
            what=f"{record.id} skipped",
        )
        assert tenants.redis.hget(media_key, "state") == "failed"
        assert tenants.redis.zscore("wa:failed", f"{POLICED}:{record.id}") is None
        assert not tenants.object_exists(_key(POLICED, messages[1], record))
    assert _provider_calls(sim, large.id) == ["lookup"]
    assert _provider_calls(sim, streamed.id).count("download") == 1

    # Skipped by web: never recorded, never asked of the provider.
    for record in (video, archive):
        assert list(tenants.redis.scan_iter(f"wa:media:*{record.id}")) == []
        assert _provider_calls(sim, record.id) == []

    # Listed by `wa-media skipped`, with why.
    listed = {
        (row["reason"], row["wamid"])
        for row in _skipped_rows(tenants)
        if row["phone_number_id"] == POLICED
    }
    assert {
        ("policy_size", messages[1]["id"]),
        ("policy_size", messages[2]["id"]),
        ("policy_type", messages[3]["id"]),
        ("policy_mime", messages[4]["id"]),
    } <= listed
    failed = CliRunner().invoke(cli, ["failed"], env=tenants.env.environ())
    assert large.id not in failed.output
    assert streamed.id not in failed.output

    # Counted: by web while parsing, by the worker once it knew.
    web_after = tenants.web_counts()
    skipped = "wa_messages_skipped_total"
    for reason in ("policy_type", "policy_mime"):
        assert (
            _count(web_after, skipped, reason=reason) - _count(web_before, skipped, reason=reason)
            == 1
        )
    assert (
        _count(web_after, "wa_replies_dropped_total", reason="reply_off")
        - _count(web_before, "wa_replies_dropped_total", reason="reply_off")
        == 1
    )
    worker_after = tenants.worker_counts()
    assert (
        _count(worker_after, skipped, reason="policy_size")
        - _count(worker_before, skipped, reason="policy_size")
        == 2
    )
    tasks = "wa_tasks_total"
    labels = {"task": "media", "outcome": "skipped", "reason": "policy_size"}
    assert _count(worker_after, tasks, **labels) - _count(worker_before, tasks, **labels) == 2

    # TOO_LARGE_REPLY off for this account: no warning owed, none sent.
    assert tenants.reply_jobs(POLICED) == []
    assert _sent(sim, to=sender) == []


def test_the_skip_reasons_are_served_from_zero(tenants: Tenants) -> None:
    web, worker = tenants.web_counts(), tenants.worker_counts()
    for reason in ("policy_type", "policy_mime"):
        assert ("wa_messages_skipped_total", (("reason", reason),)) in web
    assert ("wa_messages_skipped_total", (("reason", "policy_size"),)) in worker


def test_a_webhook_of_skips_only_publishes_their_events(
    tenants: Tenants, sim: SimulatorClient
) -> None:
    """Nothing to archive or answer, but the consumers are owed their events: `web` publishes a
    fan-out holding only them, and the worker hands them on."""
    video = _generated(sim, 5_000, "video/mp4")
    message = webhooks.media_message(
        "video", video.id, sha256_b64=video.sha256_b64, mime_type="video/mp4"
    )
    done = ("wa_tasks_total", (("outcome", "done"), ("reason", ""), ("task", "fanout")))
    before = tenants.worker_counts().get(done, 0.0)
    assert tenants.post(POLICED, [message, webhooks.too_big_message()], tenants.alpha_secret) == 200
    wait_for(
        lambda: tenants.worker_counts().get(done, 0.0) == before + 1,
        timeout=60,
        what="the fan-out of the events",
    )
    lines = [
        json.loads(line) for line in tenants.log("worker").splitlines() if "fanned_out" in line
    ]
    assert any(line.get("events") == 2 and line.get("media") == 0 for line in lines)
