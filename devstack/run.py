"""`make run` (`python -m devstack.run`): the whole service on this machine, until Ctrl-C.

It starts, and stops again on Ctrl-C (SIGINT), SIGTERM or SIGHUP:

- a `redis-server` keeping its data in an append-only file under `.run/redis`;
- SeaweedFS (telemetry off) as the S3 archive, with the bucket `wa-archive`, under `.run/s3`;
- a simulator of Meta's Graph API standing in for Meta, unless `.run/settings.env` holds a
  provider's credentials (copy deploy/local.env.example there);
- `web`, `worker` and `beat`, each from its line of the Procfile (PORT substituted).

Then it prints where Meta must send webhooks, where the verify token is, how to send a test
webhook and where archived files land; writes what `wa-media` needs to `.run/run.env` (for
`wa-media --env-file .run/run.env ...`); and reports each media archived or failed until it
is stopped. `.run/` keeps the data from one run to the next (delete it to start afresh); git
ignores it. Nothing it starts is reachable from another host but `web` (and the worker's
metrics), which listen on every interface as the Procfile says.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

from redis import Redis
from redis.exceptions import RedisError

from devstack.processes import Service, port_open, stop_signals, stop_started
from devstack.redis_server import RedisServer
from devstack.seaweed import SeaweedFS
from devstack.stack import StackEnv, beat_started, start_service, web_healthy, worker_ready
from graphsim import Simulator
from wa_media.cli.common import read_env_file
from wa_media.core.errors import ConfigError
from wa_media.core.keys import ARCHIVED_KEY, FAILED_KEY, media_key
from wa_media.stores.broker import SWEEP_INTERVAL
from webhook.config import DEFAULT_WEB_METRICS_PORT

__all__ = [
    "BUCKET",
    "PROCESSES",
    "RUN_SETS",
    "RunFailure",
    "Running",
    "StateDir",
    "banner",
    "child_environment",
    "expand",
    "is_service_variable",
    "main",
    "procfile_commands",
    "provider_mode",
    "read_settings",
    "run_variables",
]

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "wa-archive"
PROCESSES = ("web", "worker", "beat")
DEFAULT_PORT = 8000
DEFAULT_WORKER_METRICS_PORT = 9808
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
WATCH_INTERVAL = 1.0
LOG_TAIL = 2000

RUN_SETS = frozenset(
    {
        "REDIS_URL",
        "S3_ENDPOINT_URL",
        "S3_BUCKET",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "PORT",
        "WEB_METRICS_PORT",
        "WORKER_METRICS_PORT",
        "PROMETHEUS_MULTIPROC_DIR",
        "BEAT_SCHEDULE_FILE",
        "PRESIGNED_URL_SECONDS",
    }
)
"""Variables `make run` sets itself: a settings file may not (PORT, WEB_METRICS_PORT and
WORKER_METRICS_PORT are options)."""

CREDENTIALS = ("WHATSAPP_ACCESS_TOKEN", "WHATSAPP_ACCOUNTS_FILE", "D360_API_KEY")
"""A settings file giving any of these configures a real provider: no simulator then."""

SIMULATED = ("WHATSAPP_PROVIDER", "WHATSAPP_GRAPH_URL", "WHATSAPP_MEDIA_HOSTS")
"""Where the provider is: the simulator's, whatever a settings file without credentials says."""

