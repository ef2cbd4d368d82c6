"""The re-landing guide's re-run recipes, executed verbatim against the fake Audit Logs API.

The commands come from the "Re-land a window" section of docs/guides/relanding.md, so this test
breaks when the guide changes. Each recipe is judged by what it promises: the window its ``--conf``
names, or, without one, the latest day completed when the run was triggered. ``airflow dags
trigger`` only creates a run; a scheduler would then start it, here ``airflow tasks test <run_id>``
does (the triggers run in-process).
Every recipe runs twice: a re-run must be repeatable (a reused logical date cannot be).
"""

from __future__ import annotations

import json
import re
import shlex
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.ingest.landing import read_manifest
from airflow_provider_slack_audit.ingest.windows import Window, parse_datetime
from airflow_provider_slack_audit.testing import FakeAuditLogsServer

pytestmark = [pytest.mark.system, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "guides" / "relanding.md"
SECTION = "## Re-land a window"
DAG_ID = "slack_audit_daily"
TASK_ID = "land_audit_logs"
AIRFLOW = Path(sys.executable).with_name("airflow")
TIMEOUT = 240


def guide_recipes() -> list[str]:
    """Every ``airflow ...`` command line in the bash blocks of the re-landing guide's re-run section."""
    text = GUIDE.read_text()
    assert SECTION in text, f"{GUIDE.name} has no {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    commands = [line.strip() for block in blocks for line in block.splitlines()]
    return [command for command in commands if command.startswith("airflow ")]


RECIPES = guide_recipes()


def test_the_guide_has_recipes_for_the_cli_and_for_dags_test() -> None:
    verbs = {tuple(shlex.split(command)[1:3]) for command in RECIPES}
    assert verbs == {("dags", "trigger"), ("dags", "test")}
    # A reused logical date cannot make a second run, and Airflow 3's CLI ignores it for the interval.
    assert not [command for command in RECIPES if "--logical-date" in command]


def promised_window(command: str, triggered_at: datetime) -> Window:
    """What a recipe promises: its conf's oldest/latest, else the latest day completed at the trigger."""
    argv = shlex.split(command)
    conf: dict[str, Any] = json.loads(argv[argv.index("--conf") + 1]) if "--conf" in argv else {}
    if conf.get("oldest") or conf.get("latest"):
        return Window(parse_datetime(conf["oldest"], "oldest"), parse_datetime(conf["latest"], "latest"))
    midnight = triggered_at.replace(hour=0, minute=0, second=0, microsecond=0)
    return Window(midnight - timedelta(days=1), midnight)


def mode_of(command: str) -> str:
    argv = shlex.split(command)
    conf = json.loads(argv[argv.index("--conf") + 1]) if "--conf" in argv else {}
    return str(conf.get("mode", "resume"))


def overwrites(command: str) -> bool:
    return mode_of(command) == "overwrite"


@dataclass(frozen=True)
class Deployment:
    """The throwaway AIRFLOW_HOME with the example DAGs serialized, as ``airflow dags trigger`` needs."""

    home: Any
    env: dict[str, str]
    root: Path

    def run(self, argv: list[str], log: Path) -> None:
        with log.open("ab") as output:
            result = subprocess.run(
                argv,
                cwd=self.home.path,
                env=self.home.env(self.env),
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=TIMEOUT,
                check=False,
            )
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        assert result.returncode == 0, f"{shlex.join(argv)} failed ({result.returncode}); {log}:\n{tail}"

    def latest_run_id(self) -> str:
        with closing(sqlite3.connect(self.home.path / "airflow.db")) as db:
            row = db.execute(
                "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)
            ).fetchone()
        assert row is not None
        return str(row[0])

    def run_recipe(self, command: str, log: Path) -> None:
        """The guide's command as typed (``airflow`` is this venv's), then the task if it only triggered."""
        argv = shlex.split(command)
        assert argv[0] == "airflow"
        self.run([str(AIRFLOW), *argv[1:]], log)
        if argv[1:3] == ["dags", "trigger"]:
            self.run([str(AIRFLOW), "tasks", "test", DAG_ID, TASK_ID, self.latest_run_id()], log)


@pytest.fixture(scope="module")
def deployment(
    airflow_home: Any,
    serve_fake_api: Callable[..., AbstractContextManager[FakeAuditLogsServer]],
    connection_env: Callable[..., dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Deployment, FakeAuditLogsServer]]:
    root = tmp_path_factory.mktemp("rerun_recipes")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    # Events on every day from before the guide's example day up to now.
    with serve_fake_api(
        events=40_000, seed=21, start=datetime(2026, 1, 3, tzinfo=timezone.utc), end=now
    ) as server:
        env = {**connection_env(server), "SLACK_AUDIT_BASE_PATH": (root / "landing").as_uri()}
        deployment = Deployment(airflow_home, env, root)
        deployment.run([str(AIRFLOW), "dags", "reserialize"], root / "reserialize.log")
        yield deployment, server


def landed_ids(root: Path, window: Window) -> list[str]:
    manifest = read_manifest(root / "landing" / "_manifests" / f"slack_audit_{window.key}.manifest.json")
    return [entry["id"] for entry in manifest.iter_entries()]


def data_file_inodes(root: Path) -> dict[str, int]:
    return {str(path): path.stat().st_ino for path in (root / "landing").rglob("*.jsonl.gz")}


@pytest.mark.parametrize("command", RECIPES)
def test_a_guide_recipe_lands_exactly_its_window_and_can_be_repeated(
    deployment: tuple[Deployment, FakeAuditLogsServer], command: str, tmp_path: Path
) -> None:
    airflow, server = deployment
    window = promised_window(command, datetime.now(timezone.utc))
    hours = window.intervals(timedelta(hours=1))

    for attempt in ("first", "again"):
        before = data_file_inodes(airflow.root)
        server.reset_log()

        airflow.run_recipe(command, tmp_path / f"{attempt}.log")

        ids = landed_ids(airflow.root, window)
        assert len(ids) == len(set(ids)), "an event was landed twice"
        assert set(ids) == server.expected_ids(window.oldest, window.latest)
        requested = {int(request.query["oldest"]) for request in server.logs_requests()}
        assert requested <= {hour.oldest for hour in hours}, "a request outside the promised window"
        if mode_of(command) in ("overwrite", "reconcile"):
            # One request stream re-reads the whole window, from its first second.
            assert requested == {hours[0].oldest}
        if overwrites(command) and attempt == "again":
            after = data_file_inodes(airflow.root)
            rewritten = [path for path in after if path in before and after[path] != before[path]]
            assert len(rewritten) == len(hours), "overwrite did not rewrite every hour of the window"
        if mode_of(command) == "reconcile" and attempt == "again":
            # Nothing arrived late since the first attempt: no data file is touched.
            assert data_file_inodes(airflow.root) == before
