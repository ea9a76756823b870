"""The many-small-files benchmark: thousands of images through the real stack, two worker pools.

    .venv/bin/python bench/many_small.py [--count 2000] [--size-kb 50] [--latency 0.05]
        [--pool threads] [--concurrency 32] [--workers 1] [--versus prefork:2]
        [--webhook-url on|off|alternate]

It starts a private redis-server (AOF on), SeaweedFS, the Graph API simulator (a process of its
own, adding `--latency` seconds to every look-up and download, as the distance to Meta would)
and `web`. Then, for the pool under test and for the one it is compared with (`--versus`,
Celery's default prefork with 2 processes unless told otherwise), it starts the workers, warms
them up, and runs two phases, each with media registered afresh:

- **max**: `--count` images of `--size-kb` KB (1 KB = 1000 bytes), announced in signed webhooks
  of 1 to `--max-batch` messages each (as Meta batches them), POSTed as fast as `--senders`
  threads can: the queue fills up and the workers drain it at their best rate. media/s is the
  count over the time from the first POST to the last media archived;
- **steady**: `--steady-share` of that rate offered evenly for `--steady-seconds`: the latency
  of each media, from its POST's answer to the moment the worker recorded it `archived` in
  Redis (right after its sidecar was committed), with the pool not saturated.

Every webhook carries each media's download `url`, as Cloud API webhooks do from v24.0 on; the
workers use it (`USE_WEBHOOK_URL=true`) or look every media up (`false`) as `--webhook-url`
says, `alternate` measuring each pool both ways in turn.

It also reads the CPU time each process used during the max phase, and the simulator's count of
look-ups and downloads. It prints one table with both pools side by side and the targets, and
exits 0 when every target is met, 1 when one is missed, 2 when a run broke, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from redis import Redis

from devstack import webhooks
from devstack.processes import Service, wait_for
from graphsim import MediaRecord, SimulatorError

# `python bench/many_small.py` puts bench/ on the path, not the repository root with `bench`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.stack_runner import (
    BenchStack,
    cpu_seconds,
    grid,
    machine,
    media_states,
    percentile,
    say,
    sigterm_as_interrupt,
    start_bench_stack,
)

BUCKET = "wa-archive"
PHONE_NUMBER_ID = webhooks.DEFAULT_PHONE_NUMBER_ID
MIME_TYPE = "image/jpeg"
KB = 1000
POST_TIMEOUT = 10.0
REGISTER_THREADS = 4
WARM_UP_MEDIA = 40
POLL_INTERVAL = 0.5

TARGET_RATE = 150.0
TARGET_P99 = 2.0


@dataclass(frozen=True)
class PoolConfig:
    """A worker pool to measure: `--pool`, `--concurrency`, how many worker processes, and
    whether they download the webhooks' URLs (`USE_WEBHOOK_URL`)."""

    pool: str
    concurrency: int
    workers: int = 1
    webhook_url: bool = True

    @property
    def label(self) -> str:
        """`threads x32, url on`, `prefork x2, url off`, `2 x threads x32, url on`."""
        one = f"{self.pool} x{self.concurrency}"
        pool = one if self.workers == 1 else f"{self.workers} x {one}"
        return f"{pool}, url {'on' if self.webhook_url else 'off'}"

    @classmethod
    def parse(cls, text: str) -> PoolConfig:
        """`prefork:2` or `threads:32:2` (pool, concurrency, worker processes)."""
        pool, concurrency, *workers = text.split(":")
        return cls(pool, int(concurrency), int(workers[0]) if workers else 1)


@dataclass(frozen=True)
class Params:
    """What a run depends on."""

    count: int
    size: int
    latency: float
    max_batch: int
    senders: int
    steady_share: float
    steady_seconds: float
    graph_rate_limit: int
    seed: int


# --------------------------------------------------------------------------------------------
# Media and webhooks


@dataclass(frozen=True)
class Registered:
    """A media in the simulator, and the download URL its webhook carries."""

    record: MediaRecord
    url: str


