"""`web` and `worker` as real processes, wired to a simulator, Redis and a local S3."""

from __future__ import annotations

import os
import secrets
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import requests

from devstack.processes import Service, free_port, wait_for
from devstack.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedFS
from graphsim import Simulator

__all__ = [
    "PROCFILE",
    "StackEnv",
    "WorkerPool",
    "beat_started",
    "deployed_pool",
    "procfile_command",
    "start_beat",
    "start_service",
    "start_web",
    "start_worker",
    "web_healthy",
    "worker_argv",
    "worker_ready",
]

_BIN = Path(sys.executable).parent
PROCFILE = Path(__file__).resolve().parent.parent / "Procfile"


def procfile_command(process: str, procfile: Path = PROCFILE) -> list[str]:
    """The words of a Procfile line, split as a shell would (variables left as written)."""
    for line in procfile.read_text(encoding="utf-8").splitlines():
        name, colon, command = line.partition(":")
        if colon and name.strip() == process:
            return shlex.split(command)
    raise LookupError(f"{procfile}: no {process}: line")


def _value_at(words: Sequence[str], flag: str) -> int:
    """Where the value of `flag` is among `words`."""
    at = list(words).index(flag) + 1 if flag in words else len(words)
    if at >= len(words):
        raise LookupError(f"the worker command gives no {flag}: {shlex.join(words)}")
    return at


@dataclass(frozen=True)
class WorkerPool:
    """A worker's `--pool` and `--concurrency`."""

    name: str
    concurrency: int

    def __str__(self) -> str:
        return f"{self.name} x{self.concurrency}"


@cache
def deployed_pool() -> WorkerPool:
    """The pool of the Procfile's `worker:` line, the one a deployment runs."""
    words = procfile_command("worker")
    pool, concurrency = (words[_value_at(words, flag)] for flag in ("--pool", "--concurrency"))
    return WorkerPool(pool, int(concurrency))


def worker_argv(name: str, pool: WorkerPool, *, shortcuts: bool = True) -> list[str]:
    """The Procfile's `worker:` line with this virtualenv's celery and `pool`, plus a
    `--hostname` of its own so that workers on one host tell apart; `shortcuts` adds
    `--without-gossip --without-mingle`, which only save start-up time."""
    words = procfile_command("worker")
    if not words or words[0] != "celery":
        raise LookupError(f"the Procfile's worker does not run celery: {shlex.join(words)}")
    argv = [str(_BIN / "celery"), *words[1:]]
    for flag, value in (("--pool", pool.name), ("--concurrency", str(pool.concurrency))):
        argv[_value_at(argv, flag)] = value
    argv += ["--hostname", f"{name}@%h"]
    if shortcuts:
        argv += ["--without-gossip", "--without-mingle"]
    return argv


