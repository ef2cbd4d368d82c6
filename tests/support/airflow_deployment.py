"""A real Airflow deployment on loopback, for the system tests and the backfill benchmark.

``AirflowDeployment`` runs the components of an Airflow 3 deployment with the LocalExecutor:
scheduler, DAG processor, triggerer (more than one, with ``--queues``, if asked) and API server
(the task runners reach the execution API through it), each its own process group on 127.0.0.1,
on a throwaway ``AIRFLOW_HOME`` whose metadata DB is a SQLite file (:class:`SqliteMetadata`, the
default) or a database of a throwaway PostgreSQL (:class:`PostgresMetadata`, see support.postgres).
What a test or benchmark does with it: start and stop it, unpause a DAG, trigger runs and backfills,
wait for DAGs, runs or any condition, read task states and any table of the metadata DB, kill -9 and
restart a component, read its log, and sample a process tree (``ProcessSampler``).

Unlike ``airflow dags test`` (every task and trigger in one process), this shows where a task runs:
on a worker process of the executor, or on the triggerer.

Nothing here imports Airflow: every Airflow action is a CLI call or a query of the metadata DB, so
the harness runs in a process that measures, not one that competes with what is measured.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TypeVar

from support.emulators import free_loopback_port
from support.postgres import PostgresCluster

LOOPBACK = "127.0.0.1"
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
# Their log servers would listen on every interface (and on fixed ports other deployments use):
# the task and trigger logs are files under AIRFLOW_HOME here, read from there.
COMPONENT_ARGUMENTS = {"scheduler": ("--skip-serve-logs",), "triggerer": ("--skip-serve-logs",)}
# The loop probe's DAG file (see support/loop_probe_dag.py) and the name the deployment gives it.
LOOP_PROBE_SOURCE = Path(__file__).resolve().parent / "loop_probe_dag.py"
LOOP_PROBE_MODULE = "slack_audit_loop_probe"
LOOP_PROBE_DAG_ID = "slack_audit_loop_probe"
# What the system tests add (not the benchmark, whose figures are Airflow's defaults): a scheduler
# that sleeps less when idle, DAG files parsed once, and a triggerer that heartbeats every second,
# so a killed one's triggers move to another after 6 s instead of 30.
RESPONSIVE = {
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "6",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
}

T = TypeVar("T")


class DeploymentError(RuntimeError):
    """A component or a CLI call of the deployment failed, or a wait timed out; with the log's tail."""


# -- the metadata DB -----------------------------------------------------------------------------------


class MetadataDatabase(Protocol):
    """Where the deployment keeps its metadata: its SQLAlchemy URL, and queries with ``%s`` parameters."""

    @property
    def url(self) -> str: ...

    def create(self, *, template: str | None) -> None: ...

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True)
class SqliteMetadata:
    path: Path

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def create(self, *, template: str | None) -> None:
        if template is not None:
            raise ValueError("a SQLite metadata DB is migrated, not copied from a template")

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            # psycopg2's paramstyle, as PostgresMetadata takes it: %s a parameter, %% a percent sign.
            rows = db.execute(statement.replace("%s", "?").replace("%%", "%"), tuple(params)).fetchall()
            db.commit()
            return rows


@dataclass(frozen=True)
class PostgresMetadata:
    cluster: PostgresCluster
    database: str

    @property
    def url(self) -> str:
        return self.cluster.url(self.database)

    def create(self, *, template: str | None) -> None:
        """The database, empty or a copy of ``template`` (a migrated one: no ``db migrate`` needed)."""
        self.cluster.create_database(self.database, template=template)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.cluster.query(self.database, statement, params)


# -- Airflow -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunState:
    run_id: str
    state: str
    start: float | None  # Unix seconds
    end: float | None
    data_interval_start: float | None


