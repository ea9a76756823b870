"""The real stack for end-to-end tests: SeaweedFS, the simulator, Redis, `web` and `worker`."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from devstack import webhooks
from devstack.processes import Service, wait_for
from devstack.seaweed import SeaweedFS
from devstack.stack import StackEnv, start_web, start_worker
from graphsim import MediaRecord, Simulator, SimulatorClient
from tests.conftest import redis_db
from tests.e2e.s3record import sitecustomize as s3record
from wa_media.core.layout import build_key

BUCKET = "wa-archive"
MAX_MEDIA_BYTES = 12 * 1024 * 1024
REPLY_TEXT = "Your file is over 100 MB: please send a smaller one."


E2E = Path(__file__).resolve().parent
# tests/e2e/test_s3_policies.py's check of the S3 requests recorded: it runs after every other
# test of the session.
POLICY_CHECK = "test_recorded_s3_requests_are_what_the_policies_grant"
_DESELECTED = pytest.StashKey[bool]()
_E2E_FAILED: list[str] = []


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    checks = [item for item in items if item.name == POLICY_CHECK]
    items[:] = [item for item in items if item.name != POLICY_CHECK] + checks


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        items[0].config.stash[_DESELECTED] = True


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed and report.nodeid.startswith("tests/e2e/"):
        _E2E_FAILED.append(report.nodeid)


def whole_e2e_run(session: pytest.Session, current: pytest.Item) -> str | None:
    """None when the session ran every e2e test before `current`, all passed or skipped;
    else why not."""
    modules = {path.name for path in E2E.glob("test_*.py")}
    collected = {item.path.name for item in session.items if item.path.parent == E2E}
    if collected != modules:
        return f"the session left out {sorted(modules - collected)}"
    if session.config.stash.get(_DESELECTED, False):
        return "tests were deselected"
    if any("::" in arg for arg in session.config.args):
        return "tests were chosen by node id"
    if session.items[-1] is not current:
        return "tests ran after this one"
    if _E2E_FAILED:
        return f"tests failed: {_E2E_FAILED[:3]}"
    return None


@pytest.fixture(scope="session", autouse=True)
def s3_requests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The directory where every S3 call of the service during the e2e tests is recorded: those
    of the processes the tests start (PYTHONPATH gives them tests/e2e/s3record's sitecustomize)
    and those the service's code makes in this process."""
    directory = tmp_path_factory.mktemp("s3-requests")
    recorder = str(Path(s3record.__file__).parent)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(s3record.RECORD_DIR, str(directory))
        patch.setenv(
            "PYTHONPATH", os.pathsep.join(filter(None, [recorder, os.environ.get("PYTHONPATH")]))
        )
        undo = s3record.install(directory, process="pytest")
        try:
            yield directory
        finally:
            undo()


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def seaweed(run_dir: Path) -> Iterator[SeaweedFS]:
    store = SeaweedFS(run_dir / "weed", buckets=(BUCKET,)).start()
    yield store
    store.stop()


@pytest.fixture(scope="session")
def s3(seaweed: SeaweedFS) -> Any:
    return seaweed.client()


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    with Simulator() as sim:
        yield sim


@pytest.fixture
def sim(simulator: Simulator) -> Iterator[SimulatorClient]:
    client = simulator.client()
    client.clear_faults()
    client.set_latency(0)
    client.set_tokens([simulator.token])
    yield client
    client.clear_faults()
    client.set_latency(0)
    client.close()


@pytest.fixture(scope="session")
def e2e_redis_url() -> Iterator[str]:
    yield from redis_db(9)


@pytest.fixture(scope="session")
def redis_client(e2e_redis_url: str) -> Redis:
    return Redis.from_url(e2e_redis_url, decode_responses=True)


def stack_env(simulator: Simulator, seaweed: SeaweedFS, redis_url: str) -> StackEnv:
    return StackEnv.local(
        simulator,
        seaweed,
        redis_url,
        BUCKET,
        max_media_bytes=MAX_MEDIA_BYTES,
        reply_text=REPLY_TEXT,
        extra=(("TOKEN_PAUSE_SECONDS", "3"),),
    )


@pytest.fixture(scope="session")
def env(simulator: Simulator, seaweed: SeaweedFS, e2e_redis_url: str) -> StackEnv:
    return stack_env(simulator, seaweed, e2e_redis_url)


@pytest.fixture(scope="session")
def web(env: StackEnv, run_dir: Path) -> Iterator[str]:
    service, url = start_web(env, run_dir / "logs")
    yield url
    service.stop()


@pytest.fixture(scope="session")
def worker(env: StackEnv, run_dir: Path) -> Iterator[Service]:
    service = start_worker(env, run_dir / "logs", concurrency=2)
    yield service
    service.stop()


TaskCounts = Counter[tuple[str, str]]


def task_counts(worker: Service) -> TaskCounts:
    """The worker's `wa_tasks_total` by (task, outcome), summed over reasons, scraped from its
    metrics port. Every run of a task ends in exactly one count: a retry is counted as
    `retried`, and its next run counts again."""
    port = worker.env["WORKER_METRICS_PORT"]
    answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    answer.raise_for_status()
    counts: TaskCounts = Counter()
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == "wa_tasks_total":
                counts[(sample.labels["task"], sample.labels["outcome"])] += int(sample.value)
    return counts