@dataclass(frozen=True)
class StackEnv:
    """The environment variables of a local deployment (docs/configuration.md)."""

    redis_url: str
    s3_endpoint_url: str
    s3_bucket: str
    graph_url: str
    media_hosts: str
    access_token: str
    app_secret: str
    verify_token: str
    max_media_bytes: int = 104857600
    s3_prefix: str = ""
    reply_text: str | None = None
    extra: tuple[tuple[str, str], ...] = ()
    """More variables, e.g. (("SWEEP_STALLED_AFTER", "5"),)."""

    @classmethod
    def local(
        cls, sim: Simulator, seaweed: SeaweedFS, redis_url: str, bucket: str, **overrides: Any
    ) -> StackEnv:
        """A deployment wired to a local simulator and SeaweedFS, with fresh secrets."""
        settings: dict[str, Any] = {
            "redis_url": redis_url,
            "s3_endpoint_url": seaweed.endpoint_url,
            "s3_bucket": bucket,
            "graph_url": sim.url,
            "media_hosts": sim.media_host,
            "access_token": sim.token,
            "app_secret": secrets.token_hex(32),
            "verify_token": secrets.token_urlsafe(24),
        }
        return cls(**{**settings, **overrides})

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (os.environ unless given) plus this deployment's variables."""
        env = dict(os.environ if base is None else base)
        env.update(
            {
                "REDIS_URL": self.redis_url,
                "S3_ENDPOINT_URL": self.s3_endpoint_url,
                "S3_BUCKET": self.s3_bucket,
                "S3_PREFIX": self.s3_prefix,
                "WHATSAPP_GRAPH_URL": self.graph_url,
                "WHATSAPP_MEDIA_HOSTS": self.media_hosts,
                "WHATSAPP_ACCESS_TOKEN": self.access_token,
                "WHATSAPP_APP_SECRET": self.app_secret,
                "WHATSAPP_VERIFY_TOKEN": self.verify_token,
                "MAX_MEDIA_BYTES": str(self.max_media_bytes),
                "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_DEFAULT_REGION": "us-east-1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.reply_text is not None:
            env["TOO_BIG_REPLY_TEXT"] = self.reply_text
        env.update(self.extra)
        return env


def start_service(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    environ: dict[str, str],
    ready: Callable[[Service], bool],
    *,
    timeout: float,
    cwd: Path | None = None,
) -> Service:
    """Start a process and wait until `ready(service)`; stopped again if it does not get there.

    RuntimeError with the end of its log when it exits first; TimeoutError after `timeout`.
    """
    service = Service(name, argv, log_path, env=environ, cwd=cwd).start()

    def check() -> bool:
        if not service.alive():
            raise RuntimeError(f"{name} exited:\n{service.log_text()[-3000:]}")
        return ready(service)

    try:
        wait_for(check, timeout=timeout, interval=0.1, what=f"{name} ready")
    except BaseException:
        service.stop()
        raise
    return service


def web_healthy(url: str) -> Callable[[Service], bool]:
    """Ready once `web` at `url` answers /healthz."""

    def healthy(_: Service) -> bool:
        try:
            return requests.get(f"{url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    return healthy


def worker_ready(service: Service) -> bool:
    """Ready once the worker logged that it is."""
    return " ready." in service.log_text()


def beat_started(service: Service) -> bool:
    """Started once beat logged its start or its scheduler."""
    text = service.log_text()
    return "beat: Starting" in text or "Scheduler" in text


def start_web(
    env: StackEnv,
    log_dir: Path,
    *,
    port: int | None = None,
    metrics_port: int | None = None,
    cwd: Path | None = None,
) -> tuple[Service, str]:
    """Gunicorn serving `webhook:create_app()` with the Procfile's worker class; returns the
    service and its base URL.

    Its metrics are served on `metrics_port` (a free port unless given; 0 turns them off), which
    the service's environment holds as WEB_METRICS_PORT. `cwd` is where the process runs
    (gunicorn imports the app from there first).
    """
    port = port or free_port()
    argv = [
        str(_BIN / "gunicorn"),
        "--config", "python:webhook.gunicorn_conf",
        "--bind", f"127.0.0.1:{port}",
        "--workers", "2",
        "--worker-class", "gevent",
        "webhook.app:create_app()",
    ]  # fmt: skip
    environ = env.environ()
    environ["WEB_METRICS_PORT"] = str(free_port() if metrics_port is None else metrics_port)
    # Each process keeps its metric files in a subdirectory of its own under this one, left
    # with the logs should it be killed.
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(log_dir / "metrics")
    url = f"http://127.0.0.1:{port}"
    log_path = log_dir / f"web-{port}.log"
    service = start_service("web", argv, log_path, environ, web_healthy(url), timeout=30, cwd=cwd)
    return service, url


def start_worker(
    env: StackEnv,
    log_dir: Path,
    *,
    name: str = "w1",
    concurrency: int = 2,
    pool: str = "prefork",
    metrics_port: int | str | None = None,
    cwd: Path | None = None,
    shortcuts: bool = True,
) -> Service:
    """The Procfile's worker (`worker_argv`) with this pool, waiting until it is ready.

    Its metrics are served on `metrics_port` (a free port unless given; 0 turns them off; a
    range such as "9808-9815" takes its first free port), which the service's environment
    holds as WORKER_METRICS_PORT.
    """
    argv = worker_argv(name, WorkerPool(pool, concurrency), shortcuts=shortcuts)
    environ = env.environ()
    environ["WORKER_METRICS_PORT"] = str(free_port() if metrics_port is None else metrics_port)
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(log_dir / "metrics")
    log_path = log_dir / f"worker-{name}.log"
    return start_service("worker", argv, log_path, environ, worker_ready, timeout=60, cwd=cwd)


def start_beat(env: StackEnv, log_dir: Path) -> Service:
    """`celery -A worker beat`, the periodic sweeps; its schedule file lives in `log_dir`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(_BIN / "celery"),
        "-A", "worker",
        "beat",
        "--loglevel", "INFO",
        "--schedule", str(log_dir / "celerybeat-schedule"),
    ]  # fmt: skip
    return start_service(
        "beat", argv, log_dir / "beat.log", env.environ(), beat_started, timeout=30
    )