_SERVICE_PREFIXES = ("WHATSAPP_", "D360_", "S3_", "AWS_", "LOOKUP_")
_SERVICE_NAMES = frozenset(
    {
        "REDIS_URL",
        "ARCHIVE_OUTBOUND",
        "ARCHIVE_MEDIA_TYPES",
        "ARCHIVE_MIME_TYPES",
        "ARCHIVE_MAX_BYTES",
        "TOO_LARGE_REPLY",
        "DELETE_AFTER_ARCHIVE",
        "MAX_MEDIA_BYTES",
        "TOO_BIG_REPLY_TEXT",
        "LOG_LEVEL",
        "GRAPH_RATE_LIMIT",
        "USE_WEBHOOK_URL",
        "REPLY_MAX_PER_WEBHOOK",
        "REPLY_RATE_PER_ACCOUNT",
        "REPLY_RECIPIENT_INTERVAL",
        "WEBHOOK_BODY_TIMEOUT",
        "WEB_METRICS_PORT",
        "ALLOW_INSECURE_HTTP",
        "FANOUT_BATCH",
        "MEDIA_TRY_SECONDS",
        "LEASE_SECONDS",
        "SWEEP_STALLED_AFTER",
        "TOKEN_PAUSE_SECONDS",
        "WORKER_METRICS_PORT",
        "PROMETHEUS_MULTIPROC_DIR",
        "BEAT_SCHEDULE_FILE",
        "PRESIGNED_URL_SECONDS",
        "PORT",
    }
)


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_SHELL_WORDS = frozenset({"|", "||", "&", "&&", ";", ">", ">>", "<", "2>&1"})


class RunFailure(Exception):
    """Something prevents the run; the message says what to do."""


def say(text: str = "") -> None:
    """One line on standard output, at once."""
    print(text, flush=True)


def shown(path: Path) -> str:
    """A path as short as it reads well: relative to the current directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --- the Procfile -------------------------------------------------------------------------


# Relay and archive events.
_DELIVERY_PREFIXES = ("RELAY_", "EVENT_", "DELIVERY_")
_DELIVERY_NAMES = frozenset({"PRESIGNED_URL_SECONDS", "DELETE_WITH_RELAY_ACCEPTED"})


def is_service_variable(name: str) -> bool:
    """A variable the service reads (docs/configuration.md), or one make run sets."""
    return (
        name in _SERVICE_NAMES
        or name.startswith(_SERVICE_PREFIXES)
        or name in _DELIVERY_NAMES
        or name.startswith(_DELIVERY_PREFIXES)
    )


def expand(command: str, environ: Mapping[str, str]) -> str:
    """`$VAR`, `${VAR}` and `${VAR:-default}` expanded from `environ`, as sh would."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        found = environ.get(name, "")
        if match.group(2) is not None and not found:
            return match.group(2)
        return found

    return _VARIABLE.sub(value, command)


def procfile_commands(path: Path, environ: Mapping[str, str]) -> dict[str, list[str]]:
    """Each process's command line from the Procfile, expanded from `environ`, as words.

    RunFailure when a process is missing or its line is more than one plain command.
    """
    commands = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, separator, command = line.partition(":")
        if not separator:
            raise RunFailure(f"{path} line {number}: expected `name: command`")
        words = shlex.split(expand(command, environ))
        if not words or _SHELL_WORDS.intersection(words):
            raise RunFailure(f"{path} line {number}: not one plain command")
        commands[name.strip()] = words
    missing = [name for name in PROCESSES if name not in commands]
    if missing:
        raise RunFailure(f"{path} has no line for {', '.join(missing)}")
    return commands


def executable(argv: list[str], environ: Mapping[str, str]) -> list[str]:
    """The command with its program found beside this Python first (the virtualenv's)."""
    search = os.pathsep.join([str(Path(sys.executable).parent), environ.get("PATH", "")])
    program = shutil.which(argv[0], path=search)
    if program is None:
        raise RunFailure(f"{argv[0]} not found: run `make venv`")
    return [program, *argv[1:]]


# --- settings ------------------------------------------------------------------------------


def read_settings(path: Path) -> dict[str, str]:
    """The local settings file (none: no settings); RunFailure on what make run sets itself."""
    if not path.exists():
        return {}
    try:
        settings = read_env_file(path)
    except ConfigError as exc:
        raise RunFailure(str(exc)) from None
    refused = sorted(name for name in settings if name in RUN_SETS)
    if refused:
        raise RunFailure(
            f"{shown(path)} sets {', '.join(refused)}, which make run sets itself (its own "
            "Redis and S3; --port and --worker-metrics-port for the ports): remove them"
        )
    dummies = sorted(name for name, value in settings.items() if value.startswith("dummy"))
    if dummies:
        raise RunFailure(
            f"{shown(path)} still has the example's dummy values of {', '.join(dummies)}: "
            "replace them, or comment them out"
        )
    return settings


