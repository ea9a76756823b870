"""What the benchmarks share: progress lines, tables, the stack's back ends, /proc readings.

A benchmark is run as `.venv/bin/python bench/<name>.py`; each one starts what it needs on
127.0.0.1 (free ports), registers every start with a `contextlib.ExitStack`, and so stops all
of it on success, failure, Ctrl-C and SIGTERM alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import platform
import secrets
import signal
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from redis import Redis

from devstack.processes import Service, free_port, wait_for
from devstack.redis_server import RedisServer
from devstack.seaweed import SeaweedFS
from devstack.stack import StackEnv, start_web, start_worker
from devstack.webhooks import DEFAULT_PHONE_NUMBER_ID
from graphsim import Simulator, SimulatorClient, SimulatorError
from graphsim.server import DEFAULT_TOKEN
from wa_media.core.keys import media_key

__all__ = [
    "START",
    "Backends",
    "BenchStack",
    "SimProcess",
    "cpu_seconds",
    "grid",
    "machine",
    "media_states",
    "percentile",
    "pool_children",
    "say",
    "sigterm_as_interrupt",
    "start_backends",
    "start_bench_stack",
    "stop_all",
    "table",
]

START = time.monotonic()
_TICKS = os.sysconf("SC_CLK_TCK")


def say(text: str) -> None:
    """One progress line, stamped with the seconds since the start."""
    print(f"[{time.monotonic() - START:6.1f}s] {text}", flush=True)


def table(rows: Sequence[tuple[str, str]]) -> str:
    """Two left-aligned columns."""
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name.ljust(width)}  {value}" for name, value in rows)


def grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table, aligned so that it also reads well on a terminal."""
    widths = [max(len(row[n]) for row in (header, *rows)) for n in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN when there are no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]


def machine() -> str:
    """Cores, CPU model, today's date and the load average, for the head of a report."""
    model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    # Other work on the machine skews every figure: the load average says how much there was.
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, {today}; "
        f"load average at the end {load} (1, 5, 15 min)"
    )


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so that everything started is stopped."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_all(services: list[Service]) -> None:
    """Stop services side by side: each warm shutdown may take its full timeout."""
    running = [service for service in services if service.alive()]
    if running:
        with ThreadPoolExecutor(max_workers=len(running)) as pool:
            list(pool.map(lambda service: service.stop(timeout=10), running))


def pool_children(pid: int) -> list[int]:
    """The process ids whose parent is `pid` (Linux /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return children


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User plus system CPU time of a process (and of its running children), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command's closing parenthesis: utime and stime are the 12th and 13th fields.
    own = (int(fields[11]) + int(fields[12])) / _TICKS
    if not children:
        return own
    return own + sum(cpu_seconds(child) for child in pool_children(pid))


def media_states(
    redis: Redis,
    media_ids: Sequence[str],
    field_name: str,
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
) -> dict[str, str]:
    """One field of each `wa:media:{phone_number_id}:{id}` record (missing ones left out)."""
    with redis.pipeline(transaction=False) as pipe:
        for media_id in media_ids:
            pipe.hget(media_key(f"{phone_number_id}:{media_id}"), field_name)
        values = pipe.execute()
    return {
        m: v.decode() if isinstance(v, bytes) else str(v)
        for m, v in zip(media_ids, values, strict=True)
        if v is not None
    }


@dataclass
class Backends:
    """Redis, SeaweedFS and the simulator (in this process), and the environment of a
    deployment wired to them."""

    workdir: Path
    redis_server: RedisServer
    seaweed: SeaweedFS
    sim: Simulator
    env: StackEnv
    started: list[Service]
    """web, beat and worker processes started on these back ends; stopped together."""

    @property
    def logs(self) -> Path:
        """Where web, worker and beat write."""
        return self.workdir / "logs"

    def track(self, service: Service) -> Service:
        """Stop `service` with the others at the end."""
        self.started.append(service)
        return service


def start_backends(
    exits: contextlib.ExitStack,
    workdir: Path,
    bucket: str,
    *,
    aof: bool = True,
    extra: tuple[tuple[str, str], ...] = (),
) -> Backends:
    """A private redis-server (AOF when `aof`), SeaweedFS with `bucket`, and the simulator,
    each stopped by `exits`; processes later put in `started` are stopped before them."""
    redis_server = RedisServer(workdir / "redis", persistent=aof)
    exits.callback(redis_server.stop)
    redis_server.start()
    say(f"redis-server on port {redis_server.port}, AOF {'on' if aof else 'OFF'}")

    seaweed = SeaweedFS(workdir / "seaweedfs", buckets=(bucket,))
    exits.callback(seaweed.stop)
    seaweed.start()
    say(f"SeaweedFS S3 on {seaweed.endpoint_url}")

    sim = Simulator()
    sim.start()
    exits.callback(sim.stop)
    env = StackEnv.local(sim, seaweed, redis_server.url, bucket, extra=extra)
    started: list[Service] = []
    exits.callback(stop_all, started)
    return Backends(workdir, redis_server, seaweed, sim, env, started)


# --------------------------------------------------------------------------------------------
# The benchmarks' stack: the simulator in a process of its own, so that the harness (senders,
# pollers) and the simulator do not share one interpreter lock, and their CPU is told apart.


@dataclass(frozen=True)
class SimProcess:
    """`python -m graphsim` on a port of its own, with its default token and version."""

    service: Service
    port: int
    token: str = DEFAULT_TOKEN
    version: str = "v23.0"

    @property
    def url(self) -> str:
        """The base URL (the Graph API without its version)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def graph_url(self) -> str:
        """The Graph API base URL with its version."""
        return f"{self.url}/{self.version}"

    @property
    def media_host(self) -> str:
        """The `host:port` of download URLs."""
        return f"127.0.0.1:{self.port}"

    def client(self) -> SimulatorClient:
        """A control API client (one per thread)."""
        return SimulatorClient(self.url)


