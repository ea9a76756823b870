"""Gunicorn's settings for `web` (Procfile: `--config python:webhook.gunicorn_conf`).

Gunicorn runs several worker processes and a scrape of `/metrics` reaches one of them: each
counts in files of one directory (prometheus_client's multiprocess mode), and whichever answers
sums them all.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import multiprocess

from worker.metrics import use_multiprocess_dir


def on_starting(server: Any) -> None:
    """In the master, before any worker is forked: an empty directory for their counts."""
    use_multiprocess_dir("web")


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges; its counters stay in the sums."""
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