def provider_mode(settings: Mapping[str, str]) -> bool:
    """True when the settings give a real provider's credentials (no simulator then)."""
    return any(settings.get(name, "").strip() for name in CREDENTIALS)


def aws_isolation(directory: Path) -> dict[str, str]:
    """Variables that keep boto3 from reading a profile, a config file or instance metadata:
    the archive is the local S3, with the keys make run gives."""
    empty = directory / "aws-config"
    empty.touch()
    return {
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def child_environment(
    inherited: Mapping[str, str],
    stack: StackEnv,
    settings: Mapping[str, str],
    isolation: Mapping[str, str],
) -> dict[str, str]:
    """What web, worker and beat get: the environment without any service variable of the
    shell, the local stack's variables, then the settings file's (pure)."""
    base = {name: value for name, value in inherited.items() if not is_service_variable(name)}
    base.update(isolation)
    environ = stack.environ(base)
    environ.update(settings)
    return environ


def run_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The service's variables of an environment, for `.run/run.env`."""
    return {
        name: value
        for name, value in sorted(environ.items())
        if is_service_variable(name) and value != ""
    }


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (it holds secrets)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write(text)


# --- the state directory: one run at a time, and nothing left of an earlier one --------------


def _started(pid: int) -> str | None:
    """When a process started (Linux's /proc), to tell it from a later one with its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return started is None or _started(pid) in (None, started)


@dataclass
class StateDir:
    """`.run/`: the data, logs and settings of local runs, and what the current run started."""

    path: Path
    _lock: IO[str] | None = None
    processes: list[dict[str, object]] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def record(self) -> Path:
        """What this run started (JSON), so that a run after a crash finds its leftovers."""
        return self.path / "run.json"

    @property
    def env_file(self) -> Path:
        """The variables `wa-media` needs (`wa-media --env-file`)."""
        return self.path / "run.env"

    @contextlib.contextmanager
    def held(self) -> Iterator[StateDir]:
        """Lock the directory for this run; RunFailure when another run or its leftovers
        still use it."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = (self.path / "run.lock").open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise RunFailure(f"another make run uses {shown(self.path)}") from None
        self._lock = lock
        try:
            # The earlier run's record stays until nothing of that run is left.
            self._check_leftovers()
        except BaseException:
            lock.close()
            raise
        try:
            yield self
        finally:
            self.env_file.unlink(missing_ok=True)
            self.record.unlink(missing_ok=True)
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    def _check_leftovers(self) -> None:
        try:
            earlier = json.loads(self.record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        alive = [
            f"{entry['name']} (pid {entry['pid']})"
            for entry in earlier.get("processes", [])
            if _alive(int(entry["pid"]), entry.get("started"))
        ]
        if alive:
            raise RunFailure(
                f"processes of an earlier run in {shown(self.path)} still run: "
                f"{', '.join(alive)}; stop them (kill PID), then start again"
            )

    def started(self, service: Service | None) -> None:
        """Remember a process this run started."""
        if service is None or service.process is None:
            return
        pid = service.pid
        self.processes.append({"name": service.name, "pid": pid, "started": _started(pid)})
        self._save()

    def port(self, name: str, port: int) -> None:
        """Remember a port this run listens on."""
        self.ports[name] = port
        self._save()

    def _save(self) -> None:
        document = {"pid": os.getpid(), "processes": self.processes, "ports": self.ports}
        self.record.write_text(json.dumps(document, indent=2), encoding="utf-8")


# --- the run -------------------------------------------------------------------------------


@dataclass
class Running:
    """What the run started and what it prints."""

    state: StateDir
    settings_path: Path
    simulated: bool
    web_url: str = ""
    port: int = DEFAULT_PORT
    metrics_port: int = DEFAULT_WORKER_METRICS_PORT
    web_metrics_port: int = DEFAULT_WEB_METRICS_PORT
    s3: SeaweedFS | None = None
    redis: RedisServer | None = None
    sim: Simulator | None = None
    environ: dict[str, str] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".run"),
        help="where the data, logs and settings live (default: .run)",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        help="the local settings file of NAME=value lines (default: STATE_DIR/settings.env)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="web's port, the Procfile's PORT"
    )
    parser.add_argument(
        "--worker-metrics-port",
        type=int,
        default=DEFAULT_WORKER_METRICS_PORT,
        help="the worker's metrics port, WORKER_METRICS_PORT",
    )
    parser.add_argument(
        "--web-metrics-port",
        type=int,
        default=DEFAULT_WEB_METRICS_PORT,
        help="web's metrics port, WEB_METRICS_PORT",
    )
    return parser.parse_args(argv)


