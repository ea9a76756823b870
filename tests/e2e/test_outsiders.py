"""Nothing an outsider can stall or read: `web` started exactly as its Procfile line starts it.

Slow clients against the webhook port, the cost and the place of a scrape, secrets in gunicorn's
own logs, and the one line and exit status of a configuration error in every process. All
traffic stays on the loopback interface and is bounded in count and time.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from devstack import webhooks
from devstack.processes import Service, free_port, wait_for
from devstack.redis_server import RedisServer
from tests.conftest import redis_db
from wa_media.core.jobs import MediaJob
from wa_media.core.policy import media_deadline
from wa_media.stores.records import MediaRef, MediaStateStore

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
APP_SECRET = "outsider-app-secret-" + secrets.token_hex(8)
VERIFY_TOKEN = "outsider-verify-" + secrets.token_hex(8)
PATH_TOKEN = "PathToken" + secrets.token_hex(12)
SLOW_CONNECTIONS = 50
DECLARED = 4 * 1024 * 1024


def procfile_web() -> str:
    """The Procfile's web line, bound to the loopback interface only."""
    for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("web:"):
            command = line.split(":", 1)[1].strip()
            assert "--bind 0.0.0.0:${PORT:-8000}" in command
            return command.replace("--bind 0.0.0.0:", "--bind 127.0.0.1:")
    raise AssertionError("the Procfile has no web line")


