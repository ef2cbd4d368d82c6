"""``python -m airflow_provider_slack_audit verify <destination> [--window A B] [--expect-ledger SEQ:SHA256]
[--json] [--conn-id ID]``.

Re-checks a landed destination (see :mod:`airflow_provider_slack_audit.ingest.verify`) and prints a
report an auditor can keep. Exit status: 0 when everything verifies, 1 on any mismatch, 2 on a
usage error (bad arguments, a destination that cannot be opened).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_slack_audit",
        description="Tools for data landed by the Slack Audit Logs provider.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser(
        "verify",
        help="re-check every data file against its commit marker and the window manifests",
        description="Re-check a destination: data files, commit markers, manifests and id digests. "
        "Exit 0 when everything verifies, 1 on any mismatch, 2 on a usage error.",
    )
    verify.add_argument(
        "destination", help="the landing destination, e.g. file:///data/slack_audit or s3://b/p"
    )
    verify.add_argument(
        "--window",
        nargs=2,
        metavar=("START", "END"),
        help="verify only what overlaps [START, END) (ISO 8601 with a UTC offset, e.g. 2026-01-04T00:00:00Z)",
    )
    verify.add_argument(
        "--expect-ledger",
        metavar="SEQ:SHA256",
        help="a ledger head kept elsewhere (a landing task's summary reports one as ledger.seq and "
        "ledger.sha256): fail unless the ledger reaches it with those bytes",
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument("--conn-id", help="the Airflow connection of the destination's object store")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from airflow_provider_slack_audit.ingest.windows import Window

    window = None
    if args.window is not None:
        try:
            window = Window(*args.window)
        except (ValueError, TypeError) as error:
            parser.error(f"--window: {error}")
    expect_ledger = None
    if args.expect_ledger is not None:
        from airflow_provider_slack_audit.ingest.landing.ledger import LedgerHead

        try:
            expect_ledger = LedgerHead.parse(args.expect_ledger)
        except ValueError as error:
            parser.error(f"--expect-ledger: {error}")
    if "://" not in args.destination:
        parser.error(
            f"destination {args.destination!r} is not a URL: pass e.g. file:///data/slack_audit or s3://bucket/p"
        )
    from airflow_provider_slack_audit.ingest.verify import verify_destination

    try:
        report = verify_destination(
            args.destination, window=window, conn_id=args.conn_id, expect_ledger=expect_ledger
        )
    except (ValueError, ImportError, OSError) as error:
        print(f"error: cannot open destination {args.destination}: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.to_text(), end="")
    return EXIT_OK if report.ok else EXIT_MISMATCH


if __name__ == "__main__":
    sys.exit(main())