def start_infrastructure(run: Running, exits: contextlib.ExitStack) -> tuple[str, SeaweedFS]:
    """Redis (append-only, in the state directory), SeaweedFS, and the simulator if wanted."""
    state = run.state.path
    redis = RedisServer(state / "redis", persistent=True)
    exits.callback(redis.stop)
    say(f"Redis: starting redis-server, data in {shown(state / 'redis')}")
    redis.start()
    run.redis = redis
    run.state.started(redis.service)
    run.state.port("redis", redis.port)

    s3 = SeaweedFS(state / "s3", buckets=(BUCKET,))
    exits.callback(s3.stop)
    say(f"S3: starting SeaweedFS, bucket {BUCKET}, data in {shown(state / 's3')}")
    s3.start()
    run.s3 = s3
    run.state.started(s3.service)
    run.state.port("s3", s3.s3_port)

    if run.simulated:
        sim = Simulator()
        sim.start()
        exits.callback(sim.stop)
        run.sim = sim
        run.state.port("simulator", int(sim.url.rpartition(":")[2]))
        say(f"Meta: the Graph API simulator at {sim.url}")
    return redis.url, s3


def deployment(run: Running, redis_url: str, s3: SeaweedFS, settings: dict[str, str]) -> StackEnv:
    """The variables of this deployment: the simulator's, or the settings' provider."""
    if run.sim is not None:
        kept = {k: v for k, v in settings.items() if k not in SIMULATED}
        return StackEnv.local(
            run.sim,
            s3,
            redis_url,
            BUCKET,
            app_secret=settings.get("WHATSAPP_APP_SECRET") or secrets.token_hex(32),
            verify_token=settings.get("WHATSAPP_VERIFY_TOKEN") or secrets.token_urlsafe(24),
            extra=tuple(kept.items()),
        )
    # Empty is unset: the service's own defaults (Meta's hosts) apply.
    return StackEnv(
        redis_url=redis_url,
        s3_endpoint_url=s3.endpoint_url,
        s3_bucket=BUCKET,
        graph_url=settings.get("WHATSAPP_GRAPH_URL", ""),
        media_hosts=settings.get("WHATSAPP_MEDIA_HOSTS", ""),
        access_token=settings.get("WHATSAPP_ACCESS_TOKEN", ""),
        app_secret=settings.get("WHATSAPP_APP_SECRET", ""),
        verify_token=settings.get("WHATSAPP_VERIFY_TOKEN", ""),
        extra=tuple(settings.items()),
    )


def start_processes(run: Running, exits: contextlib.ExitStack) -> None:
    """web, worker and beat from the Procfile's lines, each waited for."""
    environ = run.environ
    commands = procfile_commands(ROOT / "Procfile", environ)
    logs = run.state.path / "logs"
    run.web_url = f"http://127.0.0.1:{run.port}"
    readiness = {
        "web": (web_healthy(run.web_url), 60.0),
        "worker": (worker_ready, 120.0),
        "beat": (beat_started, 60.0),
    }
    for name in PROCESSES:
        ready, timeout = readiness[name]
        argv = executable(commands[name], environ)
        say(f"{name}: starting `{' '.join(commands[name])}`")
        service = start_service(
            name, argv, logs / f"{name}.log", dict(environ), ready, timeout=timeout, cwd=ROOT
        )
        exits.callback(service.stop)
        run.services.append(service)
        run.state.started(service)


