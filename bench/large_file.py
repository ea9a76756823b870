"""The large-file benchmark: one big document through the real pipeline, against a plain copy.

    .venv/bin/python bench/large_file.py [--size-mb 100] [--also 10] [--runs 3] [--pool threads]

It starts a private redis-server (AOF on), SeaweedFS, the Graph API simulator (a process of its
own) and `web`. For each run of each size it starts ONE `worker` process (concurrency 1, the
given pool), warms it with a small document, registers a fresh document of that size
(`application/pdf`) in the simulator, POSTs its signed webhook to `web` and waits until the media
is archived. It measures:

- **pipeline**: from just before the POST to the moment the worker recorded the media
  `archived` in Redis (written right after the sidecar `<key>.json` was committed);
- **worker memory**: the pool process's peak RSS (`VmHWM`, reset through `clear_refs` just
  before the POST) minus its RSS before the POST; for the threads, gevent and solo pools the
  pool is the worker process itself, for prefork its child;
- **baseline**, in a process of its own: the same look-up with `requests`, a streamed GET of the
  URL it gives into a temporary file, then boto3's `upload_file` of that file into the same
  bucket (boto3's defaults: 8 MiB parts, 10 threads).

Each measured run gets a fresh worker, so that no run inherits memory an earlier one left in
the allocator. It prints the medians with the targets and exits 0 when every target is met, 1
when one is missed, 2 when a run broke, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import requests
from redis import Redis

from devstack import webhooks
from devstack.processes import Service, wait_for
from devstack.seaweed import ACCESS_KEY, SECRET_KEY
from graphsim import MediaRecord, SimulatorClient, SimulatorError
from wa_media.core.keys import media_key
from wa_media.core.layout import build_key, sidecar_key

# `python bench/large_file.py` puts bench/ on the path, not the repository root with `bench`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.stack_runner import (
    BenchStack,
    grid,
    machine,
    pool_children,
    say,
    sigterm_as_interrupt,
    start_bench_stack,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "wa-archive"
PHONE_NUMBER_ID = webhooks.DEFAULT_PHONE_NUMBER_ID
MIME_TYPE = "application/pdf"
MB = 1_000_000
MIB = 1024 * 1024
WARM_UP_BYTES = 200_000
BASELINE_CHUNK = MIB
ARCHIVE_TIMEOUT = 300.0
POST_TIMEOUT = 10.0

TARGET_RATIO = 1.10
TARGET_GROWTH = 64 * MIB
TARGET_GROWTH_SPREAD = 0.10


# --------------------------------------------------------------------------------------------
# Memory of a process, from /proc


@dataclass(frozen=True)
class Memory:
    """A process's resident set now and at its peak, in bytes."""

    rss: int
    hwm: int


def memory(pid: int) -> Memory:
    """VmRSS and VmHWM of a process."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) * 1024
    return Memory(values["VmRSS"], values["VmHWM"])


def reset_peak(pid: int) -> None:
    """Set the process's VmHWM back to its current RSS (Linux `clear_refs`, value 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def pool_pids(worker: Service, pool: str) -> list[int]:
    """The processes that run the tasks: prefork's children, else the worker itself."""
    if pool != "prefork":
        return [worker.pid]
    children = wait_for(lambda: pool_children(worker.pid), timeout=10, what="pool processes")
    return list(children)


# --------------------------------------------------------------------------------------------
# The baseline, in a process of its own so that it shares no interpreter lock with this one


@dataclass(frozen=True)
class CopyJob:
    """What the baseline copies, and where to."""

    graph_url: str
    token: str
    media_id: str
    endpoint_url: str
    bucket: str
    key: str
    scratch: str


@dataclass(frozen=True)
class CopyTimes:
    """The baseline's two halves, seconds."""

    download: float
    """The look-up and the download into the file."""
    upload: float

    @property
    def total(self) -> float:
        """Both."""
        return self.download + self.upload


