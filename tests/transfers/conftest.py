"""Fixtures for the warehouse load tests: throwaway PostgreSQL and MariaDB servers, SQLite files.

The servers are real ones (the Debian ``postgresql`` and ``mariadb-server`` packages), started once
per session on 127.0.0.1 in a temp dir and stopped at the end. Without the binaries their tests skip
on a laptop and fail in CI (``CI`` set), so CI can never pass by silently testing less.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.emulators import free_loopback_port, stop_process
from support.postgres import MISSING_BINARIES, PostgresError, postgres_bindir, postgres_cluster
from support.warehouses import MariaDbServer, PostgresServer, Warehouse


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster on 127.0.0.1:<free port> (support.postgres); removed at session end."""
    if postgres_bindir() is None:
        _missing(MISSING_BINARIES)
    try:
        with postgres_cluster() as cluster:
            yield PostgresServer(host=cluster.host, port=cluster.port, user=cluster.user, database="postgres")
    except PostgresError as error:
        pytest.fail(str(error))


def _missing(message: str) -> None:
    """Skip on a laptop, fail in CI: CI must never pass by testing less."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDbServer]:
    """A MariaDB server on 127.0.0.1:<free port>, root without password, a database ``slack_audit``."""
    install_db, server = (
        shutil.which("mariadb-install-db"),
        shutil.which("mariadbd", path="/usr/sbin:/usr/bin"),
    )
    if install_db is None or server is None:
        _missing("MariaDB binaries (mariadb-install-db, mariadbd) not found (apt-get install mariadb-server)")
    assert install_db is not None and server is not None
    # mariadbd refuses to run as root unless told to: run it as `mysql`, in a dir it owns.
    run_as: list[str] = ["runuser", "-u", "mysql", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="slack-audit-mariadb-"))
    if run_as:
        shutil.chown(root, user="mysql", group="mysql")
    data_dir, socket_path, log_file = root / "data", root / "mariadb.sock", root / "server.log"
    port = free_loopback_port()
    try:
        # --skip-name-resolve makes the root account root@127.0.0.1, which TCP clients match.
        subprocess.run(
            [*run_as, install_db, "--no-defaults", f"--datadir={data_dir}", "--skip-test-db",
             "--auth-root-authentication-method=normal", "--skip-name-resolve"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    except subprocess.CalledProcessError as error:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"mariadb-install-db failed: {error.stderr.decode()}")
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [*run_as, server, "--no-defaults", f"--datadir={data_dir}", f"--socket={socket_path}",
             f"--port={port}", "--bind-address=127.0.0.1", "--skip-name-resolve", "--skip-log-bin",
             "--innodb-flush-log-at-trx-commit=0", "--innodb-buffer-pool-size=64M"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    info = MariaDbServer(host="127.0.0.1", port=port, user="root", database="slack_audit")
    try:
        _wait_for_mariadb(info, process, log_file)
        yield info
    finally:
        stop_process(process, grace=60)
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_mariadb(info: MariaDbServer, process: subprocess.Popen[bytes], log_file: Path) -> None:
    """Wait until the server accepts connections, then create the test database."""
    import MySQLdb

    deadline = time.monotonic() + 60
    while True:
        try:
            conn = MySQLdb.connect(host=info.host, port=info.port, user=info.user)
            break
        except MySQLdb.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"could not start MariaDB:\n{log_file.read_text()}")
            time.sleep(0.2)
    try:
        conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {info.database}")
    finally:
        conn.close()


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def warehouse(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Warehouse]:
    """Each test runs on a fresh SQLite file, the session's PostgreSQL server and its MariaDB server."""
    table = f"audit_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        conn = {"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")}
        monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_SQLITE", json.dumps(conn))
        yield Warehouse("sqlite", "warehouse_sqlite", table)
        return
    server: PostgresServer | MariaDbServer = request.getfixturevalue(f"{request.param}_server")
    conn_id = f"warehouse_{request.param}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", server.connection_json())
    warehouse = Warehouse(request.param, conn_id, table)
    yield warehouse
    warehouse.drop()


@pytest.fixture
def landing_dir(tmp_path: Path) -> Path:
    """Where a test lands its windows (the destination root; manifests go to its _manifests/)."""
    path = tmp_path / "landing"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def snowflake_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """fakesnow's server over TLS on 127.0.0.1 (see support.emulators); needs the [emulators] extra."""
    for module in ("fakesnow", "airflow.providers.snowflake"):
        try:
            __import__(module)
        except ImportError:
            _missing(f"{module} is not installed: pip install -e '.[emulators]'")
    from support.emulators import snowflake_emulator as serve

    with serve(tmp_path_factory.mktemp("fakesnow")) as emulator:
        yield emulator


@pytest.fixture
def snowflake_conn(snowflake_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The id of an Airflow connection to the Snowflake emulator (set in this test's environment)."""
    for key, value in snowflake_emulator.env("warehouse_snowflake").items():
        monkeypatch.setenv(key, value)
    return "warehouse_snowflake"


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """local-bigquery on 127.0.0.1 (see support.emulators), installed from PyPI on first use."""
    try:
        __import__("airflow.providers.google.cloud.hooks.bigquery")
    except ImportError:
        _missing("the Google provider is not installed: pip install -e '.[emulators]'")
    from support.emulators import bigquery_emulator as serve
    from support.emulators import python_313_or_skip

    python_313_or_skip()  # skips without one, even in CI (see support.emulators)
    with serve(tmp_path_factory.mktemp("local_bigquery")) as emulator:
        yield emulator


@pytest.fixture
def bigquery_conn(bigquery_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The id of an Airflow connection to the BigQuery emulator (set in this test's environment)."""
    for key, value in bigquery_emulator.env("warehouse_bigquery").items():
        monkeypatch.setenv(key, value)
    return "warehouse_bigquery"
