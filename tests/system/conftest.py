"""Shared machinery of the system tests: Airflow itself runs the example DAGs against the fake API.

- ``airflow_home`` (session): a throwaway AIRFLOW_HOME, migrated once, whose DAGs folder is
  ``example_dags/``; its ``dags_test`` / ``start_dags_test`` run ``airflow dags test`` as a subprocess.
- ``audit_server``: a factory of :class:`FakeAuditLogsServer` instances running on a thread of the
  pytest process, so a test can script faults and read the request log while Airflow talks to it;
  ``serve_fake_api`` is the same as a context manager, for module-scoped fixtures.
- ``connection_env``: ``connection_env(server, **extra)`` is the ``AIRFLOW_CONN_SLACK_AUDIT_DEFAULT``
  variable pointing at a server.

Test modules use these through fixtures only (several test folders have a conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.testing import FakeAuditLogsServer

from support import connections
from support.airflow_quirks import RESERIALIZE_BEFORE_DAGS_TEST

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "example_dags"
AIRFLOW = Path(sys.executable).with_name("airflow")
DAGS_TEST_TIMEOUT = 240


@dataclass(frozen=True)
class DagsTestRun:
    """A finished ``airflow dags test``: its exit status and where its output went."""

    returncode: int
    log: Path

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def assert_succeeded(self) -> None:
        assert self.returncode == 0, (
            f"airflow dags test failed ({self.returncode}); {self.log}:\n{self.tail()}"
        )


@dataclass(frozen=True)
class AirflowHome:
    """A migrated AIRFLOW_HOME and the environment that runs the example DAGs in it."""

    path: Path

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The process environment: the caller's, minus its Airflow settings, plus this home's."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
        env.update(
            {
                "AIRFLOW_HOME": str(self.path),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            }
        )
        env.update(extra or {})
        return env

    def start_dags_test(
        self,
        dag_id: str,
        logical_date: datetime,
        *,
        env: Mapping[str, str],
        log: Path,
        conf: Mapping[str, Any] | None = None,
    ) -> DagsTestProcess:
        """Start ``airflow dags test`` in its own process group, so a test can kill all of it."""
        if RESERIALIZE_BEFORE_DAGS_TEST:
            self.reserialize(env=env, log=log)
        command = [str(AIRFLOW), "dags", "test", dag_id, logical_date.isoformat()]
        if conf is not None:
            command += ["--conf", json.dumps(dict(conf))]
        with log.open("ab") as output:
            process = subprocess.Popen(
                command,
                cwd=self.path,
                env=self.env(env),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return DagsTestProcess(process, log)

    def reserialize(self, *, env: Mapping[str, str], log: Path) -> None:
        """Parse the DAGs folder into the metadata DB (``airflow dags reserialize``), as the DAG
        processor would: with ``env``, so the outlets it registers are the ones the run will have."""
        with log.open("ab") as output:
            result = subprocess.run(
                [str(AIRFLOW), "dags", "reserialize"],
                cwd=self.path,
                env=self.env(env),
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=DAGS_TEST_TIMEOUT,
                check=False,
            )
        assert result.returncode == 0, f"airflow dags reserialize failed; see {log}"

    def dags_test(
        self,
        dag_id: str,
        logical_date: datetime,
        *,
        env: Mapping[str, str],
        log: Path,
        conf: Mapping[str, Any] | None = None,
    ) -> DagsTestRun:
        """Run ``airflow dags test`` to completion; its output goes to ``log``."""
        return self.start_dags_test(dag_id, logical_date, env=env, log=log, conf=conf).wait()

    def latest_try_number(self, dag_id: str, task_id: str) -> int:
        """How many tries ``task_id`` took in the DAG's most recent run (from the SQLite metadata DB)."""
        query = (
            "SELECT ti.try_number FROM task_instance AS ti JOIN dag_run AS dr"
            " ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id"
            " WHERE ti.dag_id = ? AND ti.task_id = ? ORDER BY dr.id DESC LIMIT 1"
        )
        with closing(sqlite3.connect(self.path / "airflow.db")) as db:
            row = db.execute(query, (dag_id, task_id)).fetchone()
        assert row is not None, f"no task instance of {dag_id}.{task_id} in {self.path}"
        return int(row[0])


@dataclass(frozen=True)
class DagsTestProcess:
    """A running ``airflow dags test``, leader of its own process group."""

    process: subprocess.Popen[bytes]
    log: Path

    def wait(self, timeout: float = DAGS_TEST_TIMEOUT) -> DagsTestRun:
        try:
            returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return DagsTestRun(returncode, self.log)

    def kill(self) -> None:
        """SIGKILL the process and everything it started (a crash, as far as Airflow can tell)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> AirflowHome:
    """A throwaway AIRFLOW_HOME with a migrated SQLite metadata DB (once per test session)."""
    home = AirflowHome(tmp_path_factory.mktemp("airflow_home"))
    result = subprocess.run(
        [str(AIRFLOW), "db", "migrate"],
        cwd=home.path,
        env=home.env(),
        capture_output=True,
        text=True,
        timeout=DAGS_TEST_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, (
        f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return home


@contextmanager
def running_server(**kwargs: Any) -> Iterator[FakeAuditLogsServer]:
    """A FakeAuditLogsServer (built from ``kwargs``) serving on a daemon thread of this process.

    Running it here rather than in a subprocess lets the test script faults and read
    ``logs_requests()`` while ``airflow dags test`` (another process) talks to it.
    """
    server = FakeAuditLogsServer(**kwargs)
    server.start_in_thread()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def serve_fake_api() -> Callable[..., AbstractContextManager[FakeAuditLogsServer]]:
    """``with serve_fake_api(**kwargs) as server``: for fixtures wider than one test."""
    return running_server


@pytest.fixture
def audit_server() -> Iterator[Callable[..., FakeAuditLogsServer]]:
    """Start fake servers with ``audit_server(**kwargs)``; they stop when the test ends."""
    with ExitStack() as stack:
        yield lambda **kwargs: stack.enter_context(running_server(**kwargs))


def _connection_env(server: FakeAuditLogsServer, **extra: Any) -> dict[str, str]:
    return connections.connection_env(server.base_url, **extra)


@pytest.fixture(scope="session")
def connection_env() -> Callable[..., dict[str, str]]:
    """``connection_env(server, **extra)``: ``AIRFLOW_CONN_SLACK_AUDIT_DEFAULT`` pointing at ``server``."""
    return _connection_env