def register(bench: Bench, count: int) -> list[Registered]:
    """`count` fresh images in the simulator, registered from a few threads."""
    first = bench.next_seed(count)
    local = threading.local()

    def one(seed: int) -> Registered:
        if not hasattr(local, "client"):
            local.client = bench.stack.sim.client()
        record: MediaRecord = local.client.add_generated_media(
            bench.params.size, seed, MIME_TYPE, phone_number_id=PHONE_NUMBER_ID
        )
        return Registered(record, local.client.download_url(record.id))

    with ThreadPoolExecutor(REGISTER_THREADS) as pool:
        return list(pool.map(one, range(first, first + count)))


def batches(media: Sequence[Registered], max_batch: int, rng: random.Random) -> list[bytes]:
    """Webhook bodies (v24+: with each media's `url`) of 1 to `max_batch` messages each,
    covering every media once."""
    bodies, start = [], 0
    now = int(time.time())
    while start < len(media):
        size = rng.randint(1, max_batch)
        messages = [
            webhooks.media_message(
                "image",
                one.record.id,
                sha256_b64=one.record.sha256_b64,
                mime_type=one.record.mime_type,
                timestamp=now,
                url=one.url,
            )
            for one in media[start : start + size]
        ]
        payload = webhooks.envelope(messages, phone_number_id=PHONE_NUMBER_ID)
        bodies.append(webhooks.encode(payload))
        start += size
    return bodies


def _messages_in(body: bytes) -> int:
    return body.count(b'"type":"image"')


@dataclass
class Sender:
    """POSTs signed webhook bodies from a pool of threads, each on its own session."""

    url: str
    secret: str
    threads: int
    _local: threading.local = field(default_factory=threading.local)

    def post(self, body: bytes) -> float:
        """POST one body; when it was answered 200 (time.time())."""
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": webhooks.sign(body, self.secret),
        }
        answer = self._local.session.post(
            self.url, data=body, headers=headers, timeout=POST_TIMEOUT
        )
        if answer.status_code != 200:
            raise RuntimeError(f"web answered {answer.status_code}: {answer.text[:200]}")
        return time.time()

    def deliver(self, bodies: Sequence[bytes], rate: float | None) -> tuple[float, list[float]]:
        """POST every body, as fast as possible or paced at `rate` media per second; when
        the first was sent and when each was answered."""
        with ThreadPoolExecutor(self.threads, thread_name_prefix="post") as pool:
            started = time.time()
            futures: list[Future[float]] = []
            announced = 0
            for body in bodies:
                if rate is not None:
                    time.sleep(max(0.0, started + announced / rate - time.time()))
                futures.append(pool.submit(self.post, body))
                announced += _messages_in(body)
            return started, [future.result() for future in futures]


# --------------------------------------------------------------------------------------------
# A phase: deliver, wait until everything is archived, read the figures


@dataclass(frozen=True)
class Phase:
    """What one phase measured."""

    name: str
    count: int
    offered: float | None
    """Media per second offered; None: as fast as the senders could."""
    rate: float
    """Media archived per second, from the first POST to the last archive."""
    latencies: list[float]
    post_seconds: float
    """From the first POST to the last answer."""
    cpu: dict[str, float]
    """CPU seconds per process name during the phase."""
    meta_calls: float
    """Look-ups plus downloads per media."""
    load: float
    """The 1-minute load average when the phase ended."""

    @property
    def p50(self) -> float:
        """Median latency, seconds."""
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        """99th percentile latency, seconds."""
        return percentile(self.latencies, 99)


class ArchiveFailed(RuntimeError):
    """A media failed, or the phase did not finish in time."""


def archived_times(redis: Redis, media_ids: Sequence[str], timeout: float) -> dict[str, float]:
    """Wait until every media is recorded archived; when each was (its record's updated_at)."""
    waiting = list(media_ids)
    done: dict[str, float] = {}

    def finished() -> bool:
        nonlocal waiting
        states = media_states(redis, waiting, "state")
        failed = [m for m in waiting if states.get(m) == "failed"]
        if failed:
            errors = media_states(redis, failed[:3], "last_error")
            raise ArchiveFailed(f"{len(failed)} media failed, e.g. {errors}")
        archived = [m for m in waiting if states.get(m) == "archived"]
        done.update({m: float(t) for m, t in media_states(redis, archived, "updated_at").items()})
        waiting = [m for m in waiting if m not in done]
        return not waiting

    wait_for(finished, timeout=timeout, interval=POLL_INTERVAL, what="every media archived")
    return done