def web_environ(redis_url: str, port: int, metrics_port: int, **extra: str) -> dict[str, str]:
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WHATSAPP_", "WEB_", "WEBHOOK_", "GUNICORN_"))
    }
    environ.update(
        {
            "PATH": f"{BIN}{os.pathsep}{environ.get('PATH', '')}",
            "PORT": str(port),
            "REDIS_URL": redis_url,
            "WHATSAPP_APP_SECRET": APP_SECRET,
            "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
            "WEB_METRICS_PORT": str(metrics_port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    environ.update(extra)
    return environ


class Web:
    """`web` as the Procfile starts it, on free loopback ports."""

    def __init__(self, redis_url: str, log_dir: Path, **extra: str) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        environ = web_environ(redis_url, self.port, self.metrics_port, **extra)
        environ["PROMETHEUS_MULTIPROC_DIR"] = str(log_dir / "metrics")
        self.service = Service(
            "web",
            ["sh", "-c", f"exec {procfile_web()}"],
            log_dir / f"web-{self.port}.log",
            env=environ,
            cwd=ROOT,
        ).start()
        try:
            wait_for(self._healthy, timeout=30, what="web /healthz")
        except BaseException:
            self.service.stop()
            raise

    def _healthy(self) -> bool:
        if not self.service.alive():
            raise RuntimeError(f"web exited:\n{self.service.log_text()[-3000:]}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        answer = requests.get(self.metrics_url, timeout=10)
        assert answer.status_code == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples
        }

    def stop(self) -> None:
        self.service.stop()


@pytest.fixture(scope="module")
def outsider_redis_url() -> Iterator[str]:
    yield from redis_db(3)


def signed_media_webhook(n: int) -> tuple[bytes, dict[str, str]]:
    message = webhooks.media_message(
        "image",
        f"outsider-{n}-{secrets.token_hex(4)}",
        sha256_b64="AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        mime_type="image/jpeg",
    )
    body = webhooks.encode(webhooks.envelope([message]))
    return body, {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": webhooks.sign(body, APP_SECRET),
    }


def open_slow_body(port: int, path: str = "/webhook") -> socket.socket:
    """A connection that declares a 4 MiB body and sends its first byte only."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Hub-Signature-256: sha256={'0' * 64}\r\nContent-Length: {DECLARED}\r\n\r\n{{"
    )
    conn.sendall(head.encode())
    return conn


def answer_of(conn: socket.socket, timeout: float) -> bytes:
    """What the server sends before it closes the connection (b"" for a bare close)."""
    conn.settimeout(timeout)
    received = b""
    try:
        while chunk := conn.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


# --- 1. slow clients ---------------------------------------------------------------------------


def test_slow_bodies_do_not_stall_signed_webhooks(outsider_redis_url: str, tmp_path: Path) -> None:
    web = Web(outsider_redis_url, tmp_path)
    slow: list[socket.socket] = []
    try:
        # Fifty connections declare 4 MiB bodies and then send nothing more for the whole test
        # (a byte every 20 s would come after the test is over).
        for _ in range(SLOW_CONNECTIONS):
            slow.append(open_slow_body(web.port))
        # The listen queue is first in, first out: a webhook answered below was accepted after
        # every slow connection opened before it.
        latencies = []
        with requests.Session() as session:
            for n in range(20):
                body, headers = signed_media_webhook(n)
                started = time.perf_counter()
                answer = session.post(f"{web.url}/webhook", data=body, headers=headers, timeout=5)
                latencies.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
                started = time.perf_counter()
                ready = session.get(f"{web.url}/readyz", timeout=5)
                latencies.append(time.perf_counter() - started)
                assert ready.status_code == 200
        print(f"signed webhooks and /readyz under {SLOW_CONNECTIONS} slow bodies: "
              f"max {max(latencies) * 1000:.1f} ms, median "
              f"{sorted(latencies)[len(latencies) // 2] * 1000:.1f} ms")  # fmt: skip
        assert max(latencies) < 1.0
        # The slow connections are still open (nothing answered them yet): they really were
        # holding a request each while the webhooks went through.
        for conn in slow:
            conn.setblocking(False)
            with pytest.raises(BlockingIOError):
                conn.recv(1)
    finally:
        for conn in slow:
            conn.close()
        web.stop()


def test_a_body_not_received_in_time_is_answered_408(
    outsider_redis_url: str, tmp_path: Path
) -> None:
    web = Web(outsider_redis_url, tmp_path, WEBHOOK_BODY_TIMEOUT="2")
    try:
        before = web.scrape().get(("wa_webhook_requests_total", (("status", "408"),)), 0.0)
        started = time.monotonic()
        conn = open_slow_body(web.port)
        with conn:
            received = answer_of(conn, timeout=10)
        waited = time.monotonic() - started
        # answer_of returned: the server closed the connection (gunicorn closes it whatever its
        # Connection header says, as the rest of the body was never read).
        assert received.startswith(b"HTTP/1.1 408 "), received[:200]
        assert 1.5 <= waited < 6, waited
        # A token path: the same deadline, once the token is known to be wrong (404 first).
        conn = open_slow_body(web.port, f"/webhook/{PATH_TOKEN}")
        with conn:
            assert answer_of(conn, timeout=10).startswith(b"HTTP/1.1 404 ")
        wait_for(
            lambda: (
                web.scrape().get(("wa_webhook_requests_total", (("status", "408"),))) == before + 1
            ),
            timeout=10,
            what="the 408 counted",
        )
        lines = [line for line in web.service.log_text().splitlines() if '"status": 408' in line]
        assert len(lines) == 1, lines
        assert '"event": "webhook_rejected"' in lines[0]
        assert '"reason": "body not received within 2 s"' in lines[0]
        assert f'"content_length": {DECLARED}' in lines[0]
    finally:
        web.stop()


# --- 6. the scrape: its own port, a fixed cost ----------------------------------------------


def commands_served(redis: Redis) -> int:
    """Commands the server has run so far, INFO itself left out."""
    stats = redis.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def media_job(n: int, window_start: int, *, history: bool = False) -> MediaJob:
    return MediaJob(
        phone_number_id="106540352242922",
        waba_id=None,
        wamid=f"wamid.scrape{n}",
        # A history media's message may be weeks old: its window starts at its webhook.
        timestamp=window_start - 20 * 86400 if history else window_start,
        type="image",
        media_id=f"scrape-{n}",
        mime_type="image/jpeg",
        sha256=None,
        source="history" if history else "messages",
        received_at=window_start if history else None,
    )


def test_metrics_are_served_apart_and_cost_a_fixed_handful_of_commands(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", persistent=False).start()
    web: Web | None = None
    try:
        redis = Redis.from_url(server.url, decode_responses=True)
        store = MediaStateStore(redis)
        now = int(time.time())
        # The oldest window belongs to a history media recorded in the middle of the others,
        # whose own message is far older than its window.
        oldest = media_job(5, now - 5 * 86400, history=True)
        jobs = [media_job(n, now - 3600 - (n * 7919) % (3 * 86400)) for n in range(10_000)]
        jobs[5] = oldest
        costs = {}
        for label, count in (("10", 10), ("10,000", 10_000)):
            store.admit_many(jobs[:10])
            for start in range(10, count, 1000):
                store.admit_many(jobs[start : min(count, start + 1000)])
            # A new master for each: its first scrape opens its connection to Redis.
            if web is not None:
                web.stop()
            web = Web(server.url, tmp_path)
            assert requests.get(f"{web.url}/metrics", timeout=5).status_code == 404
            for scrape in ("first", "second"):
                before = commands_served(redis)
                started = time.time()
                samples = web.scrape()
                ended = time.time()
                costs[f"{label} pending, {scrape} scrape"] = commands_served(redis) - before
                assert samples[("wa_media_pending", ())] == count
                # Exact: the oldest window's age at the moment of the scrape, and its deadline.
                age = samples[("wa_oldest_pending_age_seconds", ())]
                left = samples[("wa_nearest_deadline_seconds", ())]
                assert started - oldest.window_start <= age <= ended - oldest.window_start
                lifetime = media_deadline(oldest.window_start) - oldest.window_start
                assert age + left == pytest.approx(lifetime)
        print("Redis commands per scrape:", costs)
        # As docs/operations.md says: 18 in one round trip plus one for the archive's state, 3
        # in one round trip for the deliveries (no destination here), and one more on a
        # master's first scrape (opening its connection), whatever the backlog.
        assert all(
            cost == (23 if name.endswith("first scrape") else 22) for name, cost in costs.items()
        ), costs

        # Settled, the oldest leaves the index: the next oldest is reported, exactly.
        store.mark_archived(MediaRef.of(oldest), "key")
        runner_up = min(job.window_start for job in jobs if job is not oldest)
        assert web is not None
        samples = web.scrape()
        assert samples[("wa_media_pending", ())] == 9_999
        assert samples[("wa_oldest_pending_age_seconds", ())] == pytest.approx(
            time.time() - runner_up, abs=2
        )
    finally:
        if web is not None:
            web.stop()
        server.stop()


def test_media_recorded_without_the_window_index_are_indexed_by_the_next_scrape(
    tmp_path: Path,
) -> None:
    """What a previous release's `web` recorded (wa:pending only) is found by the next scrape."""
    server = RedisServer(tmp_path / "redis", persistent=False).start()
    web = None
    try:
        redis = Redis.from_url(server.url, decode_responses=True)
        store = MediaStateStore(redis)
        now = int(time.time())
        recent, old = media_job(1, now - 600), media_job(2, now - 2 * 86400)
        store.admit_many([recent, old])
        # Indexed by member `{phone_number_id}:{media_id}`, as wa:pending is.
        recent_member, old_member = MediaRef.of(recent).member, MediaRef.of(old).member
        redis.zrem("wa:pending:window", old_member)  # as a release without the index left it
        redis.zadd("wa:pending:window", {"settled-by-an-old-worker": now - 6 * 86400})
        web = Web(server.url, tmp_path)
        samples = web.scrape()
        assert samples[("wa_media_pending", ())] == 2
        assert samples[("wa_oldest_pending_age_seconds", ())] == pytest.approx(
            time.time() - old.window_start, abs=2
        )
        assert set(redis.zrange("wa:pending:window", 0, -1)) == {recent_member, old_member}
    finally:
        if web is not None:
            web.stop()
        server.stop()


# --- 8. secrets in gunicorn's own logs, the accounts file's mode ------------------------------


def send_raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        return answer_of(conn, timeout=10)


def test_path_tokens_never_reach_gunicorn_logs(outsider_redis_url: str, tmp_path: Path) -> None:
    web = Web(
        outsider_redis_url,
        tmp_path,
        WHATSAPP_PROVIDER="360dialog",
        WHATSAPP_WEBHOOK_TOKEN=PATH_TOKEN,
        WEBHOOK_BODY_TIMEOUT="1",
        # What an operator may add: gunicorn's access log, and its debug lines, which print
        # every malformed request.
        GUNICORN_CMD_ARGS="--access-logfile - --log-level debug",
    )
    try:
        body = webhooks.encode(webhooks.envelope([webhooks.text_message("hi")]))
        answer = requests.post(f"{web.url}/webhook/{PATH_TOKEN}", data=body, timeout=5)
        assert answer.status_code == 200
        near_miss = requests.post(f"{web.url}/webhook/{PATH_TOKEN}x", data=body, timeout=5)
        assert near_miss.status_code == 404
        path = f"/webhook/{PATH_TOKEN}"
        for raw in (
            f"POST {path} HTTP/1.1 trailing\r\nHost: x\r\n\r\n",
            f"POST {path} HTTP/9.9\r\nHost: x\r\n\r\n",
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n",
            f"POST {path}?{PATH_TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
            "Content-Length: 2\r\n\r\nab",
            f"GET http://127.0.0.1{path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: zip\r\n\r\n",
            f"POST {path.replace('/webhook/', '/webhook%2F')} HTTP/1.1\r\nHost: x\r\n"
            "Content-Length: 0\r\n\r\n",
        ):
            assert send_raw(web.port, raw.encode()).startswith(b"HTTP/1.1 "), raw
        conn = open_slow_body(web.port, path)
        with conn:
            assert answer_of(conn, timeout=10).startswith(b"HTTP/1.1 408 ")
        # gunicorn wrote its lines (the access log of the 200 and the 408 among them) ...
        wait_for(
            lambda: web.service.log_text().count('"POST /webhook/[redacted] HTTP/1.1" 408') == 1,
            timeout=10,
            what="the access log line of the 408",
        )
    finally:
        web.stop()
    log = web.service.log_text()
    assert '"POST /webhook/[redacted] HTTP/1.1" 200' in log
    assert "Invalid request" in log or "Bad Request" in log or "invalid" in log.lower()
    # ... and none of them holds the token.
    assert PATH_TOKEN not in log
    assert PATH_TOKEN.lower() not in log.lower()


def test_an_accounts_file_others_can_read_is_warned_about(
    outsider_redis_url: str, tmp_path: Path
) -> None:
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(
        "apps: {main: {secret_env: OUTSIDER_APP_SECRET}}\n"
        'accounts: {"106540352242922": {token_env: OUTSIDER_TOKEN, app: main}}\n',
        encoding="utf-8",
    )
    extra = {
        "WHATSAPP_ACCOUNTS_FILE": str(accounts),
        "OUTSIDER_APP_SECRET": APP_SECRET,
    }
    for mode, warned in ((0o644, True), (0o640, True), (0o600, False)):
        accounts.chmod(mode)
        log_dir = tmp_path / f"mode-{mode:o}"
        web = Web(outsider_redis_url, log_dir, **extra)
        web.stop()
        lines = [
            line
            for line in web.service.log_text().splitlines()
            if "accounts_file_readable_by_others" in line
        ]
        if warned:
            # Once, from the master (the workers inherit what it warned about).
            assert len(lines) == 1, lines
            assert f'"file": "{accounts}"' in lines[0]
            assert f'"mode": "{mode:04o}"' in lines[0]
            assert '"level": "warning"' in lines[0]
        else:
            assert lines == []


# --- 9. configuration errors: one line, one exit status ---------------------------------------

BAD_REDIS_URLS = (
    "http://127.0.0.1:6379/0",
    "redis://127.0.0.1:notaport/0",
    "redis://127.0.0.1:6379/zero",
    "redis://:hunter2-secret@127.0.0.1:70000/0",
)


def run_process(argv: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=environ, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def worker_environ(redis_url: str, **extra: str) -> dict[str, str]:
    environ = web_environ(redis_url, free_port(), 0)
    environ.update(
        {"S3_BUCKET": "b", "WHATSAPP_ACCESS_TOKEN": "t", "WORKER_METRICS_PORT": "0", **extra}
    )
    return environ


PROCESSES = {
    "web": ["sh", "-c", f"exec {procfile_web()}"],
    "worker": [str(BIN / "celery"), "-A", "worker", "worker", "--pool", "solo"],
    "beat": [str(BIN / "celery"), "-A", "worker", "beat", "--schedule", "/dev/null"],
    "wa-media": [str(BIN / "wa-media"), "status"],
}


def assert_one_line(done: subprocess.CompletedProcess[str], naming: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if "configuration error" in line]
    assert len(lines) == 1, output
    assert naming in lines[0], output
    assert "hunter2" not in output


@pytest.mark.parametrize("process", list(PROCESSES))
@pytest.mark.parametrize("url", BAD_REDIS_URLS)
def test_a_malformed_redis_url_stops_every_process_with_one_line(process: str, url: str) -> None:
    done = run_process(PROCESSES[process], worker_environ(url))
    assert_one_line(done, "REDIS_URL is invalid")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("S3_PREFIX", "a//b"),
        ("S3_PREFIX", "x/.."),
        ("S3_PREFIX", "../other"),
        ("S3_PREFIX", "a/./b"),
        ("S3_PREFIX", "a/\x07b"),
    ],
)
@pytest.mark.parametrize("process", ["worker", "wa-media"])
def test_an_unusable_prefix_stops_the_worker_and_the_cli(
    process: str, variable: str, value: str, outsider_redis_url: str
) -> None:
    argv = PROCESSES[process] if process == "worker" else [str(BIN / "wa-media"), "verify"]
    done = run_process(argv, worker_environ(outsider_redis_url, **{variable: value}))
    assert_one_line(done, f"{variable} is invalid")


@pytest.mark.parametrize(
    ("entry", "naming"),
    [
        ('"..": {token_env: T, app: main}', "accounts...: not a usable phone_number_id"),
        ('".": {token_env: T, app: main}', "accounts..: not a usable phone_number_id"),
        ('"1555": {token_env: T, app: main, prefix: "../other"}', "accounts.1555.prefix"),
        ('"1555": {token_env: T, app: main, prefix: "a//b"}', "accounts.1555.prefix"),
    ],
)
@pytest.mark.parametrize("process", ["web", "worker"])
def test_an_unusable_accounts_entry_stops_web_and_worker(
    process: str, entry: str, naming: str, outsider_redis_url: str, tmp_path: Path
) -> None:
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(f"apps: {{main: {{secret: s}}}}\naccounts: {{{entry}}}\n")
    accounts.chmod(0o600)
    environ = worker_environ(
        outsider_redis_url, WHATSAPP_ACCOUNTS_FILE=str(accounts), T="token-value"
    )
    done = run_process(PROCESSES[process], environ)
    assert_one_line(done, naming)
