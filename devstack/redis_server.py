"""A private `redis-server` on a free port, for tests that stop, kill or restart Redis."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from devstack.processes import Service, free_port, wait_for

__all__ = ["RedisServer", "redis_answers"]


def redis_answers(url: str) -> bool:
    """True when the Redis at `url` answers PING."""
    try:
        return bool(Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except (RedisError, OSError):
        return False


@dataclass
class RedisServer:
    """One redis-server process; AOF (fsync every second) when `persistent`."""

    data_dir: Path
    persistent: bool = True
    port: int = field(default_factory=free_port)
    service: Service | None = None

    @property
    def url(self) -> str:
        """The connection URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> RedisServer:
        """Start (or start again, with the same port and data) and wait until it answers."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server not found")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.persistent else "no",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
        ]
        self.service = Service("redis", argv, self.data_dir / "redis.log").start()
        try:
            wait_for(lambda: redis_answers(self.url), timeout=timeout, what=f"redis on {self.port}")
        except BaseException:
            self.service.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop it cleanly."""
        if self.service is not None:
            self.service.stop()

    def kill(self) -> None:
        """SIGKILL it."""
        if self.service is not None:
            self.service.kill()
