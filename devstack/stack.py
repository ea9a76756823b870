"""`web` and `worker` as real processes, wired to a simulator, Redis and a local S3."""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from devstack.processes import Service, free_port, wait_for
from devstack.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedFS
from graphsim import Simulator

__all__ = ["StackEnv", "start_beat", "start_web", "start_worker"]

_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class StackEnv:
    """The environment variables of a local deployment (INTERFACES.md's names)."""

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

    def environ(self) -> dict[str, str]:
        """os.environ plus this deployment's variables."""
        env = dict(os.environ)
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


def start_web(
    env: StackEnv, log_dir: Path, *, port: int | None = None, cwd: Path | None = None
) -> tuple[Service, str]:
    """Gunicorn serving `webhook:create_app()`; returns the service and its base URL.

    `cwd` is where the process runs (gunicorn imports the app from there first).
    """
    port = port or free_port()
    argv = [
        str(_BIN / "gunicorn"),
        "--config", "python:webhook.gunicorn_conf",
        "--bind", f"127.0.0.1:{port}",
        "--workers", "2",
        "webhook:create_app()",
    ]  # fmt: skip
    environ = env.environ()
    # Each process keeps its metric files in a subdirectory of its own under this one, left
    # with the logs should it be killed.
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(log_dir / "metrics")
    service = Service("web", argv, log_dir / f"web-{port}.log", env=environ, cwd=cwd).start()
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if not service.alive():
            raise RuntimeError(f"web exited:\n{service.log_text()[-3000:]}")
        try:
            return requests.get(f"{url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(healthy, timeout=30, what="web /healthz")
    except BaseException:
        service.stop()
        raise
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
) -> Service:
    """`celery -A worker worker` on the media and replies queues, waiting until it is ready.

    Its metrics are served on `metrics_port` (a free port unless given; 0 turns them off; a
    range such as "9808-9815" takes its first free port), which the service's environment
    holds as WORKER_METRICS_PORT.
    """
    argv = [
        str(_BIN / "celery"),
        "-A", "worker",
        "worker",
        "--queues", "media,replies",
        "--pool", pool,
        "--concurrency", str(concurrency),
        "--hostname", f"{name}@%h",
        "--loglevel", "INFO",
        "--without-gossip",
        "--without-mingle",
    ]  # fmt: skip
    environ = env.environ()
    environ["WORKER_METRICS_PORT"] = str(free_port() if metrics_port is None else metrics_port)
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(log_dir / "metrics")
    service = Service("worker", argv, log_dir / f"worker-{name}.log", env=environ, cwd=cwd).start()

    def ready() -> bool:
        if not service.alive():
            raise RuntimeError(f"worker exited:\n{service.log_text()[-3000:]}")
        return " ready." in service.log_text()

    try:
        wait_for(ready, timeout=60, interval=0.1, what=f"worker {name} ready")
    except BaseException:
        service.stop()
        raise
    return service


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
    service = Service("beat", argv, log_dir / "beat.log", env=env.environ()).start()

    def started() -> bool:
        if not service.alive():
            raise RuntimeError(f"beat exited:\n{service.log_text()[-3000:]}")
        return "beat: Starting" in service.log_text() or "Scheduler" in service.log_text()

    try:
        wait_for(started, timeout=30, interval=0.1, what="beat started")
    except BaseException:
        service.stop()
        raise
    return service
