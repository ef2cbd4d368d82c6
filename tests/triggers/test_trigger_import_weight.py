"""The trigger's module is light to import, and its run() imports the landing path off the event loop.

A triggerer imports a trigger's class on its event loop (Airflow's async ``create_triggers``), so
whatever the module imports stalls every trigger on that triggerer: under load the landing path
(aiohttp, the pipeline, common.sql through version_compat) took seconds. Each check runs in a fresh
interpreter: this test process has long imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.ingest.windows import Window

REPO = Path(__file__).resolve().parents[2]
TRIGGER_MODULE = "airflow_provider_slack_audit.triggers.slack_audit"
# What the landing needs and the class does not: the HTTP stack, the client, the ingest, the hook.
LANDING_PATH = (
    "aiohttp",
    "airflow_provider_slack_audit._task_spec",
    "airflow_provider_slack_audit.client",
    "airflow_provider_slack_audit.hooks.slack_audit",
    "airflow_provider_slack_audit.ingest",
    "airflow_provider_slack_audit.ingest.outcome",
    "airflow_provider_slack_audit.ingest.pipeline",
    "airflow_provider_slack_audit.ingest.spec",
)
# ... and what no trigger needs: common.sql (SQLAlchemy, sqlparse), for the warehouse transfers only.
HEAVY = (*LANDING_PATH, "airflow.providers.common.sql.hooks.sql")
# Imported when the run builds its first Landing of a local destination (upath's, on Airflow 3.x).
LOCAL_PATH_IMPLEMENTATION = "upath.implementations.local"

# Records, for each watched module, whether the main thread (the event loop's) imported it first.
RECORDER = textwrap.dedent(
    """
    import sys, threading

    watched, first_importer = set(sys.argv[1].split(",")), {}

    class Recorder:
        def find_spec(self, name, path=None, target=None):
            if name in watched and name not in first_importer:
                main = threading.current_thread() is threading.main_thread()
                first_importer[name] = "main" if main else "worker"
            return None

    sys.meta_path.insert(0, Recorder())
    """
)


def run_fresh(
    script: str, *args: str, watched: tuple[str, ...] = HEAVY, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``script`` in a new interpreter with this checkout first on the path; its JSON output.

    The script sees ``watched`` (module names) and ``first_importer``: for each watched module
    imported so far, whether the main thread or another imported it.
    """
    environment = {
        **os.environ,
        **(env or {}),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", RECORDER + textwrap.dedent(script), ",".join(watched), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_importing_the_trigger_loads_nothing_of_the_landing_path() -> None:
    found = run_fresh(
        f"""
        import json
        import {TRIGGER_MODULE}

        print(json.dumps({{
            "heavy": sorted(name for name in watched if name in sys.modules),
            "provider": sorted(name for name in sys.modules if name.startswith("airflow_provider")),
        }}))
        """
    )

    assert found["heavy"] == []
    assert found["provider"] == [
        "airflow_provider_slack_audit",
        "airflow_provider_slack_audit.triggers",
        TRIGGER_MODULE,
        "airflow_provider_slack_audit.version_compat",
    ]


def test_the_trigger_imports_the_landing_path_off_the_event_loop_and_still_reports(tmp_path: Path) -> None:
    spec = IngestSpec(
        window=Window(datetime(2026, 1, 4, tzinfo=timezone.utc), datetime(2026, 1, 5, tzinfo=timezone.utc)),
        interval=timedelta(hours=6),
        destination=tmp_path.as_uri(),
    )
    # Nothing listens on port 9 and the retry budget is zero: the run ends at once with a transient error.
    connection = {
        "conn_type": "slack_audit",
        "password": "xoxp-import-weight-test",
        "extra": {"base_url": "http://127.0.0.1:9/", "max_retry_wait": 0},
    }

    found = run_fresh(
        f"""
        import asyncio, json
        from {TRIGGER_MODULE} import SlackAuditLogsTrigger

        spec = json.loads(sys.argv[2])
        trigger = SlackAuditLogsTrigger(slack_audit_conn_id="slack_audit_default", spec=spec)

        async def main():
            return [event.payload async for event in trigger.run()]

        events = asyncio.run(main())
        print(json.dumps({{"events": events, "first_importer": first_importer}}))
        """,
        json.dumps(spec.to_json()),
        watched=(*LANDING_PATH, LOCAL_PATH_IMPLEMENTATION),
        env={"AIRFLOW_CONN_SLACK_AUDIT_DEFAULT": json.dumps(connection)},
    )

    importers = found["first_importer"]
    assert {name: importers.get(name) for name in LANDING_PATH} == dict.fromkeys(LANDING_PATH, "worker")
    # Where this Airflow's ObjectStoragePath has one (upath's, on 3.x): imported off the loop too.
    assert importers.get(LOCAL_PATH_IMPLEMENTATION, "worker") == "worker"
    [event] = found["events"]
    assert (event["status"], event["kind"]) == ("error", "transient")
