"""The webhook benchmark: the real `web` against a bare Flask app, under the same load.

    .venv/bin/python bench/webhook.py [--duration S] [--runs N] [--connections C] [--quick]

It starts a private redis-server (no persistence) on a free port, serves both apps with the `web`
command line of the Procfile (bound to 127.0.0.1 on a free port instead of 0.0.0.0:$PORT) and
drives them, their runs taking turns, with wrk and `bench/wrk/signed_bodies.lua`, which POSTs
pre-signed webhook bodies, a different one per request. For one-message and ten-message payloads
it measures (a) the maximum rate and (b) the latency at half that rate, each the median of
`--runs` runs, and prints one table with the targets of the issue. After every run against the
real app it checks that the broker holds one fan-out task per 2xx answer, so that a fast failure
path cannot pass for throughput.

Exit 0 when every target is met, 1 when one is missed, 2 when a run is invalid (an answer of 400
or more, a socket error, or tasks missing from the broker) or the benchmark broke, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Literal

import requests
from redis import Redis

from devstack import webhooks
from devstack.processes import Service, free_port, wait_for
from devstack.redis_server import RedisServer
from wa_media.stores.broker import MEDIA_QUEUE

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROCFILE = ROOT / "Procfile"
LUA_SCRIPT = ROOT / "bench" / "wrk" / "signed_bodies.lua"
REAL_APP_SPEC = "webhook.app:create_app()"
BARE_APP_SPEC = "bench.bare_app:create_app()"
SECRET = "bench-app-secret"  # noqa: S105 - signs the benchmark's own bodies, nothing else
VERIFY_TOKEN = "bench-verify-token"  # noqa: S105

WRK_THREADS = 2
# 360dialog gives a webhook 5 s: a slower answer counts as a timeout here too.
WRK_TIMEOUT = "5s"
WARM_UP_SECONDS = 2.0
# The broker's task count must hold still over this many polls 50 ms apart after a run.
SETTLE_POLLS = 4
# Each wrk thread holds its bodies in memory: at most this many bytes per thread and payload.
BODY_BUDGET = 40 * 1024 * 1024
# The bodies cover this many requests per second for a whole run before repeating: more than the
# real app answers here (only the bare app goes past it with ten messages, and it keeps no records).
RATE_CEILING = {1: 8000, 10: 3000}
SHA256_B64 = base64.b64encode(b"\x01" * 32).decode()

TARGET_REAL_VS_BARE = 0.50
TARGET_TEN_VS_ONE = 0.80
TARGET_HALF_RATE_P99_MS = 50.0
# Relaying every webhook to two destinations (`--app relay`) costs web at most a tenth of its rate.
TARGET_RELAY_VS_NONE = 0.90
# Two destinations `web` relays to with `--app relay`: it only records and publishes, never
# calls them.
RELAY_DESTINATIONS = "crm=http://127.0.0.1:9/crm,bot=http://127.0.0.1:9/bot"

Phase = Literal["max", "half"]
START = time.monotonic()


def say(text: str) -> None:
    """One progress line, stamped with the seconds since the start."""
    print(f"[{time.monotonic() - START:6.1f}s] {text}", flush=True)


# --------------------------------------------------------------------------------------------
# The command line of `web`


def procfile_web(procfile: Path = PROCFILE) -> list[str]:
    """The Procfile's `web:` command, split like a shell would (variables left as written)."""
    for line in procfile.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == "web":
            return shlex.split(command)
    raise SystemExit(f"{procfile}: no web: line")


def gunicorn_argv(template: Sequence[str], port: int, app_spec: str) -> list[str]:
    """`template` (the Procfile's web) with this venv's gunicorn, bound to 127.0.0.1:`port`,
    serving `app_spec` instead of the real app; every other flag as written."""
    if not template or Path(template[0]).name != "gunicorn" or template[-1] != REAL_APP_SPEC:
        raise SystemExit(f"Procfile web is not `gunicorn ... '{REAL_APP_SPEC}'`: {template}")
    argv = [str(BIN / "gunicorn")]
    bound = False
    tokens = iter(template[1:-1])
    for token in tokens:
        if token in ("--bind", "-b"):
            next(tokens)
            argv += [token, f"127.0.0.1:{port}"]
            bound = True
        elif token.startswith("--bind="):
            argv.append(f"--bind=127.0.0.1:{port}")
            bound = True
        else:
            argv.append(token)
    if not bound:
        argv += ["--bind", f"127.0.0.1:{port}"]
    return [*argv, app_spec]