def plain_copy(job: CopyJob) -> CopyTimes:
    """Look up, download to a temporary file, `upload_file` it; how long each half took."""
    s3 = boto3.client(
        "s3",
        endpoint_url=job.endpoint_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    auth = {"Authorization": f"Bearer {job.token}"}
    started = time.perf_counter()
    lookup = requests.get(
        f"{job.graph_url}/{job.media_id}",
        params={"phone_number_id": PHONE_NUMBER_ID},
        headers=auth,
        timeout=30,
    )
    lookup.raise_for_status()
    with (
        requests.get(lookup.json()["url"], headers=auth, stream=True, timeout=30) as answer,
        tempfile.NamedTemporaryFile(dir=job.scratch) as file,
    ):
        answer.raise_for_status()
        for chunk in answer.iter_content(BASELINE_CHUNK):
            file.write(chunk)
        file.flush()
        downloaded = time.perf_counter()
        s3.upload_file(file.name, job.bucket, job.key)
    return CopyTimes(downloaded - started, time.perf_counter() - downloaded)


# --------------------------------------------------------------------------------------------
# The runs


@dataclass(frozen=True)
class PipelineRun:
    """One document through simulator -> web -> worker -> SeaweedFS."""

    seconds: float
    growth: int
    """Peak RSS of the pool process during the job minus its RSS before."""
    rss_before: int


@dataclass
class Figures:
    """Every run of one size."""

    size: int
    pipeline: list[PipelineRun] = field(default_factory=list)
    baseline: list[CopyTimes] = field(default_factory=list)

    def median_pipeline(self) -> float:
        """Median seconds of the pipeline."""
        return statistics.median(run.seconds for run in self.pipeline)

    def median_baseline(self) -> float:
        """Median seconds of the baseline."""
        return statistics.median(copy.total for copy in self.baseline)

    def median_halves(self) -> tuple[float, float]:
        """Median seconds of the baseline's download and of its upload."""
        return (
            statistics.median(copy.download for copy in self.baseline),
            statistics.median(copy.upload for copy in self.baseline),
        )

    def median_growth(self) -> float:
        """Median RSS growth, bytes."""
        return statistics.median(run.growth for run in self.pipeline)

    def ratio(self) -> float:
        """Pipeline over baseline, medians."""
        return self.median_pipeline() / self.median_baseline()


class ArchiveFailed(RuntimeError):
    """The worker recorded the media failed, or did not archive it in time."""


@dataclass
class Bench:
    """The running stack and what a run needs from it."""

    stack: BenchStack
    pool: str
    client: SimulatorClient
    redis: Redis
    s3: S3Client
    scratch: Path
    seeds: int = 0
    workers: int = 0

    def register(self, size: int) -> MediaRecord:
        """A fresh document of `size` bytes in the simulator."""
        self.seeds += 1
        return self.client.add_generated_media(
            size, self.seeds, MIME_TYPE, phone_number_id=PHONE_NUMBER_ID
        )

    def post(self, record: MediaRecord) -> tuple[float, str]:
        """POST the document's signed webhook; when the POST was sent, and the object key."""
        timestamp = int(time.time())
        message = webhooks.media_message(
            "document",
            record.id,
            sha256_b64=record.sha256_b64,
            mime_type=record.mime_type,
            timestamp=timestamp,
            filename=f"report-{record.id}.pdf",
        )
        payload = webhooks.envelope([message], phone_number_id=PHONE_NUMBER_ID)
        body, headers = webhooks.signed(payload, self.stack.env.app_secret)
        sent = time.time()
        answer = requests.post(
            f"{self.stack.web_url}/webhook", data=body, headers=headers, timeout=POST_TIMEOUT
        )
        if answer.status_code != 200:
            raise ArchiveFailed(f"web answered {answer.status_code}: {answer.text[:200]}")
        return sent, build_key("", PHONE_NUMBER_ID, timestamp, record.id, MIME_TYPE)

    def archived_at(self, record: MediaRecord) -> float:
        """Wait until the worker recorded the media archived; when it did (time.time())."""

        def settled() -> float | None:
            fields = self.redis.hmget(
                media_key(f"{PHONE_NUMBER_ID}:{record.id}"), ["state", "updated_at", "last_error"]
            )
            state, updated, error = (v.decode() if isinstance(v, bytes) else v for v in fields)
            if state == "failed":
                raise ArchiveFailed(f"media {record.id} failed: {error}")
            return float(updated) if state == "archived" and updated else None

        return wait_for(settled, timeout=ARCHIVE_TIMEOUT, interval=0.02, what="media archived")

    def check(self, record: MediaRecord, key: str) -> None:
        """The sidecar agrees with what the simulator served (the worker verified the bytes)."""
        sidecar = self.s3.get_object(Bucket=BUCKET, Key=sidecar_key(key))["Body"].read()
        document = json.loads(sidecar)
        if document.get("sha256") != record.sha256 or document.get("size") != record.file_size:
            raise ArchiveFailed(f"sidecar of {key} disagrees with the simulator")

    def archive(self, record: MediaRecord) -> tuple[float, str]:
        """POST, wait, check: seconds from the POST to archived, and the key."""
        sent, key = self.post(record)
        done = self.archived_at(record)
        self.check(record, key)
        return done - sent, key

    def pipeline(self, size: int) -> PipelineRun:
        """One measured run on a fresh worker."""
        self.workers += 1
        worker = self.stack.start_worker(f"lf{self.workers}", self.pool, concurrency=1)
        try:
            self.archive(self.register(WARM_UP_BYTES))
            pids = pool_pids(worker, self.pool)
            record = self.register(size)
            for pid in pids:
                reset_peak(pid)
            before = {pid: memory(pid) for pid in pids}
            seconds, _ = self.archive(record)
            after = {pid: memory(pid) for pid in pids}
        finally:
            worker.stop()
        growth = max(after[pid].hwm - before[pid].rss for pid in pids)
        return PipelineRun(seconds, growth, max(m.rss for m in before.values()))

    def baseline(self, size: int) -> CopyTimes:
        """One plain copy of a fresh document of `size` bytes."""
        record = self.register(size)
        job = CopyJob(
            graph_url=self.stack.sim.graph_url,
            token=self.stack.sim.token,
            media_id=record.id,
            endpoint_url=self.stack.seaweed.endpoint_url,
            bucket=BUCKET,
            key=f"baseline/{record.id}.pdf",
            scratch=str(self.scratch),
        )
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            return pool.apply(plain_copy, (job,))


def measure(bench: Bench, sizes: Sequence[int], runs: int) -> list[Figures]:
    """Every run, the pipeline and the baseline in turn so that drifts touch both."""
    figures = [Figures(size) for size in sizes]
    for n in range(1, runs + 1):
        for item in figures:
            run = bench.pipeline(item.size)
            item.pipeline.append(run)
            item.baseline.append(bench.baseline(item.size))
            say(
                f"run {n}/{runs}, {item.size / MB:.0f} MB: pipeline {run.seconds:.2f}s, "
                f"baseline {item.baseline[-1].total:.2f}s "
                f"(download {item.baseline[-1].download:.2f}s), RSS +{run.growth / MIB:.1f} MiB "
                f"(from {run.rss_before / MIB:.0f} MiB)"
            )
    return figures


# --------------------------------------------------------------------------------------------
# The report


def _mib_s(size: int, seconds: float) -> str:
    return f"{size / MIB / seconds:.0f}"


def verdicts(figures: Sequence[Figures]) -> list[tuple[str, bool, str]]:
    """(target, met, figure) for each target of the issue."""
    largest = max(figures, key=lambda item: item.size)
    checks = [
        (
            f"pipeline <= {TARGET_RATIO:.2f}x baseline ({largest.size / MB:.0f} MB)",
            largest.ratio() <= TARGET_RATIO,
            f"{largest.ratio():.2f}x",
        ),
        (
            f"RSS growth < {TARGET_GROWTH / MIB:.0f} MiB ({largest.size / MB:.0f} MB)",
            largest.median_growth() < TARGET_GROWTH,
            f"{largest.median_growth() / MIB:.1f} MiB",
        ),
    ]
    for other in figures:
        if other is largest:
            continue
        spread = largest.median_growth() / other.median_growth() - 1
        checks.append(
            (
                f"RSS growth within {TARGET_GROWTH_SPREAD:.0%} of the "
                f"{other.size / MB:.0f} MB figure",
                abs(spread) <= TARGET_GROWTH_SPREAD,
                f"{spread:+.1%}",
            )
        )
    return checks


def report(figures: Sequence[Figures], pool: str, runs: int) -> str:
    """The table of medians and the targets."""
    header = [
        "size",
        "pipeline s",
        "baseline s",
        "ratio",
        "pipeline MiB/s",
        "baseline MiB/s",
        "baseline download / upload s",
        "worker RSS growth",
    ]
    rows = [
        [
            f"{item.size / MB:.0f} MB",
            f"{item.median_pipeline():.2f}",
            f"{item.median_baseline():.2f}",
            f"{item.ratio():.2f}",
            _mib_s(item.size, item.median_pipeline()),
            _mib_s(item.size, item.median_baseline()),
            "{:.2f} / {:.2f}".format(*item.median_halves()),
            f"{item.median_growth() / MIB:.1f} MiB",
        ]
        for item in figures
    ]
    targets = [[name, figure, "met" if ok else "MISSED"] for name, ok, figure in verdicts(figures)]
    return "\n".join(
        [
            "",
            f"Large file: medians of {runs} runs, worker --pool {pool} --concurrency 1",
            machine(),
            "",
            grid(header, rows),
            "",
            grid(["target", "measured", ""], targets),
        ]
    )


# --------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="One large document through the pipeline against requests + upload_file."
    )
    add = parser.add_argument
    add("--size-mb", type=int, default=100, help="the document's size, MB (%(default)s)")
    add("--also", type=int, default=10, help="a second size for the RSS comparison, 0: none")
    add("--runs", type=int, default=3, help="runs of each size; medians are shown (%(default)s)")
    add("--pool", default="threads", help="the worker's --pool (%(default)s)")
    add("--keep", action="store_true", help="keep the run directory (logs, data)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, workdir: Path) -> list[Figures]:
    """Start everything, measure, stop everything."""
    sizes = [args.size_mb * MB] + ([args.also * MB] if args.also else [])
    with sigterm_as_interrupt(), contextlib.ExitStack() as exits:
        stack = start_bench_stack(exits, workdir, BUCKET)
        client = exits.enter_context(stack.sim.client())
        redis = Redis.from_url(stack.redis_server.url, socket_timeout=10)
        exits.callback(redis.close)
        scratch = workdir / "scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        bench = Bench(stack, args.pool, client, redis, stack.seaweed.client(), scratch)
        return measure(bench, sizes, args.runs)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every target is met."""
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="wa-large-"))
    say(f"run directory {workdir}")
    try:
        figures = run(args, workdir)
    except KeyboardInterrupt:
        print(f"\nInterrupted: everything started is stopped; logs in {workdir}", file=sys.stderr)
        return 130
    except (ArchiveFailed, SimulatorError, OSError, RuntimeError, TimeoutError) as exc:
        print(f"\nBENCHMARK BROKE: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"Logs are kept in {workdir / 'logs'}", file=sys.stderr)
        return 2
    print(report(figures, args.pool, args.runs), flush=True)
    if args.keep:
        print(f"\nRun directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(ok for _, ok, _ in verdicts(figures)) else 1


if __name__ == "__main__":
    sys.exit(main())
