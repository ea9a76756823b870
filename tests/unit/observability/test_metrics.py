"""Metrics and log context without servers: the Redis gauges, multiprocess sums, task context."""

import errno
import math
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from wa_media.core.policy import MEDIA_LIFETIME
from wa_media.observability.logs import get_logger, task_context
from wa_media.observability.metrics import (
    MULTIPROC_ENV,
    exposition_registry,
    serve_metrics_on_first_free,
)
from wa_media.stores.snapshot import PendingMedia, Snapshot
from webhook.metrics import state_metrics

NOW = 1_800_000_000.0


def _scrape(snapshot: Snapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    class Fixed:
        def collect(self) -> list:  # type: ignore[type-arg]
            return state_metrics(snapshot)

    registry = CollectorRegistry()
    registry.register(Fixed())
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_state_gauges_from_a_snapshot() -> None:
    oldest = PendingMedia("m1", "queued", int(NOW) - 3600, "wamid.1")
    snapshot = Snapshot(
        taken_at=NOW,
        pending=7,
        failed=2,
        by_state={"queued": 2},
        queues={"media": 5, "replies": 1},
        paused_credentials=1,
        nearest=[oldest, PendingMedia("m2", "queued", int(NOW) - 60)],
        sweep_last=NOW - 12.5,
    )
    values = _scrape(snapshot)
    assert values == {
        ("wa_queue_depth", (("queue", "media"),)): 5,
        ("wa_queue_depth", (("queue", "replies"),)): 1,
        ("wa_media_pending", ()): 7,
        ("wa_media_failed", ()): 2,
        ("wa_oldest_pending_age_seconds", ()): 3600,
        ("wa_nearest_deadline_seconds", ()): MEDIA_LIFETIME - 3600,
        ("wa_calls_paused", ()): 1,
        ("wa_sweep_last_success_timestamp_seconds", ()): NOW - 12.5,
    }


def test_state_gauges_with_nothing_pending() -> None:
    snapshot = Snapshot(
        taken_at=NOW,
        pending=0,
        failed=0,
        by_state={},
        queues={"media": 0, "replies": 0},
        paused_credentials=0,
    )
    values = _scrape(snapshot)
    assert values[("wa_oldest_pending_age_seconds", ())] == 0
    assert math.isinf(values[("wa_nearest_deadline_seconds", ())])
    assert values[("wa_calls_paused", ())] == 0
    # No sweep recorded (none in the last day): 0, so that WaMediaSweepStalled sees it.
    assert values[("wa_sweep_last_success_timestamp_seconds", ())] == 0


def test_a_media_past_its_deadline_has_negative_seconds_left() -> None:
    late = PendingMedia("m1", "queued", int(NOW) - MEDIA_LIFETIME - 10)
    snapshot = Snapshot(NOW, 1, 0, {}, {"media": 0, "replies": 0}, 0, nearest=[late])
    assert _scrape(snapshot)[("wa_nearest_deadline_seconds", ())] == -10


FORKED_COUNTS = textwrap.dedent(
    """
    import os, sys
    from wa_media.observability.metrics import count_task, exposition_registry, use_multiprocess_dir
    from wa_media.observability.metrics import worker_metrics
    from prometheus_client import generate_latest

    path = use_multiprocess_dir("test", os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    print(path, flush=True)
    worker_metrics()
    children = []
    for n in range(3):
        pid = os.fork()
        if pid == 0:
            for _ in range(n + 1):
                count_task("media", "archived")
            worker_metrics().archived_bytes.inc(100 * (n + 1))
            worker_metrics().download_seconds.observe(0.2)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    sys.stdout.write(generate_latest(exposition_registry()).decode())
    """
)


@pytest.mark.parametrize("variable_set", [True, False])
def test_forked_processes_add_up_and_the_directory_goes(tmp_path: Path, variable_set: bool) -> None:
    # In a process of its own: multiprocess mode is chosen once per process. Unset, the
    # variable is set only after prometheus_client was imported: the choice is made again.
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path / "metrics")}
    (tmp_path / "metrics").mkdir()
    if variable_set:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
    done = subprocess.run(
        [sys.executable, "-c", FORKED_COUNTS],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
        cwd=Path(__file__).parents[3],
    )
    path, _, text = done.stdout.partition("\n")
    assert Path(path).parent == tmp_path / "metrics"
    assert Path(path).name.startswith("test-" if variable_set else "wa-test-metrics-")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    archived = (("outcome", "archived"), ("reason", ""), ("task", "media"))
    assert samples[("wa_tasks_total", archived)] == 1 + 2 + 3
    assert samples[("wa_archived_bytes_total", ())] == 600
    assert samples[("wa_download_seconds_count", ())] == 3
    assert samples[("wa_download_seconds_bucket", (("le", "0.25"),))] == 3
    assert samples[("wa_upload_seconds_count", ())] == 0
    # Removed when the process that made it exited; the children's exits left it alone.
    assert not Path(path).exists()


def test_task_context_binds_ids_and_clears_them() -> None:
    structlog.contextvars.bind_contextvars(leftover="from an earlier task")
    with task_context(task="media", media_id="m1", task_id="t1"):
        assert structlog.contextvars.get_contextvars() == {
            "task": "media",
            "media_id": "m1",
            "task_id": "t1",
        }
        get_logger(__name__).info("looked_up", duration_ms=1.0)
    assert structlog.contextvars.get_contextvars() == {}


def _listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("", 0))
    sock.listen()
    return sock


def test_metrics_take_the_first_free_port_of_a_range() -> None:
    with _listening() as taken:
        busy = taken.getsockname()[1]
        free = _listening()
        spare = free.getsockname()[1]
        free.close()  # free again: the metrics take it
        server, port = serve_metrics_on_first_free([busy, spare])
        try:
            assert port == spare
            url = f"http://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as answer:
                assert answer.status == 200
        finally:
            server.shutdown()
            server.server_close()


def test_metrics_fail_when_every_port_is_taken() -> None:
    with _listening() as first, _listening() as second:
        ports = [first.getsockname()[1], second.getsockname()[1]]
        with pytest.raises(OSError, match="in use") as raised:
            serve_metrics_on_first_free(ports)
        assert raised.value.errno == errno.EADDRINUSE


def test_a_scrape_leaves_out_the_file_a_process_is_creating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that starts (a gunicorn worker booting) creates its file empty and sizes it
    next: a scrape in between sums the others instead of failing."""
    written = MmapedDict(str(tmp_path / "counter_101.db"))
    key = mmap_key("wa_demo", "wa_demo_total", ["outcome"], ["done"], "A demo count.")
    written.write_value(key, 3.0, 0.0)
    written.close()
    (tmp_path / "counter_102.db").touch()  # its process has opened it, not sized it yet
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))

    text = generate_latest(exposition_registry()).decode()

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("wa_demo_total", (("outcome", "done"),))] == 3.0
