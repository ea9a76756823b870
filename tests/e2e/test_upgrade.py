"""Upgrades lose nothing: what the previous release wrote is handled by this one, and during a
rolling deploy a new `web` publishing to a worker of the previous release loses nothing.

The previous release runs for real: its `worker` and `webhook` packages are taken from git at
PREVIOUS_RELEASE into a directory put first on the processes' PYTHONPATH.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from redis import Redis

from devstack import webhooks
from devstack.processes import Service, wait_for
from devstack.seaweed import SeaweedFS
from devstack.stack import StackEnv, start_beat, start_web, start_worker
from graphsim import Simulator, SimulatorClient
from tests.conftest import redis_db
from tests.e2e.conftest import REPLY_TEXT, Stack, stack_env
from wa_media.core.layout import build_key

pytestmark = pytest.mark.e2e

# The release before sidecar schema 2 and the jobs of the second release.
PREVIOUS_RELEASE = "05fe6c19fc9ec7337b6ecac634c8f7352f8ac99a"
REPOSITORY = Path(__file__).resolve().parents[2]
BSUID = "US.13491208655302741918"


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's `worker` and `webhook` packages, from git."""
    target = tmp_path_factory.mktemp("previous-release")
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPOSITORY), "archive", PREVIOUS_RELEASE, "worker", "webhook"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(
            f"the previous release {PREVIOUS_RELEASE[:12]} is not in this clone's history "
            f"(a shallow clone?): {exc}"
        )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True, timeout=60)
    return target


@pytest.fixture(scope="module")
def upgrade_redis_url() -> Iterator[str]:
    yield from redis_db(8)


