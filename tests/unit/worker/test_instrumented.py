"""The tasks' base class, run eagerly without a broker: its counts and log lines of each end."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import structlog
from celery import Celery
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from wa_media.core.backoff import Backoff
from wa_media.core.errors import StorageError, TooBig
from wa_media.core.reasons import reason_of
from wa_media.observability.metrics import worker_metrics
from worker import tasks
from worker.instrumented import InstrumentedTask

# An app of the tests' own: eager runs (`apply`) need no broker, and the service's app keeps
# its four tasks.
app = Celery("instrumented-tests", set_as_current=False)


@app.task(
    base=InstrumentedTask,
    name="test.instrumented",
    bind=True,
    max_retries=None,
    short_name="unit",
    retry_event="unit_retry",
    backoff=Backoff(base=1, cap=60),
)
def unit(self: InstrumentedTask, how: str) -> str:
    """Ends as `how` says: done (logged or not), retried, failed."""
    self.bind_log(media_id="m1")
    if how == "done":
        self.done("done", "unit_done", items=2)
    elif how == "quiet":
        self.done("archived")
    elif how == "dropped":
        self.done("dropped", "unit_dropped", "warning", reason="recipient_rate")
    elif how == "failed":
        self.failed("too_big", "media is 200 MB", code=131052)
    elif how == "retried" and not self.request.retries:
        # Eager, Celery runs the retry at once: the second try ends quietly.
        self.retry_in(12.345, StorageError("S3 unreachable"), error="StorageError")
    elif how == "countdown":
        return str(self.next_countdown())
    return how


@app.task(
    base=InstrumentedTask, name="test.untagged", bind=True, short_name="plain", bind_task_id=False
)
def untagged(self: InstrumentedTask) -> str:
    """A task whose lines carry no task id (as the sweep's)."""
    self.failed("redis_unavailable", "no Redis", event="plain_failed", level="warning", timed=False)
    return "failed"


def _count(task: str, outcome: str, reason: str = "") -> float:
    worker_metrics()  # made on first use
    value = REGISTRY.get_sample_value(
        "wa_tasks_total", {"task": task, "outcome": outcome, "reason": reason}
    )
    return value or 0.0


def _retries(reason: str) -> float:
    worker_metrics()
    return REGISTRY.get_sample_value("wa_retries_total", {"reason": reason}) or 0.0


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        yield captured


def _run(how: str, **options: Any) -> Any:
    return unit.apply(args=(how,), task_id="task-1", **options)


def test_a_run_that_returns_is_counted_and_logged_with_its_context(
    logs: list[dict[str, Any]],
) -> None:
    before = _count("unit", "done")
    assert _run("done").get() == "done"
    assert _count("unit", "done") == before + 1
    [line] = logs
    assert line.pop("duration_ms") >= 0
    assert line == {
        "event": "unit_done",
        "log_level": "info",
        "items": 2,
        "task": "unit",
        "task_id": "task-1",
        "media_id": "m1",
    }


def test_an_outcome_without_event_is_counted_only(logs: list[dict[str, Any]]) -> None:
    before = _count("unit", "archived")
    _run("quiet")
    assert _count("unit", "archived") == before + 1
    assert logs == []


def test_an_outcome_logged_at_another_level(logs: list[dict[str, Any]]) -> None:
    _run("dropped")
    [line] = logs
    assert (line["event"], line["log_level"], line["reason"]) == (
        "unit_dropped",
        "warning",
        "recipient_rate",
    )


def test_a_retry_is_counted_logged_and_handed_to_celery(logs: list[dict[str, Any]]) -> None:
    label = reason_of(StorageError("x"))
    before, retries_before = _count("unit", "retried", label), _retries(label)
    assert _run("retried").get() == "retried"
    assert _count("unit", "retried", label) == before + 1
    assert _retries(label) == retries_before + 1
    [line] = logs
    assert line.pop("duration_ms") >= 0
    assert line == {
        "event": "unit_retry",
        "log_level": "warning",
        "reason": "S3 unreachable",
        "reason_label": label,
        "countdown": 12.3,
        "error": "StorageError",
        "task": "unit",
        "task_id": "task-1",
        "media_id": "m1",
    }


def test_a_failure_is_counted_with_its_label_and_logged(logs: list[dict[str, Any]]) -> None:
    before = _count("unit", "failed", "too_big")
    assert _run("failed").get() == "failed"
    assert _count("unit", "failed", "too_big") == before + 1
    [line] = logs
    assert line.pop("duration_ms") >= 0
    assert line == {
        "event": "failed",
        "log_level": "error",
        "reason": "media is 200 MB",
        "reason_label": "too_big",
        "code": 131052,
        "task": "unit",
        "task_id": "task-1",
        "media_id": "m1",
    }


def test_a_failure_untimed_at_warning_without_task_id(logs: list[dict[str, Any]]) -> None:
    before = _count("plain", "failed", "redis_unavailable")
    untagged.apply(task_id="task-2")
    assert _count("plain", "failed", "redis_unavailable") == before + 1
    assert logs == [
        {
            "event": "plain_failed",
            "log_level": "warning",
            "reason": "no Redis",
            "reason_label": "redis_unavailable",
            "task": "plain",
        }
    ]


def test_the_context_ends_with_the_run(logs: list[dict[str, Any]]) -> None:
    _run("done")
    structlog.get_logger("after").info("later")
    assert logs[-1] == {"event": "later", "log_level": "info"}


@pytest.mark.parametrize(("retries", "low", "high"), [(0, 0.5, 1), (3, 4, 8), (10, 30, 60)])
def test_the_countdown_follows_the_declared_backoff(retries: int, low: float, high: float) -> None:
    countdown = float(_run("countdown", retries=retries).get())
    assert low <= countdown <= high


def test_a_task_without_backoff_says_so() -> None:
    with pytest.raises(TypeError, match="declares no backoff"):
        InstrumentedTask().next_countdown()


def test_an_unexpected_error_is_left_to_celery(logs: list[dict[str, Any]]) -> None:
    @app.task(base=InstrumentedTask, name="test.broken", bind=True, short_name="broken")
    def broken(self: InstrumentedTask) -> None:
        raise TooBig("not ours to count")

    before = _count("broken", "failed", "too_big")
    assert broken.apply().state == "FAILURE"
    assert _count("broken", "failed", "too_big") == before
    assert logs == []


def test_the_service_tasks_declare_their_policy() -> None:
    declared = {
        task.name: (task.short_name, task.retry_event, task.backoff, task.bind_task_id)
        for task in (tasks.fan_out, tasks.archive_media, tasks.send_reply, tasks.sweep)
    }
    assert declared == {
        "wa.fan_out": ("fanout", "fan_out_retry", Backoff(base=1, cap=60), True),
        "wa.archive_media": ("media", "media_retry", Backoff(base=2, cap=60), True),
        "wa.send_reply": ("reply", "reply_retry", Backoff(base=2, cap=30 * 60), True),
        "wa.sweep": ("sweep", "", None, False),
    }
    assert all(
        isinstance(task, InstrumentedTask)
        for task in (tasks.fan_out, tasks.archive_media, tasks.send_reply, tasks.sweep)
    )
