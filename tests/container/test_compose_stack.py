"""deploy/docker-compose.yml for real: the images built, the stack run in Docker, used over HTTPS.

`make container-test` runs this module (not `make test`: it needs a Docker engine). It builds
the stand-in images of devstack/images.py where Docker Hub cannot be pulled, our image from
deploy/Dockerfile and the proxy's from deploy/proxy/, then starts the compose file as it is,
two workers included (`--scale worker=2`). What the test changes is only what a deployment
changes: an override file naming the images, and its own compose.env (the simulator's address,
fresh secrets, a 10 s lease), in a project directory of its own, so that a deploy/compose.env
with real credentials is never read. The Graph API simulator runs on the host, in this
process, on the Docker bridge's address; webhooks go to the proxy over HTTPS, its certificate
authority pinned. Everything the stack stored is read back from its own SeaweedFS and Redis.

Set CONTAINER_TEST_COMPOSE to choose the Compose command (`docker compose` when the v2 plugin
answers, else `docker-compose`), CONTAINER_TEST_KEEP=1 to leave the stack running after the
test for a look (remove it with the `down` command printed).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from devstack import webhooks
from devstack.images import ROOT, build_all, build_app_images
from devstack.processes import free_port, wait_for
from graphsim import MediaRecord, Simulator, SimulatorClient
from wa_media.core.index import media_id_entry_key, wamid_entry_key
from wa_media.core.layout import build_key

COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yml"
APP_IMAGE = "wa-media-archiver:container-test"
PROXY_IMAGE = "wa-media-proxy:container-test"
BUCKET = "wa-media-archive"
KINDS = ("image", "video", "audio", "voice", "document", "sticker")
MIME = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/mpeg",
    "voice": "audio/ogg; codecs=opus",
    "document": "application/pdf",
    "sticker": "image/webp",
}
WORKERS = 2
LEASE_SECONDS = 10
# The proxy's certificate authority, in its volume (deploy/proxy/entrypoint.sh).
PROXY_CA = "/etc/wa-media-proxy/tls/ca.crt"


def say(message: str) -> None:
    """A progress line, shown as it happens (make container-test runs pytest with -s)."""
    print(f"::: {message}", flush=True)


def run(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run a command; its standard output, or an AssertionError with what it printed."""
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{shlex.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )
    return done.stdout


def compose_command() -> list[str]:
    """`docker compose` (v2) when it answers, else `docker-compose` (v1)."""
    chosen = os.environ.get("CONTAINER_TEST_COMPOSE")
    if chosen:
        return shlex.split(chosen)
    v2 = subprocess.run(
        ["docker", "compose", "version"],
        capture_output=True,
        check=False,
    )
    if v2.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor `docker-compose` is installed")


def docker_engine() -> None:
    """Fail, loudly, when no Docker engine answers: this test is never skipped."""
    done = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"no Docker engine answers (start dockerd): {done.stderr.strip()}")
    say(f"Docker engine {done.stdout.strip()}")


def bridge_gateway() -> str:
    """The host's address on Docker's default bridge, which every container can reach."""
    (bridge,) = json.loads(run(["docker", "network", "inspect", "bridge"]))
    gateways = [entry["Gateway"] for entry in bridge["IPAM"]["Config"] if entry.get("Gateway")]
    if gateways:
        return str(gateways[0])
    # Older engines leave the default bridge's gateway out: it is the interface's address.
    device = bridge["Options"].get("com.docker.network.bridge.name", "docker0")
    words = run(["ip", "-4", "-o", "addr", "show", "dev", device]).split()
    return words[words.index("inet") + 1].split("/")[0]


@dataclass
class Sent:
    """A media in the simulator, announced by a webhook."""

    kind: str
    record: MediaRecord
    message: dict[str, Any]
    key: str


