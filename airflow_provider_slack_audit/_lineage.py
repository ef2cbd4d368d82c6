"""OpenLineage of the landing task (what it read and wrote) and of the warehouse loads (landing to table).

Built from the summary ``execute_complete`` returned, i.e. from the outcome of the ingest wherever it
ran (the triggerer or the worker), never from attributes set before a deferral: a resumed task is a
new process. Without apache-airflow-providers-openlineage (the ``[openlineage]`` extra) there is no
lineage and no error.

Naming (https://openlineage.io/docs/spec/naming):

- input: namespace ``slack-audit://<host><base path>`` from the connection's base URL, e.g.
  ``slack-audit://api.slack.com/audit/v1``; name ``logs`` (the endpoint read).
- output: the destination as its storage names it: ``s3://bucket`` + ``slack_audit`` for
  ``s3://aws_default@bucket/slack_audit``, ``file`` + ``/data/slack_audit`` for local paths, as
  Airflow's own asset converters name them (the connection id is not part of the data's identity).
- run facet ``slackAuditLanding``: the window (ISO bounds and the API's inclusive ``oldest``/``latest``),
  events in the window, events fetched, intervals landed and skipped, requests, pages, bytes, seconds
  waited, the manifest and the filters. The output also carries the standard ``outputStatistics``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

INPUT_NAME = "logs"
RUN_FACET = "slackAuditLanding"
_SUMMARY_FIGURES = (
    "events",
    "events_landed",
    "intervals_landed",
    "intervals_skipped",
    "requests",
    "pages",
    "bytes",
    "wait_seconds",
)


def input_namespace(base_url: str) -> str:
    """``slack-audit://api.slack.com/audit/v1`` for ``https://api.slack.com/audit/v1/``."""
    parts = urlsplit(base_url)
    return f"slack-audit://{parts.netloc}{parts.path.rstrip('/')}"


def output_dataset_name(destination: str) -> tuple[str, str]:
    """The destination URL as OpenLineage's ``(namespace, name)``, without any connection id."""
    parts = urlsplit(destination)
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme in ("", "file"):  # as apache-airflow-providers-common-io names file assets
        return (f"file://{host}" if host else "file"), parts.path or "/"
    return f"{parts.scheme}://{host}", parts.path.strip("/") or "/"


def operator_lineage(
    summary: dict[str, Any] | None,
    *,
    base_url: str,
    destination: str,
    filters: dict[str, Any],
) -> Any:
    """The ``OperatorLineage`` of a landed window, or None without the OpenLineage provider or a summary."""
    if not summary:
        return None
    try:
        import attrs
        from airflow.providers.common.compat.openlineage.facet import (
            InputDataset,
            OutputDataset,
            OutputStatisticsOutputDatasetFacet,
            RunFacet,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None

    @attrs.define
    class SlackAuditLandingRunFacet(RunFacet):
        """What one run of the landing task read and wrote."""

        window: dict[str, Any]
        manifest: str
        filters: dict[str, Any]
        figures: dict[str, Any]

    output_namespace, output_name = output_dataset_name(destination)
    figures = {name: summary.get(name) for name in _SUMMARY_FIGURES if summary.get(name) is not None}
    output_statistics = OutputStatisticsOutputDatasetFacet(
        rowCount=summary.get("events_landed"), size=summary.get("bytes")
    )
    return OperatorLineage(
        inputs=[InputDataset(namespace=input_namespace(base_url), name=INPUT_NAME)],
        outputs=[
            OutputDataset(
                namespace=output_namespace,
                name=output_name,
                outputFacets={"outputStatistics": output_statistics},
            )
        ],
        run_facets={
            RUN_FACET: SlackAuditLandingRunFacet(
                window=dict(summary.get("window") or {}),
                manifest=str(summary.get("manifest") or ""),
                filters={key: value for key, value in filters.items() if value is not None},
                figures=figures,
            )
        },
    )


def load_lineage(summary: Mapping[str, Any] | None, *, output: tuple[str, str]) -> Any:
    """OpenLineage of a load: the landing destination in, the warehouse table (``output``) out.

    ``output`` is the table's OpenLineage ``(namespace, name)``; the input is named as the landing
    operator names its output (``file`` + path, ``s3://bucket`` + prefix). None without the
    OpenLineage provider or a summary.
    """
    if not summary:
        return None
    try:
        from airflow.providers.common.compat.openlineage import facet
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    manifest = str(summary["manifest"])
    destination = manifest.rsplit("/_manifests/", 1)[0]
    input_namespace, input_name = output_dataset_name(destination)
    statistics = facet.OutputStatisticsOutputDatasetFacet(rowCount=summary["inserted"] + summary["updated"])
    return OperatorLineage(
        inputs=[facet.InputDataset(namespace=input_namespace, name=input_name)],
        outputs=[
            facet.OutputDataset(
                namespace=output[0], name=output[1], outputFacets={"outputStatistics": statistics}
            )
        ],
    )
