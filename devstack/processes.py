"""Child processes that are always stopped, and waiting on conditions instead of sleeping."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

__all__ = ["Service", "free_port", "port_open", "stop_signals", "stop_started", "wait_for"]

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(
    condition: Callable[[], T | bool | None],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll `condition` until it returns something truthy, and return that; else TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class _Spawning:
    """Whether a Service is being started, and a stop signal that waits for it to be."""

    depth: int = 0
    pending: bool = False


_SPAWNING = _Spawning()
_STARTED: list[Service] = []
"""Every Service started and not stopped yet, for `stop_started`."""


@contextlib.contextmanager
def _spawning() -> Iterator[None]:
    """Hold back a stop signal until the process being started is known (see stop_signals)."""
    _SPAWNING.depth += 1
    try:
        yield
    finally:
        _SPAWNING.depth -= 1
    if _SPAWNING.depth == 0 and _SPAWNING.pending:
        _SPAWNING.pending = False
        raise KeyboardInterrupt


def stop_started() -> None:
    """Stop every Service this process started and has not stopped, newest first."""
    for service in reversed(list(_STARTED)):
        service.stop()


@contextlib.contextmanager
def stop_signals(*signals: signal.Signals) -> Iterator[None]:
    """Turn the first of `signals` into KeyboardInterrupt (as Ctrl-C), then ignore them all
    until the block ends, so that the `finally` and `with` blocks stopping what was started
    run to their end however often the user presses Ctrl-C.

    A signal that comes while a Service is being started is raised once its process is
    known, so that `stop_started` stops it even if its starter never learnt of it.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN)
        if _SPAWNING.depth:
            _SPAWNING.pending = True
            return
        raise KeyboardInterrupt

    previous: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int | None] = {}
    for sig in signals:
        previous[sig] = signal.signal(sig, interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: a handler not set from Python, left as it is
                signal.signal(sig, handler)


@dataclass
class Service:
    """A long-running child process in its own process group, logging to a file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> Service:
        """Launch the process."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        with _spawning():
            self.process = subprocess.Popen(  # noqa: S603 - argv is built by the project
                list(self.argv),
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
            _STARTED.append(self)
        return self

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        """Everything the process wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def signal_group(self, sig: signal.Signals) -> None:
        """Send `sig` to the whole process group (the process and its children)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process (a warm shutdown), then SIGKILL the group after `timeout`."""
        if self.process is None:
            return
        if self.alive():
            self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.process.wait(timeout=5)
        # Children that outlived their parent are still in the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self._close_log()
        self._forget()

    def _forget(self) -> None:
        _STARTED[:] = [service for service in _STARTED if service is not self]

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a crash would."""
        self.signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)
        self._close_log()
        self._forget()