@dataclass
class ComposeStack:
    """The running compose project, and the test's ways into it."""

    project: str
    command: list[str]
    env: dict[str, str]
    directory: Path
    https_url: str
    web_port: int
    ca_file: Path
    app_secret: str
    verify_token: str
    sim: SimulatorClient
    s3: Any = None
    archived: list[Sent] = field(default_factory=list)

    def compose(self, *args: str, timeout: float = 600) -> str:
        argv = [
            *self.command,
            "--project-name",
            self.project,
            "--file",
            str(COMPOSE_FILE),
            "--file",
            str(self.directory / "override.yml"),
            "--project-directory",
            str(self.directory),
            *args,
        ]
        return run(argv, env=self.env, timeout=timeout)

    def containers(self, service: str, *, every: bool = False) -> list[str]:
        """The ids of a service's containers (running ones unless `every`), by number."""
        argv = [
            "docker",
            "ps",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
            "--format",
            '{{.ID}} {{.Label "com.docker.compose.container-number"}}',
        ]
        if every:
            argv.insert(2, "--all")
        rows = [line.split() for line in run(argv).splitlines() if line.strip()]
        return [cid for cid, _ in sorted(rows, key=lambda row: int(row[1]))]

    def container(self, service: str) -> str:
        (only,) = self.containers(service)
        return only

    def inspect(self, container: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(run(["docker", "inspect", container]))[0]
        return document

    def address(self, container: str) -> str:
        networks = self.inspect(container)["NetworkSettings"]["Networks"]
        (network,) = networks.values()
        return str(network["IPAddress"])

    def exec(self, container: str, *argv: str) -> str:
        return run(["docker", "exec", container, *argv], timeout=60)

    def redis(self, *command: str) -> Any:
        """A Redis command run from a worker container, with its REDIS_URL (and password)."""
        script = (
            "import json, os, sys, redis\n"
            "client = redis.Redis.from_url(os.environ['REDIS_URL'], decode_responses=True)\n"
            "print(json.dumps(client.execute_command(*sys.argv[1:])))\n"
        )
        return json.loads(self.exec(self.containers("worker")[0], "python", "-c", script, *command))

    def record(self, media_id: str) -> dict[str, str]:
        # Records are kept per account: `wa:media:{phone_number_id}:{media_id}`.
        fields = self.redis("HGETALL", f"wa:media:{webhooks.DEFAULT_PHONE_NUMBER_ID}:{media_id}")
        # redis-py answers HGETALL with a dict; a flat list where no callback applies.
        if isinstance(fields, list):
            return dict(zip(fields[::2], fields[1::2], strict=True))
        return dict(fields)

    def logs(self, container: str) -> str:
        done = subprocess.run(
            ["docker", "logs", container],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout + done.stderr

    # --- the service, as Meta uses it ------------------------------------------------------

    def media(self, kind: str, size: int, **extra: Any) -> Sent:
        record = self.sim.add_generated_media(
            size=size, seed=secrets.randbits(32), mime_type=MIME[kind]
        )
        message = webhooks.media_message(
            kind,  # type: ignore[arg-type]
            record.id,
            sha256_b64=record.sha256_b64,
            mime_type=MIME[kind],
            **extra,
        )
        key = build_key(
            "", webhooks.DEFAULT_PHONE_NUMBER_ID, int(message["timestamp"]), record.id, MIME[kind]
        )
        return Sent(kind, record, message, key)

    def post(self, *messages: dict[str, Any], timeout: float = 10) -> requests.Response:
        """A signed webhook, to the proxy over HTTPS with its certificate authority pinned."""
        body = webhooks.encode(webhooks.envelope(list(messages)))
        return requests.post(
            f"{self.https_url}/webhook",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": webhooks.sign(body, self.app_secret),
            },
            verify=str(self.ca_file),
            timeout=timeout,
        )

    def sidecar(self, key: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=BUCKET, Key=key + ".json")["Body"].read()
        except ClientError:
            return None
        document: dict[str, Any] = json.loads(body)
        return document

    def wait_archived(self, sent: Sent, timeout: float = 90) -> dict[str, Any]:
        document = wait_for(
            lambda: self.sidecar(sent.key), timeout=timeout, interval=0.25, what=sent.key
        )
        self.archived.append(sent)
        return document

    def bucket_keys(self) -> list[str]:
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return sorted(keys)


def _write_project(directory: Path, sim: Simulator, app_secret: str, verify_token: str) -> None:
    """The compose file's neighbours, in a directory of the test's own."""
    directory.mkdir(parents=True)
    # The files the compose file names relative to itself: the same ones, linked.
    (directory / "redis.conf").symlink_to(ROOT / "deploy" / "redis.conf")
    (directory / "proxy").symlink_to(ROOT / "deploy" / "proxy")
    environment = {
        "WHATSAPP_PROVIDER": "cloud",
        "WHATSAPP_APP_SECRET": app_secret,
        "WHATSAPP_VERIFY_TOKEN": verify_token,
        "WHATSAPP_ACCESS_TOKEN": sim.token,
        "WHATSAPP_GRAPH_URL": sim.url,
        "WHATSAPP_MEDIA_HOSTS": sim.media_host,
        "S3_BUCKET": BUCKET,
        "S3_PREFIX": "",
        "AWS_ACCESS_KEY_ID": "container-test",
        "AWS_SECRET_ACCESS_KEY": secrets.token_hex(16),
        "AWS_DEFAULT_REGION": "us-east-1",
        # A killed worker's media are taken up again within about half a minute.
        "LEASE_SECONDS": str(LEASE_SECONDS),
        "SWEEP_STALLED_AFTER": "5",
        "LOG_LEVEL": "INFO",
        # The simulator runs on the host, reached over plain HTTP at a non-loopback address.
        "ALLOW_INSECURE_HTTP": "true",
    }
    (directory / "compose.env").write_text(
        "".join(f"{name}={value}\n" for name, value in environment.items())
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    began = time.monotonic()
    docker_engine()
    command = compose_command()
    say(f"Compose: {' '.join(command)} ({run([*command, 'version']).splitlines()[0].strip()})")

    work = tmp_path_factory.mktemp("container")
    images = build_all(
        Path(os.environ.get("CONTAINER_TEST_IMAGES", ROOT / "build" / "images")), say
    )
    build_app_images(images, APP_IMAGE, PROXY_IMAGE, work, say)
    say(f"stage images: {time.monotonic() - began:.0f} s")

    sim = Simulator()
    sim.start(bridge_gateway(), 0)
    say(f"simulator on {sim.url} (the host, outside the images)")
    app_secret, verify_token = secrets.token_hex(32), secrets.token_urlsafe(24)
    directory = work / "deploy"
    _write_project(directory, sim, app_secret, verify_token)
    (directory / "override.yml").write_text(images.override(COMPOSE_FILE, APP_IMAGE, PROXY_IMAGE))

    web_port, https_port = free_port(), free_port()
    env = {
        **os.environ,
        "PORT": str(web_port),
        "HTTPS_PORT": str(https_port),
        "TLS_SERVER_NAME": "localhost",
        "REDIS_PASSWORD": secrets.token_hex(16),
    }
    env.pop("COMPOSE_PROJECT_NAME", None)
    project = f"wa-media-ct-{secrets.token_hex(3)}"
    stack = ComposeStack(
        project=project,
        command=command,
        env=env,
        directory=directory,
        https_url=f"https://127.0.0.1:{https_port}",
        web_port=web_port,
        ca_file=work / "proxy-ca.crt",
        app_secret=app_secret,
        verify_token=verify_token,
        sim=sim.client(),
    )
    failed = True
    try:
        started = time.monotonic()
        stack.compose("config", "--quiet")
        stack.compose("up", "--detach", "--no-build", "--scale", f"worker={WORKERS}")
        _wait_ready(stack)
        say(f"stage stack up: {time.monotonic() - started:.0f} s")
        yield stack
        failed = False
    finally:
        log_file = work / "compose.log"
        with log_file.open("w") as out:
            subprocess.run(
                [*stack.command, "--project-name", project, "--file", str(COMPOSE_FILE),
                 "--file", str(directory / "override.yml"), "--project-directory",
                 str(directory), "logs", "--no-color"],
                stdout=out, stderr=subprocess.STDOUT, env=env, check=False, timeout=120,
            )  # fmt: skip
        say(f"the stack's logs: {log_file}")
        if failed:
            print(log_file.read_text(errors="replace")[-8000:])
        down = ["down", "--volumes", "--remove-orphans", "--timeout", "20"]
        if os.environ.get("CONTAINER_TEST_KEEP") == "1":
            argv = [*command, "--project-name", project, "--file", str(COMPOSE_FILE)]
            argv += ["--file", str(directory / "override.yml")]
            argv += ["--project-directory", str(directory), *down]
            say(f"kept; remove it with: PORT={web_port} HTTPS_PORT={https_port} {shlex.join(argv)}")
        else:
            stack.compose(*down)
            say("stack removed")
        stack.sim.close()
        sim.stop()


def _wait_ready(stack: ComposeStack) -> None:
    """The proxy answers over HTTPS and both workers say they are ready."""

    def ca_written() -> bool:
        try:
            pem = stack.exec(stack.container("proxy"), "cat", PROXY_CA)
        except AssertionError:
            return False
        stack.ca_file.write_text(pem)
        return "BEGIN CERTIFICATE" in pem

    wait_for(ca_written, timeout=60, interval=0.5, what="the proxy's certificate authority")

    def healthy() -> bool:
        try:
            answer = requests.get(
                f"{stack.https_url}/healthz", verify=str(stack.ca_file), timeout=2
            )
        except requests.RequestException:
            return False
        return answer.status_code == 200

    wait_for(healthy, timeout=90, interval=0.5, what="web's /healthz through the proxy")

    def workers_ready() -> bool:
        workers = stack.containers("worker")
        return len(workers) == WORKERS and all(" ready." in stack.logs(w) for w in workers)

    wait_for(workers_ready, timeout=90, interval=0.5, what=f"{WORKERS} workers ready")
    stack.s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{stack.address(stack.container('seaweedfs'))}:8333",
        aws_access_key_id="container-test",
        aws_secret_access_key="container-test-secret",
        region_name="us-east-1",
    )


# --- the tests, in the order they run -------------------------------------------------------


def test_https_only_with_the_pinned_authority(stack: ComposeStack) -> None:
    """TLS is real: the proxy's certificate verifies against its CA, and only against it."""
    challenge = secrets.token_hex(8)
    answer = requests.get(
        f"{stack.https_url}/webhook",
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": stack.verify_token,
            "hub.challenge": challenge,
        },
        verify=str(stack.ca_file),
        timeout=5,
    )
    assert (answer.status_code, answer.text) == (200, challenge)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{stack.https_url}/healthz", timeout=5)
    # The scraper's endpoint is not published through the proxy.
    assert (
        requests.get(f"{stack.https_url}/metrics", verify=str(stack.ca_file), timeout=5).status_code
        == 404
    )
    # A bad signature is refused by web behind it: the body reaches web unchanged.
    body = webhooks.encode(webhooks.envelope([webhooks.text_message("hello")]))
    forged = requests.post(
        f"{stack.https_url}/webhook",
        data=body,
        headers={"X-Hub-Signature-256": webhooks.sign(body, "not-the-secret")},
        verify=str(stack.ca_file),
        timeout=5,
    )
    assert forged.status_code in (401, 403)


