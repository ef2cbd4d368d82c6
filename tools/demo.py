"""``make demo``: the daily example DAG, run by Airflow against the fake Audit Logs API.

No Slack org needed. The demo starts the fake server on a free loopback port, makes a throwaway
AIRFLOW_HOME under ``.demo/``, points the ``slack_audit_default`` connection at the server, runs
``airflow dags test slack_audit_daily <today>`` (which lands yesterday) and prints what landed, read
back through the window's manifest. Then it runs ``slack_audit_warehouse`` for the same date, which
finds the day already landed (every interval is skipped) and loads it into the embedded SQLite
warehouse ``.demo/warehouse.db``, and prints events per action from a SQL query. Airflow's own
output goes to ``.demo/demo.log``.

It drives the repository (its example DAGs, its ``.demo/`` folder), so it lives beside the package, not
in the wheel. Run it from the repository root: ``.venv/bin/python tools/demo.py`` (``make demo``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import IO

DAG_ID = "slack_audit_daily"
WAREHOUSE_DAG_ID = "slack_audit_warehouse"
SERVER_START_TIMEOUT = 30.0
AIRFLOW_TIMEOUT = 300.0
TOP_ACTIONS = 8


class DemoError(Exception):
    """A step failed; the message says which, and where its output went."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    repo = args.repo.resolve()
    dag_file = repo / "example_dags" / f"{DAG_ID}.py"
    if not dag_file.is_file():
        print(f"{dag_file} not found: run the demo from the repository root (make demo)", file=sys.stderr)
        return 2
    demo_dir = repo / ".demo"
    home, landing, log_path = demo_dir / "airflow_home", demo_dir / "landing", demo_dir / "demo.log"
    for fresh in (home, landing):
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
    (demo_dir / "warehouse.db").unlink(missing_ok=True)
    started = time.monotonic()
    with log_path.open("w") as log:
        try:
            returncode = _run_demo(args, repo, dag_file, home, landing, log)
        except DemoError as error:
            print(f"\n{error}\nAirflow's output: {log_path}", file=sys.stderr)
            return 1
    print(f"\nDone in {time.monotonic() - started:.0f} s; Airflow's output is in {_shown(log_path, repo)}.")
    return returncode


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/demo.py",
        description="Run the slack_audit_daily DAG against a fake Slack Audit Logs API.",
    )
    parser.add_argument("--events", type=int, default=20_000, help="events the fake org has (default 20000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fake org's events")
    parser.add_argument(
        "--date",
        type=date.fromisoformat,
        default=datetime.now(timezone.utc).date(),
        help="logical date of the run (default today, UTC): it lands the day before",
    )
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root (default: cwd)")
    return parser


def _run_demo(
    args: argparse.Namespace, repo: Path, dag_file: Path, home: Path, landing: Path, log: IO[str]
) -> int:
    # The fake org's events cover the three days before the logical date, so the run finds data.
    span_end = datetime(args.date.year, args.date.month, args.date.day, tzinfo=timezone.utc)
    span = (span_end - timedelta(days=3), span_end)
    with _fake_server(args.events, args.seed, span, home.parent, log) as base_url:
        print(f"Fake Slack Audit Logs API: {base_url} ({args.events} events in the 3 days before the date)")
        env = _airflow_env(repo, home, landing, base_url)
        print(f"Airflow home: {_shown(home, repo)} (migrating its metadata DB)")
        _run(["db", "migrate"], env, log, what="airflow db migrate")
        print(f"Running: airflow dags test {DAG_ID} {args.date.isoformat()}")
        returncode = _run(
            ["dags", "test", DAG_ID, args.date.isoformat()],
            env,
            log,
            what=None,
        )
        _report(landing, repo)
        print(f"airflow dags test exited with status {returncode}")
        if returncode != 0:
            return returncode
        print(f"\nRunning: airflow dags test {WAREHOUSE_DAG_ID} {args.date.isoformat()} (then loads)")
        returncode = _run(
            ["dags", "test", WAREHOUSE_DAG_ID, args.date.isoformat()],
            env,
            log,
            what=None,
        )
    _report_warehouse(home.parent / "warehouse.db", args.date, repo)
    print(f"airflow dags test exited with status {returncode}")
    return returncode


