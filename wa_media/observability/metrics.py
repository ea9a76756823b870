"""Prometheus metrics of `web` and `worker`, counted across all the processes of each.

Gunicorn's workers and a prefork worker's pool processes each count in files of one directory
(prometheus_client's multiprocess mode); whichever process answers a scrape sums them all.
The metrics are made on first use, never at import, so that every process makes them after
`use_multiprocess_dir` chose where their values live.
"""

from __future__ import annotations

import atexit
import errno
import functools
import os
import shutil
import tempfile
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,
    start_http_server,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = [
    "CALLS_BUCKETS",
    "DEFAULT_METRICS_PORT",
    "DELIVERY_BUCKETS",
    "DURATION_BUCKETS",
    "LOOKUP_BUCKETS",
    "MULTIPROC_ENV",
    "TASKS",
    "DeliveryMetrics",
    "LookupMetrics",
    "WebMetrics",
    "WorkerMetrics",
    "count_task",
    "exposition_registry",
    "lookup_metrics",
    "serve_metrics",
    "serve_metrics_on_first_free",
    "use_multiprocess_dir",
    "web_metrics",
    "worker_metrics",
]

# The variable prometheus_client reads: use_multiprocess_dir sets it to the directory it chose
# under the configured one (PROMETHEUS_MULTIPROC_DIR's row, wa_media/config/variables.py).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_METRICS_PORT = 9808
TASKS = ("media", "reply", "fanout", "sweep", "deliver")
# From a healthy destination's few milliseconds to a day of retries (DELIVERY_MAX_AGE).
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
# From a 50 ms look-up to a 100 MB transfer crawling at 200 KB/s (the task's 15 minute limit).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900)
# Provider calls of one media: no look-up when the webhook's URL served, else 1, 3 at most before a
# try gives up on refused URLs (a redirect followed adds a download).
CALLS_BUCKETS = (0, 1, 2, 3, 4, 6, 8)
# What the worker skips by the account's policy, once the look-up or the download tells.
WORKER_SKIP_REASONS = ("policy_size", "policy_mime")


def use_multiprocess_dir(
    role: str, base: str | None, environ: MutableMapping[str, str] = os.environ
) -> Path:
    """Give this process and the children it forks an empty directory for their metric files.

    With `base` (PROMETHEUS_MULTIPROC_DIR, which the processes read), it is `{base}/{role}-{pid}`,
    so that a `web` and a `worker` (or two workers) given the same variable never sum or wipe
    each other's files; without, a new temporary directory. Either is emptied now, removed when
    this process exits, and set in `environ` for prometheus_client and the children. Call it
    once, in the process that forks the others, before any metric is made.
    """
    owner = os.getpid()
    if base:
        path = Path(base) / f"{role}-{owner}"
        # Files left by an earlier process of the same pid would be counted again.
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    else:
        path = Path(tempfile.mkdtemp(prefix=f"wa-{role}-metrics-"))
    environ[MULTIPROC_ENV] = str(path)
    # prometheus_client chooses where values live when it is imported, which may have been
    # before the variable was set: choose again, before the first metric is made.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    atexit.register(_remove_if_owner, path, owner)
    return path


def _remove_if_owner(path: Path, owner: int) -> None:
    # Forked children inherit atexit handlers; only the process that made the directory
    # removes it.
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


class _AllProcesses:
    """Every process's values, summed from their files as prometheus_client's multiprocess
    collector does, leaving out a file its process is creating at that very moment: empty
    until it is sized, which the reader cannot parse (the scrape would answer 500)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def collect(self) -> Iterable[Metric]:
        """The merged metrics of every file that holds values."""
        files = []
        for file in sorted(self.path.glob("*.db")):
            try:
                if file.stat().st_size > 0:
                    files.append(str(file))
            except FileNotFoundError:
                continue  # its process's directory was removed meanwhile
        return multiprocess.MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-any-return,no-untyped-call]


class _ThisProcess:
    """The metrics of this one process (no multiprocess directory): the default registry."""

    def collect(self) -> Iterable[Metric]:
        """Everything the default registry holds."""
        return REGISTRY.collect()


def exposition_registry(*extra: Collector) -> CollectorRegistry:
    """A registry for scrapes: every process's counts (or this process's), plus `extra`."""
    registry = CollectorRegistry()
    if directory := os.environ.get(MULTIPROC_ENV):
        registry.register(_AllProcesses(directory))
    else:
        registry.register(_ThisProcess())
    for collector in extra:
        registry.register(collector)
    return registry


def serve_metrics(port: int) -> WSGIServer:
    """Serve every process's metrics over HTTP on `port`, from a thread of this process."""
    server, _thread = start_http_server(port, registry=exposition_registry())
    return server


def serve_metrics_on_first_free(ports: Iterable[int]) -> tuple[WSGIServer, int]:
    """Serve on the lowest of `ports` that no process listens on; return the server and port.

    Raise the last OSError when every port is taken, or at once for any other failure (such as
    a port below 1024 without the right to bind it).
    """
    taken: OSError | None = None
    for port in ports:
        try:
            return serve_metrics(port), port
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            taken = exc
    if taken is None:
        raise ValueError("no port to serve the metrics on")
    raise taken


@dataclass(frozen=True)
class WebMetrics:
    """What `web` counts itself (the Redis state is read at scrape time, webhook/metrics.py)."""

    requests: Counter
    skipped: Counter
    replies_dropped: Counter