def _epoch(value: datetime | str | None) -> float | None:
    """A timestamp column as Unix seconds: a datetime from PostgreSQL, a UTC text from SQLite."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


@dataclass
class AirflowDeployment:
    """An Airflow 3 deployment (LocalExecutor) in ``home``, on ``metadata`` (default: a SQLite file).

    ``dag_files`` are linked into a DAGs folder of its own (with the loop probe's when ``loop_probe``,
    see :meth:`start_loop_probe`); ``env`` adds to the components' environment (connections as
    ``AIRFLOW_CONN_*``, settings the DAG files read, :data:`RESPONSIVE`). ``parallelism`` is the
    executor's slots.
    """

    home: Path
    dag_files: Sequence[Path]
    env: Mapping[str, str] = field(default_factory=dict)
    metadata: MetadataDatabase | None = None
    parallelism: int = 8
    loop_probe: bool = False
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False)
    _arguments: dict[str, tuple[str, ...]] = field(default_factory=dict, init=False)
    _launches: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.dags_folder.mkdir(exist_ok=True)
        if self.metadata is None:
            self.metadata = SqliteMetadata(self.home / "airflow.db")
        for dag_file in self.dag_files:
            (self.dags_folder / dag_file.name).symlink_to(dag_file.resolve())
        if self.loop_probe:
            (self.dags_folder / f"{LOOP_PROBE_MODULE}.py").symlink_to(LOOP_PROBE_SOURCE)
        self.api_port = free_loopback_port()
        self._jwt_secret = secrets.token_urlsafe(32)

    @property
    def dags_folder(self) -> Path:
        return self.home / "dags"

    @property
    def probe_dir(self) -> Path:
        return self.home / "loop-probe"

    @property
    def database(self) -> MetadataDatabase:
        assert self.metadata is not None  # set in __post_init__
        return self.metadata

    def environment(self) -> dict[str, str]:
        """The environment every component and CLI call runs with."""
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("AIRFLOW") and "proxy" not in key.lower()
        }
        base_url = f"http://{LOOPBACK}:{self.api_port}"
        python_path = [str(self.dags_folder), *filter(None, [inherited.get("PYTHONPATH")])]
        inherited.update(
            {
                "PYTHONPATH": os.pathsep.join(python_path),
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database.url,
                "AIRFLOW__API__HOST": LOOPBACK,
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
                # New DAG files are picked up within seconds, not the default 5 minutes.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "SLACK_AUDIT_LOOP_PROBE_DIR": str(self.probe_dir),
                **self.env,
            }
        )
        return inherited

    # -- CLI ---------------------------------------------------------------------------------------

    def cli(self, *arguments: str, timeout: float = 600) -> str:
        """Run ``airflow ARGUMENTS`` and return its output; a failure raises with the output's tail."""
        completed = subprocess.run(
            [sys.executable, "-m", "airflow", *arguments],
            cwd=self.home,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if completed.returncode != 0:
            tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-30:])
            raise DeploymentError(f"`airflow {' '.join(arguments)}` exited {completed.returncode}:\n{tail}")
        return completed.stdout

    def migrate(self) -> None:
        self.cli("db", "migrate")

    def set_pool(self, name: str, slots: int, *, include_deferred: bool = True) -> None:
        arguments = ["pools", "set", name, str(slots), f"{name} (test deployment)"]
        self.cli(*arguments, *(["--include-deferred"] if include_deferred else []))

    # -- components --------------------------------------------------------------------------------

    def start(self, components: Sequence[str] = COMPONENTS) -> None:
        """Start the components (the API server first: task runners need it) and wait until it listens."""
        self.probe_dir.mkdir(exist_ok=True)
        for component in sorted(components, key=lambda name: name != "api-server"):
            self.start_component(component)
            if component == "api-server":
                self._wait_for_api_server()

    def start_component(self, component: str, *arguments: str, name: str | None = None) -> str:
        """Start ``airflow COMPONENT ARGUMENTS`` as ``name`` (default: the component); its name."""
        name = name or component
        if name in self.processes:
            raise DeploymentError(f"a component named {name} is running: kill it first, or name this one")
        self._arguments[name] = (component, *COMPONENT_ARGUMENTS.get(component, ()), *arguments)
        self._launch(name)
        return name

    def _launch(self, name: str) -> None:
        self._launches += 1
        with self.log_path(name, self._launches).open("wb") as output:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *self._arguments[name]],
                cwd=self.home,
                env=self.environment(),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a kill reaches its children
            )

    def _wait_for_api_server(self, timeout: float = 240) -> None:
        import urllib.request

        def answers() -> bool:
            try:
                with urllib.request.urlopen(
                    f"http://{LOOPBACK}:{self.api_port}/api/v2/monitor/health", timeout=5
                ):
                    return True
            except OSError:
                return False

        self.wait_for("the API server to answer", answers, timeout, poll=1.0)

    def check_alive(self) -> None:
        """Raise when a component has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise DeploymentError(
                    f"the {name} exited with code {process.returncode}:\n{self.log_tail(name)}"
                )

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def kill(self, name: str) -> None:
        """kill -9 the component's whole process group (the triggerer's trigger runner with it)."""
        process = self.processes.pop(name)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def restart(self, name: str) -> None:
        """Start a killed component again, with the arguments it was first started with."""
        self._launch(name)

    def stop(self) -> None:
        """SIGTERM every component (its process group), SIGKILL after a grace period."""
        for name in list(self.processes):
            process = self.processes.pop(name)
            if process.poll() is not None:
                continue
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)

    def log_path(self, name: str, launch: int) -> Path:
        return self.home / f"{name}.{launch}.log"

    def log_text(self, name: str) -> str:
        """Everything ``name`` logged, over all its launches."""
        logs = sorted(self.home.glob(f"{name}.*.log"), key=lambda path: int(path.suffixes[-2][1:]))
        return "".join(path.read_text(errors="replace") for path in logs)

    def log_tail(self, name: str, lines: int = 40) -> str:
        return "\n".join(self.log_text(name).splitlines()[-lines:]) or "(no log)"

    # -- waiting -----------------------------------------------------------------------------------

    def wait_for(self, what: str, condition: Callable[[], T | None], timeout: float, poll: float = 0.5) -> T:
        """Poll ``condition`` until it returns something truthy, and return that; a component that
        exits or the timeout raises, naming ``what`` with every component's log tail."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {name}\n{self.log_tail(name)}" for name in self.processes)
                raise DeploymentError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
            time.sleep(poll)

    # -- DAGs and runs -----------------------------------------------------------------------------

    def query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of ``statement`` on the metadata DB (``%s`` placeholders, whatever the database)."""
        return self.database.query(statement, params)

    def wait_for_dags(self, dag_ids: Sequence[str], timeout: float = 300) -> None:
        """Wait until the DAG processor has written every DAG of ``dag_ids`` to the metadata DB."""

        def parsed() -> bool:
            try:
                rows = self.query("SELECT dag_id FROM serialized_dag")
            except sqlite3.OperationalError:  # not migrated yet, or locked by a writer
                return False
            return {row[0] for row in rows} >= set(dag_ids)

        self.wait_for(f"the DAG processor to serialize {list(dag_ids)}", parsed, timeout, poll=1.0)

    def unpause(self, dag_id: str) -> None:
        # What `airflow dags unpause` does, without a CLI start (seconds of CPU on a loaded machine).
        self.query("UPDATE dag SET is_paused = false WHERE dag_id = %s", dag_id)

    def trigger(self, dag_id: str, run_id: str | None = None, conf: Mapping[str, Any] | None = None) -> None:
        arguments = ["dags", "trigger", dag_id]
        arguments += ["--run-id", run_id] if run_id else []
        arguments += ["--conf", json.dumps(dict(conf))] if conf else []
        self.cli(*arguments)

    def backfill(
        self, dag_id: str, from_date: str, to_date: str, *, max_active_runs: int | None = None
    ) -> None:
        """``airflow backfill create`` (the DAG must be unpaused for the scheduler to run it)."""
        arguments = ["backfill", "create", "--dag-id", dag_id, "--from-date", from_date, "--to-date", to_date]
        arguments += ["--max-active-runs", str(max_active_runs)] if max_active_runs else []
        self.cli(*arguments)

    def runs(self, dag_id: str) -> list[RunState]:
        rows = self.query(
            "SELECT run_id, state, start_date, end_date, data_interval_start FROM dag_run WHERE dag_id = %s "
            "ORDER BY data_interval_start",
            dag_id,
        )
        return [
            RunState(run_id, state, _epoch(start), _epoch(end), _epoch(interval_start))
            for run_id, state, start, end, interval_start in rows
        ]

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        """The state of one task instance (None: no state yet, or no such task instance yet)."""
        rows = self.query(
            "SELECT state FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s",
            dag_id,
            run_id,
            task_id,
        )
        return rows[0][0] if rows else None

    def task_states(self, dag_id: str) -> dict[str, int]:
        """How many task instances of ``dag_id`` are in each state (``none`` for no state yet)."""
        rows = self.query(
            "SELECT coalesce(state, 'none'), count(*) FROM task_instance WHERE dag_id = %s GROUP BY 1",
            dag_id,
        )
        return {state: int(count) for state, count in rows}

    def wait_for_task(self, dag_id: str, run_id: str, task_id: str, *, timeout: float) -> str:
        """Wait until the task instance has finished (success or failed); its state."""

        def finished() -> str | None:
            state = self.task_state(dag_id, run_id, task_id)
            return state if state in ("success", "failed") else None

        return self.wait_for(
            f"{dag_id}.{task_id} of {run_id} to finish",
            finished,
            timeout,
        )

    def wait_for_runs(
        self,
        dag_id: str,
        count: int,
        *,
        timeout: float,
        on_tick: Callable[[], object] | None = None,
        poll: float = 1.0,
    ) -> list[RunState]:
        """Wait until ``count`` runs of ``dag_id`` have finished (success or failed); return them all.

        ``on_tick`` is called once per poll (e.g. to record how many tasks are deferred).
        """

        def finished() -> list[RunState]:
            if on_tick is not None:
                on_tick()
            runs = self.runs(dag_id)
            return runs if sum(run.state in ("success", "failed") for run in runs) >= count else []

        try:
            return self.wait_for(f"{count} runs of {dag_id} to finish", finished, timeout, poll)
        except DeploymentError as error:
            states = [run.state for run in self.runs(dag_id)]
            raise DeploymentError(
                f"{dag_id}: runs {states}, tasks {self.task_states(dag_id)}; {error}"
            ) from None

    # -- the loop probe ----------------------------------------------------------------------------

    def start_loop_probe(self, timeout: float = 300) -> None:
        """Run the probe DAG: its task defers to a trigger that measures the triggerer loop's lateness."""
        assert self.loop_probe, "the deployment was made without loop_probe=True"
        self.unpause(LOOP_PROBE_DAG_ID)
        self.trigger(LOOP_PROBE_DAG_ID)
        self.wait_for("the loop probe to report", self.loop_probe_samples, timeout, poll=1.0)

    def warm_triggerer(self, destination: str, timeout: float = 300) -> float:
        """Have the probe load the landing path and ``destination``'s filesystem on the triggerer, as
        a process's first landing trigger does; returns when that finished (Unix time)."""
        warmed = self.probe_dir / "warmed"
        (self.probe_dir / "warm").write_text(destination)
        written = self.wait_for(
            "the triggerer to load the landing path",
            lambda: warmed.exists() and warmed.read_text().strip(),
            timeout,
            poll=0.2,
        )
        return float(written)

    def stop_loop_probe(self) -> None:
        (self.probe_dir / "stop").touch()

    def loop_probe_samples(self) -> list[tuple[float, float]]:
        """(Unix second, largest lateness in ms over that second) from the probe trigger's report."""
        report = self.probe_dir / "lateness.tsv"
        if not report.exists():
            return []
        samples = []
        for line in report.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                samples.append((float(parts[0]), float(parts[1])))
        return samples


