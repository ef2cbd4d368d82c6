"""The partitioned example DAGs on a real deployment (Airflow 3.2+): a partition backfill of the
dates the docs give for one UTC day lands that day, the landing's asset event carries the run's
partition key, and the partition-scheduled warehouse DAG runs for that key and loads exactly the
key's day.

``airflow dags test`` cannot show this: a partition backfill and an asset-triggered run need the
scheduler, so the deployment of :mod:`support.airflow_deployment` runs the example file on loopback.

Which run a backfill's dates make is Airflow's and differs by line (see :func:`documented_backfill_date`),
so the tests read the backfill run's key from the metadata DB: one test holds it to the documented
mapping of the running line, the other checks the landing and the load against whatever key it is.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import pytest

from airflow_provider_slack_audit.ingest.windows import Window
from airflow_provider_slack_audit.testing import FakeAuditLogsServer
from airflow_provider_slack_audit.version_compat import AIRFLOW_V_3_3_PLUS, PARTITIONED_RUNS

from support.airflow_deployment import RESPONSIVE, AirflowDeployment, airflow_deployment
from support.connections import connection_env

pytestmark = [
    pytest.mark.system,
    pytest.mark.slow,
    pytest.mark.skipif(not PARTITIONED_RUNS, reason="partition timetables arrived in Airflow 3.2"),
]

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "slack_audit_partitioned.py"
LANDING_DAG, WAREHOUSE_DAG = "slack_audit_partitioned", "slack_audit_partitioned_warehouse"
DAY = date(2026, 1, 4)  # the UTC day the user asks the backfill for
SECOND = timedelta(seconds=1)


def documented_backfill_date(day: date) -> date:
    """What docs/operators/landing.md ("A partition backfill") tells a user of this Airflow line to
    pass as ``--from-date`` and ``--to-date`` to land the UTC day ``day`` with the example's
    ``CronPartitionTimetable("0 0 * * *", run_offset=-1)``.

    3.2 reads the dates as the runs' dates (cron ticks), each run keyed one tick earlier: the run of
    00:00 on the next day lands ``day``. 3.3 reads them as the partitions' dates
    (apache/airflow#67537, "Backfill partitioned Dags by partition-date range").
    """
    return day if AIRFLOW_V_3_3_PLUS else day + timedelta(days=1)


def key_day(partition_key: str) -> Window:
    """The UTC day a day key names (this test's own reading of the documented key form)."""
    start = datetime.strptime(partition_key, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    return Window(start, start + timedelta(days=1))


@dataclass(frozen=True)
class Backfill:
    deployment: AirflowDeployment
    server: FakeAuditLogsServer
    landing: Path
    warehouse: Path
    keys: list[str]  # the partition keys of the backfill's runs, as the metadata DB holds them
    dry_run_keys: list[str]  # the keys `backfill create --dry-run` listed for the same dates


def data_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.name.endswith((".jsonl", ".jsonl.gz")))


def read_lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.name.endswith(".gz") else data).splitlines()


def dry_run_keys(output: str) -> list[str]:
    """The ``partition_key`` column of the runs table ``airflow backfill create --dry-run`` prints."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in output.splitlines()
        if line.lstrip().startswith("|")
    ]
    if not rows or "partition_key" not in rows[0]:
        raise AssertionError(f"no partition_key column in the dry run's output:\n{output}")
    column = rows[0].index("partition_key")
    return sorted(row[column] for row in rows[1:])


def run_states(deployment: AirflowDeployment, dag_id: str, partition_key: str) -> list[str]:
    """The states of ``dag_id``'s runs for ``partition_key``."""
    rows = deployment.query(
        "SELECT state FROM dag_run WHERE dag_id = %s AND partition_key = %s", dag_id, partition_key
    )
    return [str(state) for (state,) in rows]


def finished(deployment: AirflowDeployment, dag_id: str, partition_key: str) -> list[str]:
    return [
        state for state in run_states(deployment, dag_id, partition_key) if state in ("success", "failed")
    ]


@pytest.fixture(scope="module")
def backfill(
    tmp_path_factory: pytest.TempPathFactory,
    serve_fake_api: Callable[..., AbstractContextManager[FakeAuditLogsServer]],
) -> Iterator[Backfill]:
    """The example deployed, a backfill of the documented dates for DAY run, its loads finished."""
    root = tmp_path_factory.mktemp("partitioned")
    asked = Window(
        datetime.combine(DAY, datetime.min.time(), timezone.utc),
        datetime.combine(DAY + timedelta(days=1), datetime.min.time(), timezone.utc),
    )
    # The span's bursts sit on the second before the day and the second after it: neither may load.
    with serve_fake_api(events=6_000, seed=44, start=asked.start - SECOND, end=asked.end + SECOND) as server:
        before, after = asked.oldest - 1, asked.latest + 1
        assert server.expected_ids(before, before), "no event on the second before the day"
        assert server.expected_ids(after, after), "no event on the second after the day"
        landing, warehouse = root / "landing", root / "warehouse.db"
        env = {
            **RESPONSIVE,
            **connection_env(server.base_url),
            "SLACK_AUDIT_BASE_PATH": landing.as_uri(),
            "AIRFLOW_CONN_SLACK_AUDIT_WAREHOUSE": f'{{"conn_type": "sqlite", "host": "{warehouse}"}}',
        }
        # This example only: the others would schedule runs.
        with airflow_deployment(root / "home", [EXAMPLE], env, parallelism=4) as deployment:
            deployment.wait_for_dags([LANDING_DAG, WAREHOUSE_DAG], timeout=180)
            for dag_id in (LANDING_DAG, WAREHOUSE_DAG):
                deployment.unpause(dag_id)
            # The scheduler also makes the DAG's latest scheduled run (yesterday's partition, empty on
            # the fake server); only the backfill's runs matter here.
            backfill_date = documented_backfill_date(DAY).isoformat()
            dates = ("--dag-id", LANDING_DAG, "--from-date", backfill_date, "--to-date", backfill_date)
            dry_run = dry_run_keys(deployment.cli("backfill", "create", *dates, "--dry-run"))
            deployment.backfill(LANDING_DAG, backfill_date, backfill_date)
            rows = deployment.query(
                "SELECT partition_key FROM dag_run WHERE dag_id = %s AND run_type = 'backfill'", LANDING_DAG
            )
            keys = sorted(str(key) for (key,) in rows)
            for key in keys:
                deployment.wait_for(
                    f"the backfill's run {key}", partial(finished, deployment, LANDING_DAG, key), timeout=150
                )
                if run_states(deployment, LANDING_DAG, key) == ["success"]:
                    deployment.wait_for(
                        f"the load of {key}", partial(finished, deployment, WAREHOUSE_DAG, key), timeout=150
                    )
            yield Backfill(deployment, server, landing, warehouse, keys, dry_run)


def test_a_backfill_of_the_documented_dates_makes_one_run_keyed_the_asked_day(backfill: Backfill) -> None:
    asked = DAY.isoformat()
    line = "3.3+" if AIRFLOW_V_3_3_PLUS else "3.2"
    assert backfill.keys == [asked], (
        f"on Airflow {line}, `backfill create --from-date {documented_backfill_date(DAY)} --to-date "
        f"{documented_backfill_date(DAY)}` made runs keyed {backfill.keys}, not [{asked!r}]: the "
        "mapping in docs/operators/landing.md no longer holds"
    )
    assert backfill.dry_run_keys == backfill.keys, "the dry run listed other keys than the backfill ran"


def test_the_landing_event_carries_the_run_key_and_the_warehouse_loads_exactly_its_day(
    backfill: Backfill,
) -> None:
    deployment, server = backfill.deployment, backfill.server
    assert len(backfill.keys) == 1, f"the backfill made runs keyed {backfill.keys}, not one"
    (key,) = backfill.keys
    day = key_day(key)

    assert run_states(deployment, LANDING_DAG, key) == ["success"]
    events = deployment.query(
        "SELECT e.extra FROM asset_event e JOIN asset a ON e.asset_id = a.id"
        " WHERE a.uri LIKE 'file:%%' AND e.partition_key = %s",
        key,
    )
    assert len(events) == 1, f"{len(events)} landing events keyed {key!r}"
    extra = json.loads(events[0][0])
    assert extra["partition_key"] == key
    assert (extra["window"]["start"], extra["window"]["end"]) == (day.start.isoformat(), day.end.isoformat())

    on_the_day = server.expected_ids(day.oldest, day.latest)
    # Every data file under the destination (the scheduled run's day, on no event, lands none).
    landed = [json.loads(line)["id"] for path in data_files(backfill.landing) for line in read_lines(path)]
    assert len(landed) == len(set(landed)), "an id landed twice"
    assert set(landed) == on_the_day

    assert run_states(deployment, WAREHOUSE_DAG, key) == ["success"]
    with closing(sqlite3.connect(backfill.warehouse)) as db:
        loaded = [row[0] for row in db.execute("SELECT id FROM slack_audit_logs")]
    assert len(loaded) == len(set(loaded)), "an id loaded twice"
    assert set(loaded) == on_the_day
    # For the asked day: the events on the second before it and on the second after it.
    span_start, span_end = server.event_set.span
    elsewhere = server.expected_ids(span_start, span_end - 1) - on_the_day
    assert elsewhere, "no event outside the day to leave out"
    assert not elsewhere & (set(loaded) | set(landed))