def banner(run: Running) -> str:
    """What the run prints once everything is up: where things are, and what to try (no
    secret: only the names of the variables and files holding them)."""
    state = run.state
    env_file = shown(state.env_file)
    wa_media = shown(Path(sys.executable).parent / "wa-media")
    assert run.s3 is not None
    assert run.redis is not None
    webhook = f"{run.web_url}/webhook"
    lines = [
        "",
        "wa-media-archiver runs on this machine; Ctrl-C stops everything it started.",
        "",
        f"  web        {run.web_url} (port {run.port} of every interface, the Procfile's line)",
        f"  metrics    web's on port {run.web_metrics_port}, worker's on port {run.metrics_port}",
        f"  beat       a sweep every {SWEEP_INTERVAL} s",
        f"  Redis      {run.redis.url}, append-only data in {shown(state.path / 'redis')}",
        f"  S3         {run.s3.endpoint_url}, bucket {BUCKET}",
        f"  logs       {shown(state.path / 'logs')}/web.log, worker.log, beat.log",
        "",
    ]
    if run.sim is not None:
        lines += [
            f"Meta is simulated ({shown(run.settings_path)} gives no credentials): the "
            f"simulator at {run.sim.url} serves the media API.",
            f"  Webhooks go to    POST {webhook}, signed with WHATSAPP_APP_SECRET of {env_file}",
            f"  Verify token      WHATSAPP_VERIFY_TOKEN in {env_file} (new each run), for the",
            f"                    handshake GET {webhook}?hub.mode=subscribe&hub.verify_token=...",
            "  For real Meta     copy deploy/local.env.example to "
            f"{shown(run.settings_path)}, fill it in, run again",
        ]
    else:
        lines += [
            f"Meta: the credentials of {shown(run.settings_path)}. In the app's WhatsApp > "
            "Configuration, give Meta:",
            "  Callback URL      https://<this machine's public name>/webhook (HTTPS), forwarded",
            f"                    to {webhook}",
            f"  Verify token      WHATSAPP_VERIFY_TOKEN in {shown(run.settings_path)}",
            "  (360dialog and On-Premises post to /webhook/<WHATSAPP_WEBHOOK_TOKEN> instead)",
        ]
    lines += [
        "",
        "Send a test webhook carrying a file of yours (uploaded through the media API first;",
        f"the secret comes from {env_file}, not the command line):",
        f"  {wa_media} --env-file {env_file} simulate {run.web_url} --file PATH",
        "",
        "Archived files land in:",
        f"  s3://{BUCKET}/<phone_number_id>/<yyyy>/<mm>/<dd>/... at {run.s3.endpoint_url}",
        f"  browse {run.s3.browse_url(BUCKET)}",
        f"  on disk in {shown(state.path / 's3')} (SeaweedFS's volumes, kept between runs)",
        f"  {wa_media} --env-file {env_file} status     (and verify)",
        "",
        "Running. Archived and failed media are reported below.",
    ]
    return "\n".join(lines)


class Watcher:
    """Reports media archived or failed since the run began, from Redis's indexes."""

    def __init__(self, redis_url: str, since: float) -> None:
        self.redis = Redis.from_url(
            redis_url, socket_connect_timeout=1, socket_timeout=2, decode_responses=True
        )
        self.after = {ARCHIVED_KEY: since, FAILED_KEY: since}
        self.seen: dict[str, set[str]] = {ARCHIVED_KEY: set(), FAILED_KEY: set()}

    def report(self) -> None:
        """Print what is new; nothing when Redis does not answer (the run notices its death)."""
        with contextlib.suppress(RedisError, OSError):
            for key in (ARCHIVED_KEY, FAILED_KEY):
                rows = self.redis.zrangebyscore(key, self.after[key], "+inf", withscores=True)
                for member, score in cast(list[tuple[str, float]], rows):
                    at = float(score)
                    if member in self.seen[key]:
                        continue
                    if at > self.after[key]:
                        self.after[key], self.seen[key] = at, set()
                    self.seen[key].add(member)
                    self._say(key, member)

    def _say(self, key: str, member: str) -> None:
        # Members are `{phone_number_id}:{media_id}` (a media id alone from an earlier release);
        # the object key names the account.
        record = cast(dict[str, str], self.redis.hgetall(media_key(member)))
        media_id = member.rpartition(":")[2]
        if key == ARCHIVED_KEY:
            say(f"archived  {media_id}  s3://{BUCKET}/{record.get('key', '?')}")
        else:
            say(f"failed    {media_id}  {record.get('last_error', '')}")

    def close(self) -> None:
        """Close the connection."""
        self.redis.close()


