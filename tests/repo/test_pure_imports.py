"""The pure core loads no service library and reads no environment variable when imported.

Each module is imported in a fresh interpreter whose `os.environ` fails on any read, so a
module that reads a variable at import, or imports one that does, fails here with its name.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import wa_media.core

ROOT = Path(__file__).resolve().parents[2]
SERVICE_LIBRARIES = (
    "celery",
    "kombu",
    "redis",
    "boto3",
    "botocore",
    "requests",
    "flask",
    "structlog",
    "yaml",
)
PURE_MODULES = sorted(
    f"wa_media.core.{module.name}" for module in pkgutil.iter_modules(wa_media.core.__path__)
)

# Run with -S -E: no site hooks and no PYTHON* variables, so that only the import under test
# can touch the environment; the repository and the virtualenv's packages are put on the path.
PROBE = """
import os, sys, traceback
from collections.abc import MutableMapping

REAL = os.environ
PACKAGE = sys.argv[1].partition(".")[0] + os.sep

class Guarded(MutableMapping):
    # The standard library reads some variables of its own (PYTHONTZPATH, PYTHONUSERBASE):
    # a read fails when one of the product's frames asked for it.
    def _check(self, key):
        # The reader: the innermost frame outside this probe and the mapping's own methods.
        for frame in reversed(traceback.extract_stack()):
            if frame.filename in ("<string>", "<frozen _collections_abc>"):
                continue
            if os.sep + PACKAGE in frame.filename:
                raise AssertionError(f"{frame.filename}:{frame.lineno} reads {key!r}")
            return
    def __getitem__(self, key):
        self._check(key)
        return REAL[key]
    def __setitem__(self, key, value):
        self._check(key)
        REAL[key] = value
    def __delitem__(self, key):
        self._check(key)
        del REAL[key]
    def __iter__(self):
        self._check("*")
        return iter(REAL)
    def __len__(self):
        self._check("*")
        return len(REAL)

os.environ = Guarded()
_getenv = os.getenv
os.getenv = lambda key, default=None: os.environ.get(key, default)
import importlib
importlib.import_module(sys.argv[1])
loaded = sorted({name.partition(".")[0] for name in sys.modules} & set(sys.argv[2:]))
print(" ".join(loaded))
"""


def _paths() -> list[str]:
    import sysconfig

    return [str(ROOT), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]


def test_every_core_module_is_probed() -> None:
    assert "wa_media.core.errors" in PURE_MODULES
    assert "wa_media.core.policy" in PURE_MODULES
    assert len(PURE_MODULES) >= 10


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_quietly(module: str) -> None:
    done = _probe(module)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [], f"{module} loads {done.stdout.strip()}"


def _probe(module: str, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    paths = [str(root), *_paths()[1:]]
    code = f"import sys; sys.path[:0] = {paths!r}\n" + PROBE
    return subprocess.run(
        [sys.executable, "-S", "-E", "-c", code, module, *SERVICE_LIBRARIES],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": "/nonexistent"},
    )


def test_the_probe_catches_a_read_and_a_service_library(tmp_path: Path) -> None:
    package = tmp_path / "wa_media"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "reads.py").write_text("import os\nHOME = os.environ.get('HOME')\n")
    (package / "loads.py").write_text("import yaml\n")
    reads = _probe("wa_media.reads", tmp_path)
    assert reads.returncode != 0
    assert "reads 'HOME'" in reads.stderr
    assert _probe("wa_media.loads", tmp_path).stdout.split() == ["yaml"]
