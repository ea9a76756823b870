"""Running the service from the Procfile's lines on this machine: beat's schedule file, and
`make run` (`python -m devstack.run`) as a subprocess, stopped by a signal."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from devstack.processes import Service, free_port, port_open, wait_for
from devstack.redis_server import RedisServer
from devstack.run import BUCKET
from wa_media.cli.common import read_env_file

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
GAUGE = "wa_sweep_last_success_timestamp_seconds"


def procfile_line(name: str) -> list[str]:
    """A Procfile line's words (the beat line expands no variable)."""
    for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{name}:"):
            return shlex.split(line.partition(":")[2])
    raise AssertionError(f"no {name} line in the Procfile")


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("run-redis"), persistent=False).start()
    yield server
    server.stop()


@pytest.mark.parametrize("configured", [False, True])
def test_beat_keeps_its_schedule_out_of_the_working_directory(
    private_redis: RedisServer, tmp_path: Path, configured: bool
) -> None:
    """The Procfile's beat line, run as is: its schedule goes to the temporary directory (or
    BEAT_SCHEDULE_FILE), and the directory it runs in stays empty."""
    workdir, tmpdir = tmp_path / "cwd", tmp_path / "tmp"
    workdir.mkdir()
    tmpdir.mkdir()
    argv = procfile_line("beat")
    # The default is what is tested here: the line names no schedule file.
    assert "--schedule" not in argv
    assert "-s" not in argv
    binary = shutil.which(argv[0], path=str(Path(sys.executable).parent))
    assert binary is not None
    env = {**os.environ, "REDIS_URL": private_redis.url, "TMPDIR": str(tmpdir)}
    env.pop("BEAT_SCHEDULE_FILE", None)
    expected_dir = tmpdir
    if configured:
        expected_dir = tmp_path / "var"
        expected_dir.mkdir()
        env["BEAT_SCHEDULE_FILE"] = str(expected_dir / "beat-schedule")
    beat = Service("beat", [binary, *argv[1:]], tmp_path / "beat.log", env=env, cwd=workdir)
    beat.start()
    try:
        name = "beat-schedule" if configured else "wa-media-celerybeat-schedule"
        wait_for(
            lambda: list(expected_dir.glob(f"{name}*")),
            timeout=30,
            what=f"beat's schedule in {expected_dir}",
        )
        assert beat.alive(), beat.log_text()[-2000:]
    finally:
        beat.stop()
    assert list(workdir.iterdir()) == []
    if configured:
        assert not list(tmpdir.glob("*celerybeat-schedule*"))


# --- make run ------------------------------------------------------------------------------

WA_MEDIA = Path(sys.executable).parent / "wa-media"


@dataclass
class Run:
    """`python -m devstack.run` as a subprocess, as `make run` starts it."""

    process: subprocess.Popen[bytes]
    state: Path
    output: Path
    port: int
    metrics_port: int
    web_metrics_port: int

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_output(self, needle: str, timeout: float) -> None:
        def seen() -> bool:
            if needle in self.text():
                return True
            if self.process.poll() is not None:
                raise AssertionError(f"make run exited {self.process.returncode}:\n{self.text()}")
            return False

        wait_for(seen, timeout=timeout, what=f"{needle!r} from make run")

    def record(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((self.state / "run.json").read_text())
        return document

    def variables(self) -> dict[str, str]:
        return read_env_file(self.state / "run.env")

    def stop(self, sig: signal.Signals) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=90)


def start_run(tmp_path: Path, *args: str) -> Run:
    state = tmp_path / "state"
    output = tmp_path / "run.out"
    port, metrics_port, web_metrics_port = free_port(), free_port(), free_port()
    argv = [sys.executable, "-m", "devstack.run", "--state-dir", str(state)]
    argv += ["--port", str(port), "--worker-metrics-port", str(metrics_port)]
    argv += ["--web-metrics-port", str(web_metrics_port), *args]
    with output.open("wb") as stream:
        process = subprocess.Popen(argv, cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT)
    return Run(process, state, output, port, metrics_port, web_metrics_port)


@contextlib.contextmanager
def running(tmp_path: Path, *args: str) -> Iterator[Run]:
    run = start_run(tmp_path, *args)
    try:
        yield run
    finally:
        if run.process.poll() is None:
            run.process.kill()  # the test failed: make run itself is what it could not stop
            run.process.wait(timeout=30)
        # What this run recorded having started and failed to stop (each in a group of its own).
        for group in {entry["pid"] for entry in _recorded(run)}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)


def _recorded(run: Run) -> list[dict[str, Any]]:
    try:
        record = run.record()
    except (OSError, ValueError):
        return []
    return list(record["processes"]) if record.get("pid") == run.process.pid else []


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a process, from /proc; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[1]), fields[0], fields[19]