@pytest.fixture
def fresh_redis(upgrade_redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(upgrade_redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def _env(simulator: Simulator, seaweed: SeaweedFS, redis_url: str) -> StackEnv:
    base = stack_env(simulator, seaweed, redis_url)
    # The sweep looks at a queued media again after 2 s instead of 10 minutes.
    return dataclasses.replace(base, extra=(*base.extra, ("SWEEP_STALLED_AFTER", "2")))


def _old(env: StackEnv, release: Path) -> StackEnv:
    return dataclasses.replace(env, extra=(*env.extra, ("PYTHONPATH", str(release))))


def _stack(web_url: str, env: StackEnv, sim: SimulatorClient, s3: Any, redis: Redis) -> Stack:
    return Stack(web_url, None, env, sim, s3, redis)


def _sent_to(sim: SimulatorClient, recipient: str) -> list[dict[str, Any]]:
    return [
        m
        for m in sim.sent_messages()
        if m.get("to") == recipient or m.get("payload", {}).get("recipient") == recipient
    ]


def _queue_drained(redis: Redis) -> bool:
    return all(redis.llen(key) == 0 for key in redis.keys("media*") + redis.keys("replies*"))


def test_what_the_previous_release_wrote_is_archived_by_this_one(
    previous_release: Path,
    simulator: Simulator,
    seaweed: SeaweedFS,
    upgrade_redis_url: str,
    fresh_redis: Redis,
    sim: SimulatorClient,
    s3: Any,
    run_dir: Path,
) -> None:
    """The previous `web` records two webhooks' media and publishes their fan-outs; one
    fan-out is lost. This release's worker and beat archive both media from the previous
    release's records and task, with schema 2 sidecars, and send the warning once."""
    env = _env(simulator, seaweed, upgrade_redis_url)
    logs = run_dir / "upgrade-1"
    old_web, old_url = start_web(_old(env, previous_release), logs, cwd=previous_release)
    stack = _stack(old_url, env, sim, s3, fresh_redis)
    try:
        lost = stack.media("image")
        assert stack.post(lost).status_code == 200
        # The fan-out is lost (a worker died holding it): only the record remains.
        for key in fresh_redis.keys("media*"):
            fresh_redis.delete(key)
        kept = stack.media("document", filename="contract.pdf")
        too_big = webhooks.too_big_message(sender="16505550001")
        assert stack.post(kept, too_big).status_code == 200
    finally:
        old_web.stop()
    record = fresh_redis.hgetall(f"wa:media:{lost.record.id}")
    assert "customer" not in record["job"]
    assert record["state"] == "queued"

    worker = start_worker(env, logs, name="new", concurrency=2)
    beat = start_beat(env, logs)
    try:
        for sent in (lost, kept):
            document = stack.wait_archived(sent)
            assert document["schema"] == 2
            assert document["from"] == webhooks.DEFAULT_SENDER
            assert document["direction"] == "inbound"
            assert document["customer"]["phone"] is None  # the old job did not carry it
            assert stack.verified(sent)
        wait_for(lambda: _sent_to(sim, "16505550001"), timeout=60, what="the warning")
        assert len(_sent_to(sim, "16505550001")) == 1
    finally:
        beat.stop()
        worker.stop()


def test_a_rolling_deploy_loses_nothing(
    previous_release: Path,
    simulator: Simulator,
    seaweed: SeaweedFS,
    upgrade_redis_url: str,
    fresh_redis: Redis,
    sim: SimulatorClient,
    s3: Any,
    run_dir: Path,
) -> None:
    """A new `web` publishes to a worker of the previous release: it refuses the jobs of the
    new format (a customer known only by BSUID, a warning to a BSUID) and sends what it can;
    once a new worker runs, the sweep hands it everything still owed, and nothing is lost or
    sent twice."""
    env = _env(simulator, seaweed, upgrade_redis_url)
    logs = run_dir / "upgrade-2"
    web, url = start_web(env, logs)
    stack = _stack(url, env, sim, s3, fresh_redis)
    old_worker: Service | None = start_worker(
        _old(env, previous_release), logs, name="old", cwd=previous_release
    )
    try:
        by_phone = stack.media("image")
        by_bsuid = stack.media("video")
        del by_bsuid.message["from"]
        by_bsuid.message["from_user_id"] = BSUID
        too_big_phone = webhooks.too_big_message(sender="16505550002")
        too_big_bsuid = webhooks.too_big_message(sender="x")
        del too_big_bsuid["from"]
        too_big_bsuid["from_user_id"] = "GB.77700011122233344455"
        body = webhooks.envelope([by_phone.message, by_bsuid.message, too_big_phone, too_big_bsuid])
        encoded = webhooks.encode(body)
        answer = requests.post(
            f"{url}/webhook",
            data=encoded,
            headers={
                "X-Hub-Signature-256": webhooks.sign(encoded, env.app_secret),
                "Content-Type": "application/json",
            },
            timeout=10,
        )
        assert answer.status_code == 200
        # The old worker takes the fan-out and the tasks it makes, and refuses the new jobs.
        wait_for(lambda: _queue_drained(fresh_redis), timeout=60, what="queues drained")
        wait_for(
            lambda: "job_invalid" in old_worker.log_text() if old_worker else False,
            timeout=60,
            what="the old worker refusing the new jobs",
        )
        wait_for(lambda: _sent_to(sim, "16505550002"), timeout=60, what="the phone warning")
        assert not stack.object_exists(by_bsuid.key)
    finally:
        old_worker.stop()
        old_worker = None

    worker = start_worker(env, logs, name="new", concurrency=2)
    beat = start_beat(env, logs)
    try:
        for sent in (by_phone, by_bsuid):
            document = stack.wait_archived(sent)
            assert document["schema"] == 2
            assert stack.verified(sent)
        assert stack.wait_archived(by_bsuid)["customer"]["user_id"] == BSUID
        wait_for(
            lambda: _sent_to(sim, "GB.77700011122233344455"), timeout=60, what="the BSUID warning"
        )
        # Every warning owed is settled before counting: none is sent twice.
        wait_for(
            lambda: fresh_redis.zcard("wa:replies:pending") == 0,
            timeout=60,
            what="warnings settled",
        )
        assert len(_sent_to(sim, "16505550002")) == 1
        assert len(_sent_to(sim, "GB.77700011122233344455")) == 1
        assert all(m["body"] == REPLY_TEXT for m in sim.sent_messages())
    finally:
        beat.stop()
        worker.stop()
        web.stop()


ALPHA, BETA = webhooks.DEFAULT_PHONE_NUMBER_ID, "100000002"


def _two_accounts(path: Path, simulator: Simulator) -> Path:
    """Two Cloud API accounts, each of its own Meta app and token, in a file both releases read
    (`app:` names one app, as the previous release knows it)."""

    def cloud(app: str, token_env: str) -> dict[str, Any]:
        return {
            "token_env": token_env,
            "url": simulator.url,
            "media_hosts": [simulator.media_host],
            "app": app,
        }

    document = {
        "apps": {"alpha": {"secret_env": "WHATSAPP_APP_SECRET"}, "beta": {"secret": "beta-secret"}},
        "accounts": {
            ALPHA: cloud("alpha", "WHATSAPP_ACCESS_TOKEN"),
            BETA: cloud("beta", "BETA_ACCESS_TOKEN"),
        },
    }
    path.write_text(json.dumps(document))
    return path


def _downloads(sim: SimulatorClient, media_id: str) -> int:
    return sum(1 for r in sim.requests() if r["media_id"] == media_id and r["op"] == "download")


def test_records_of_the_previous_release_are_honoured_per_account(
    previous_release: Path,
    simulator: Simulator,
    seaweed: SeaweedFS,
    upgrade_redis_url: str,
    fresh_redis: Redis,
    sim: SimulatorClient,
    s3: Any,
    run_dir: Path,
) -> None:
    """The previous release, serving two accounts, archives a media, sends a warning, and
    records a media whose fan-out is then lost, all under ids alone. This release archives the
    lost media, archives nothing twice and sends no warning twice, and keeps the old records for
    the account they were written for: the same media id in the other account is archived."""
    beta_token = "beta-" + secrets.token_hex(8)
    sim.set_tokens([simulator.token, beta_token])
    accounts = _two_accounts(run_dir / "upgrade-accounts.json", simulator)
    base = _env(simulator, seaweed, upgrade_redis_url)
    env = dataclasses.replace(
        base,
        extra=(
            *base.extra,
            ("WHATSAPP_ACCOUNTS_FILE", str(accounts)),
            ("BETA_ACCESS_TOKEN", beta_token),
        ),
    )
    logs = run_dir / "upgrade-3"
    old_web, old_url = start_web(_old(env, previous_release), logs, cwd=previous_release)
    stack = _stack(old_url, env, sim, s3, fresh_redis)
    archived, lost = stack.media("image"), stack.media("document", filename="lost.pdf")
    warned_sender = "16505550003"
    warning = webhooks.too_big_message(sender=warned_sender)
    try:
        old_worker = start_worker(
            _old(env, previous_release), logs, name="old", cwd=previous_release
        )
        try:
            assert stack.post(archived, warning).status_code == 200
            stack.wait_archived(archived)
            wait_for(lambda: _sent_to(sim, warned_sender), timeout=60, what="the warning")
            wait_for(lambda: _queue_drained(fresh_redis), timeout=60, what="queues drained")
        finally:
            old_worker.stop()
        assert stack.post(lost).status_code == 200
        for key in fresh_redis.keys("media*"):
            fresh_redis.delete(key)  # the fan-out is lost with a worker
    finally:
        old_web.stop()
    # What the previous release wrote: records and a ledger entry by id alone.
    assert fresh_redis.hget(f"wa:media:{archived.record.id}", "state") == "archived"
    assert fresh_redis.hget(f"wa:media:{lost.record.id}", "state") == "queued"
    assert fresh_redis.get(f"wa:reply:{warning['id']}") == "sent"
    assert _downloads(sim, archived.record.id) == 1

    web, url = start_web(env, logs)
    worker = start_worker(env, logs, name="new", concurrency=2)
    beat = start_beat(env, logs)
    try:
        stack = _stack(url, env, sim, s3, fresh_redis)
        # Meta delivers the archived media and the warning again, to ALPHA.
        assert stack.post(archived, warning).status_code == 200
        # The same media id, in BETA's webhook signed by BETA's app.
        for_beta = dict(archived.message, id=webhooks.new_wamid())
        body, headers = webhooks.signed(
            webhooks.envelope([for_beta], phone_number_id=BETA), "beta-secret"
        )
        assert requests.post(f"{url}/webhook", data=body, headers=headers, timeout=10).ok
        beta_key = build_key("", BETA, int(for_beta["timestamp"]), archived.record.id, "image/jpeg")
        beta_copy = wait_for(lambda: stack.sidecar(beta_key), timeout=60, what="BETA's copy")
        assert beta_copy["phone_number_id"] == BETA
        # The sweep finds the media whose fan-out was lost.
        document = stack.wait_archived(lost)
        assert document["schema"] == 2
        assert stack.verified(lost)
        wait_for(
            lambda: (
                fresh_redis.zcard("wa:replies:pending") == 0
                and fresh_redis.zcard("wa:pending") == 0
            ),
            timeout=60,
            what="everything settled",
        )
        # Nothing archived twice, no warning sent twice.
        assert _downloads(sim, archived.record.id) == 2  # ALPHA's once, BETA's once
        assert _downloads(sim, lost.record.id) == 1
        assert len(_sent_to(sim, warned_sender)) == 1
        alpha = f"wa:media:{ALPHA}:{archived.record.id}"
        assert fresh_redis.hget(alpha, "state") == "archived"
        assert fresh_redis.hget(alpha, "key") == archived.key
        assert fresh_redis.hget(f"wa:media:{ALPHA}:{lost.record.id}", "state") == "archived"
        assert fresh_redis.keys(f"wa:media:{archived.record.id}") == []
    finally:
        beat.stop()
        worker.stop()
        web.stop()
