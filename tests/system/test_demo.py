"""``make demo`` (tools/demo.py), one of the README's two commands, lands a day and loads it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.system, pytest.mark.slow]


def test_the_demo_lands_yesterday_and_loads_it_into_the_warehouse(tmp_path: Path) -> None:
    # A stand-in repository root, so the demo's .demo/ folder lands in tmp_path, not the work tree.
    (tmp_path / "example_dags").symlink_to(REPO / "example_dags")

    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "demo.py"), "--repo", str(tmp_path), "--events", "3000"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Landed [" in result.stdout
    assert "events per action" in result.stdout
    assert (tmp_path / ".demo" / "warehouse.db").is_file()
