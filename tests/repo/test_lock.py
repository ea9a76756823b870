"""The locks pin every dependency pyproject.toml names, within its ranges (`make lock`)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"


def _declared() -> tuple[list[Requirement], list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [Requirement(line) for line in project["dependencies"]]
    dev = [Requirement(line) for line in project["optional-dependencies"]["dev"]]
    return runtime, dev


def _entries(path: Path) -> list[str]:
    """The lock's requirement lines, continuations joined and comments dropped."""
    entries: list[str] = []
    current = ""
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        current += " " + line.removesuffix("\\").strip()
        if not line.endswith("\\"):
            entries.append(current.strip())
            current = ""
    if current:
        entries.append(current.strip())
    return entries


def _pins(path: Path) -> dict[str, Requirement]:
    """The lock's pins by normalised name; each must be `==` one version with its hashes."""
    pins: dict[str, Requirement] = {}
    for entry in _entries(path):
        requirement, _, hashes = entry.partition(" --hash=")
        pin = Requirement(requirement)
        assert hashes, f"{path.name}: {pin.name} has no hash"
        [specifier] = list(pin.specifier)
        assert specifier.operator == "==", f"{path.name}: {pin} is not pinned to one version"
        pins[canonicalize_name(pin.name)] = pin
    return pins


def _version(pin: Requirement) -> str:
    return next(iter(pin.specifier)).version


@pytest.mark.parametrize(
    ("lock", "which"),
    [(RUNTIME_LOCK, "runtime"), (DEV_LOCK, "runtime"), (DEV_LOCK, "dev")],
)
def test_every_declared_dependency_is_pinned_within_its_range(lock: Path, which: str) -> None:
    runtime, dev = _declared()
    pins = _pins(lock)
    for declared in runtime if which == "runtime" else dev:
        pin = pins.get(canonicalize_name(declared.name))
        assert pin is not None, f"{declared.name} is not pinned in {lock.name}: run make lock"
        assert declared.specifier.contains(_version(pin), prereleases=True), (
            f"{lock.name} pins {pin}, outside pyproject.toml's {declared}: run make lock"
        )
        # A direct dependency installs everywhere, so its pin must too.
        assert pin.marker is None, f"{lock.name}: {pin} is pinned only where {pin.marker}"


def test_the_runtime_lock_holds_no_development_tool() -> None:
    runtime, dev = _declared()
    runtime_names = {canonicalize_name(r.name) for r in runtime}
    pins = _pins(RUNTIME_LOCK)
    for declared in dev:
        name = canonicalize_name(declared.name)
        assert name in runtime_names or name not in pins, f"{name} is in {RUNTIME_LOCK.name}"


def test_both_locks_pin_the_same_versions() -> None:
    runtime, dev = _pins(RUNTIME_LOCK), _pins(DEV_LOCK)
    assert runtime.keys() <= dev.keys()
    differ = {
        name: (_version(pin), _version(dev[name]))
        for name, pin in runtime.items()
        if _version(pin) != _version(dev[name])
    }
    assert differ == {}
