"""``python -m airflow_provider_slack_audit.testing`` serves the fake API as a separate process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.fake_api import END, START

MODULE = "airflow_provider_slack_audit.testing"


@pytest.fixture
def cli_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """The CLI serving 500 events of the fixed day, with a ready file; terminated afterwards."""
    ready_file = tmp_path / "ready"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            MODULE,
            "--port=0",
            "--events=500",
            "--seed=3",
            "--start=2026-01-01T00:00:00+00:00",
            "--end=2026-01-02",
            f"--ready-file={ready_file}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process, ready_file
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _logs(base_url: str, query: str) -> dict[str, object]:
    headers = {"Authorization": "Bearer xoxp-test"}
    request = urllib.request.Request(base_url + "logs?" + query, headers=headers)  # noqa: S310 (loopback http)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback http)
        return json.loads(response.read())


def test_cli_prints_one_listening_line_then_serves_until_sigterm(
    cli_server: tuple[subprocess.Popen[str], Path],
) -> None:
    process, _ = cli_server
    assert process.stdout is not None

    line = process.stdout.readline()
    base_url = line.removeprefix("listening on ").strip()
    body = _logs(base_url, f"oldest={START}&latest={END - 1}&limit=9999")
    process.send_signal(signal.SIGTERM)
    remaining_output = process.stdout.read()

    assert line.startswith("listening on http://127.0.0.1:") and base_url.endswith("/audit/v1/")
    assert len(body["entries"]) == 500  # type: ignore[arg-type]
    assert process.wait(timeout=10) == 0
    assert remaining_output == ""


def test_cli_writes_the_base_url_to_the_ready_file(cli_server: tuple[subprocess.Popen[str], Path]) -> None:
    process, ready_file = cli_server
    deadline = time.monotonic() + 30
    while not ready_file.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)

    base_url = ready_file.read_text().strip()

    assert process.stdout is not None
    assert process.stdout.readline().strip() == f"listening on {base_url}"
    assert _logs(base_url, f"oldest={START}&latest={START}")["entries"]


def test_cli_rejects_an_unknown_fault_kind() -> None:
    result = subprocess.run(
        [sys.executable, "-m", MODULE, "--fault-rate", "http_418=0.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "http_418" in result.stderr


def test_the_testing_package_does_not_import_airflow() -> None:
    script = (
        f"import sys, {MODULE}.__main__; print(any(name.split('.')[0] == 'airflow' for name in sys.modules))"
    )

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == "False"
