"""The chaos run's small preset: the whole stack under kills and faults passes every check, with
the Procfile's worker pool and with prefork."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack import deployed_pool

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 300
# On SIGTERM the run stops everything it started; that takes a few seconds per process.
CLEANUP_TIMEOUT = 90


@pytest.mark.timeout(RUN_TIMEOUT + CLEANUP_TIMEOUT + 30)
@pytest.mark.parametrize("pool", [None, "prefork"], ids=["procfile-pool", "prefork"])
def test_small_chaos_run_passes_every_check(pool: str | None) -> None:
    argv = [sys.executable, str(ROOT / "bench" / "chaos.py"), "--small", "--seed", "7"]
    if pool is not None:
        argv += ["--pool", pool]
    process = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=CLEANUP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        pytest.fail(f"the chaos run took over {RUN_TIMEOUT}s:\n{output}")
    assert process.returncode == 0, f"the chaos run exited {process.returncode}:\n{output}"
    assert f"--pool {pool or deployed_pool().name} " in output