def test_web_and_beat_write_their_home(stack: ComposeStack) -> None:
    """beat keeps its schedule in the /tmp tmpfs and runs the sweep; the tmpfs at
    /var/lib/wa-media belongs to uid 10001, gunicorn keeps its control socket there; neither
    restarts."""

    def swept() -> bool:
        return "Sending due task sweep" in stack.logs(stack.container("beat"))

    wait_for(swept, timeout=60, interval=1, what="beat sending the sweep")
    beat = stack.container("beat")
    listing = stack.exec(beat, "ls", "-ln", "/tmp")
    assert "wa-media-celerybeat-schedule" in listing, listing
    assert "Permission denied" not in stack.logs(beat)
    web = stack.container("web")
    assert "Permission denied" not in stack.logs(web)
    for container in (beat, web):
        state = stack.inspect(container)
        assert state["RestartCount"] == 0
        assert state["State"]["Status"] == "running"
        owner = stack.exec(container, "stat", "-c", "%u:%g", "/var/lib/wa-media").strip()
        assert owner == "10001:10001"


def test_two_workers_serve_metrics(stack: ComposeStack) -> None:
    workers = stack.containers("worker")
    assert len(workers) == WORKERS
    for worker in workers:
        answer = requests.get(f"http://{stack.address(worker)}:9808/metrics", timeout=5)
        assert answer.status_code == 200
        assert "wa_archived_bytes_total" in answer.text
        assert "metrics_served" in stack.logs(worker)


