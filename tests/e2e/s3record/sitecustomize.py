"""Records the S3 requests of a Python process, for the end-to-end tests only.

The e2e suite puts this directory first on PYTHONPATH and names a directory in TEST_S3_RECORD_DIR
(tests/e2e/conftest.py), so that every Python process it starts (`web`, `worker`, `beat`,
`wa-media`) imports this module at start-up, as `site` does with any `sitecustomize`; the pytest
process calls `install` itself. Nothing is done without the variable, and nothing of the service
is changed: every botocore client made afterwards gets one more event handler, which appends a
JSON line per S3 API call, before the call is sent, to `<pid>.jsonl` in that directory:

    {"process": "celery", "args": [...], "callers": ["wa_media.stores.s3", "worker.archive", ...],
     "operation": "PutObject", "if_none_match": true, "encryption": "AES256"}

`process` is the program's name (argv[0]) unless `install` was given one; `callers` are the
service modules (`wa_media.*`, `worker.*`, `webhook.*`) in the call's stack, the innermost
first, none when the service made no part of it (a test's own client). tests/s3policies.py
reads the files.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

RECORD_DIR = "TEST_S3_RECORD_DIR"
SERVICE_PACKAGES = ("wa_media", "worker", "webhook")
_MARK = "_records_s3_requests"


def _callers() -> list[str]:
    """The service modules in the stack of this call, the innermost first, each once."""
    names: list[str] = []
    frame = sys._getframe(1)
    while frame is not None:
        name = str(frame.f_globals.get("__name__", ""))
        if name.partition(".")[0] in SERVICE_PACKAGES and name not in names:
            names.append(name)
        frame = frame.f_back  # type: ignore[assignment]
    return names


def _recorder(directory: Path, process: str | None) -> Callable[..., None]:
    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        line = {
            "process": process or Path(sys.argv[0]).name,
            "args": sys.argv[1:],
            "callers": _callers(),
            "operation": model.name,
            "if_none_match": "IfNoneMatch" in params,
            "encryption": params.get("ServerSideEncryption"),
        }
        # One write of one short line with O_APPEND: the lines of threads never interleave, and
        # a process forked afterwards (a prefork pool's) writes to a file of its own pid.
        path = directory / f"{os.getpid()}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(line) + "\n").encode())
        finally:
            os.close(fd)

    return record


def _patch(session_class: Any, directory: Path, process: str | None) -> Callable[[], None]:
    """Make `session_class.create_client` add the recorder to S3 clients; returns the undo."""
    original = session_class.create_client
    if getattr(original, _MARK, False):
        return lambda: None
    record = _recorder(directory, process)

    @functools.wraps(original)
    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        client.meta.events.register("before-parameter-build.s3", record, unique_id=_MARK)
        return client

    setattr(create_client, _MARK, True)
    session_class.create_client = create_client

    def undo() -> None:
        session_class.create_client = original

    return undo


def install(directory: Path, process: str | None = None) -> Callable[[], None]:
    """Record the S3 requests of clients made from now on into `directory`; returns the undo."""
    import botocore.session

    return _patch(botocore.session.Session, directory, process)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches botocore's Session once botocore.session is imported, and not earlier: the
    processes import their modules in their own order (web's gevent patches ssl late)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "botocore.session":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module
        directory = self.directory

        def exec_and_patch(module: ModuleType) -> None:
            exec_module(module)
            _patch(module.Session, directory, None)

        spec.loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


def _start() -> None:
    directory = os.environ.get(RECORD_DIR)
    if not directory:
        return
    if "botocore.session" in sys.modules:
        install(Path(directory))
    else:
        sys.meta_path.insert(0, _PatchOnImport(Path(directory)))


# Imported by `site` under this name; the pytest process imports it as a module of the tests.
if __name__ == "sitecustomize":
    _start()
