"""A throwaway PostgreSQL cluster on loopback, started from the Debian binaries.

The one start-up used by the warehouse load tests (tests/transfers/conftest.py), the load benchmark
(benchmarks/bench_load.py) and the Airflow deployment harness (support.airflow_deployment): initdb
in a temp dir, ``pg_ctl start`` on a free 127.0.0.1 port with trust authentication for the
``postgres`` user and fsync off, and the directory removed on exit.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.emulators import free_loopback_port

LOOPBACK = "127.0.0.1"
MISSING_BINARIES = (
    "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
)


class PostgresError(RuntimeError):
    """PostgreSQL could not start; the message says why (the binaries, or initdb's and the log's tail)."""


def postgres_bindir() -> Path | None:
    """The newest installed Debian PostgreSQL bindir holding initdb, pg_ctl and postgres."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(Path(path).parent.name), reverse=True
    )
    for candidate in candidates:
        bindir = Path(candidate)
        if all((bindir / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


@dataclass(frozen=True)
class PostgresCluster:
    """A running cluster on 127.0.0.1 with trust authentication for the ``postgres`` user."""

    port: int
    root: Path
    host: str = LOOPBACK
    user: str = "postgres"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL (Airflow's metadata DB) of ``database``."""
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def connection(self, database: str = "postgres") -> dict[str, Any]:
        """An Airflow connection (``AIRFLOW_CONN_<ID>`` JSON fields) to ``database``."""
        return {"conn_type": "postgres", "host": self.host, "port": self.port, "login": self.user,
                "schema": database}  # fmt: skip

    def connect(self, database: str = "postgres") -> Any:
        """A psycopg2 connection in autocommit mode."""
        import psycopg2

        connection = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=database)
        connection.autocommit = True
        return connection

    def create_database(self, name: str, *, template: str | None = None) -> None:
        """Create ``name``, empty or as a copy of ``template`` (which must have no open connection)."""
        from psycopg2 import sql

        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        self.query("postgres", statement)

    def query(self, database: str, statement: Any, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        connection = self.connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement, params)
                return list(cursor.fetchall()) if cursor.description else []
        finally:
            connection.close()


@contextmanager
def postgres_cluster(prefix: str = "slack-audit-pg-") -> Iterator[PostgresCluster]:
    """A throwaway cluster on a free loopback port; :class:`PostgresError` when it cannot start."""
    bindir = postgres_bindir()
    if bindir is None:
        raise PostgresError(MISSING_BINARIES)
    # initdb refuses to run as root: run the server as the `postgres` user, in a dir it owns.
    # mkdtemp (not pytest's tmp_path): pytest's base temp dir is private to the user running it.
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if run_as:
        shutil.chown(root, user="postgres", group="postgres")
    data_dir, log_file = root / "data", root / "server.log"
    port = free_loopback_port()

    def run(*args: str) -> None:
        subprocess.run([*run_as, *args], check=True, capture_output=True, timeout=180)

    try:
        run(str(bindir / "initdb"), "-D", str(data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync")  # fmt: skip
        options = (
            f"-c listen_addresses={LOOPBACK} -p {port} -k {root} -c max_connections=200 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        run(str(bindir / "pg_ctl"), "-D", str(data_dir), "-l", str(log_file), "-o", options, "-w", "start")
    except subprocess.CalledProcessError as error:
        log = log_file.read_text(errors="replace") if log_file.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresError(f"could not start PostgreSQL: {error.stderr.decode()}\n{log}") from error
    try:
        yield PostgresCluster(port=port, root=root)
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)