def descendants(root: int) -> dict[int, str]:
    """Every process under `root` (children, their children ...), with its start time."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents.setdefault(stat[0], []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = list(parents.get(root, []))
    while todo:
        pid = todo.pop()
        stat = _stat(pid)
        if stat is None:
            continue
        found[pid] = stat[2]
        todo.extend(parents.get(pid, []))
    return found


def still_running(processes: dict[int, str]) -> list[int]:
    """Those of `processes` (pid: start time) that run still (a zombie has exited)."""
    alive = []
    for pid, started in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[2] == started and stat[1] != "Z":
            alive.append(pid)
    return alive


def metric(url: str, name: str) -> float | None:
    text = requests.get(url, timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    return None


def test_make_run_archives_a_webhook_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    with running(tmp_path) as run:
        run.wait_output("Running. Archived and failed media are reported below.", timeout=240)
        text = run.text()
        web = f"http://127.0.0.1:{run.port}"
        variables = run.variables()
        assert oct((run.state / "run.env").stat().st_mode & 0o777) == "0o600"
        # What it prints names where secrets are, never their values.
        for name in ("WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_ACCESS_TOKEN"):
            assert variables[name] not in text, name
        assert f"POST {web}/webhook" in text
        env_file = str(run.state / "run.env")
        assert f"wa-media --env-file {env_file} simulate {web} --file PATH" in text

        # Meta's handshake answers with the verify token the banner points to.
        challenge = requests.get(
            f"{web}/webhook",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": variables["WHATSAPP_VERIFY_TOKEN"],
                "hub.challenge": "1158201444",
            },
            timeout=5,
        )
        assert (challenge.status_code, challenge.text) == (200, "1158201444")

        # The test webhook, as the banner says to send it: the secret from the file.
        photo = tmp_path / "parcel.jpg"
        data = b"\xff\xd8\xff\xe0" + os.urandom(50_000)
        photo.write_bytes(data)
        sent = subprocess.run(
            [str(WA_MEDIA), "--env-file", env_file, "simulate", web, "--file", str(photo)],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("WHATSAPP_")},
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        (media_id,) = re.findall(r"as media (\S+)", sent.stderr)

        # make run reports it archived, and the object is in its S3, byte for byte.
        run.wait_output(f"archived  {media_id}  s3://{BUCKET}/", timeout=60)
        (key,) = re.findall(rf"archived  {media_id}  s3://{BUCKET}/(\S+)", run.text())
        s3 = boto3.client(
            "s3",
            endpoint_url=variables["S3_ENDPOINT_URL"],
            aws_access_key_id=variables["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=variables["AWS_SECRET_ACCESS_KEY"],
            region_name=variables["AWS_DEFAULT_REGION"],
        )
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
        sidecar = json.loads(s3.get_object(Bucket=BUCKET, Key=key + ".json")["Body"].read())
        assert sidecar["sha256"] == hashlib.sha256(data).hexdigest()
        status = subprocess.run(
            [str(WA_MEDIA), "--env-file", env_file, "status"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "archived last hour         1" in status.stdout, status.stdout + status.stderr

        # beat runs: a sweep completes, and web serves when.
        started = time.time() - 60
        wait_for(
            lambda: (
                (metric(f"http://127.0.0.1:{run.web_metrics_port}/metrics", GAUGE) or 0) > started
            ),
            timeout=60,
            what="a sweep served by web",
        )

        record = run.record()
        assert [p["name"] for p in record["processes"]] == [
            "redis",
            "seaweedfs",
            "web",
            "worker",
            "beat",
        ]
        ports = record["ports"]
        assert ports["web"] == run.port
        assert ports["worker metrics"] == run.metrics_port
        assert ports["web metrics"] == run.web_metrics_port
        assert all(port_open(port) for port in ports.values())
        children = descendants(run.process.pid)
        assert {p["pid"] for p in record["processes"]} <= set(children)

        assert run.stop(signal.SIGINT) == 0
        assert "Stopped: every process make run started has exited." in run.text()
        assert still_running(children) == []
        assert [name for name, port in ports.items() if port_open(port)] == []
        # The secrets' file goes with the run; Redis's append-only data stays for the next.
        assert not (run.state / "run.env").exists()
        assert not (run.state / "run.json").exists()
        assert (run.state / "redis" / "appendonlydir").is_dir()
        assert not list(ROOT.glob("*celerybeat-schedule*"))
        assert not list(run.state.rglob("*celerybeat-schedule*"))


def test_sigterm_while_starting_stops_what_was_started(tmp_path: Path) -> None:
    with running(tmp_path) as run:
        # SeaweedFS is up, web is being waited for.
        run.wait_output("web: starting", timeout=180)
        children = descendants(run.process.pid)
        record = run.record()
        assert {p["name"] for p in record["processes"]} >= {"redis", "seaweedfs"}
        assert run.stop(signal.SIGTERM) == 0
        assert still_running(children) == []
        assert [name for name, port in record["ports"].items() if port_open(port)] == []
        assert not port_open(run.port)


def test_make_run_refuses_settings_it_sets_itself(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "settings.env").write_text("REDIS_URL=redis://10.0.0.1:6379/0\n")
    with running(tmp_path) as run:
        assert run.process.wait(timeout=60) == 2
    assert "sets REDIS_URL, which make run sets itself" in run.text()
    assert not (state / "redis").exists()


def test_one_run_at_a_time_and_none_over_an_earlier_runs_leftovers(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with (state / "run.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with running(tmp_path) as run:
            assert run.process.wait(timeout=60) == 1
        assert "another make run uses" in run.text()
    # A process an earlier run started (recorded, and still running) holds the data.
    leftover = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    try:
        stat = _stat(leftover.pid)
        assert stat is not None
        entry = {"name": "redis", "pid": leftover.pid, "started": stat[2]}
        (state / "run.json").write_text(json.dumps({"processes": [entry]}))
        with running(tmp_path) as run:
            assert run.process.wait(timeout=60) == 1
        assert f"still run: redis (pid {leftover.pid})" in run.text()
        assert not (state / "redis").exists()
        # Its record stays, so that the next try finds the leftovers again.
        assert json.loads((state / "run.json").read_text()) == {"processes": [entry]}
    finally:
        leftover.kill()
        leftover.wait(timeout=10)
