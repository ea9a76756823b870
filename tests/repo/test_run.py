"""`make run`'s pure parts: the Procfile's lines, the settings, the environment of its
processes, and what it prints."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from devstack.redis_server import RedisServer
from devstack.run import (
    BUCKET,
    RUN_SETS,
    RunFailure,
    Running,
    StateDir,
    banner,
    child_environment,
    expand,
    is_service_variable,
    procfile_commands,
    provider_mode,
    read_settings,
    run_variables,
)
from devstack.seaweed import SeaweedFS
from devstack.stack import StackEnv
from graphsim import Simulator
from tests.repo.test_deploy import SECRET_NAME, documented_variables, known_variables

ROOT = Path(__file__).resolve().parents[2]
LOCAL_EXAMPLE = ROOT / "deploy" / "local.env.example"


def procfile_words(name: str) -> list[str]:
    for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{name}:"):
            return shlex.split(line.partition(":")[2])
    raise AssertionError(name)


def test_the_procfiles_lines_are_run_with_port_substituted() -> None:
    commands = procfile_commands(ROOT / "Procfile", {"PORT": "18123"})
    assert set(commands) == {"web", "worker", "beat"}
    web = procfile_words("web")
    # Only the variable changes: every other word is the Procfile's.
    assert [w for w in commands["web"] if "18123" not in w] == [w for w in web if "PORT" not in w]
    assert "0.0.0.0:18123" in commands["web"]
    assert commands["worker"] == procfile_words("worker")
    assert commands["beat"] == procfile_words("beat")
    # Unset, the Procfile's own default applies, as in sh.
    assert "0.0.0.0:8000" in procfile_commands(ROOT / "Procfile", {})["web"]


@pytest.mark.parametrize(
    ("command", "expanded"),
    [
        ("x ${PORT:-8000} y", "x 9 y"),
        ("x ${MISSING:-8000}", "x 8000"),
        ("x ${EMPTY:-d}", "x d"),
        ("x ${PORT}:$PORT", "x 9:9"),
        ("x $MISSING.", "x ."),
    ],
)
def test_expand_as_sh(command: str, expanded: str) -> None:
    assert expand(command, {"PORT": "9", "EMPTY": ""}) == expanded


def test_a_procfile_line_that_needs_a_shell_is_refused(tmp_path: Path) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text("web: a | b\nworker: w\nbeat: b\n", encoding="utf-8")
    with pytest.raises(RunFailure, match="line 1: not one plain command"):
        procfile_commands(procfile, {})
    procfile.write_text("web: a\nworker: w\n", encoding="utf-8")
    with pytest.raises(RunFailure, match="no line for beat"):
        procfile_commands(procfile, {})


def test_settings_make_run_sets_itself_are_refused(tmp_path: Path) -> None:
    settings = tmp_path / "settings.env"
    assert read_settings(settings) == {}  # none: the simulator
    settings.write_text("LOG_LEVEL=DEBUG\nREDIS_URL=redis://x/0\nPORT=1\n", encoding="utf-8")
    with pytest.raises(RunFailure, match="sets PORT, REDIS_URL, which make run sets itself"):
        read_settings(settings)
    settings.write_text("WHATSAPP_ACCESS_TOKEN=dummy-access-token\n", encoding="utf-8")
    with pytest.raises(RunFailure, match="dummy values of WHATSAPP_ACCESS_TOKEN"):
        read_settings(settings)


def test_credentials_choose_the_provider_over_the_simulator() -> None:
    assert not provider_mode({})
    assert not provider_mode({"WHATSAPP_APP_SECRET": "s", "WHATSAPP_ACCESS_TOKEN": " "})
    assert provider_mode({"WHATSAPP_ACCESS_TOKEN": "EAAG..."})
    assert provider_mode({"WHATSAPP_ACCOUNTS_FILE": "accounts.yaml"})
    assert provider_mode({"D360_API_KEY": "k"})


def test_every_configuration_variable_is_the_runs_not_the_shells() -> None:
    # Whatever docs/configuration.md lists comes from make run or the settings file, never
    # from the shell make run was started in.
    leaking = sorted(v for v in documented_variables() if not is_service_variable(v))
    assert not leaking
    assert all(is_service_variable(v) for v in RUN_SETS)


def stack_env() -> StackEnv:
    return StackEnv(
        redis_url="redis://127.0.0.1:1/0",
        s3_endpoint_url="http://127.0.0.1:2",
        s3_bucket=BUCKET,
        graph_url="http://127.0.0.1:3",
        media_hosts="127.0.0.1:3",
        access_token="sim-token",
        app_secret="generated-secret",
        verify_token="generated-verify",
    )


def test_the_processes_environment() -> None:
    shell = {
        "HOME": "/home/me",
        "PATH": "/usr/bin",
        "WHATSAPP_ACCOUNTS_FILE": "/etc/prod-accounts.yaml",
        "S3_SSE": "aws:kms",
        "AWS_PROFILE": "production",
        "REDIS_URL": "redis://prod:6379/0",
        "LOG_LEVEL": "DEBUG",
    }
    settings = {"TOO_BIG_REPLY_TEXT": "too big", "WHATSAPP_APP_SECRET": "from-settings"}
    isolation = {"AWS_CONFIG_FILE": "/tmp/empty", "AWS_EC2_METADATA_DISABLED": "true"}
    environ = child_environment(shell, stack_env(), settings, isolation)
    assert environ["HOME"] == "/home/me"
    assert environ["PATH"] == "/usr/bin"
    for name in ("WHATSAPP_ACCOUNTS_FILE", "S3_SSE", "AWS_PROFILE", "LOG_LEVEL"):
        assert name not in environ, name
    assert environ["REDIS_URL"] == "redis://127.0.0.1:1/0"
    assert environ["S3_ENDPOINT_URL"] == "http://127.0.0.1:2"
    assert environ["AWS_CONFIG_FILE"] == "/tmp/empty"
    assert environ["TOO_BIG_REPLY_TEXT"] == "too big"
    assert environ["WHATSAPP_APP_SECRET"] == "from-settings"
    # What wa-media needs, without the rest of the shell.
    written = run_variables(environ)
    assert "HOME" not in written
    assert "PATH" not in written
    assert written["WHATSAPP_APP_SECRET"] == "from-settings"
    assert written["S3_BUCKET"] == BUCKET


def example_settings() -> dict[str, str]:
    pairs = {}
    for line in LOCAL_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            pairs[match.group(1)] = match.group(2)
    return pairs


def test_local_example_names_only_variables_the_code_reads_and_no_secret() -> None:
    pairs = example_settings()
    assert {"WHATSAPP_ACCESS_TOKEN", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN"} <= set(pairs)
    assert not sorted(set(pairs) - known_variables())
    assert not sorted(set(pairs) & RUN_SETS)
    secret = {k: v for k, v in pairs.items() if SECRET_NAME.search(k)}
    assert secret
    assert all(value.startswith("dummy") for value in secret.values())
    # Copied as it is, it changes nothing: every line is commented out (the simulator runs).
    assert read_settings(LOCAL_EXAMPLE) == {}


def running(tmp_path: Path, sim: Simulator | None) -> Running:
    seaweed = SeaweedFS(tmp_path / "s3", s3_port=2, ports={"filer.port": 4})
    run = Running(
        StateDir(tmp_path / ".run"),
        tmp_path / ".run" / "settings.env",
        simulated=sim is not None,
        web_url="http://127.0.0.1:8000",
        s3=seaweed,
        redis=RedisServer(tmp_path / "redis", port=1),
        sim=sim,
    )
    run.environ = {"WHATSAPP_APP_SECRET": "s3cr3t-value", "WHATSAPP_VERIFY_TOKEN": "v3rify-value"}
    return run


@pytest.mark.parametrize("simulated", [True, False])
def test_the_banner_says_where_things_are_and_shows_no_secret(
    tmp_path: Path, sim: Simulator, simulated: bool
) -> None:
    text = banner(running(tmp_path, sim if simulated else None))
    assert "http://127.0.0.1:8000/webhook" in text
    assert "WHATSAPP_VERIFY_TOKEN in" in text
    assert "--env-file" in text
    assert "simulate http://127.0.0.1:8000 --file PATH" in text
    assert f"s3://{BUCKET}/" in text
    assert f"http://127.0.0.1:4/buckets/{BUCKET}/" in text
    assert "s3 (SeaweedFS's volumes" in text
    assert "s3cr3t-value" not in text
    assert "v3rify-value" not in text
    assert ("simulator at " + sim.url in text) is simulated
    assert ("Callback URL" in text) is not simulated
