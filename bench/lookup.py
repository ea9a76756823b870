"""The read API's cost to the webhook: the webhook's p99 with and without lookups served.

    .venv/bin/python bench/lookup.py [--duration S] [--runs N] [--lookups R] [--quick]

It starts a private redis-server and SeaweedFS, seeds the bucket with media as the worker
archives them (object, index entries, sidecar), and serves the real `web` with the Procfile's
command and a read API key. wrk (`bench/wrk/signed_bodies.lua`, as `bench/webhook.py`) offers
one-message webhooks at half the rate `web` reaches here; each run is made twice, taking turns:
alone, and with `--lookups` read API requests a second (GET /v1/media/<wamid or media id>,
paced by a thread of this process, each answered 200 with a presigned URL). The figure is the
median over `--runs` of each side's webhook p99; the target is at most 10% more with lookups.

Exit 0 when the target is met, 1 when it is missed, 2 when a run is invalid (a webhook or a
lookup answered otherwise than expected, fewer lookups served than asked) or the benchmark broke.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests
from redis import Redis

from bench.webhook import (
    ONE,
    REAL_APP_SPEC,
    SECRET,
    VERIFY_TOKEN,
    WRK_THREADS,
    AppUnderTest,
    Bodies,
    base_env,
    calibrate,
    check_run,
    children,
    cpu_seconds,
    machine,
    procfile_web,
    run_wrk,
    say,
    write_bodies,
    wrk_argv,
)
from devstack.processes import free_port
from devstack.redis_server import RedisServer
from devstack.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedFS
from wa_media.config.target import ArchiveTarget
from wa_media.core.index import IndexEntry
from wa_media.stores.index import index_media
from wa_media.stores.s3 import ArchiveStore

BUCKET = "wa-archive"
PREFIX = "bench"
API_KEY = "bench-lookup-key-0123456789"
NUMBER = "106540352242922"
# Media seeded for --repeated: asked for again and again, answered from web's memory.
REPEATED = 100
TARGET_P99_INCREASE = 0.10


@dataclass
class LookupLoad:
    """Read API requests at a steady rate from a few threads, counted by status."""

    url: str
    per_second: float
    refs: Iterator[str]
    """The references to ask for, in turn (shared by the threads, and by the runs)."""
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _worker(self, offset: int, threads: int) -> None:
        period = threads / self.per_second
        start = time.monotonic() + offset * period / threads
        n = 0
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {API_KEY}"
            while not self._stop.is_set():
                due = start + n * period
                pause = due - time.monotonic()
                if pause > 0 and self._stop.wait(pause):
                    return
                with self._lock:
                    ref = next(self.refs)
                began = time.perf_counter()
                try:
                    status = session.get(f"{self.url}/v1/media/{ref}", timeout=5).status_code
                except requests.RequestException:
                    status = 0
                with self._lock:
                    self.statuses[status] += 1
                    self.latencies.append(time.perf_counter() - began)
                n += 1

    @contextlib.contextmanager
    def running(self, threads: int = 4) -> Iterator[LookupLoad]:
        """The load runs while the block does."""
        workers = [
            threading.Thread(target=self._worker, args=(i, threads), daemon=True)
            for i in range(threads)
        ]
        for worker in workers:
            worker.start()
        try:
            yield self
        finally:
            self._stop.set()
            for worker in workers:
                worker.join(10)


def seed(s3_store: ArchiveStore, count: int) -> list[str]:
    """`count` media as the worker leaves them: object, index entries, sidecar; their refs
    (wamid and media id of each)."""
    with ThreadPoolExecutor(8) as pool:
        return [
            ref for refs in pool.map(lambda i: _seed_one(s3_store, i), range(count)) for ref in refs
        ]


def _seed_one(s3_store: ArchiveStore, i: int) -> list[str]:
    media_id, wamid = f"9{i:09d}", f"wamid.benchlookup{i}"
    key = f"{PREFIX}/{NUMBER}/2026/12/04/{media_id}.jpg"
    data = i.to_bytes(4, "big") * 2500
    digest = hashlib.sha256(data).hexdigest()
    with s3_store.upload(key, content_type="image/jpeg", metadata={"sha256": digest}) as up:
        up.write(data)
        up.commit()
    entry = IndexEntry.of(
        phone_number_id=NUMBER,
        media_id=media_id,
        wamid=wamid,
        bucket=BUCKET,
        key=key,
        sidecar_key=key + ".json",
        at=datetime.now(UTC),
    )
    index_media(s3_store, entry)
    sidecar = {"schema": 2, "media_id": media_id, "wamid": wamid, "key": key}
    s3_store.put_json(key + ".json", {**sidecar, "sha256": digest, "size": len(data)})
    return [wamid, media_id]


@dataclass
class Side:
    """The runs of one side: webhook p99s (ms), lookups served."""

    name: str
    p99_ms: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    lookups: list[float] = field(default_factory=list)
    lookup_p99_ms: list[float] = field(default_factory=list)
    web_cpu: list[float] = field(default_factory=list)
    """CPU seconds a second of web's workers, of SeaweedFS, of this process (the lookups'
    client): how busy the two cores were."""
    s3_cpu: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)


def _tree_cpu(pid: int) -> float:
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in children(pid))


def run_once(
    app: AppUnderTest, bodies: Bodies, connections: int, seconds: float, period_ms: int
) -> tuple[float, float, float, list[str]]:
    """One wrk run at the calibrated period: rate, p50 and p99 (ms), problems."""
    app.reset()
    result = run_wrk(wrk_argv(app.url, bodies, connections, seconds, period_ms), seconds)
    problems = check_run(app, result, connections, "webhook run")
    return result.rate, result.p50_us / 1000, result.p99_us / 1000, problems


def execute(args: argparse.Namespace, workdir: Path) -> int:
    """Start everything, run both sides in turns, print the table; the exit status."""
    bodies = write_bodies(workdir, ONE, args.duration)
    problems: list[str] = []
    sides = {"alone": Side("webhooks alone"), "lookups": Side(f"+ {args.lookups:g} lookups/s")}
    with contextlib.ExitStack() as stops:
        server = RedisServer(workdir / "redis", persistent=False).start()
        stops.callback(server.stop)
        seaweed = SeaweedFS(workdir / "weed", buckets=(BUCKET,)).start()
        stops.callback(seaweed.stop)
        # Distinct references: every lookup reads S3 (web's memory never answers), the worst
        # case; --repeated: a few, answered from web's memory after their first time.
        needed = int(args.lookups * args.duration * args.runs * 1.2 / 2) + 100
        count = REPEATED if args.repeated else needed
        say(f"seeding the bucket with {count} media")
        refs = seed(ArchiveStore(seaweed.client(), ArchiveTarget(BUCKET, PREFIX)), count)
        asked = itertools.cycle(refs[2:])
        settings = {
            "REDIS_URL": server.url,
            "WHATSAPP_APP_SECRET": SECRET,
            "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
            "WEB_METRICS_PORT": str(free_port()),
            "LOOKUP_API_KEYS": API_KEY,
            "LOOKUP_RATE_LIMIT": "100000",
            "S3_BUCKET": BUCKET,
            "S3_PREFIX": PREFIX,
            "S3_ENDPOINT_URL": seaweed.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        app = AppUnderTest("web", REAL_APP_SPEC, base_env() | settings, Redis.from_url(server.url))
        stops.callback(app.stop)
        app.start(procfile_web(), workdir / "logs")
        probe = requests.get(
            f"{app.url}/v1/media/{refs[0]}",
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=10,
        )
        if probe.status_code != 200:
            raise RuntimeError(f"the read API answered {probe.status_code}: {probe.text}")
        if args.repeated:
            say("asking for each media a few times first (each gunicorn worker keeps its own)")
            with requests.Session() as session:
                session.headers["Authorization"] = f"Bearer {API_KEY}"
                for ref in refs * 4:
                    session.get(f"{app.url}/v1/media/{ref}", timeout=10).raise_for_status()
        say("warming up and finding web's rate")
        run_wrk(wrk_argv(app.url, bodies, args.connections, 2, 0), 2)
        app.reset()
        peak = run_wrk(wrk_argv(app.url, bodies, args.connections, args.duration, 0), args.duration)
        app.reset()
        period = calibrate(app, bodies, args.connections, peak.rate / 2)
        say(f"max {peak.rate:,.0f} webhooks/s; half rate: {period} ms between requests")
        for n in range(args.runs):
            for name in ("alone", "lookups"):
                side = sides[name]
                load = LookupLoad(app.url, args.lookups, asked)
                assert seaweed.service is not None
                before = (app.worker_cpu(), _tree_cpu(seaweed.service.pid), time.process_time())
                with load.running() if name == "lookups" else contextlib.nullcontext(load):
                    rate, p50, p99, found = run_once(
                        app, bodies, args.connections, args.duration, period
                    )
                after = (app.worker_cpu(), _tree_cpu(seaweed.service.pid), time.process_time())
                spent = [(b - a) / args.duration for a, b in zip(before, after, strict=True)]
                side.web_cpu.append(spent[0])
                side.s3_cpu.append(spent[1])
                side.client_cpu.append(spent[2])
                problems += [f"{side.name} run {n + 1}: {p}" for p in found]
                side.rates.append(rate)
                side.p50_ms.append(p50)
                side.p99_ms.append(p99)
                if name == "lookups":
                    served = load.statuses[200] / args.duration
                    side.lookups.append(served)
                    latencies = sorted(load.latencies)
                    side.lookup_p99_ms.append(1000 * latencies[int(len(latencies) * 0.99) - 1])
                    others = {s: c for s, c in load.statuses.items() if s != 200}
                    if others:
                        problems.append(f"{side.name} run {n + 1}: lookups answered {others}")
                    if served < 0.9 * args.lookups:
                        problems.append(
                            f"{side.name} run {n + 1}: {served:.0f} lookups/s served, "
                            f"{args.lookups:g} asked"
                        )
                extra = (
                    f", {side.lookups[-1]:.0f} lookups/s served, lookup p99 "
                    f"{side.lookup_p99_ms[-1]:.1f} ms"
                    if name == "lookups"
                    else ""
                )
                say(
                    f"  {side.name} run {n + 1}: {rate:,.0f} webhooks/s, p50 {p50:.2f} ms, "
                    f"p99 {p99:.2f} ms{extra}; CPU s/s: web {spent[0]:.2f}, SeaweedFS "
                    f"{spent[1]:.2f}, lookup client {spent[2]:.2f}"
                )
    asking = (
        f"the same {REPEATED} media asked again and again"
        if args.repeated
        else "a new reference per lookup"
    )
    alone = statistics.median(sides["alone"].p99_ms)
    loaded = statistics.median(sides["lookups"].p99_ms)
    increase = loaded / alone - 1
    met = increase <= TARGET_P99_INCREASE
    print(
        f"\nLookup benchmark: median of {args.runs} run(s) of {args.duration:g} s per side, "
        f"one-message webhooks at half of web's max rate ({peak.rate:,.0f}/s), "
        f"{asking}, "
        f"wrk -t{WRK_THREADS} -c{args.connections}, the sides taking turns"
    )
    print("\n".join(f"  {line}" for line in machine()))
    print(
        f"\n  {'side':<22} {'webhooks/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'lookups/s':>9} "
        f"{'web CPU':>7} {'S3 CPU':>7}"
    )
    for side in sides.values():
        lookups = f"{statistics.median(side.lookups):9.0f}" if side.lookups else f"{'-':>9}"
        print(
            f"  {side.name:<22} {statistics.median(side.rates):10,.0f} "
            f"{statistics.median(side.p50_ms):7.2f} {statistics.median(side.p99_ms):7.2f} "
            f"{lookups} {statistics.median(side.web_cpu):7.2f} "
            f"{statistics.median(side.s3_cpu):7.2f}"
        )
    print(
        f"\n  webhook p99 with lookups: {increase:+.1%} (target at most "
        f"+{TARGET_P99_INCREASE:.0%}); lookup p99 "
        f"{statistics.median(sides['lookups'].lookup_p99_ms):.1f} ms"
    )
    print(json.dumps({"p99_alone_ms": alone, "p99_lookups_ms": loaded, "increase": increase}))
    if problems:
        print("\nINVALID runs:\n" + "\n".join(f"  - {p}" for p in problems))
        return 2
    print("\nTarget met." if met else "\nTarget missed.")
    return 0 if met else 1


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the module's docstring lists the exit statuses."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per side (medians)")
    parser.add_argument("--lookups", type=float, default=100.0, help="lookups per second")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--quick", action="store_true", help="one 3-second run per side")
    parser.add_argument(
        "--repeated",
        action="store_true",
        help=f"ask for {REPEATED} media again and again (answered from web's memory), instead "
        "of a new reference each time (every lookup reads S3)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.runs = 3.0, 1
    workdir = Path(tempfile.mkdtemp(prefix="wa-bench-lookup-"))
    try:
        status = execute(args, workdir)
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"\nLOOKUP BENCHMARK BROKE: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"Logs are kept in {workdir}", file=sys.stderr)
        return 2
    if status != 2:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
