"""Fixtures of the simulator's unit tests: one server per module, reset for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from graphsim import Simulator, SimulatorClient


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


@pytest.fixture
def client(sim: Simulator) -> Iterator[SimulatorClient]:
    with sim.client() as control:
        control.reset()
        yield control
