"""A real Airflow deployment on loopback, for system tests and the backfill benchmark.

``postgres_cluster()`` starts a throwaway PostgreSQL (the Debian binaries) in a temp dir;
``AirflowDeployment`` runs, against one of its databases, the components of an Airflow 3 deployment
with the LocalExecutor: scheduler, DAG processor, triggerer and API server (the task runners reach
the execution API through it), each its own process on 127.0.0.1. What a test or benchmark does
with it: start and stop it, unpause a DAG, trigger runs and backfills, wait for runs, read task
states from the metadata DB, kill -9 and restart the triggerer, and sample the triggerer's process
tree (``ProcessSampler``).

Nothing here imports Airflow: every Airflow action is a CLI call or a query of the metadata DB, so
the harness runs in a process that measures, not one that competes with what is measured.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.emulators import free_loopback_port, stop_process

LOOPBACK = "127.0.0.1"
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
# Their log servers would listen on every interface (and on fixed ports other deployments use):
# the task and trigger logs are files under AIRFLOW_HOME here, read from there.
COMPONENT_ARGUMENTS = {"scheduler": ("--skip-serve-logs",), "triggerer": ("--skip-serve-logs",)}
# The loop probe's DAG file (see support/loop_probe_dag.py) and the name the deployment gives it.
LOOP_PROBE_SOURCE = Path(__file__).resolve().parent / "loop_probe_dag.py"
LOOP_PROBE_MODULE = "slack_audit_loop_probe"
LOOP_PROBE_DAG_ID = "slack_audit_loop_probe"


class DeploymentError(RuntimeError):
    """A component or a CLI call of the deployment failed; the message carries its log's tail."""


