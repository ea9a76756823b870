"""devstack/images.py without Docker: the mirror it reads, the override it writes, its pins."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devstack.images import ROOT, Images, debian_mirror, seaweedfs_version

COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yml"


def test_mirror_from_a_deb822_source_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEBIAN_MIRROR", raising=False)
    monkeypatch.delenv("DEBIAN_SECURITY_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
    )
    assert debian_mirror(tmp_path) == (
        "http://mirror.example/debian",
        "http://mirror.example/debian-security",
    )


def test_mirror_from_one_line_sources_and_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEBIAN_MIRROR", raising=False)
    monkeypatch.delenv("DEBIAN_SECURITY_MIRROR", raising=False)
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] http://other.example/debian bookworm main\n"
    )
    assert debian_mirror(tmp_path) == (
        "http://other.example/debian",
        "http://deb.debian.org/debian-security",
    )
    monkeypatch.setenv("DEBIAN_MIRROR", "http://chosen.example/debian")
    assert debian_mirror(tmp_path)[0] == "http://chosen.example/debian"


def test_override_names_only_images_of_services_the_compose_file_has() -> None:
    images = Images("wa-local/bookworm:1", "wa-local/python:2", "wa-local/redis:3", "wa-local/sw:4")
    override = yaml.safe_load(images.override(COMPOSE_FILE, "app:t", "proxy:t"))
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert set(override) == {"services"}
    assert set(override["services"]) <= set(services)
    for name, service in override["services"].items():
        assert service == {"image": service["image"]}, f"{name}: only its image changes"
    by_image = {name: s["image"] for name, s in override["services"].items()}
    assert by_image["redis"] == "wa-local/redis:3"
    assert by_image["seaweedfs"] == "wa-local/sw:4"
    assert by_image["web"] == by_image["worker"] == by_image["beat"] == "app:t"
    assert by_image["proxy"] == "proxy:t"


def test_seaweedfs_stand_in_is_the_version_the_tests_pin() -> None:
    version = seaweedfs_version()
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    assert compose["services"]["seaweedfs"]["image"].endswith(f":{version}")
