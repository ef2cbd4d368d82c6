"""Running ``benchmarks/bench_ingest.py`` from the tests as ``make bench`` does, and loading its modules."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
BENCH = BENCHMARKS / "bench_ingest.py"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module, its sibling modules importable while it loads."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def run_bench(
    workdir: Path, *arguments: str, timeout: float
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run the harness with ``arguments`` in its own process; its exit and its JSON report."""
    report = workdir / "report.json"
    completed = subprocess.run(
        [sys.executable, str(BENCH), *arguments, "--json", str(report), "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed, json.loads(report.read_text())