def wait_tasks(
    worker: Service,
    before: TaskCounts,
    more: Mapping[tuple[str, str], int],
    timeout: float = 60,
) -> TaskCounts:
    """Wait until the worker has counted, for each (task, outcome), at least `more` runs beyond
    `before`: the work those runs stand for, retries included, has ended."""

    def counted() -> TaskCounts | None:
        now = task_counts(worker)
        return now if all(now[key] - before[key] >= n for key, n in more.items()) else None

    return wait_for(counted, timeout=timeout, interval=0.25, what=f"task runs {dict(more)}")


@dataclass
class Sent:
    """A media registered in the simulator and announced to `web`."""

    record: MediaRecord
    message: dict[str, Any]
    key: str


class Stack:
    """Test-side helpers over the running stack."""

    def __init__(
        self,
        web: str,
        worker: Service | None,
        env: StackEnv,
        sim: SimulatorClient,
        s3: Any,
        redis: Redis,
    ) -> None:
        self.web, self.worker, self.env, self.sim = web, worker, env, sim
        self.s3, self.redis = s3, redis

    def media(
        self, kind: str = "image", *, size: int = 20_000, mime_type: str | None = None, **extra: Any
    ) -> Sent:
        mime = (
            mime_type
            or {
                "image": "image/jpeg",
                "video": "video/mp4",
                "audio": "audio/mpeg",
                "voice": "audio/ogg; codecs=opus",
                "document": "application/pdf",
                "sticker": "image/webp",
            }[kind]
        )
        record = self.sim.add_generated_media(size=size, seed=secrets.randbits(32), mime_type=mime)
        message = webhooks.media_message(
            kind, record.id, sha256_b64=record.sha256_b64, mime_type=mime, **extra
        )
        key = build_key("", "106540352242922", int(message["timestamp"]), record.id, mime)
        return Sent(record, message, key)

    def post(self, *items: Sent | dict[str, Any], secret: str | None = None) -> requests.Response:
        messages = [item.message if isinstance(item, Sent) else item for item in items]
        body = webhooks.encode(webhooks.envelope(messages))
        signature = webhooks.sign(body, secret or self.env.app_secret)
        return requests.post(
            f"{self.web}/webhook",
            data=body,
            headers={"X-Hub-Signature-256": signature, "Content-Type": "application/json"},
            timeout=10,
        )

    def sidecar(self, key: str) -> dict[str, Any] | None:
        return self.json_object(key + ".json")

    def json_object(self, key: str) -> dict[str, Any] | None:
        """A JSON document of the bucket (a sidecar, an edit record), or None."""
        try:
            body = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except ClientError:
            return None
        document: dict[str, Any] = json.loads(body)
        return document

    def wait_archived(self, sent: Sent, timeout: float = 60) -> dict[str, Any]:
        return wait_for(lambda: self.sidecar(sent.key), timeout=timeout, what=f"{sent.key}")

    def state(self, media_id: str) -> dict[str, str]:
        # Records are kept per account: `wa:media:{phone_number_id}:{media_id}`.
        key = f"wa:media:{webhooks.DEFAULT_PHONE_NUMBER_ID}:{media_id}"
        return self.redis.hgetall(key)  # type: ignore[return-value]

    def wait_state(self, media_id: str, state: str, timeout: float = 60) -> dict[str, str]:
        def reached() -> dict[str, str] | None:
            record = self.state(media_id)
            return record if record.get("state") == state else None

        return wait_for(reached, timeout=timeout, what=f"{media_id} {state}")

    def object_bytes(self, key: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return body

    def object_exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=BUCKET, Key=key)
        except ClientError:
            return False
        return True

    def verified(self, sent: Sent) -> bool:
        data = self.object_bytes(sent.key)
        return hashlib.sha256(data).hexdigest() == sent.record.sha256

    def task_counts(self) -> TaskCounts:
        assert self.worker is not None
        return task_counts(self.worker)

    def wait_tasks(
        self, before: TaskCounts, more: Mapping[tuple[str, str], int], timeout: float = 60
    ) -> TaskCounts:
        assert self.worker is not None
        return wait_tasks(self.worker, before, more, timeout)

    @contextmanager
    def lease_held(self, media_id: str) -> Iterator[None]:
        """Hold a media's lease as a worker elsewhere would: every try of it meets the lease
        and is retried a quarter of LEASE_SECONDS later, until this lets go."""
        key = f"wa:lease:{webhooks.DEFAULT_PHONE_NUMBER_ID}:{media_id}"
        assert self.redis.set(key, "another-host:1:test", nx=True, ex=300)
        try:
            yield
        finally:
            self.redis.delete(key)


@pytest.fixture
def stack(
    web: str, worker: Service, env: StackEnv, sim: SimulatorClient, s3: Any, redis_client: Redis
) -> Stack:
    return Stack(web, worker, env, sim, s3, redis_client)
