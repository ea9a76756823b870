"""Relay latency: from `web`'s 200 to a healthy destination's receipt of the same webhook.

    .venv/bin/python bench/relay_latency.py [--webhooks N] [--rate R] [--destinations D]

It starts a private redis-server (no persistence), `web` and a worker with the Procfile's pool
(devstack.stack), and D local destinations (devstack/downstream.py) answering 200 at once; sends N
signed status webhooks (no media: the relay alone) at R per second, notes when each was answered
200, and when each destination received it. Prints the latency's percentiles per destination and
the duplicates; exit 0 when the p99 is under 1 s and every webhook arrived, 1 otherwise, 2 when
the benchmark broke.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from devstack import webhooks
from devstack.downstream import Downstream
from devstack.processes import wait_for
from devstack.redis_server import RedisServer
from devstack.stack import StackEnv, deployed_pool, start_web, start_worker

TARGET_P99_S = 1.0
SECRET = "bench-app-secret"  # noqa: S105 - signs the benchmark's own bodies, nothing else


def percentile(values: Sequence[float], share: float) -> float:
    """The value below which `share` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def run(count: int, rate: float, destinations: int, workdir: Path) -> int:
    """The whole measurement; the exit status."""
    with contextlib.ExitStack() as stops:
        redis = RedisServer(workdir / "redis", persistent=False).start()
        stops.callback(redis.stop)
        servers = [stops.enter_context(Downstream()) for _ in range(destinations)]
        relay = ",".join(f"d{i}={server.url}" for i, server in enumerate(servers))
        env = StackEnv(
            redis_url=redis.url,
            s3_endpoint_url="http://127.0.0.1:9",
            s3_bucket="unused",
            graph_url="http://127.0.0.1:9",
            media_hosts="127.0.0.1:9",
            access_token="unused",  # noqa: S106 - no call to a provider is made
            app_secret=SECRET,
            verify_token="bench-verify-token",  # noqa: S106
            extra=(("RELAY_DESTINATIONS", relay),),
        )
        logs = workdir / "logs"
        web, url = start_web(env, logs)
        stops.callback(web.stop)
        pool = deployed_pool()
        worker = start_worker(env, logs, pool=pool.name, concurrency=pool.concurrency)
        stops.callback(worker.stop)
        print(
            f"web {url}, worker {pool}, {destinations} destinations, {count} webhooks at {rate:g}/s"
        )

        answered: dict[bytes, float] = {}
        lock = threading.Lock()
        session = requests.Session()

        def send(index: int) -> None:
            status = webhooks.status_update(f"wamid.bench{index}")
            body, headers = webhooks.signed(webhooks.envelope([], statuses=[status]), SECRET)
            answer = session.post(f"{url}/webhook", data=body, headers=headers, timeout=10)
            done = time.time()
            if answer.status_code != 200:
                raise RuntimeError(f"web answered {answer.status_code}")
            with lock:
                answered[body] = done

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as senders:
            futures = []
            for index in range(count):
                delay = started + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing the load, not waiting on a condition
                futures.append(senders.submit(send, index))
            for future in futures:
                future.result()
        for server in servers:

            def arrived(server: Downstream = server) -> bool:
                return len({r.body for r in server.taken()}) >= count

            wait_for(arrived, timeout=120, what=f"{count} webhooks at {server.url}")
        ok = True
        for i, server in enumerate(servers):
            first: dict[bytes, float] = {}
            for received in server.taken():
                first.setdefault(received.body, received.at)
            latencies = [first[body] - at for body, at in answered.items() if body in first]
            duplicates = sum(n - 1 for n in Counter(r.body for r in server.taken()).values())
            p99 = percentile(latencies, 0.99)
            ok = ok and p99 < TARGET_P99_S and len(latencies) == count
            print(
                f"  d{i}: {len(latencies)}/{count} received, duplicates {duplicates}; from web's "
                f"200 to receipt: p50 {statistics.median(latencies) * 1000:.1f} ms, "
                f"p90 {percentile(latencies, 0.9) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
                f"max {max(latencies) * 1000:.1f} ms (target p99 < {TARGET_P99_S:g} s)"
            )
    print("Target met." if ok else "Target missed.")
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurement; the module's docstring lists the exit statuses."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--webhooks", type=int, default=2000, help="webhooks sent (%(default)s)")
    parser.add_argument("--rate", type=float, default=100.0, help="per second (%(default)s)")
    parser.add_argument("--destinations", type=int, default=2, help="(%(default)s)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="wa-bench-relay-"))
    try:
        return run(args.webhooks, args.rate, args.destinations, workdir)
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"RELAY BENCHMARK BROKE: {type(exc).__name__}: {exc}; logs in {workdir}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
