"""What a worker process does at start-up, through Celery's signals: check the configuration,
serve the metrics, and fit the clients to the pool.

Celery imports this module with the tasks (`include` in wa_media/stores/broker.py), before the
worker starts. The logging set-up stays in wa_media/stores/broker.py: Celery configures its logging
before it imports the task modules, and beat imports them later still.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from celery.concurrency import get_implementation
from celery.concurrency.solo import TaskPool as SoloPool
from celery.concurrency.thread import TaskPool as ThreadPool
from celery.signals import worker_init, worker_process_init

from wa_media.config.settings import MetricsPorts
from wa_media.config.variables import PROMETHEUS_MULTIPROC_DIR
from wa_media.core.errors import ConfigError
from wa_media.observability.logs import get_logger, register_secrets
from wa_media.observability.metrics import (
    serve_metrics_on_first_free,
    use_multiprocess_dir,
    worker_metrics,
)
from worker.services import set_tasks_at_once, settings

__all__: list[str] = []

# The name its lines carried before start-up had a module of its own (the `logger` field).
log = get_logger("worker.tasks")


@dataclass
class _MetricsServer:
    """The HTTP server of the worker's metrics, in the main process."""

    server: WSGIServer | None = None


_METRICS = _MetricsServer()


@worker_init.connect
def _validate_at_start(sender: Any = None, **_: Any) -> None:
    try:
        loaded = settings()
    except ConfigError as exc:
        print(f"worker: configuration error: {exc}", file=sys.stderr, flush=True)
        # Celery swallows exceptions from signal handlers; leave with a clear status instead.
        os._exit(2)
    register_secrets(loaded.accounts.secrets)
    _start_metrics(loaded.metrics_ports)
    if sender is not None:
        _fit_pool(sender)


def _start_metrics(ports: MetricsPorts) -> None:
    """Count in a directory of this worker's own, which pool processes forked later share,
    and serve the sum of their counts on the first free port of `ports` (0: counted in memory,
    or in PROMETHEUS_MULTIPROC_DIR when set, but not served)."""
    base = PROMETHEUS_MULTIPROC_DIR.read_optional(os.environ)
    if ports.off and not base:
        return
    directory = use_multiprocess_dir("worker", base)
    # Made here, before the pool forks: the metrics without labels are served (at zero) from
    # the start, and each pool process counts in files of its own.
    worker_metrics()
    if ports.off:
        return
    try:
        _METRICS.server, port = serve_metrics_on_first_free(ports.ports)
    except OSError as exc:
        every = "" if ports.first == ports.last else "every port of the range is taken: "
        print(
            f"worker: configuration error: WORKER_METRICS_PORT={ports} cannot be served: "
            f"{every}{exc}",
            file=sys.stderr,
            flush=True,
        )
        shutil.rmtree(directory, ignore_errors=True)  # os._exit runs no exit handler
        os._exit(2)
    log.info("metrics_served", port=port, ports=str(ports))


@worker_process_init.connect
def _drop_inherited_listener(**_: Any) -> None:
    # A prefork pool process inherits the main process's listening socket; only the main
    # process answers scrapes, and the port must close when it goes.
    if _METRICS.server is not None:
        _METRICS.server.socket.close()
        _METRICS.server = None


def _fit_pool(worker: Any) -> None:
    """Adapt to the pool the worker starts with (`worker` is Celery's WorkController)."""
    # `--concurrency`: tasks running at once in the threads pool's one process (a prefork child
    # runs one, and its connection pools only open the connections it uses).
    set_tasks_at_once(max(1, int(getattr(worker, "concurrency", 1) or 1)))
    if issubclass(get_implementation(worker.pool_cls), (ThreadPool, SoloPool)):
        # A thread cannot be killed: cancelling the running tasks when Redis goes away raises
        # NotImplementedError (kill_job) and the worker dies at every Redis restart. The tasks
        # run on instead; their messages come back once Redis does, and the media's lease keeps
        # the copy from working on it at the same time.
        worker.app.conf.worker_cancel_long_running_tasks_on_connection_loss = False