def start_sim_process(exits: contextlib.ExitStack, log_dir: Path) -> SimProcess:
    """Start the simulator as a process and wait until its control API answers."""
    port = free_port()
    argv = [sys.executable, "-m", "graphsim", "--port", str(port)]
    service = Service("graphsim", argv, log_dir / "graphsim.log").start()
    exits.callback(service.stop)
    sim = SimProcess(service, port)

    def answers() -> bool:
        if not service.alive():
            raise RuntimeError(f"graphsim exited:\n{service.log_text()[-3000:]}")
        with contextlib.suppress(SimulatorError), sim.client() as client:
            client.faults()
            return True
        return False

    wait_for(answers, timeout=30, interval=0.1, what="graphsim control API")
    return sim


@dataclass
class BenchStack:
    """Redis, SeaweedFS, the simulator process and `web`; workers are started per run."""

    workdir: Path
    redis_server: RedisServer
    seaweed: SeaweedFS
    sim: SimProcess
    env: StackEnv
    web: Service
    web_url: str
    started: list[Service]

    @property
    def logs(self) -> Path:
        """Where the processes write."""
        return self.workdir / "logs"

    def start_worker(
        self, name: str, pool: str, concurrency: int, extra: tuple[tuple[str, str], ...] = ()
    ) -> Service:
        """A `worker` process with this pool (and `extra` variables on top of the stack's),
        stopped with the rest at the end at the latest."""
        env = dataclasses.replace(self.env, extra=(*self.env.extra, *extra))
        service = start_worker(env, self.logs, name=name, concurrency=concurrency, pool=pool)
        self.started.append(service)
        return service

    def pids(self) -> dict[str, int]:
        """The back ends' process ids by name (each counted with its children)."""
        found = {"web": self.web.pid, "graphsim": self.sim.service.pid}
        for name, server in (("redis", self.redis_server), ("seaweedfs", self.seaweed)):
            if server.service is not None:
                found[name] = server.service.pid
        return found


def start_bench_stack(
    exits: contextlib.ExitStack,
    workdir: Path,
    bucket: str,
    *,
    aof: bool = True,
    extra: tuple[tuple[str, str], ...] = (),
) -> BenchStack:
    """Redis, SeaweedFS, the simulator process and `web`, each stopped by `exits`."""
    redis_server = RedisServer(workdir / "redis", persistent=aof)
    exits.callback(redis_server.stop)
    redis_server.start()
    seaweed = SeaweedFS(workdir / "seaweedfs", buckets=(bucket,))
    exits.callback(seaweed.stop)
    seaweed.start()
    sim = start_sim_process(exits, workdir / "logs")
    env = StackEnv(
        redis_url=redis_server.url,
        s3_endpoint_url=seaweed.endpoint_url,
        s3_bucket=bucket,
        graph_url=sim.url,
        media_hosts=sim.media_host,
        access_token=sim.token,
        app_secret=secrets.token_hex(32),
        verify_token=secrets.token_urlsafe(24),
        extra=extra,
    )
    started: list[Service] = []
    exits.callback(stop_all, started)
    web, web_url = start_web(env, workdir / "logs")
    started.append(web)
    say(
        f"redis-server :{redis_server.port} (AOF {'on' if aof else 'off'}), SeaweedFS "
        f"{seaweed.endpoint_url}, graphsim {sim.url}, web {web_url}"
    )
    return BenchStack(workdir, redis_server, seaweed, sim, env, web, web_url, started)
