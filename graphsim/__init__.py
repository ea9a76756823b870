"""A local stand-in for WhatsApp's provider APIs (Cloud API, 360dialog, On-Premises) for tests."""

from graphsim.client import MediaRecord, SimulatorClient, SimulatorError
from graphsim.server import Simulator

__all__ = ["MediaRecord", "Simulator", "SimulatorClient", "SimulatorError"]