def test_every_media_type_is_archived(stack: ComposeStack) -> None:
    sizes = {"video": 9_500_000}  # past 8 MiB: a multipart upload
    sent = [stack.media(kind, sizes.get(kind, 40_000 + 1000 * n)) for n, kind in enumerate(KINDS)]
    for item in sent:  # one webhook per type
        answer = stack.post(item.message)
        assert answer.status_code == 200, answer.text
    for item in sent:
        document = stack.wait_archived(item)
        body = stack.s3.get_object(Bucket=BUCKET, Key=item.key)
        data = body["Body"].read()
        digest = hashlib.sha256(data).hexdigest()
        assert digest == item.record.sha256
        assert len(data) == item.record.file_size
        assert body["ContentType"] == MIME[item.kind]
        assert body["Metadata"]["sha256"] == digest
        kind = item.message["type"]  # a voice note is an audio message with voice: true
        assert body["Metadata"]["media-type"] == kind
        assert document["sha256"] == digest
        assert document["size"] == len(data)
        assert (document["bucket"], document["key"]) == (BUCKET, item.key)
        assert document["media_id"] == item.record.id
        assert document["wamid"] == item.message["id"]
        assert document["type"] == kind
        assert document["mime_type"] == MIME[item.kind]
        assert document["direction"] == "inbound"
        assert stack.record(item.record.id)["state"] == "archived"
    # The image's own check of the archive: every object against its sidecar.
    verified = stack.exec(stack.containers("worker")[0], "wa-media", "verify")
    say(f"wa-media verify: {verified.strip().splitlines()[-1] if verified.strip() else ''}")


