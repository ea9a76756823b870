"""The tasks, run eagerly on stub clients: the counts and log lines of each end."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from tests.unit.fakes import FakeEventSink
from wa_media.core.errors import (
    BrokerUnavailable,
    CredentialsError,
    RedisUnavailable,
    ReengagementError,
    StorageError,
    TemporaryError,
)
from wa_media.core.events import Event, skipped_event
from wa_media.core.jobs import MediaJob, ReplyJob
from wa_media.observability.metrics import worker_metrics
from worker import tasks
from worker.archive import Done, Failed, RetryLater, Skipped

MEDIA = MediaJob(
    phone_number_id="pn1", waba_id=None, wamid="wamid.1", sender="15550001", timestamp=0,
    type="image", media_id="m1", mime_type="image/jpeg", sha256=None,
)  # fmt: skip
REPLY = ReplyJob(phone_number_id="pn1", wamid="wamid.2", to="15550001", error_code=131052)
MEDIA_CONTEXT = {
    "task": "media",
    "task_id": "t1",
    "wamid": "wamid.1",
    "media_id": "m1",
    "phone_number_id": "pn1",
    "customer": "15550001",
    "direction": "inbound",
}
REPLY_CONTEXT = {"task": "reply", "task_id": "t2", "wamid": "wamid.2", "phone_number_id": "pn1"}


def _count(task: str, outcome: str, reason: str = "") -> float:
    worker_metrics()
    labels = {"task": task, "outcome": outcome, "reason": reason}
    return REGISTRY.get_sample_value("wa_tasks_total", labels) or 0.0


@dataclass
class Archiver:
    """Answers each try with the next of `results` (an exception is raised)."""

    results: list[Any]

    def archive(self, job: MediaJob) -> Any:
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


@dataclass
class Ledger:
    stall_after: float = 600.0
    settled_members: list[str] = field(default_factory=list)

    def settled(self, member: str) -> None:
        self.settled_members.append(member)

    def look_again(self, member: str, at: float) -> None:
        pass


@dataclass
class Replier:
    results: list[Any]
    ledger: Ledger = field(default_factory=Ledger)

    def reply(self, job: ReplyJob) -> Any:
        return Archiver(self.results).archive(job)  # type: ignore[arg-type]


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        yield captured


def _archive(monkeypatch: pytest.MonkeyPatch, *results: Any) -> Any:
    archiver = Archiver(list(results))
    monkeypatch.setattr(tasks, "services", lambda: SimpleNamespace(archiver=archiver))
    return tasks.archive_media.apply(args=(MEDIA.to_wire(),), task_id="t1").get()


def _reply(monkeypatch: pytest.MonkeyPatch, *results: Any) -> tuple[Any, Ledger]:
    replier = Replier(list(results))
    monkeypatch.setattr(tasks, "services", lambda: SimpleNamespace(replier=replier))
    return tasks.send_reply.apply(args=(REPLY.to_wire(),), task_id="t2").get(), replier.ledger


def _timed(line: dict[str, Any]) -> dict[str, Any]:
    assert line.pop("duration_ms") >= 0
    return line


def test_media_failed(monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]) -> None:
    before = _count("media", "failed", "too_big")
    assert _archive(monkeypatch, Failed("too big", 131052, "too_big")) == "failed"
    assert _count("media", "failed", "too_big") == before + 1
    assert [_timed(line) for line in logs] == [
        {
            "event": "failed",
            "log_level": "error",
            "reason": "too big",
            "reason_label": "too_big",
            "code": 131052,
            **MEDIA_CONTEXT,
        }
    ]


def test_media_already_archived(
    monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]
) -> None:
    before = _count("media", "duplicate")
    assert _archive(monkeypatch, Done("already_archived", "k/1")) == "already_archived"
    assert _count("media", "duplicate") == before + 1
    assert [_timed(line) for line in logs] == [
        {"event": "media_already_archived", "log_level": "info", "key": "k/1", **MEDIA_CONTEXT}
    ]


def test_media_archived_is_counted_only(
    monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]
) -> None:
    before = _count("media", "archived")
    assert _archive(monkeypatch, Done("archived", "k/1")) == "archived"
    assert _count("media", "archived") == before + 1
    assert logs == []


def test_media_retried_later_then_archived(
    monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]
) -> None:
    error = TemporaryError("HTTP 503")
    before = _count("media", "retried", "provider_unavailable")
    assert _archive(monkeypatch, RetryLater(42.04, error), Done("archived", "k")) == "archived"
    assert _count("media", "retried", "provider_unavailable") == before + 1
    assert [_timed(line) for line in logs] == [
        {
            "event": "media_retry",
            "log_level": "warning",
            "reason": "HTTP 503",
            "reason_label": "provider_unavailable",
            "countdown": 42.0,
            "error": "TemporaryError",
            **MEDIA_CONTEXT,
        }
    ]


def test_media_retried_when_redis_fails(
    monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]
) -> None:
    assert _archive(monkeypatch, StorageError("S3 down"), Done("archived", "k")) == "archived"
    [line] = logs
    assert (line["event"], line["reason"]) == ("media_retry", "S3 down")
    # Backoff(base=2, cap=60) at the first try: 1 to 2 seconds.
    assert 1 <= line["countdown"] <= 2
    assert "error" not in line


def test_reply_sent(monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]) -> None:
    before = _count("reply", "sent")
    outcome, ledger = _reply(monkeypatch, "sent")
    assert outcome == "sent"
    assert ledger.settled_members == ["pn1:wamid.2"]
    assert _count("reply", "sent") == before + 1
    assert [_timed(line) for line in logs] == [
        {"event": "replied", "log_level": "info", **REPLY_CONTEXT}
    ]


def test_reply_dropped(monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]) -> None:
    before = _count("reply", "dropped")
    dropped = REGISTRY.get_sample_value("wa_replies_dropped_total", {"reason": "account_rate"})
    assert _reply(monkeypatch, "account_rate")[0] == "account_rate"
    assert _count("reply", "dropped") == before + 1
    after = REGISTRY.get_sample_value("wa_replies_dropped_total", {"reason": "account_rate"})
    assert after == (dropped or 0) + 1
    assert [_timed(line) for line in logs] == [
        {
            "event": "reply_dropped",
            "log_level": "warning",
            "reason": "account_rate",
            **REPLY_CONTEXT,
        }
    ]


def test_reply_failed(monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]) -> None:
    error = ReengagementError("window closed", code=131047)
    before = _count("reply", "failed", "reengagement")
    outcome, ledger = _reply(monkeypatch, error)
    assert (outcome, ledger.settled_members) == ("failed", ["pn1:wamid.2"])
    assert _count("reply", "failed", "reengagement") == before + 1
    assert [_timed(line) for line in logs] == [
        {
            "event": "failed",
            "log_level": "error",
            "reason": "window closed",
            "reason_label": "reengagement",
            "code": 131047,
            **REPLY_CONTEXT,
        }
    ]


def test_reply_retried(monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]) -> None:
    error = TemporaryError("HTTP 502", retry_after=5)
    assert _reply(monkeypatch, error, "already_sent")[0] == "already_sent"
    retry, duplicate = (_timed(line) for line in logs)
    assert retry.pop("countdown") == 5  # Retry-After is a floor
    assert retry == {
        "event": "reply_retry",
        "log_level": "warning",
        "reason": "HTTP 502",
        "reason_label": "provider_unavailable",
        **REPLY_CONTEXT,
    }
    assert duplicate["event"] == "reply_already_sent"


def test_a_reply_waiting_on_a_rejected_token_outlasts_its_tries(
    monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]
) -> None:
    """Tries spent while the token is rejected are not counted: past REPLY_MAX_RETRIES of them,
    the reply still retries, and is sent once the token works again."""
    rejected = [CredentialsError("token rejected") for _ in range(tasks.REPLY_MAX_RETRIES + 2)]
    outcome, _ledger = _reply(monkeypatch, *rejected, "sent")
    assert outcome == "sent"
    retries = [line for line in logs if line["event"] == "reply_retry"]
    assert len(retries) == tasks.REPLY_MAX_RETRIES + 2


def test_a_reply_gives_up_after_its_tries(
    monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]
) -> None:
    errors = [TemporaryError("HTTP 502") for _ in range(tasks.REPLY_MAX_RETRIES + 1)]
    outcome, ledger = _reply(monkeypatch, *errors)
    assert (outcome, ledger.settled_members) == ("failed", ["pn1:wamid.2"])
    [failed] = [line for line in logs if line["event"] == "failed"]
    assert failed["reason"] == "gave up: HTTP 502"


@dataclass
class State:
    """Admits every media once; `admit_many` raises the next of `errors` first."""

    errors: list[Exception] = field(default_factory=list)
    sweep_lock: Any = None

    def admit_many(self, jobs: list[MediaJob]) -> list[bool]:
        if self.errors:
            raise self.errors.pop(0)
        return [True] * len(jobs)

    def take_sweep_lock(self, ttl: float) -> Any:
        if isinstance(self.sweep_lock, Exception):
            raise self.sweep_lock
        return self.sweep_lock


@dataclass
class ReplyLedger(Ledger):
    def admit_many(self, jobs: list[ReplyJob]) -> None:
        pass


def _fan_out(
    monkeypatch: pytest.MonkeyPatch,
    state: State,
    events: list[Any] | None = None,
    sink: FakeEventSink | None = None,
) -> Any:
    svc = SimpleNamespace(
        state=state, replier=SimpleNamespace(ledger=ReplyLedger()), events=sink or FakeEventSink()
    )
    monkeypatch.setattr(tasks, "services", lambda: svc)
    published: list[str] = []
    for task in (tasks.archive_media, tasks.send_reply):
        monkeypatch.setattr(
            task, "apply_async", lambda *a, name=task.name, **k: published.append(name)
        )
    batch: dict[str, Any] = {"media": [MEDIA.to_wire(), {"bad": 1}], "replies": [REPLY.to_wire()]}
    if events is not None:
        batch["events"] = events
    return tasks.fan_out.apply(args=(batch,), task_id="t3").get(), published


EVENT = skipped_event(MEDIA, "policy_type", "the account does not archive image media", at=1.0)


def test_fan_out_hands_webs_events_to_the_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = FakeEventSink()
    counts, _ = _fan_out(monkeypatch, State(), [EVENT.to_wire(), {"type": "nope"}], sink)
    assert sink.events == [EVENT]
    assert (counts["events"], counts["invalid"]) == (1, 2)


def test_fan_out_retries_when_the_sink_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclass
    class RefusesOnce(FakeEventSink):
        def emit(self, event: Event) -> None:
            try:
                super().emit(event)
            finally:
                self.fail.clear()

    sink = RefusesOnce(fail={"emit": BrokerUnavailable("down")})
    before = _count("fanout", "retried", "broker_unavailable")
    # The retry runs at once (eager), and the whole batch again: the event is emitted then.
    counts, _ = _fan_out(monkeypatch, State(), [EVENT.to_wire()], sink)
    assert _count("fanout", "retried", "broker_unavailable") == before + 1
    assert sink.events == [EVENT]
    assert counts["events"] == 1


def test_media_skipped(monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]) -> None:
    before = _count("media", "skipped", "policy_size")
    failed = _count("media", "failed", "policy_size")
    assert _archive(monkeypatch, Skipped("over 5 bytes", "policy_size")) == "skipped"
    assert _count("media", "skipped", "policy_size") == before + 1
    assert _count("media", "failed", "policy_size") == failed
    assert logs == [
        {
            "event": "media_skipped",
            "log_level": "warning",
            "reason": "over 5 bytes",
            "reason_label": "policy_size",
            **MEDIA_CONTEXT,
        }
    ]


def test_media_retried_when_the_sink_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _count("media", "retried", "broker_unavailable")
    assert _archive(monkeypatch, BrokerUnavailable("outbox down"), Done("archived", "k")) == (
        "archived"
    )
    assert _count("media", "retried", "broker_unavailable") == before + 1


def test_fan_out_done(monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]) -> None:
    before = _count("fanout", "done")
    counts, published = _fan_out(monkeypatch, State())
    assert counts == {"media": 1, "duplicates": 0, "replies": 1, "events": 0, "invalid": 1}
    assert published == ["wa.archive_media", "wa.send_reply"]
    assert _count("fanout", "done") == before + 1
    invalid, done = logs
    assert invalid == {
        "event": "job_invalid", "log_level": "error", "kind": "media", "task": "fanout",
        "task_id": "t3",
    }  # fmt: skip
    assert _timed(done) == {
        "event": "fanned_out", "log_level": "info", "task": "fanout", "task_id": "t3", **counts
    }  # fmt: skip


def test_fan_out_retried(monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]) -> None:
    before = _count("fanout", "retried", "s3_unavailable")
    counts, _ = _fan_out(monkeypatch, State(errors=[StorageError("Redis down")]))
    assert counts["media"] == 1
    assert _count("fanout", "retried", "s3_unavailable") == before + 1
    retry = _timed(next(line for line in logs if line["event"] == "fan_out_retry"))
    # Backoff(base=1, cap=60) at the first try: 0.5 to 1 second.
    assert 0.5 <= retry.pop("countdown") <= 1
    assert retry == {
        "event": "fan_out_retry", "log_level": "warning", "reason": "Redis down",
        "reason_label": "s3_unavailable", "task": "fanout", "task_id": "t3",
    }  # fmt: skip


def _sweep(monkeypatch: pytest.MonkeyPatch, state: State) -> Any:
    monkeypatch.setattr(tasks, "services", lambda: SimpleNamespace(state=state))
    return tasks.sweep.apply(task_id="t4").get()


def test_sweep_skipped(monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]) -> None:
    before = _count("sweep", "skipped")
    assert _sweep(monkeypatch, State(sweep_lock=None)) == {}
    assert _count("sweep", "skipped") == before + 1
    assert logs == []


def test_sweep_failed(monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]) -> None:
    before = _count("sweep", "failed", "redis_unavailable")
    assert _sweep(monkeypatch, State(sweep_lock=RedisUnavailable("gone"))) == {}
    assert _count("sweep", "failed", "redis_unavailable") == before + 1
    assert logs == [
        {
            "event": "sweep_failed",
            "log_level": "warning",
            "reason": "gone",
            "reason_label": "redis_unavailable",
            "task": "sweep",
        }
    ]
