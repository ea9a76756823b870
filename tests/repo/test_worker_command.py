"""The worker that the tests and the chaos run start is the Procfile's (devstack/stack.py)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from devstack.stack import WorkerPool, deployed_pool, procfile_command, worker_argv

ROOT = Path(__file__).resolve().parents[2]


def procfile_worker() -> list[str]:
    [line] = [x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("worker:")]
    return shlex.split(line.removeprefix("worker:"))


def test_the_deployed_pool_is_the_procfiles() -> None:
    words = procfile_worker()
    pool = WorkerPool(
        words[words.index("--pool") + 1], int(words[words.index("--concurrency") + 1])
    )
    assert deployed_pool() == pool


def test_the_deployed_pool_runs_the_procfiles_command_word_for_word() -> None:
    argv = worker_argv("w1", deployed_pool(), shortcuts=False)
    assert Path(argv[0]).name == "celery"
    assert argv[1:] == [*procfile_worker()[1:], "--hostname", "w1@%h"]


def test_another_pool_changes_only_the_pool_and_its_concurrency() -> None:
    deployed = worker_argv("w1", deployed_pool())
    prefork = worker_argv("w1", WorkerPool("prefork", 2))
    changed = {deployed[n - 1]: (deployed[n], prefork[n]) for n in range(len(deployed))}
    changed = {flag: pair for flag, pair in changed.items() if pair[0] != pair[1]}
    assert set(changed) <= {"--pool", "--concurrency"}
    assert prefork[prefork.index("--pool") + 1] == "prefork"
    assert prefork[prefork.index("--concurrency") + 1] == "2"
    assert prefork[-2:] == ["--without-gossip", "--without-mingle"]


def test_a_procfile_without_the_process_or_its_pool_is_refused(tmp_path: Path) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text("web: gunicorn app\nworker: celery -A worker worker --concurrency 4\n")
    assert procfile_command("worker", procfile)[-1] == "4"
    with pytest.raises(LookupError):
        procfile_command("beat", procfile)
