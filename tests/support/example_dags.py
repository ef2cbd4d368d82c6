"""The repository's example DAGs, parsed as a DAG processor would on the Airflow line under test."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


def parse_example_dags(file_name: str | None = None) -> Any:
    """A DagBag of ``example_dags/<file_name>`` (every example DAG when None), without Airflow's own."""
    return parse_dag_file(EXAMPLE_DAGS / file_name if file_name else EXAMPLE_DAGS)


def parse_dag_file(path: Path) -> Any:
    """A DagBag of one DAG file (or folder), without Airflow's own examples."""
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.3+
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    # Where DagBag can also load Airflow's own examples, it must not (3.3's no longer can).
    takes_examples = "include_examples" in inspect.signature(DagBag).parameters
    options: dict[str, Any] = {"include_examples": False} if takes_examples else {}
    return DagBag(str(path), **options)


def example_dag(file_name: str, dag_id: str) -> Any:
    """The DAG ``dag_id`` of ``example_dags/<file_name>``; fails on any import error."""
    bag = parse_example_dags(file_name)
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def serialize_dag(dag: Any) -> dict[str, Any]:
    """The DAG as the scheduler stores it (``DagSerialization`` on 3.3+, ``SerializedDAG`` before)."""
    from airflow.serialization import serialized_objects

    serializer = getattr(serialized_objects, "DagSerialization", None) or serialized_objects.SerializedDAG
    result: dict[str, Any] = serializer.serialize_dag(dag)
    return result
