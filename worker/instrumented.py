"""The base class of the tasks: each run's log context, its timing, and its counts and log
lines of how it ended (done, retried, failed), in one place."""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from celery import Task

from wa_media.core.backoff import Backoff
from wa_media.core.reasons import reason_of
from wa_media.observability.logs import bind_task_fields, get_logger, since, task_context
from wa_media.observability.metrics import count_task, worker_metrics

__all__ = ["InstrumentedTask"]

# The name the tasks' lines carried when the tasks counted and logged themselves (the `logger`
# field).
log = get_logger("worker.tasks")

# When the current run started (time.perf_counter()): one task object serves every thread of a
# threads pool, so the reading lives in the thread's context, not on the task.
_started: ContextVar[float] = ContextVar("task_started")

if TYPE_CHECKING:
    # celery-types makes Task generic; Celery's own class is not subscriptable at run time.
    _Task = Task[Any, Any]
else:
    _Task = Task


class InstrumentedTask(_Task):
    """A task whose runs bind `task` (and `task_id`) to their log lines, and which counts each
    end in `wa_tasks_total` under its `short_name`.

    Declared per task as options of `app.task`: `short_name`, `retry_event` (the log event of a
    retry), `backoff` (the countdown of retries whose error sets none) and `bind_task_id`.
    """

    short_name: ClassVar[str] = ""
    retry_event: ClassVar[str] = ""
    backoff: ClassVar[Backoff | None] = None
    bind_task_id: ClassVar[bool] = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task's body in its log context, timed from here."""
        fields: dict[str, Any] = {"task": self.short_name}
        if self.bind_task_id:
            fields["task_id"] = self.request.id
        token = _started.set(time.perf_counter())
        try:
            with task_context(**fields):
                # Not super().__call__: it would push a request of its own over the worker's.
                return self.run(*args, **kwargs)
        finally:
            _started.reset(token)

    def bind_log(self, **fields: Any) -> None:
        """Add `fields` (ids of the task's media, reply...) to the run's log lines."""
        bind_task_fields(**fields)

    def elapsed_ms(self) -> float:
        """Milliseconds since the run started."""
        return since(_started.get())

    def next_countdown(self, retry_after: float | None = None) -> float:
        """Seconds before the next try, by the task's `backoff` and the tries so far."""
        if self.backoff is None:
            raise TypeError(f"{self.name} declares no backoff")
        return self.backoff.countdown(self.request.retries, retry_after)

    def done(
        self, outcome: str, event: str | None = None, level: str = "info", /, **fields: Any
    ) -> None:
        """Count a run that ended as `outcome`; log `event` (when given) at `level`, with its
        duration."""
        count_task(self.short_name, outcome)
        if event is not None:
            getattr(log, level)(event, **fields, duration_ms=self.elapsed_ms())

    def failed(
        self,
        label: str,
        reason: str,
        /,
        *,
        event: str = "failed",
        level: str = "error",
        timed: bool = True,
        **fields: Any,
    ) -> None:
        """Count a run given up and log it as `event`, its bounded `label` beside `reason`, and
        its duration when `timed`."""
        count_task(self.short_name, "failed", label)
        if timed:
            fields["duration_ms"] = self.elapsed_ms()
        getattr(log, level)(event, reason=reason, reason_label=label, **fields)

    def note_retry(self, error: BaseException, countdown: float, /, **fields: Any) -> None:
        """Count a retry of `error` and log it as the task's `retry_event`."""
        label = reason_of(error)
        count_task(self.short_name, "retried", label)
        worker_metrics().retries.labels(reason=label).inc()
        log.warning(
            self.retry_event,
            reason=str(error),
            reason_label=label,
            countdown=round(countdown, 1),
            duration_ms=self.elapsed_ms(),
            **fields,
        )

    def retry_in(
        self, countdown: float, error: Exception, /, *, attach: bool = True, **fields: Any
    ) -> NoReturn:
        """Count and log a retry of `error`, then have Celery run the task again in `countdown`
        seconds; `attach`: Celery's retry carries `error` (its own log line quotes it)."""
        self.note_retry(error, countdown, **fields)
        raise self.retry(countdown=countdown, exc=error if attach else None) from error