def test_slow_clients_do_not_delay_webhooks(stack: ComposeStack) -> None:
    """Connections trickling their bodies, more than web has threads (2 x 4), while signed
    webhooks go through the proxy: each is answered within a second, as the proxy reads
    bodies whole before web sees them."""
    trickling, seconds = 12, 8.0
    context = ssl.create_default_context(cafile=str(stack.ca_file))
    host, port = "127.0.0.1", int(stack.https_url.rsplit(":", 1)[1])
    stop = threading.Event()
    sockets: list[ssl.SSLSocket] = []
    for _ in range(trickling):
        raw = socket.create_connection((host, port), timeout=5)
        sock = context.wrap_socket(raw, server_hostname=host)
        sock.sendall(
            b"POST /webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"X-Hub-Signature-256: sha256=00\r\nContent-Length: 100000\r\n\r\n{"
        )
        sockets.append(sock)

    def trickle() -> None:
        while not stop.wait(0.5):
            for sock in sockets:
                try:
                    sock.sendall(b" ")
                except OSError:
                    continue

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    latencies = []
    try:
        deadline = time.monotonic() + seconds
        time.sleep(1)  # the trickles are well under way
        while time.monotonic() < deadline:
            began = time.monotonic()
            answer = stack.post(webhooks.text_message("still here?"), timeout=5)
            latencies.append(time.monotonic() - began)
            assert answer.status_code == 200
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=5)
        for sock in sockets:
            sock.close()
    say(
        f"{len(latencies)} signed webhooks beside {trickling} trickling clients: "
        f"slowest {max(latencies):.3f} s"
    )
    assert len(latencies) >= 5
    assert max(latencies) < 1.0


def test_worker_killed_mid_download_archives_once(stack: ComposeStack) -> None:
    item = stack.media("video", 2_000_000)
    # The download is held for 30 s: long enough to kill the worker in the middle of it.
    stack.sim.add_fault(op="download", media_id=item.record.id, latency=30, times=1)
    assert stack.post(item.message).status_code == 200

    # The simulator counts a download when its request arrives; the fault then holds it.
    def downloads() -> int:
        return int(stack.sim.stats()["downloads"].get(item.record.id, 0))

    wait_for(lambda: downloads() == 1, timeout=60, interval=0.25, what="the download under way")
    lease_key = f"wa:lease:{webhooks.DEFAULT_PHONE_NUMBER_ID}:{item.record.id}"
    lease = str(stack.redis("GET", lease_key))
    assert stack.record(item.record.id)["state"] == "archiving"
    hostname = lease.split(":", 1)[0]  # the lease names its holder: host:pid:token
    (victim,) = [
        w for w in stack.containers("worker") if stack.inspect(w)["Config"]["Hostname"] == hostname
    ]
    pid = stack.inspect(victim)["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)  # as the OOM killer would: no warm shutdown
    killed_at = time.monotonic()
    say(f"SIGKILLed worker {victim} (pid {pid}) in the middle of {item.record.id}'s download")

    document = stack.wait_archived(item, timeout=150)
    say(f"archived again {time.monotonic() - killed_at:.0f} s after the kill")
    data = stack.s3.get_object(Bucket=BUCKET, Key=item.key)["Body"].read()
    assert hashlib.sha256(data).hexdigest() == item.record.sha256 == document["sha256"]
    # Once: one object and its sidecar under the key, one completed download after the held one.
    assert [k for k in stack.bucket_keys() if k.startswith(item.key)] == [
        item.key,
        item.key + ".json",
    ]
    record = stack.record(item.record.id)
    assert record["state"] == "archived"
    assert record["crashes"] == "1"
    assert downloads() == 2
    # The restart policy brought the killed worker back.
    wait_for(
        lambda: stack.inspect(victim)["State"]["Status"] == "running",
        timeout=60,
        what="the killed worker restarted",
    )
    assert stack.inspect(victim)["RestartCount"] >= 1


def test_bucket_holds_exactly_what_was_archived(stack: ComposeStack) -> None:
    # Each media: its object, its sidecar, and its index entries by media id and by wamid.
    expected = sorted(
        k
        for sent in stack.archived
        for k in (
            sent.key,
            sent.key + ".json",
            media_id_entry_key("", sent.record.id),
            wamid_entry_key("", str(sent.message["id"])),
        )
    )
    assert stack.bucket_keys() == expected
    for sent in stack.archived:
        document = stack.sidecar(sent.key)
        assert document is not None
        assert document["media_id"] == sent.record.id
