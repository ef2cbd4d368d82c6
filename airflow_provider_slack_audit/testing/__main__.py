"""Run the fake Audit Logs server standalone: ``python -m airflow_provider_slack_audit.testing``.

Once it listens it prints exactly one line, ``listening on http://127.0.0.1:PORT/audit/v1/``, and
serves until SIGTERM or SIGINT. Demos and benchmarks start it as a separate process and read that
line (or ``--ready-file``) to learn the URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from .faults import FAULT_KINDS, FaultPlan
from .server import FakeAuditLogsServer


def _utc_datetime(value: str) -> datetime:
    """Parse an ISO 8601 date or datetime; one without a time zone is taken as UTC."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _fault_rate(value: str) -> tuple[str, float]:
    kind, separator, rate = value.partition("=")
    if not separator or kind not in FAULT_KINDS:
        raise argparse.ArgumentTypeError(
            f"expected KIND=RATE with KIND among {', '.join(FAULT_KINDS)}: {value!r}"
        )
    return kind, float(rate)


def build_parser() -> argparse.ArgumentParser:
    """The command line: data set, limits and faults of the server."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_slack_audit.testing",
        description="Serve a fake Slack Audit Logs API on 127.0.0.1 until SIGTERM/SIGINT.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default)")
    parser.add_argument("--events", type=int, default=20_000, help="number of events (default 20000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the deterministic data set")
    parser.add_argument(
        "--start", type=_utc_datetime, help="first instant of the events, ISO 8601 (naive = UTC)"
    )
    parser.add_argument("--end", type=_utc_datetime, help="end (exclusive) of the events, ISO 8601")
    parser.add_argument(
        "--token", action="append", dest="tokens", help="accepted token, repeatable (default xoxp-test)"
    )
    parser.add_argument("--requests-per-minute", type=float, help="org-wide rate limit (default: none)")
    parser.add_argument("--rate-limit-burst", type=int, help="requests allowed at once (default: a minute's)")
    parser.add_argument("--late-fraction", type=float, default=0.0, help="share of events arriving late")
    parser.add_argument("--late-delay", type=int, default=0, help="seconds late events are delayed")
    parser.add_argument(
        "--fault-rate",
        type=_fault_rate,
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="inject a fault into that share of logs requests, repeatable (e.g. http_503=0.05)",
    )
    parser.add_argument("--slow-seconds", type=float, default=5.0, help="delay of the `slow` fault")
    parser.add_argument(
        "--bench",
        action="store_true",
        help="pre-render every entry at start so the server is never the bottleneck",
    )
    parser.add_argument("--ready-file", type=Path, help="also write the base URL to this file once listening")
    return parser


def build_server(args: argparse.Namespace) -> FakeAuditLogsServer:
    return FakeAuditLogsServer(
        events=args.events,
        seed=args.seed,
        start=args.start,
        end=args.end,
        tokens=args.tokens or ("xoxp-test",),
        late_fraction=args.late_fraction,
        late_delay=args.late_delay,
        requests_per_minute=args.requests_per_minute,
        rate_limit_burst=args.rate_limit_burst,
        faults=FaultPlan(seed=args.seed, rates=dict(args.fault_rate), slow_seconds=args.slow_seconds),
        pre_render=args.bench,
    )


async def serve(server: FakeAuditLogsServer, port: int, ready_file: Path | None) -> None:
    """Listen, announce the URL, and serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        base_url = await server.start(port)
        stack.push_async_callback(server.close)
        if ready_file is not None:
            # Write then rename, so a reader polling for the file never sees half a URL.
            partial = ready_file.with_name(ready_file.name + ".partial")
            partial.write_text(base_url + "\n")
            partial.replace(ready_file)
        print(f"listening on {base_url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server = build_server(args)
    try:
        import uvloop  # optional: faster loopback serving for benchmarks, when installed
    except ImportError:
        asyncio.run(serve(server, args.port, args.ready_file))
    else:
        uvloop.run(serve(server, args.port, args.ready_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