def watch(run: Running, watcher: Watcher) -> None:
    """Until a signal: report, and fail when a process the run started has exited."""
    watched = list(run.services)
    if run.redis is not None and run.redis.service is not None:
        watched.append(run.redis.service)
    if run.s3 is not None and run.s3.service is not None:
        watched.append(run.s3.service)
    while True:
        time.sleep(WATCH_INTERVAL)  # a signal ends it with KeyboardInterrupt
        for service in watched:
            if not service.alive():
                raise RunFailure(
                    f"{service.name} exited; the end of {shown(service.log_path)}:\n"
                    f"{service.log_text()[-LOG_TAIL:]}"
                )
        watcher.report()


def serve(run: Running, settings: dict[str, str], exits: contextlib.ExitStack) -> None:
    """Start everything, print the banner, watch until stopped."""
    ports = (
        ("web", run.port),
        ("web metrics", run.web_metrics_port),
        ("worker metrics", run.metrics_port),
    )
    for name, port in ports:
        if port_open(port):
            raise RunFailure(f"port {port} ({name}) is in use; pick another: --help")
    # Registered first, run last: whatever was started and not stopped by its own starter.
    exits.callback(stop_started)
    temporary = Path(tempfile.mkdtemp(prefix="wa-media-run-"))
    exits.callback(shutil.rmtree, temporary, ignore_errors=True)
    redis_url, s3 = start_infrastructure(run, exits)
    stack = deployment(run, redis_url, s3, settings)
    environ = child_environment(os.environ, stack, settings, aws_isolation(temporary))
    environ["PORT"] = str(run.port)
    environ["WEB_METRICS_PORT"] = str(run.web_metrics_port)
    environ["WORKER_METRICS_PORT"] = str(run.metrics_port)
    environ["BEAT_SCHEDULE_FILE"] = str(temporary / "celerybeat-schedule")
    run.environ = environ
    body = "".join(f"{k}={v}\n" for k, v in run_variables(environ).items())
    write_private(run.state.env_file, f"# written by make run; removed when it stops\n{body}")
    with contextlib.closing(Redis.from_url(redis_url)) as client:
        since = float(client.time()[0])
    start_processes(run, exits)
    run.state.port("web", run.port)
    run.state.port("web metrics", run.web_metrics_port)
    run.state.port("worker metrics", run.metrics_port)
    say(banner(run))
    watcher = Watcher(redis_url, since)
    exits.callback(watcher.close)
    watch(run, watcher)


def main(argv: Sequence[str] | None = None) -> int:
    """Run until a signal; 0 when stopped by one, 1 when something failed, 2 on bad usage."""
    args = parse_args(argv)
    state = StateDir(args.state_dir)
    settings_path = args.settings or args.state_dir / "settings.env"
    try:
        settings = read_settings(settings_path)
    except RunFailure as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 2
    run = Running(
        state,
        settings_path,
        simulated=not provider_mode(settings),
        port=args.port,
        metrics_port=args.worker_metrics_port,
        web_metrics_port=args.web_metrics_port,
    )
    try:
        with stop_signals(*STOP_SIGNALS), state.held(), contextlib.ExitStack() as exits:
            serve(run, settings, exits)
    except KeyboardInterrupt:
        # The terminal may be gone (SIGHUP): what was started is stopped all the same.
        with contextlib.suppress(OSError):
            say("\nStopped: every process make run started has exited.")
        return 0
    except (RunFailure, RuntimeError, TimeoutError, OSError, RedisError) as exc:
        print(f"\nmake run failed: {exc}", file=sys.stderr)
        print("Everything it started is stopped.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
