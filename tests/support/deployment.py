"""A real Airflow deployment on loopback for the system tests: api-server, scheduler (LocalExecutor),
DAG processor and triggerer, each its own process, on a throwaway AIRFLOW_HOME with a SQLite
metadata DB.

Unlike ``airflow dags test`` (which runs every task and trigger in one process), this shows where a
task runs: on a worker process of the executor, or on the triggerer. The tests read the task
instances' states from the metadata DB and the processes' logs from the home.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AIRFLOW = Path(sys.executable).with_name("airflow")


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Deployment:
    """A running Airflow on loopback; :meth:`start` each component, :meth:`stop` them all."""

    home: Path
    dags_folder: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.home / "airflow.db"

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db_path}",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": "system-test-secret-not-for-production",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                # A killed triggerer's triggers move to another one after this many seconds.
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "6",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            }
        )
        env.update(self.extra_env)
        return env

    def airflow(self, *arguments: str, timeout: float = 180) -> str:
        """Run an ``airflow`` command to completion; its output, or an AssertionError with it."""
        result = subprocess.run(
            [str(AIRFLOW), *arguments],
            cwd=self.home,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, (
            f"airflow {' '.join(arguments)}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
        return result.stdout

    def start(self, component: str, *arguments: str) -> subprocess.Popen[bytes]:
        """Start ``airflow <component>`` in its own process group; output to ``<home>/<name>.log``."""
        name = component if component not in self.processes else f"{component}-{len(self.processes)}"
        with (self.home / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [str(AIRFLOW), component, *arguments],
                cwd=self.home,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def start_all(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.airflow("db", "migrate")
        for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
            self.start(component)

    def kill(self, name: str) -> None:
        """SIGKILL a component and everything it started: a crash, as far as Airflow can tell."""
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM every component, then SIGKILL whatever is left after 20 s."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def query(self, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.db_path, timeout=30)) as db:
            return db.execute(sql, parameters).fetchall()

    def wait_for(self, what: str, condition: Callable[[], Any], timeout: float, poll: float = 0.2) -> Any:
        """Poll ``condition`` until it returns something truthy; fail naming ``what`` and the logs."""
        deadline = time.monotonic() + timeout
        while True:
            for name, process in self.processes.items():
                assert process.poll() is None or name.startswith("triggerer"), (
                    f"{name} exited: {self.tail(name)}"
                )
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {name}\n{self.tail(name)}" for name in self.processes)
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")
            time.sleep(poll)

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.home / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def wait_until_parsed(self, dag_ids: list[str], timeout: float = 120) -> None:
        def parsed() -> bool:
            try:
                rows = self.query("SELECT dag_id FROM serialized_dag")
            except sqlite3.OperationalError:
                return False
            return set(dag_ids) <= {row[0] for row in rows}

        self.wait_for(f"the DAG processor to serialize {dag_ids}", parsed, timeout)

    def trigger(self, dag_id: str, run_id: str, conf: Mapping[str, Any]) -> None:
        self.airflow("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(dict(conf)))

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> tuple[str | None, int] | None:
        rows = self.query(
            "SELECT state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ?",
            dag_id,
            run_id,
            task_id,
        )
        return (rows[0][0], int(rows[0][1])) if rows else None


@contextmanager
def running_deployment(home: Path, dags_folder: Path, env: Mapping[str, str]) -> Iterator[Deployment]:
    deployment = Deployment(home, dags_folder, env)
    try:
        deployment.start_all()
        yield deployment
    finally:
        deployment.stop()
