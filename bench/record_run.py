"""Run a benchmark and keep its full output as a run report, with the header every report needs.

    .venv/bin/python bench/record_run.py bench/runs/2026-12-04-webhook.txt -- \
        .venv/bin/python bench/webhook.py

The report starts with the command, the date (start and end), the git commit (with `-dirty`
when the tree has changes), the machine (cores, CPU model, memory, kernel) and the load average
before; then the command's standard output and error as they came, merged; then its exit status,
the end and the load average after. The output is also echoed to the terminal. Exit status: the
command's.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def commit() -> str:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{head}-dirty" if dirty else head


def machine() -> str:
    model = platform.processor() or "?"
    memory = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 2**20:.0f} GiB"
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} cores (nproc), {model}, {memory}, {system}"


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    report = Path(argv[0])
    command = argv[2:]
    report.parent.mkdir(parents=True, exist_ok=True)
    with report.open("w") as out:

        def write(text: str) -> None:
            out.write(text)
            out.flush()
            sys.stdout.write(text)
            sys.stdout.flush()

        write(f"command: {shlex.join(command)}\n")
        write(f"date: {now()} (start)\n")
        write(f"commit: {commit()}\n")
        write(f"machine: {machine()}\n")
        write(f"load average before: {load()}\n\n")
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        for line in process.stdout:
            write(line)
        status = process.wait()
        write(f"\nexit status: {status}\n")
        write(f"ended: {now()}\n")
        write(f"load average after: {load()}\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