# -- PostgreSQL ----------------------------------------------------------------------------------------


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

    def url(self, database: str) -> str:
        """The SQLAlchemy URL Airflow uses for ``database``."""
        return f"postgresql+psycopg2://postgres@{LOOPBACK}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> Any:
        import psycopg2

        connection = psycopg2.connect(host=LOOPBACK, port=self.port, user="postgres", dbname=database)
        connection.autocommit = True
        return connection

    def create_database(self, name: str, *, template: str | None = None) -> None:
        """Create ``name``, empty or as a copy of ``template`` (which must have no open connection)."""
        from psycopg2 import sql

        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    def query(self, database: str, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        connection = self.connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement, params)
                return list(cursor.fetchall()) if cursor.description else []
        finally:
            connection.close()


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster on a free loopback port (fsync off); removed on exit."""
    bindir = postgres_bindir()
    if bindir is None:
        raise DeploymentError(
            "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
        )
    # initdb refuses to run as root: run the server as the `postgres` user, in a dir it owns.
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="slack-audit-airflow-pg-"))
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
        raise DeploymentError(f"could not start PostgreSQL: {error.stderr.decode()}\n{log}") from error
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


# -- Airflow -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunState:
    run_id: str
    state: str
    start: float | None  # Unix seconds
    end: float | None
    data_interval_start: float | None


@dataclass
class AirflowDeployment:
    """An Airflow 3 deployment (LocalExecutor) on ``cluster``'s database ``database``.

    ``dag_files`` are linked into a DAGs folder of its own (with the loop probe's, see
    :meth:`start_loop_probe`); ``env`` adds to the components' environment (connections as
    ``AIRFLOW_CONN_*``, settings the DAG files read). ``parallelism`` is the executor's slots.
    """

    cluster: PostgresCluster
    database: str
    home: Path
    dag_files: Sequence[Path]
    env: Mapping[str, str] = field(default_factory=dict)
    parallelism: int = 8
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False)
    _restarts: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.dags_folder.mkdir(exist_ok=True)
        for dag_file in self.dag_files:
            (self.dags_folder / dag_file.name).symlink_to(dag_file.resolve())
        (self.dags_folder / f"{LOOP_PROBE_MODULE}.py").symlink_to(LOOP_PROBE_SOURCE)
        self.api_port = free_loopback_port()
        self._jwt_secret = secrets.token_urlsafe(32)

    @property
    def dags_folder(self) -> Path:
        return self.home / "dags"

    @property
    def probe_dir(self) -> Path:
        return self.home / "loop-probe"

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
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.cluster.url(self.database),
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
        arguments = ["pools", "set", name, str(slots), f"{name} (benchmark deployment)"]
        self.cli(*arguments, *(["--include-deferred"] if include_deferred else []))

    # -- components --------------------------------------------------------------------------------

    def start(self, components: Sequence[str] = COMPONENTS) -> None:
        """Start the components (the API server first: task runners need it) and wait until it listens."""
        self.probe_dir.mkdir(exist_ok=True)
        for component in sorted(components, key=lambda name: name != "api-server"):
            self._start(component)
            if component == "api-server":
                self._wait_for_api_server()

    def _start(self, component: str) -> None:
        log = self.home / f"{component}.{self._restarts}.log"
        with log.open("wb") as output:
            self.processes[component] = subprocess.Popen(
                [sys.executable, "-m", "airflow", component, *COMPONENT_ARGUMENTS.get(component, ())],
                env=self.environment(),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a kill reaches its children
            )

    def _wait_for_api_server(self, timeout: float = 240) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        url = f"http://{LOOPBACK}:{self.api_port}/api/v2/monitor/health"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=5):
                    return
            except OSError:
                time.sleep(1)
        tail = self.log_tail("api-server")
        raise DeploymentError(f"the API server did not answer within {timeout:.0f} s:\n{tail}")

    def check_alive(self) -> None:
        """Raise when a component has exited."""
        for component, process in self.processes.items():
            if process.poll() is not None:
                raise DeploymentError(
                    f"the {component} exited with code {process.returncode}:\n{self.log_tail(component)}"
                )

    def pid(self, component: str) -> int:
        return self.processes[component].pid

    def kill(self, component: str) -> None:
        """kill -9 the component's whole process group (the triggerer's trigger runner with it)."""
        process = self.processes.pop(component)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def restart(self, component: str) -> None:
        self._restarts += 1
        self._start(component)

    def stop(self) -> None:
        """SIGTERM every component (its process group), SIGKILL after a grace period."""
        for component in list(self.processes):
            process = self.processes.pop(component)
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=30)
            else:
                stop_process(process, grace=1)

    def log_tail(self, component: str, lines: int = 40) -> str:
        logs = sorted(self.home.glob(f"{component}.*.log"))
        if not logs:
            return "(no log)"
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:])

    # -- DAGs and runs -----------------------------------------------------------------------------

    def _query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.cluster.query(self.database, statement, params)

    def wait_for_dags(self, dag_ids: Sequence[str], timeout: float = 300) -> None:
        """Wait until the DAG processor has written every DAG of ``dag_ids`` to the metadata DB."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            rows = self._query("SELECT dag_id FROM serialized_dag WHERE dag_id = ANY(%s)", (list(dag_ids),))
            if {row[0] for row in rows} >= set(dag_ids):
                return
            time.sleep(1)
        tail = self.log_tail("dag-processor")
        raise DeploymentError(f"DAGs {dag_ids} not parsed within {timeout:.0f} s:\n{tail}")

    def unpause(self, dag_id: str) -> None:
        # What `airflow dags unpause` does, without a CLI start (seconds of CPU on a loaded machine).
        self._query("UPDATE dag SET is_paused = false WHERE dag_id = %s RETURNING dag_id", (dag_id,))

    def trigger(self, dag_id: str) -> None:
        self.cli("dags", "trigger", dag_id)

    def backfill(self, dag_id: str, from_date: str, to_date: str, *, max_active_runs: int) -> None:
        """``airflow backfill create`` (the DAG must be unpaused for the scheduler to run it)."""
        self.cli("backfill", "create", "--dag-id", dag_id, "--from-date", from_date, "--to-date", to_date,
                 "--max-active-runs", str(max_active_runs))  # fmt: skip

    def runs(self, dag_id: str) -> list[RunState]:
        rows = self._query(
            "SELECT run_id, state, extract(epoch FROM start_date), extract(epoch FROM end_date), "
            "extract(epoch FROM data_interval_start) FROM dag_run WHERE dag_id = %s "
            "ORDER BY data_interval_start",
            (dag_id,),
        )
        return [
            RunState(
                run_id,
                state,
                None if start is None else float(start),
                None if end is None else float(end),
                None if interval_start is None else float(interval_start),
            )
            for run_id, state, start, end, interval_start in rows
        ]

    def task_states(self, dag_id: str) -> dict[str, int]:
        """How many task instances of ``dag_id`` are in each state (``none`` for no state yet)."""
        rows = self._query(
            "SELECT coalesce(state, 'none'), count(*) FROM task_instance WHERE dag_id = %s GROUP BY 1",
            (dag_id,),
        )
        return {state: int(count) for state, count in rows}

    def wait_for_runs(
        self,
        dag_id: str,
        count: int,
        *,
        timeout: float,
        on_tick: Any = None,
        poll: float = 1.0,
    ) -> list[RunState]:
        """Wait until ``count`` runs of ``dag_id`` have finished (success or failed); return them all.

        ``on_tick`` is called once per poll (e.g. to record how many tasks are deferred); a component
        that exits raises.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            if on_tick is not None:
                on_tick()
            runs = self.runs(dag_id)
            if sum(run.state in ("success", "failed") for run in runs) >= count:
                return runs
            if time.monotonic() > deadline:
                states = {run.state for run in runs}
                raise DeploymentError(
                    f"{dag_id}: {len(runs)} runs in states {states} after {timeout:.0f} s, {count} expected "
                    f"to finish; tasks {self.task_states(dag_id)}:\n{self.log_tail('scheduler')}"
                )
            time.sleep(poll)

    # -- the loop probe ----------------------------------------------------------------------------

    def start_loop_probe(self, timeout: float = 300) -> None:
        """Run the probe DAG: its task defers to a trigger that measures the triggerer loop's lateness."""
        self.unpause(LOOP_PROBE_DAG_ID)
        self.trigger(LOOP_PROBE_DAG_ID)
        deadline = time.monotonic() + timeout
        while not self.loop_probe_samples():
            self.check_alive()
            if time.monotonic() > deadline:
                raise DeploymentError(f"the loop probe did not report within {timeout:.0f} s")
            time.sleep(1)

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
    cluster: PostgresCluster,
    database: str,
    home: Path,
    dag_files: Sequence[Path],
    env: Mapping[str, str],
    *,
    template: str | None = None,
    parallelism: int = 8,
) -> Iterator[AirflowDeployment]:
    """A started deployment on a new database (a copy of ``template``, or migrated now); stopped on exit."""
    cluster.create_database(database, template=template)
    deployment = AirflowDeployment(cluster, database, home, dag_files, env, parallelism)
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
