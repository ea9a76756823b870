"""An address of this machine that is not loopback, for tests of what may travel off it."""

from __future__ import annotations

import socket

import pytest

__all__ = ["other_address"]


def other_address() -> str:
    """An IPv4 address of this machine other than loopback (learning it sends no packet);
    skips the test on a machine that has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only the route is looked up
        except OSError:
            pytest.skip("this machine has no address other than loopback")
        address: str = probe.getsockname()[0]
    if address.startswith("127."):
        pytest.skip("this machine has no address other than loopback")
    return address
