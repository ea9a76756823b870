"""`python -m graphsim`: run the simulator in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Sequence

from graphsim.server import Simulator


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m graphsim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default="sim-token", help="the initially valid access token")
    parser.add_argument("--version", default="v23.0", help="the Graph API version served")
    parser.add_argument("--url-ttl", type=float, default=300.0, help="download URL lifetime (s)")
    parser.add_argument("--d360-key", default="d360-key", help="the initially valid 360dialog key")
    parser.add_argument(
        "--onprem-token", default="onprem-token", help="the initially valid On-Premises token"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then stop cleanly."""
    args = _parse(argv)
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    # Blocked before the server thread exists so that every thread inherits the mask and the
    # signals wait for sigwait below: no handler runs in the middle of other code.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    simulator = Simulator(
        token=args.token,
        version=args.version,
        url_ttl=args.url_ttl,
        d360_keys=[args.d360_key],
        onprem_tokens=[args.onprem_token],
    )
    simulator.start(args.host, args.port)
    try:
        print(f"graphsim listening on {simulator.url}", flush=True)
        print(f"graphsim foreign host on {simulator.foreign_url}", flush=True)
        print(f"graphsim 360dialog on {simulator.d360_url}", flush=True)
        print(f"graphsim On-Premises on {simulator.onprem_url}", flush=True)
        signal.sigwait(stop_signals)
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