# --------------------------------------------------------------------------------------------
# The bodies


@dataclass(frozen=True)
class Payload:
    """A kind of webhook: how many media messages each POST carries."""

    name: str
    messages: int


ONE = Payload("one-message", 1)
TEN = Payload("ten-message", 10)


@dataclass(frozen=True)
class Bodies:
    """The files of signed bodies for one payload, one per wrk thread."""

    prefix: Path
    per_thread: int
    size: int

    @property
    def total(self) -> int:
        """Distinct bodies over all threads."""
        return self.per_thread * WRK_THREADS


def signed_line(payload: Payload, thread: int, index: int) -> str:
    """One "signature<TAB>body" line: a webhook whose media ids no other line uses."""
    messages = [
        webhooks.media_message(
            "image",
            f"bench{payload.messages}t{thread}n{index}m{m}",
            sha256_b64=SHA256_B64,
            mime_type="image/jpeg",
            wamid=f"wamid.bench{payload.messages}t{thread}n{index}m{m}",
        )
        for m in range(payload.messages)
    ]
    body, headers = webhooks.signed(webhooks.envelope(messages), SECRET)
    return f"{headers['X-Hub-Signature-256']}\t{body.decode()}\n"


def write_bodies(directory: Path, payload: Payload, duration: float) -> Bodies:
    """Enough distinct bodies for a run at RATE_CEILING, within BODY_BUDGET per thread."""
    size = len(signed_line(payload, 0, 0))
    wanted = int(RATE_CEILING[payload.messages] * duration / WRK_THREADS) + 1
    per_thread = max(1, min(wanted, BODY_BUDGET // size))
    prefix = directory / f"bodies-{payload.name}"
    for thread in range(WRK_THREADS):
        with Path(f"{prefix}-{thread}.txt").open("w") as out:
            out.writelines(signed_line(payload, thread, i) for i in range(per_thread))
    return Bodies(prefix, per_thread, size)


# --------------------------------------------------------------------------------------------
# wrk


@dataclass(frozen=True)
class WrkResult:
    """What the Lua script's done() printed for one run."""

    requests: int
    duration_us: int
    connect_errors: int
    read_errors: int
    write_errors: int
    http_errors: int
    """Answers with a status of 400 or more."""
    timeouts: int
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int

    @property
    def rate(self) -> float:
        """Completed requests per second."""
        return self.requests / (self.duration_us / 1e6)

    @property
    def ok(self) -> int:
        """Requests answered below 400."""
        return self.requests - self.http_errors

    @property
    def socket_errors(self) -> int:
        """Connect, read and write errors and timeouts."""
        return self.connect_errors + self.read_errors + self.write_errors + self.timeouts


def wrk_argv(
    url: str, bodies: Bodies, connections: int, seconds: float, period_ms: int
) -> list[str]:
    """The wrk command of one run."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found on PATH: install it (Debian: apt-get install wrk)")
    return [
        wrk,
        "-t", str(WRK_THREADS),
        "-c", str(connections),
        "-d", f"{seconds:g}s",
        "--timeout", WRK_TIMEOUT,
        "-s", str(LUA_SCRIPT),
        f"{url}/webhook",
        "--", str(bodies.prefix), str(period_ms),
    ]  # fmt: skip


def run_wrk(argv: Sequence[str], seconds: float) -> WrkResult:
    """Run wrk and parse the line its script's done() printed."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            fields = json.loads(line.removeprefix("WRK_JSON "))
            fields["http_errors"] = fields.pop("status_errors")
            return WrkResult(**{k: fields[k] for k in WrkResult.__dataclass_fields__})
    raise RuntimeError(f"wrk gave no result (exit {done.returncode}):\n{done.stdout}{done.stderr}")


# --------------------------------------------------------------------------------------------
# The processes under test


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process (all its threads) has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The direct children of a process: a gunicorn master's workers."""
    with contextlib.suppress(FileNotFoundError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


@dataclass
class AppUnderTest:
    """One app served by gunicorn, and (for the real app) the Redis it publishes to."""

    name: str
    spec: str
    env: dict[str, str]
    redis: Redis | None = None
    service: Service | None = None
    url: str = ""

    def start(self, template: Sequence[str], log_dir: Path) -> None:
        """Serve the app with the Procfile's web command; return once /healthz answers."""
        port = free_port()
        argv = gunicorn_argv(template, port, self.spec)
        service = Service(self.name, argv, log_dir / f"{self.name}.log", env=self.env, cwd=ROOT)
        self.service, self.url = service.start(), f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            if not service.alive():
                raise RuntimeError(f"{self.name} exited:\n{service.log_text()[-3000:]}")
            try:
                return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(healthy, timeout=30, what=f"{self.name} /healthz")

    def stop(self) -> None:
        """Stop gunicorn (and its workers)."""
        if self.service is not None:
            self.service.stop()

    def worker_cpu(self) -> float:
        """CPU seconds used so far by the gunicorn workers now running."""
        assert self.service is not None
        return sum(cpu_seconds(pid) for pid in children(self.service.pid))

    def queued_tasks(self) -> int:
        """Messages on the media queue, its priority levels included."""
        assert self.redis is not None
        return sum(
            int(self.redis.llen(key))
            for key in self.redis.scan_iter(match=f"{MEDIA_QUEUE}*", count=1000)
            if self.redis.type(key) == b"list"
        )

    def settle(self) -> int:
        """Wait until the requests wrk left in flight are answered: the tasks in the broker stop
        changing for a while; return their number (0 for the bare app)."""
        if self.redis is None:
            return 0
        seen: list[int] = []

        def unchanged() -> bool:
            seen.append(self.queued_tasks())
            return len(seen) >= SETTLE_POLLS and len(set(seen[-SETTLE_POLLS:])) == 1

        wait_for(unchanged, timeout=30, interval=0.05, what=f"{self.name} to settle")
        return seen[-1]

    def reset(self) -> None:
        """Start a run from an empty database, so that every media id is new to it."""
        if self.redis is not None:
            self.settle()
            self.redis.flushdb()


def base_env() -> dict[str, str]:
    """This process's environment without what could change gunicorn's or web's settings."""
    env = dict(os.environ)
    for name in (
        "GUNICORN_CMD_ARGS",
        "PORT",
        "WEB_METRICS_PORT",
        "WHATSAPP_ACCOUNTS_FILE",
        "WHATSAPP_PROVIDER",
    ):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --------------------------------------------------------------------------------------------
# Profiling


def start_profile(master: int, seconds: float, output: Path, log_dir: Path) -> Service:
    """py-spy sampling every gunicorn worker of `master` for `seconds`, as raw (collapsed)
    stacks of the thread holding the GIL: where the Python CPU time goes, not the waits."""
    argv = [
        str(BIN / "py-spy"), "record",
        "--pid", str(master),
        "--subprocesses",
        "--duration", str(max(1, int(seconds))),
        "--rate", "200",
        "--gil",
        "--format", "raw",
        "--output", str(output),
    ]  # fmt: skip
    return Service("py-spy", argv, log_dir / "py-spy.log").start()


def frame_name(frame: str) -> str:
    """`function (path/to/module.py:line)` without the line: one name per function."""
    name, _, location = frame.partition(" (")
    path = location.rsplit(":", 1)[0]
    for marker in ("site-packages/", f"{ROOT}/", "/lib/python3."):
        path = path.split(marker, 1)[-1]
    return f"{name} ({path})"


# The steps of a webhook, as a function (or alternatives, a tuple) whose inclusive share stands
# for the step.
PROFILE_STEPS = (
    # gevent (the Procfile's worker class): each connection's greenlet enters the worker at
    # AsyncWorker.handle; gthread (a --command to try) at ThreadWorker.handle.
    (
        "gunicorn worker, all of it",
        ("AsyncWorker.handle (gunicorn/", "ThreadWorker.handle (gunicorn/"),
    ),
    ("  Flask app (request context, routing, response)", "Flask.wsgi_app (flask/"),
    ("    the view", "receive (webhook/views.py)"),
    ("      signature (HMAC)", "verify (webhook/signature.py)"),
    ("      json.loads", "loads (json/__init__.py)"),
    ("      payload to jobs (pydantic)", "parse_cloud_payload (webhook/payload.py)"),
    ("      publish: record + send", "Publisher.publish (webhook/publisher.py)"),
    (
        "        record the media (EVALSHA)",
        "MediaStateStore.admit_many (wa_media/stores/records.py)",
    ),
    ("        Celery send_task", "Celery.send_task (celery/"),
    ("          kombu: a redis.Redis per publish", "Channel._create_client (kombu/"),
    ("          kombu: LPUSH", "ListCommands.lpush (redis/"),
    (
        "      log lines received, enqueued (structlog)",
        "_make_filtering_bound_logger.<locals>.make_method.<locals>.meth (structlog/",
    ),
)


def summarize_profile(raw: Path, top: int = 25) -> str:
    """Self and inclusive shares of the samples, per function, of a py-spy raw profile."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [frame_name(f) for f in stack.split(";") if " (" in f]
        if not count_text.isdigit() or not frames:
            continue
        count = int(count_text)
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if total == 0:
        return "no samples\n"
    lines = [f"{total} samples of the thread holding the GIL", "", "steps (inclusive):"]
    for label, function in PROFILE_STEPS:
        n = sum(count for name, count in inclusive.items() if name.startswith(function))
        lines.append(f"  {n / total:6.1%}  {label}")
    lines += ["", "self:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top * 2)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Runs


@dataclass(frozen=True)
class Run:
    """One wrk run and the CPU the gunicorn workers spent meanwhile."""

    wrk: WrkResult
    worker_cpu: float

    @property
    def cpu_per_request_us(self) -> float:
        """Worker CPU time per completed request, in microseconds."""
        return self.worker_cpu * 1e6 / max(1, self.wrk.requests)


@dataclass
class Cell:
    """The runs of one app, payload and phase."""

    app: str
    payload: Payload
    phase: Phase
    runs: list[Run] = field(default_factory=list)

    @property
    def name(self) -> str:
        """How progress lines name it."""
        return f"{self.app} {self.payload.name} {self.phase}"

    @property
    def key(self) -> tuple[str, str, Phase]:
        """Its key in Cells."""
        return (self.app, self.payload.name, self.phase)

    def median(self, figure: Callable[[Run], float]) -> float:
        """The median of one figure over the runs."""
        return statistics.median(figure(run) for run in self.runs)

    @property
    def rate(self) -> float:
        """Median requests per second."""
        return self.median(lambda run: run.wrk.rate)

    @property
    def p50_ms(self) -> float:
        """Median of the runs' median latencies."""
        return self.median(lambda run: run.wrk.p50_us / 1000)

    @property
    def p99_ms(self) -> float:
        """Median of the runs' 99th percentile latencies."""
        return self.median(lambda run: run.wrk.p99_us / 1000)

    @property
    def cpu_us(self) -> float:
        """Median worker CPU per request."""
        return self.median(lambda run: run.cpu_per_request_us)

    @property
    def errors(self) -> int:
        """Answers of 400 or more and socket errors, over all runs."""
        return sum(run.wrk.http_errors + run.wrk.socket_errors for run in self.runs)


Cells = dict[tuple[str, str, Phase], Cell]


@dataclass
class Options:
    """The flags that shape the runs."""

    duration: float
    runs: int
    connections: int
    profile: Path | None


class Invalid(Exception):
    """Runs whose figures cannot be trusted: errors, or tasks missing from the broker."""

    def __init__(self, cells: Cells, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} invalid run(s)")
        self.cells = cells
        self.problems = problems


def check_run(app: AppUnderTest, result: WrkResult, connections: int, what: str) -> list[str]:
    """What makes a run's figures untrustworthy: errors, or (real app) tasks not in the broker."""
    problems = []
    if result.http_errors or result.socket_errors:
        problems.append(
            f"{what}: {result.http_errors} answers >= 400, {result.socket_errors} socket "
            "errors or timeouts"
        )
    if app.redis is not None:
        queued = app.settle()
        # Requests in flight when wrk stops are answered (and published) but not counted.
        if not result.ok <= queued <= result.ok + connections:
            problems.append(f"{what}: {result.ok} answers 2xx but {queued} tasks queued")
    return problems


def measure(
    app: AppUnderTest, cell: Cell, bodies: Bodies, options: Options, period_ms: int = 0
) -> list[str]:
    """One wrk run for one cell; the problems found."""
    argv = wrk_argv(app.url, bodies, options.connections, options.duration, period_ms)
    n = len(cell.runs) + 1
    if n == 1:
        say(f"{app.name} {cell.payload.name} {cell.phase}: {shlex.join(argv)}")
    app.reset()
    cpu_before = app.worker_cpu()
    result = run_wrk(argv, options.duration)
    run = Run(result, app.worker_cpu() - cpu_before)
    problems = check_run(app, result, options.connections, f"{cell.name} run {n}")
    broker = "" if app.redis is None else f", broker holds {app.queued_tasks()} tasks"
    say(
        f"  {cell.name} run {n}: {result.rate:,.0f} req/s, p50 {result.p50_us / 1000:.2f} ms, "
        f"p99 {result.p99_us / 1000:.2f} ms, {run.cpu_per_request_us:.0f} µs CPU/request, "
        f"{result.requests} requests ({max(0, result.requests - bodies.total)} reused a body), "
        f"{result.http_errors} >= 400, {result.socket_errors} socket errors{broker}"
    )
    cell.runs.append(run)
    return problems


def warm_up(app: AppUnderTest, bodies: Bodies, connections: int) -> None:
    """A short run that is not counted: imports, connections and caches are made before."""
    run_wrk(wrk_argv(app.url, bodies, connections, WARM_UP_SECONDS, 0), WARM_UP_SECONDS)
    app.reset()


def calibrate(app: AppUnderTest, bodies: Bodies, connections: int, rate: float) -> int:
    """The delay (ms) before each request on each connection that offers about `rate`
    requests per second, from a short run that is not counted.

    A connection sends its next request a delay after the answer to the previous one, so it
    cycles in delay + latency: the run tells the latency, which is subtracted.
    """
    period_ms = max(1, round(connections * 1000 / rate))
    trial = run_wrk(
        wrk_argv(app.url, bodies, connections, WARM_UP_SECONDS, period_ms), WARM_UP_SECONDS
    )
    app.reset()
    latency_ms = max(0.0, connections * 1000 / max(trial.rate, 1.0) - period_ms)
    return max(1, round(connections * 1000 / rate - latency_ms))


def profile_run(
    app: AppUnderTest, cell: Cell, bodies: Bodies, options: Options, profile: Path
) -> list[str]:
    """One max-rate run of the real app under py-spy; writes the raw profile and its summary."""
    assert app.service is not None
    raw = profile / f"web-{cell.payload.name}.raw.txt"
    # Stopped a second early, so that every sample lies inside the run.
    profiler = start_profile(app.service.pid, options.duration - 1, raw, profile)
    try:
        problems = measure(app, cell, bodies, options)
    finally:
        profiler.stop(timeout=30)
    summary = raw.with_name(f"web-{cell.payload.name}.summary.txt")
    summary.write_text(summarize_profile(raw))
    say(f"  profile: {raw}, summary {summary}")
    return problems


def bench(apps: Sequence[AppUnderTest], bodies: dict[str, Bodies], options: Options) -> Cells:
    """Both payloads and both phases for every app, the apps' runs taking turns so that a
    change in the machine's load weighs on each alike; raises Invalid with the problems."""
    cells: Cells = {}
    problems: list[str] = []
    for app in apps:
        warm_up(app, bodies[ONE.name], options.connections)
    for payload in (ONE, TEN):
        body = bodies[payload.name]
        peaks = {app.name: Cell(app.name, payload, "max") for app in apps}
        for n in range(options.runs):
            for app in apps:
                cell = peaks[app.name]
                if n == 0 and options.profile is not None and app.redis is not None:
                    problems += profile_run(app, cell, body, options, options.profile)
                else:
                    problems += measure(app, cell, body, options)
        halves = {app.name: Cell(app.name, payload, "half") for app in apps}
        periods = {
            app.name: calibrate(app, body, options.connections, peaks[app.name].rate / 2)
            for app in apps
        }
        for _ in range(options.runs):
            for app in apps:
                problems += measure(app, halves[app.name], body, options, periods[app.name])
        for cell in (*peaks.values(), *halves.values()):
            cells[cell.key] = cell
    if problems:
        raise Invalid(cells, problems)
    return cells


# --------------------------------------------------------------------------------------------
# The table


HEADER = (
    "app", "payload", "phase", "req/s", "p50 ms", "p99 ms", "errors", "CPU µs/req", "vs bare",
    "ten/one", "target", "",
)  # fmt: skip


def max_rate(cells: Cells, app: str, payload: Payload) -> float | None:
    """The median maximum rate of one app and payload, if it was measured."""
    cell = cells.get((app, payload.name, "max"))
    return cell.rate if cell is not None and cell.runs else None


def share(part: float | None, whole: float | None) -> float | None:
    """part / whole, when both are known."""
    return None if part is None or not whole else part / whole


def percent(value: float | None, suffix: str = "") -> str:
    """A ratio as a percentage; empty when unknown."""
    return "" if value is None else f"{value:.0%}{suffix}"


def assess(cells: Cells, cell: Cell) -> tuple[str, str, str, bool | None]:
    """The `vs bare` and `ten/one` columns, the row's target and whether it is met (None:
    no target, or not measured)."""
    ten_one = share(max_rate(cells, cell.app, TEN), max_rate(cells, cell.app, ONE))
    if cell.app == "relay":
        # Against web without destinations: the `vs bare` column holds that ratio.
        vs_web = share(cell.rate, max_rate(cells, "web", cell.payload))
        if cell.phase == "half":
            of_max = percent(share(cell.rate, max_rate(cells, "relay", cell.payload)), " of max")
            return of_max, "", "", None
        met = None if vs_web is None else vs_web >= TARGET_RELAY_VS_NONE
        return percent(vs_web, " of web"), "", f">= {TARGET_RELAY_VS_NONE:.0%} of web", met
    if cell.phase == "half":
        of_max = percent(share(cell.rate, max_rate(cells, cell.app, cell.payload)), " of max")
        if cell.app != "web":
            return of_max, "", "", None
        target = f"p99 < {TARGET_HALF_RATE_P99_MS:.0f} ms"
        return of_max, "", target, cell.p99_ms < TARGET_HALF_RATE_P99_MS
    shown_ten_one = percent(ten_one) if cell.payload == TEN else ""
    if cell.app != "web":
        return "", shown_ten_one, "", None
    vs_bare = share(cell.rate, max_rate(cells, "bare", cell.payload))
    if cell.payload == ONE:
        met = None if vs_bare is None else vs_bare >= TARGET_REAL_VS_BARE
        return percent(vs_bare), "", f">= {TARGET_REAL_VS_BARE:.0%} of bare", met
    met = None if ten_one is None else ten_one >= TARGET_TEN_VS_ONE
    return percent(vs_bare), shown_ten_one, f"ten >= {TARGET_TEN_VS_ONE:.0%} of one", met


def render(cells: Cells) -> tuple[str, bool]:
    """The table, and whether every target that could be judged was met."""
    rows: list[tuple[str, ...]] = [HEADER]
    met = True
    names = ("bare", "web", "relay", ONE.name, TEN.name, "max", "half")
    order = {name: i for i, name in enumerate(names)}
    for key in sorted(cells, key=lambda k: [order[part] for part in k]):
        cell = cells[key]
        vs_bare, ten_one, target, ok = assess(cells, cell)
        met = met and ok is not False
        verdict = {True: "PASS", False: "FAIL", None: "n/a" if target else ""}[ok]
        rows.append(
            (
                cell.app,
                cell.payload.name,
                cell.phase,
                f"{cell.rate:,.0f}",
                f"{cell.p50_ms:.1f}",
                f"{cell.p99_ms:.1f}",
                str(cell.errors),
                f"{cell.cpu_us:,.0f}",
                vs_bare,
                ten_one,
                target,
                verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines), met


def machine() -> list[str]:
    """Cores, CPU model, load, date and the versions that matter."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def first_line(*argv: str) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (done.stdout.splitlines() or ["?"])[0]

    packages = ", ".join(
        f"{name} {version(name)}" for name in ("gunicorn", "flask", "celery", "kombu", "redis")
    )
    wrk = first_line(shutil.which("wrk") or "wrk", "-v").split(" Copyright")[0]
    redis = first_line(shutil.which("redis-server") or "redis-server", "--version")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"{os.cpu_count()} cores, {model}, {platform.platform()}, load average {load}",
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, Python "
        f"{platform.python_version()}, {packages}",
        f"{wrk}, {redis.split(' sha=')[0]}",
    ]


# --------------------------------------------------------------------------------------------
# The whole benchmark


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


def execute(apps: Sequence[str], options: Options, template: list[str], workdir: Path) -> int:
    """Start Redis, bench the apps, print the table; the exit status."""
    say(f"writing signed bodies into {workdir}")
    bodies = {p.name: write_bodies(workdir, p, options.duration) for p in (ONE, TEN)}
    for name, b in bodies.items():
        say(f"  {name}: {b.total} distinct bodies of {b.size} bytes")
    with contextlib.ExitStack() as stops:
        server = RedisServer(workdir / "redis", persistent=False).start()
        stops.callback(server.stop)
        # The Procfile's config (webhook.gunicorn_conf) checks web's settings and serves the
        # metrics in the master before any worker starts, whichever app is served: both apps get
        # the same settings, each its own free metrics port (never the default 9807).
        settings = {
            "REDIS_URL": server.url,
            "WHATSAPP_APP_SECRET": SECRET,
            "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        }
        candidates = (
            AppUnderTest(
                "bare",
                BARE_APP_SPEC,
                base_env() | settings | {"WEB_METRICS_PORT": str(free_port())},
            ),
            AppUnderTest(
                "web",
                REAL_APP_SPEC,
                base_env() | settings | {"WEB_METRICS_PORT": str(free_port())},
                Redis.from_url(server.url),
            ),
            AppUnderTest(
                "relay",
                REAL_APP_SPEC,
                base_env()
                | settings
                | {"WEB_METRICS_PORT": str(free_port()), "RELAY_DESTINATIONS": RELAY_DESTINATIONS},
                Redis.from_url(server.url),
            ),
        )
        chosen = [app for app in candidates if app.name in apps]
        for app in chosen:
            stops.callback(app.stop)
            app.start(template, workdir / "logs")
            say(f"{app.name}: {shlex.join(app.service.argv if app.service else [])}")
        problems: list[str] = []
        try:
            cells = bench(chosen, bodies, options)
        except Invalid as invalid:
            cells, problems = invalid.cells, invalid.problems
    table, met = render(cells)
    print(
        f"\nWebhook benchmark: median of {options.runs} run(s) of {options.duration:g} s each, "
        f"wrk -t{WRK_THREADS} -c{options.connections}, the apps' runs taking turns"
    )
    print("\n".join(f"  {line}" for line in machine()))
    source = "Procfile" if template == procfile_web() else "--command"
    print(f"  web ({source}): {shlex.join(template)}\n")
    print(table)
    if problems:
        print("\nINVALID runs:\n" + "\n".join(f"  - {p}" for p in problems))
        return 2
    print("\nEvery target met." if met else "\nA target was missed.")
    return 0 if met else 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags."""
    parser = argparse.ArgumentParser(
        description="The real web against a bare Flask app: same gunicorn command, same wrk load."
    )
    add = parser.add_argument
    add("--duration", type=float, default=10.0, help="seconds per wrk run (%(default)s)")
    add(
        "--runs", type=int, default=3, help="runs per figure, the table shows medians (%(default)s)"
    )
    add("--connections", type=int, default=32, help="wrk connections (%(default)s)")
    add("--quick", action="store_true", help="one 3-second run per figure, to try things out")
    add(
        "--app",
        choices=("both", "web", "bare", "relay"),
        default="both",
        help="bench one app only: no ratio between them; `relay`: web relaying every webhook to "
        "two destinations against web without (%(default)s)",
    )
    add("--profile", type=Path, help="py-spy profiles of web's max-rate runs into this directory")
    add(
        "--command",
        help="a web command to try instead of the Procfile's, e.g. \"gunicorn --workers 3 "
        "'webhook.app:create_app()'\" (bind and app are replaced as for the Procfile's)",
    )
    add("--keep", action="store_true", help="keep the run directory (bodies, logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.runs = 3.0, 1
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; the module's docstring lists the exit statuses."""
    args = parse_args(argv)
    options = Options(args.duration, args.runs, args.connections, args.profile)
    if options.profile is not None:
        options.profile.mkdir(parents=True, exist_ok=True)
    apps = {"both": ("bare", "web"), "relay": ("web", "relay")}.get(args.app, (args.app,))
    template = shlex.split(args.command) if args.command else procfile_web()
    workdir = Path(tempfile.mkdtemp(prefix="wa-bench-webhook-"))
    try:
        with sigterm_as_interrupt():
            status = execute(apps, options, template, workdir)
    except KeyboardInterrupt:
        print(f"\nInterrupted: everything started is stopped; logs in {workdir}", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
        print(f"\nWEBHOOK BENCHMARK BROKE: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"Logs are kept in {workdir}", file=sys.stderr)
        return 2
    if args.keep or status == 2:
        print(f"Run directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