@dataclass
class Bench:
    """The running stack and what a phase needs from it."""

    stack: BenchStack
    params: Params
    redis: Redis
    rng: random.Random
    seeds: int = 0

    def next_seed(self, count: int) -> int:
        """The first of `count` unused content seeds."""
        first = self.seeds + 1
        self.seeds += count
        return first

    def cpu(self, workers: Sequence[Service]) -> dict[str, float]:
        """CPU seconds so far of every process, by name (workers summed)."""
        used = {name: cpu_seconds(pid) for name, pid in self.stack.pids().items()}
        used["worker"] = sum(cpu_seconds(worker.pid) for worker in workers)
        times = os.times()
        used["harness"] = times.user + times.system
        return used

    def phase(self, name: str, count: int, rate: float | None, workers: Sequence[Service]) -> Phase:
        """Register `count` media, deliver them, wait until all are archived."""
        media = register(self, count)
        bodies = batches(media, self.params.max_batch, self.rng)
        url = f"{self.stack.web_url}/webhook"
        sender = Sender(url, self.stack.env.app_secret, self.params.senders)
        with self.stack.sim.client() as client:
            calls_before = _meta_calls(client.stats())
        cpu_before = self.cpu(workers)
        started, answered = sender.deliver(bodies, rate)
        post_seconds = max(answered) - started
        ids = [one.record.id for one in media]
        timeout = 120 + count / 5
        done = archived_times(self.redis, ids, timeout)
        cpu_after = self.cpu(workers)
        with self.stack.sim.client() as client:
            calls = _meta_calls(client.stats()) - calls_before
        answered_at = _answer_of_each(bodies, answered)
        latencies = [done[m] - answered_at[m] for m in ids]
        return Phase(
            name=name,
            count=count,
            offered=rate,
            rate=count / (max(done.values()) - started),
            latencies=latencies,
            post_seconds=post_seconds,
            cpu={k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after},
            meta_calls=calls / count,
            load=os.getloadavg()[0],
        )


def _meta_calls(stats: dict[str, dict[str, int]]) -> int:
    return sum(stats.get("lookups", {}).values()) + sum(stats.get("downloads", {}).values())


def _answer_of_each(bodies: Sequence[bytes], answered: Sequence[float]) -> dict[str, float]:
    """When the POST announcing each media was answered."""
    found: dict[str, float] = {}
    for body, at in zip(bodies, answered, strict=True):
        payload: Any = json.loads(body)
        for entry in payload["entry"]:
            for change in entry["changes"]:
                for message in change["value"].get("messages", []):
                    found[message["image"]["id"]] = at
    return found


# --------------------------------------------------------------------------------------------
# A pool: start its workers, warm them up, run both phases


@dataclass
class PoolResult:
    """Both phases of one pool."""

    config: PoolConfig
    max: Phase
    steady: Phase


def measure_pool(bench: Bench, config: PoolConfig) -> PoolResult:
    """Start the workers of `config`, run both phases, stop the workers."""
    name = f"{config.pool}{config.concurrency}-url-{'on' if config.webhook_url else 'off'}"
    extra = (("USE_WEBHOOK_URL", "true" if config.webhook_url else "false"),)
    workers = [
        bench.stack.start_worker(f"{name}-{n}", config.pool, config.concurrency, extra)
        for n in range(1, config.workers + 1)
    ]
    try:
        bench.phase("warm-up", max(WARM_UP_MEDIA, 2 * config.concurrency), None, workers)
        say(f"{config.label}: warm, max phase with {bench.params.count} media")
        top = bench.phase("max", bench.params.count, None, workers)
        say(
            f"{config.label}: {top.rate:.1f} media/s, {top.meta_calls:.2f} Meta calls per media,"
            f" POSTs took {top.post_seconds:.1f}s; load average {top.load:.2f}"
        )
        rate = top.rate * bench.params.steady_share
        count = max(20, round(rate * bench.params.steady_seconds))
        say(f"{config.label}: steady phase, {count} media at {rate:.1f}/s")
        steady = bench.phase("steady", count, rate, workers)
        say(
            f"{config.label}: steady p50 {steady.p50:.2f}s, p99 {steady.p99:.2f}s;"
            f" load average {steady.load:.2f}"
        )
    finally:
        for worker in workers:
            worker.stop()
    return PoolResult(config, top, steady)


