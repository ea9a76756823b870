"""Running the service from the Procfile's lines on this machine."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.processes import Service, wait_for
from devstack.redis_server import RedisServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def procfile_line(name: str) -> list[str]:
    """A Procfile line's words (the beat line expands no variable)."""
    for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{name}:"):
            return shlex.split(line.partition(":")[2])
    raise AssertionError(f"no {name} line in the Procfile")


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("run-redis"), persistent=False).start()
    yield server
    server.stop()


@pytest.mark.parametrize("configured", [False, True])
def test_beat_keeps_its_schedule_out_of_the_working_directory(
    private_redis: RedisServer, tmp_path: Path, configured: bool
) -> None:
    """The Procfile's beat line, run as is: its schedule goes to the temporary directory (or
    BEAT_SCHEDULE_FILE), and the directory it runs in stays empty."""
    workdir, tmpdir = tmp_path / "cwd", tmp_path / "tmp"
    workdir.mkdir()
    tmpdir.mkdir()
    argv = procfile_line("beat")
    # The default is what is tested here: the line names no schedule file.
    assert "--schedule" not in argv
    assert "-s" not in argv
    binary = shutil.which(argv[0], path=str(Path(sys.executable).parent))
    assert binary is not None
    env = {**os.environ, "REDIS_URL": private_redis.url, "TMPDIR": str(tmpdir)}
    env.pop("BEAT_SCHEDULE_FILE", None)
    expected_dir = tmpdir
    if configured:
        expected_dir = tmp_path / "var"
        expected_dir.mkdir()
        env["BEAT_SCHEDULE_FILE"] = str(expected_dir / "beat-schedule")
    beat = Service("beat", [binary, *argv[1:]], tmp_path / "beat.log", env=env, cwd=workdir)
    beat.start()
    try:
        name = "beat-schedule" if configured else "wa-media-celerybeat-schedule"
        wait_for(
            lambda: list(expected_dir.glob(f"{name}*")),
            timeout=30,
            what=f"beat's schedule in {expected_dir}",
        )
        assert beat.alive(), beat.log_text()[-2000:]
    finally:
        beat.stop()
    assert list(workdir.iterdir()) == []
    if configured:
        assert not list(tmpdir.glob("*celerybeat-schedule*"))