@functools.cache
def _replies_dropped() -> Counter:
    # One counter however many of web's and the worker's metrics a process makes. Served by
    # web (invalid_recipient, request_cap) and by the worker (recipient_rate, account_rate).
    return Counter(
        "wa_replies_dropped",
        "131052 warnings owed but dropped, never sent, by reason.",
        ["reason"],
    )


@functools.cache
def _skipped() -> Counter:
    # One counter for web's skips (while parsing) and the worker's (policy_size, policy_mime,
    # once the look-up or the download tells).
    return Counter(
        "wa_messages_skipped",
        "Messages (and changes) of accepted webhooks not turned into work, by reason.",
        ["reason"],
    )


@functools.cache
def web_metrics() -> WebMetrics:
    """The metrics of `web`, made on first use."""
    return WebMetrics(
        requests=Counter(
            "wa_webhook_requests",
            "Webhook requests answered, by HTTP status.",
            ["status"],
        ),
        skipped=_skipped(),
        replies_dropped=_replies_dropped(),
    )


# The read API answers from two or three small S3 reads: milliseconds, not minutes.
LOOKUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass(frozen=True)
class LookupMetrics:
    """What `web`'s read API (GET /v1/media/...) counts and times."""

    requests: Counter
    seconds: Histogram


@functools.cache
def lookup_metrics() -> LookupMetrics:
    """The read API's metrics, made on first use."""
    return LookupMetrics(
        requests=Counter(
            "wa_lookup_requests", "Read API requests answered, by HTTP status.", ["status"]
        ),
        seconds=Histogram(
            "wa_lookup_request_seconds",
            "Time the read API took to answer a request.",
            buckets=LOOKUP_BUCKETS,
        ),
    )


@dataclass(frozen=True)
class DeliveryMetrics:
    """What the worker counts of relay and events, per destination (its name, never its URL)."""

    sent: Counter
    failed: Counter
    latency: Histogram
    dead_letters: Counter


@dataclass(frozen=True)
class WorkerMetrics:
    """What the worker counts and times."""

    tasks: Counter
    retries: Counter
    archived_bytes: Counter
    lookup_seconds: Histogram
    download_seconds: Histogram
    upload_seconds: Histogram
    token_rejected: Counter
    anomalies: Counter
    provider_calls: Counter
    media_provider_calls: Histogram
    replies_dropped: Counter
    webhook_url_fallbacks: Counter
    skipped: Counter
    deliveries: DeliveryMetrics


@functools.cache
def worker_metrics() -> WorkerMetrics:
    """The metrics of the worker, made on first use."""
    metrics = WorkerMetrics(
        tasks=Counter(
            "wa_tasks",
            "Tasks finished, by task, outcome and bounded reason.",
            ["task", "outcome", "reason"],
        ),
        retries=Counter("wa_retries", "Retries scheduled, by bounded reason.", ["reason"]),
        archived_bytes=Counter("wa_archived_bytes", "Bytes of media committed to the archive."),
        lookup_seconds=Histogram(
            "wa_lookup_seconds",
            "Provider look-ups of a media (its URL, digest and size).",
            buckets=DURATION_BUCKETS,
        ),
        download_seconds=Histogram(
            "wa_download_seconds",
            "Time a media's try waited on the provider for its bytes.",
            buckets=DURATION_BUCKETS,
        ),
        upload_seconds=Histogram(
            "wa_upload_seconds",
            "Time a media's try waited on S3: part writes, commit and sidecar.",
            buckets=DURATION_BUCKETS,
        ),
        token_rejected=Counter(
            "wa_token_rejected",
            "Calls whose credential the provider rejected (Graph code 190, HTTP 401).",
            ["phone_number_id"],
        ),
        anomalies=Counter(
            "wa_media_anomalies",
            "Anomalies recorded in the sidecars of archived media, by anomaly.",
            ["anomaly"],
        ),
        provider_calls=Counter(
            "wa_provider_calls",
            "Requests sent to a provider, by kind: lookup, download, send, delete, upload.",
            ["kind"],
        ),
        media_provider_calls=Histogram(
            "wa_media_provider_calls",
            "Look-ups and downloads (by kind) of the try that archived each media.",
            ["kind"],
            buckets=CALLS_BUCKETS,
        ),
        replies_dropped=_replies_dropped(),
        webhook_url_fallbacks=Counter(
            "wa_webhook_url_fallbacks",
            "Webhook download URLs given up for a look-up, by reason: expired, refused, "
            "host_not_allowed, insecure_url.",
            ["reason"],
        ),
        skipped=_skipped(),
        deliveries=DeliveryMetrics(
            sent=Counter(
                "wa_delivery_sent",
                "Relayed webhooks and events a destination took (2xx), by destination.",
                ["destination"],
            ),
            failed=Counter(
                "wa_delivery_failed",
                "Delivery attempts failed, by destination and reason.",
                ["destination", "reason"],
            ),
            latency=Histogram(
                "wa_delivery_latency_seconds",
                "From web's 200 (or the event) to the destination's 2xx, by destination.",
                ["destination"],
                buckets=DELIVERY_BUCKETS,
            ),
            dead_letters=Counter(
                "wa_delivery_dead_letters",
                "Deliveries given up as dead letters, by destination and reason.",
                ["destination", "reason"],
            ),
        ),
    )
    for reason in WORKER_SKIP_REASONS:  # served from the start, at zero
        metrics.skipped.labels(reason=reason)
    return metrics


def count_task(task: str, outcome: str, reason: str = "") -> None:
    """Count one finished task; `reason` is a label of wa_media/core/reasons.py, or empty."""
    worker_metrics().tasks.labels(task=task, outcome=outcome, reason=reason).inc()
