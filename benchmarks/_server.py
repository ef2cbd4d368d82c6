"""Run the fake Audit Logs server in its own process, so it never competes with what is measured."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

TOKEN = "xoxp-test"  # noqa: S105 (the fake server's default token, not a secret)


@contextmanager
def fake_server(
    *,
    events: int,
    seed: int,
    start: datetime,
    end: datetime,
    bench: bool = True,
    requests_per_minute: float | None = None,
    rate_limit_burst: int | None = None,
    startup_timeout: float = 900.0,
) -> Iterator[str]:
    """Start ``python -m airflow_provider_slack_audit.testing`` and yield its base URL; stop it after.

    ``bench`` pre-renders every entry before listening (a million entries take a while), so the
    server answers each page with one slice of memory.
    """
    with tempfile.TemporaryDirectory(prefix="bench-server-") as workdir:
        ready_file = Path(workdir) / "ready"
        log_path = Path(workdir) / "server.log"
        command = [
            sys.executable,
            "-m",
            "airflow_provider_slack_audit.testing",
            "--port",
            "0",
            "--events",
            str(events),
            "--seed",
            str(seed),
            "--start",
            start.isoformat(),
            "--end",
            end.isoformat(),
            "--ready-file",
            str(ready_file),
        ]
        if bench:
            command.append("--bench")
        if requests_per_minute is not None:
            command += ["--requests-per-minute", str(requests_per_minute)]
        if rate_limit_burst is not None:
            command += ["--rate-limit-burst", str(rate_limit_burst)]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield _wait_until_ready(process, ready_file, log_path, startup_timeout)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_ready(
    process: subprocess.Popen[bytes], ready_file: Path, log_path: Path, timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready_file.exists():
            return ready_file.read_text().strip()
        if process.poll() is not None:
            raise RuntimeError(
                f"the fake server exited with code {process.returncode} before listening; its output:\n"
                f"{_tail(log_path)}"
            )
        time.sleep(0.1)
    raise RuntimeError(
        f"the fake server did not listen within {timeout:.0f} s (pre-rendering too many events?); "
        f"its output:\n{_tail(log_path)}"
    )


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