# --------------------------------------------------------------------------------------------
# The report: medians over the runs of each pool


@dataclass(frozen=True)
class Summary:
    """The runs of one pool."""

    config: PoolConfig
    runs: list[PoolResult]

    def median(self, figure: Callable[[PoolResult], float]) -> float:
        """The median of one figure over the runs."""
        return statistics.median(figure(run) for run in self.runs)

    def cpu_ms(self, name: str | None) -> float:
        """Median CPU milliseconds per media of one process (None: all) in the max phase."""

        def per_media(run: PoolResult) -> float:
            used = sum(run.max.cpu.values()) if name is None else run.max.cpu.get(name, 0.0)
            return 1000 * used / run.max.count

        return self.median(per_media)


def verdicts(summary: Summary) -> list[tuple[str, bool, str]]:
    """(target, met, figure) for the pool under test."""
    rate = summary.median(lambda r: r.max.rate)
    p99 = summary.median(lambda r: r.steady.p99)
    return [
        (f"at least {TARGET_RATE:.0f} media/s", rate >= TARGET_RATE, f"{rate:.1f}"),
        (f"p99 under {TARGET_P99:.0f} s, not saturated", p99 < TARGET_P99, f"{p99:.2f} s"),
    ]


def report(summaries: Sequence[Summary], params: Params) -> str:
    """Both pools side by side, then the targets."""
    header = ["", *(f"--pool {s.config.label}" for s in summaries)]

    def row(name: str, figure: Callable[[PoolResult], float], digits: int = 1) -> list[str]:
        return [name, *(f"{s.median(figure):.{digits}f}" for s in summaries)]

    def pair(
        name: str, first: Callable[[PoolResult], float], second: Callable[[PoolResult], float]
    ) -> list[str]:
        return [name, *(f"{s.median(first):.2f} / {s.median(second):.2f}" for s in summaries)]

    def each(
        name: str, figure: Callable[[PoolResult], float], load: Callable[[PoolResult], float]
    ) -> list[str]:
        return [
            name,
            *(", ".join(f"{figure(r):.1f} ({load(r):.1f})" for r in s.runs) for s in summaries),
        ]

    rows = [
        row("max: media/s", lambda r: r.max.rate),
        each("max: media/s of each run (load)", lambda r: r.max.rate, lambda r: r.max.load),
        row("max: load average, 1 min", lambda r: r.max.load, 2),
        row("max: POSTs took (s)", lambda r: r.max.post_seconds),
        pair("max: latency p50 / p99 (s)", lambda r: r.max.p50, lambda r: r.max.p99),
        row("steady: offered media/s", lambda r: r.steady.offered or 0.0),
        row("steady: media/s archived", lambda r: r.steady.rate),
        row("steady: media", lambda r: r.steady.count, 0),
        pair("steady: latency p50 / p99 (s)", lambda r: r.steady.p50, lambda r: r.steady.p99),
        each("steady: p99 of each run, s (load)", lambda r: r.steady.p99, lambda r: r.steady.load),
        row("Meta calls per media", lambda r: r.max.meta_calls, 2),
    ]
    names = sorted({name for s in summaries for run in s.runs for name in run.max.cpu})
    for name in [*names, None]:
        label = f"CPU ms per media: {name or 'all'}"
        rows.append([label, *(f"{s.cpu_ms(name):.2f}" for s in summaries)])
    targets = [
        [name, figure, "met" if ok else "MISSED"] for name, ok, figure in verdicts(summaries[0])
    ]
    runs = len(summaries[0].runs)
    return "\n".join(
        [
            "",
            f"Many small files: medians of {runs} run{'s' if runs > 1 else ''}, "
            f"{params.count} images of {params.size / KB:.0f} KB, "
            f"{params.latency * 1000:.0f} ms added to every look-up and download, "
            f"GRAPH_RATE_LIMIT={params.graph_rate_limit} (one token)",
            machine(),
            "",
            grid(header, rows),
            "",
            grid([f"target ({summaries[0].config.label})", "measured", ""], targets),
        ]
    )


