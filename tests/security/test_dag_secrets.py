"""The daily example DAG, run with DEBUG logging by ``airflow dags test``, writes the token nowhere:
not in the task or triggerer logs, not in the metadata DB (trigger kwargs, next_kwargs, XCom,
rendered fields), not on stdout/stderr, not in the landed files.

The one exception is Airflow core's own: at DEBUG its task supervisor logs the secrets it is asked
to mask as ``MaskSecret(value=...)``. That line is core's, not this provider's, so lines holding
that marker are left out of the search (and counted, so the exclusion stays visible).
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.fernet import Fernet

from airflow_provider_slack_audit.version_compat import AIRFLOW_V_3_0_PLUS

from support.secret_scan import TOKEN, leaks_in_bytes

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "slack_audit_daily"
LOGICAL_DATE = datetime(2026, 1, 5, tzinfo=timezone.utc)
WINDOW_START = datetime(2026, 1, 4, tzinfo=timezone.utc)
CORE_MASKING_MARKER = b"MaskSecret("

pytestmark = [pytest.mark.system, pytest.mark.slow]


def _system_harness() -> ModuleType:
    """tests/system/conftest.py, loaded under its own name (two modules named ``conftest`` collide)."""
    name = "slack_audit_system_harness"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "system" / "conftest.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


harness = _system_harness()
airflow_home = harness.airflow_home  # the session's throwaway, migrated AIRFLOW_HOME


@dataclass(frozen=True)
class Leak:
    path: Path
    line: int
    form: str
    excerpt: bytes


@dataclass
class Scan:
    files: int = 0
    core_masking_lines: int = 0


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.exists():
            yield from (path for path in sorted(root.rglob("*")) if path.is_file())


def search(scan: Scan, *roots: Path) -> list[Leak]:
    """Every line of every file under ``roots`` holding a form of the token (core's masking excepted)."""
    leaks = []
    for path in files_under(*roots):
        scan.files += 1
        for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
            if CORE_MASKING_MARKER in line:
                scan.core_masking_lines += 1
                continue
            for form in leaks_in_bytes(line):
                at = line.index(form.encode())
                leaks.append(Leak(path, number, form, line[max(0, at - 80) : at + 80]))
    return leaks


def metadata_rows(database: Path) -> dict[str, int]:
    """How many rows the tables the token could reach hold: the search must have covered some.

    Airflow 2's ``dags test`` runs a trigger inline and stores no trigger row; 3.x stores it.
    """
    tables = ("xcom", "rendered_task_instance_fields", "task_instance")
    if AIRFLOW_V_3_0_PLUS:
        tables = ("trigger", *tables)
    with closing(sqlite3.connect(database)) as db:
        return {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}  # noqa: S608


def trigger_kwargs(home: Path) -> list[bytes]:
    """The stored trigger kwargs as plain JSON, decrypted when Airflow encrypted them.

    A byte search of the database cannot see into an encrypted column, so the kwargs are read and,
    when they are not JSON, decrypted with the home's Fernet key.
    """
    with closing(sqlite3.connect(home / "airflow.db")) as db:
        stored = [row[0] for row in db.execute("SELECT kwargs FROM trigger")]
    plain = []
    for value in stored:
        raw = value.encode() if isinstance(value, str) else bytes(value)
        try:
            json.loads(raw)
        except ValueError:
            raw = Fernet(fernet_key(home)).decrypt(raw)
        plain.append(raw)
    return plain


def fernet_key(home: Path) -> bytes:
    config = configparser.ConfigParser(interpolation=None)
    config.read(home / "airflow.cfg")
    return config["core"]["fernet_key"].encode()


def test_a_debug_run_of_the_daily_dag_writes_the_token_nowhere(airflow_home: object, tmp_path: Path) -> None:
    home: Path = airflow_home.path  # type: ignore[attr-defined]
    landing, console = tmp_path / "landing", tmp_path / "dags_test.log"
    with harness.running_server(
        events=3000, seed=5, start=WINDOW_START, end=LOGICAL_DATE, tokens=(TOKEN,)
    ) as server:
        connection = {"conn_type": "slack_audit", "password": TOKEN, "extra": {"base_url": server.base_url}}
        env = {
            "AIRFLOW_CONN_SLACK_AUDIT_DEFAULT": json.dumps(connection),
            "SLACK_AUDIT_BASE_PATH": landing.as_uri(),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
        }
        run = airflow_home.dags_test(DAG_ID, LOGICAL_DATE, env=env, log=console)  # type: ignore[attr-defined]
        run.assert_succeeded()
        requests = server.logs_requests()

    # The run really used the token, logged the client's requests at DEBUG, and landed the day.
    assert requests and all(request.has_authorization for request in requests)
    assert b"Sending GET" in console.read_bytes(), "the client's DEBUG lines are not in the output"
    assert len(list(landing.rglob("*.jsonl.gz"))) == 24

    scan = Scan()
    leaks = search(scan, home, console, landing)

    assert leaks == [], "the token was written to:\n" + "\n".join(
        f"{leak.path}:{leak.line}: {leak.form[:12]}... in {leak.excerpt!r}" for leak in leaks
    )
    rows = metadata_rows(home / "airflow.db")
    assert min(rows.values()) >= 1, f"the run left no rows to search in some tables: {rows}"
    kwargs = trigger_kwargs(home)
    if AIRFLOW_V_3_0_PLUS:  # Airflow 2 ran the trigger inline: it stored no kwargs to search
        assert kwargs and all(b"slack_audit_default" in value for value in kwargs)
    assert not [leaks_in_bytes(value) for value in kwargs if leaks_in_bytes(value)]
