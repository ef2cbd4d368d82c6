"""Fixtures for the warehouse load tests: a throwaway PostgreSQL server, SQLite files, landed windows.

The PostgreSQL server is a real one (the Debian ``postgresql`` package), started once per session on
127.0.0.1 in a temp dir and stopped at the end. Without the binaries the Postgres tests skip on a
laptop and fail in CI (``CI`` set), so CI can never pass by silently testing less.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from warehouses import PostgresServer, Warehouse


def _postgres_bindir() -> Path | None:
    """The newest installed Debian PostgreSQL bindir holding initdb, pg_ctl and postgres."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(Path(path).parent.name), reverse=True
    )
    for candidate in candidates:
        bindir = Path(candidate)
        if all((bindir / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster on 127.0.0.1:<free port>, trust auth, fsync off; removed at session end."""
    bindir = _postgres_bindir()
    if bindir is None:
        message = "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)

    # initdb refuses to run as root: run the server as the `postgres` user, in a dir it owns.
    # mkdtemp (not tmp_path) because pytest's base temp dir is private to root.
    run_as: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="slack-audit-pg-"))
    if run_as:
        shutil.chown(root, user="postgres", group="postgres")
    data_dir, log_file = root / "data", root / "server.log"
    port = _free_loopback_port()

    def run(*args: str) -> None:
        subprocess.run([*run_as, *args], check=True, capture_output=True, timeout=120)

    try:
        run(str(bindir / "initdb"), "-D", str(data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync")  # fmt: skip
        server_options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data_dir),
            "-l",
            str(log_file),
            "-o",
            server_options,
            "-w",
            "start",
        )
    except subprocess.CalledProcessError as error:
        log = log_file.read_text() if log_file.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {error.stderr.decode()}\n{log}")
    try:
        yield PostgresServer(host="127.0.0.1", port=port, user="postgres", database="postgres")
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Warehouse]:
    """Each test runs once on a fresh SQLite file and once on the session's PostgreSQL server."""
    table = f"audit_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        conn = {"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")}
        monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_SQLITE", json.dumps(conn))
        yield Warehouse("sqlite", "warehouse_sqlite", table)
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_POSTGRES", server.connection_json())
    warehouse = Warehouse("postgres", "warehouse_postgres", table)
    yield warehouse
    warehouse.hook().run(f"DROP TABLE IF EXISTS {table}")


@pytest.fixture
def landing_dir(tmp_path: Path) -> Path:
    """Where a test lands its windows (the destination root; manifests go to its _manifests/)."""
    path = tmp_path / "landing"
    path.mkdir()
    return path