# --------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: Sequence[str] | None = None) -> tuple[Params, list[PoolConfig], int, bool]:
    """Parameters, the pools to measure (the one under test first), --runs, --keep."""
    parser = argparse.ArgumentParser(description="Thousands of small images, two worker pools.")
    add = parser.add_argument
    add("--count", type=int, default=2000, help="images in the max phase (%(default)s)")
    add("--size-kb", type=int, default=50, help="size of each image, KB (%(default)s)")
    add("--latency", type=float, default=0.05, help="s added per look-up/download (%(default)s)")
    add("--pool", default="threads", help="the pool under test (%(default)s)")
    add("--concurrency", type=int, default=32, help="its concurrency (%(default)s)")
    add("--workers", type=int, default=2, help="its worker processes (%(default)s)")
    add(
        "--versus",
        default="prefork:2",
        help="pool:concurrency[:workers] to compare with, or none (%(default)s)",
    )
    add("--max-batch", type=int, default=10, help="messages per POST, 1 to this (%(default)s)")
    add("--senders", type=int, default=4, help="threads POSTing webhooks (%(default)s)")
    add("--steady-share", type=float, default=0.7, help="share of the max rate (%(default)s)")
    add("--steady-seconds", type=float, default=20.0, help="length of that phase (%(default)s)")
    add(
        "--graph-rate-limit",
        type=int,
        default=1000,
        help="the workers' GRAPH_RATE_LIMIT, calls to Meta per second (%(default)s)",
    )
    add(
        "--webhook-url",
        choices=("on", "off", "alternate"),
        default="on",
        help="the workers use the webhooks' download URLs, look every media up, or each pool "
        "is run both ways in turn (%(default)s)",
    )
    add("--runs", type=int, default=1, help="runs of each pool; medians are shown (%(default)s)")
    add("--seed", type=int, default=1, help="batch sizes derive from it (%(default)s)")
    add("--keep", action="store_true", help="keep the run directory (logs, data)")
    args = parser.parse_args(argv)
    params = Params(
        count=args.count,
        size=args.size_kb * KB,
        latency=args.latency,
        max_batch=args.max_batch,
        senders=args.senders,
        steady_share=args.steady_share,
        steady_seconds=args.steady_seconds,
        graph_rate_limit=args.graph_rate_limit,
        seed=args.seed,
    )
    pools = [PoolConfig(args.pool, args.concurrency, args.workers)]
    if args.versus != "none":
        pools.append(PoolConfig.parse(args.versus))
    modes = {"on": (True,), "off": (False,), "alternate": (True, False)}[args.webhook_url]
    configs = [dataclasses.replace(p, webhook_url=on) for p in pools for on in modes]
    return params, configs, args.runs, args.keep


def run(params: Params, configs: Sequence[PoolConfig], runs: int, workdir: Path) -> list[Summary]:
    """Start the stack, measure each pool `runs` times (in turn, so that drifts touch all),
    stop everything."""
    extra = (("GRAPH_RATE_LIMIT", str(params.graph_rate_limit)),)
    with sigterm_as_interrupt(), contextlib.ExitStack() as exits:
        stack = start_bench_stack(exits, workdir, BUCKET, extra=extra)
        with stack.sim.client() as client:
            client.set_latency(params.latency)
        redis = Redis.from_url(stack.redis_server.url, socket_timeout=10)
        exits.callback(redis.close)
        bench = Bench(stack, params, redis, random.Random(params.seed))
        results: dict[PoolConfig, list[PoolResult]] = {config: [] for config in configs}
        for n in range(1, runs + 1):
            for config in configs:
                say(f"run {n}/{runs}: {config.label}")
                results[config].append(measure_pool(bench, config))
        return [Summary(config, done) for config, done in results.items()]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every target is met."""
    params, configs, runs, keep = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="wa-small-"))
    say(f"run directory {workdir}")
    try:
        summaries = run(params, configs, runs, workdir)
    except KeyboardInterrupt:
        print(f"\nInterrupted: everything started is stopped; logs in {workdir}", file=sys.stderr)
        return 130
    except (ArchiveFailed, SimulatorError, OSError, RuntimeError, TimeoutError) as exc:
        print(f"\nBENCHMARK BROKE: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"Logs are kept in {workdir / 'logs'}", file=sys.stderr)
        return 2
    print(report(summaries, params), flush=True)
    if keep:
        print(f"\nRun directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(ok for _, ok, _ in verdicts(summaries[0])) else 1


if __name__ == "__main__":
    sys.exit(main())