@contextmanager
def airflow_deployment(
    home: Path,
    dag_files: Sequence[Path],
    env: Mapping[str, str],
    *,
    metadata: MetadataDatabase | None = None,
    template: str | None = None,
    parallelism: int = 8,
    loop_probe: bool = False,
) -> Iterator[AirflowDeployment]:
    """A started deployment on a new metadata DB (a copy of ``template``, or migrated now); stopped
    on exit."""
    deployment = AirflowDeployment(home, dag_files, env, metadata, parallelism, loop_probe)
    deployment.database.create(template=template)
    if template is None:
        deployment.migrate()
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()


# -- sampling a process tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessSample:
    time: float  # Unix seconds
    rss_mb: float  # the whole tree's resident memory
    cpu_seconds: float  # user + system CPU of the tree's live processes, plus what exited children used


class ProcessSampler:
    """Samples a process and its descendants every ``period`` seconds in a thread (psutil).

    CPU seconds are cumulative: a descendant that exits keeps counting with its last sample, so the
    figure never runs backwards when a child process ends.
    """

    def __init__(self, pid: int, period: float = 0.25) -> None:
        self.pid = pid
        self.period = period
        self.samples: list[ProcessSample] = []
        self._finished_cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-sampler", daemon=True)

    def __enter__(self) -> ProcessSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        live_cpu: dict[int, float] = {}
        while not self._stop.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            rss, seen = 0, {}
            for process in tree:
                try:
                    with process.oneshot():
                        rss += process.memory_info().rss
                        times = process.cpu_times()
                        seen[process.pid] = times.user + times.system
                except psutil.NoSuchProcess:
                    continue
            for gone in live_cpu.keys() - seen.keys():
                self._finished_cpu[gone] = live_cpu[gone]
            live_cpu = seen
            cpu = sum(seen.values()) + sum(self._finished_cpu.values())
            self.samples.append(ProcessSample(time.time(), rss / 2**20, cpu))
            self._stop.wait(self.period)

    def between(self, start: float, end: float) -> list[ProcessSample]:
        return [sample for sample in self.samples if start <= sample.time <= end]