@contextmanager
def _fake_server(
    events: int, seed: int, span: tuple[datetime, datetime], workdir: Path, log: IO[str]
) -> Iterator[str]:
    """Run ``python -m airflow_provider_slack_audit.testing`` on a free port; yield its base URL."""
    ready_file = workdir / "server_url"
    ready_file.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "airflow_provider_slack_audit.testing",
        "--port=0",
        f"--events={events}",
        f"--seed={seed}",
        f"--start={span[0].isoformat()}",
        f"--end={span[1].isoformat()}",
        f"--ready-file={ready_file}",
    ]
    log.flush()
    # The command is this interpreter and arguments built here: nothing comes from outside.
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        yield _wait_for_url(server, ready_file)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_for_url(server: subprocess.Popen[bytes], ready_file: Path) -> str:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while not ready_file.exists():
        if server.poll() is not None:
            raise DemoError(f"the fake Audit Logs server exited with status {server.returncode}")
        if time.monotonic() > deadline:
            raise DemoError(f"the fake Audit Logs server did not start within {SERVER_START_TIMEOUT:.0f} s")
        time.sleep(0.05)
    return ready_file.read_text().strip()


def _airflow_env(repo: Path, home: Path, landing: Path, base_url: str) -> dict[str, str]:
    """The caller's environment without its Airflow settings, plus the demo's."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    connection = {"conn_type": "slack_audit", "password": "xoxp-test", "extra": {"base_url": base_url}}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "example_dags"),
            "AIRFLOW_CONN_SLACK_AUDIT_DEFAULT": json.dumps(connection),
            "SLACK_AUDIT_BASE_PATH": landing.as_uri(),
            "SLACK_AUDIT_DEMO_DIR": str(home.parent),
        }
    )
    return env


def _run(arguments: list[str], env: Mapping[str, str], log: IO[str], *, what: str | None) -> int:
    """Run the ``airflow`` CLI with output to the log; ``what`` names a step that must succeed."""
    airflow = Path(sys.executable).with_name("airflow")
    log.write(f"\n$ airflow {' '.join(arguments)}\n")
    log.flush()
    try:
        result = subprocess.run(  # noqa: S603 - the airflow next to this interpreter, fixed arguments
            [str(airflow), *arguments],
            env=dict(env),
            cwd=env["AIRFLOW_HOME"],
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=AIRFLOW_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DemoError(
            f"airflow {arguments[0]} {arguments[1]} took more than {AIRFLOW_TIMEOUT:.0f} s"
        ) from None
    if what is not None and result.returncode != 0:
        raise DemoError(f"{what} failed with status {result.returncode}")
    return result.returncode


def _report(landing: Path, repo: Path) -> None:
    """Print what landed, read back the way a warehouse load reads it: through the manifest."""
    manifests = sorted((landing / "_manifests").glob("*.manifest.json"))
    if not manifests:
        print(f"Nothing landed under {_shown(landing, repo)} (no manifest): see the log.")
        return
    # Imported here: reading the landing goes through Airflow's ObjectStoragePath, slow to import.
    from airflow_provider_slack_audit.ingest.landing import read_manifest

    for path in manifests:
        manifest = read_manifest(path.as_uri())
        actions = Counter(entry.get("action", "?") for entry in manifest.iter_entries())
        start, end = manifest.window.start, manifest.window.end
        print(f"\nLanded [{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}) UTC under {_shown(landing, repo)}")
        print(f"  intervals: {len(manifest.intervals)} files ({manifest.compression or 'uncompressed'})")
        print(f"  events:    {manifest.events:,} ({manifest.bytes:,} bytes)")
        print("  top actions:")
        for action, count in actions.most_common(TOP_ACTIONS):
            print(f"    {count:>8,}  {action}")
        print(f"  manifest:  {_shown(path, repo)}")


def _report_warehouse(database: Path, logical_date: date, repo: Path) -> None:
    """Print events per action of the loaded day, queried from the SQLite warehouse."""
    if not database.exists():
        print(f"No warehouse at {_shown(database, repo)}: see the log.")
        return
    day = logical_date - timedelta(days=1)
    query = (
        "SELECT action, COUNT(*) FROM slack_audit_logs WHERE date_create >= ? AND date_create < ? "
        "GROUP BY action ORDER BY 2 DESC, 1"
    )
    with closing(sqlite3.connect(database)) as db:
        rows = db.execute(query, (day.isoformat(), logical_date.isoformat())).fetchall()
    print(f"\nWarehouse {_shown(database, repo)}, table slack_audit_logs, events per action on {day}:")
    print(f"  {query.replace('?', repr(day.isoformat()), 1).replace('?', repr(logical_date.isoformat()), 1)}")
    for action, count in rows:
        print(f"    {count:>8,}  {action}")
    print(f"    {sum(count for _, count in rows):>8,}  (all)")


def _shown(path: Path, repo: Path) -> str:
    """``path`` relative to the repository when it is inside it, for short output lines."""
    try:
        return str(path.relative_to(repo))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
