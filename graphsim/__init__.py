"""A local stand-in for Meta's WhatsApp Cloud API (media look-up, download, send) for tests."""

from graphsim import webhooks
from graphsim.client import MediaRecord, SimulatorClient, SimulatorError
from graphsim.server import Simulator

__all__ = ["MediaRecord", "Simulator", "SimulatorClient", "SimulatorError", "webhooks"]
