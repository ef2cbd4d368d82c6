"""What every warehouse transfer does around its database: the window in, a summary out.

Each transfer (SQL, Snowflake, BigQuery) loads exactly one landed window: it resolves the window's
manifest from ``source`` (the landing operator's output, an Asset event's ``extra`` or a URL), checks
that the manifest covers its window exactly once, reads every data file through it (each file
verified against the SHA-256, size and line count the manifest records, as it is read), turns each
line into a flat row (:class:`~airflow_provider_slack_audit.transfers._schema.RowBuilder`) and
returns the same summary. Only how rows reach the database differs, so only that lives in the
transfers' own modules.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypedDict

from airflow_provider_slack_audit._partitions import check_partition_key
from airflow_provider_slack_audit.ingest.landing import WindowManifest, read_manifest
from airflow_provider_slack_audit.ingest.windows import Window
from airflow_provider_slack_audit.transfers._errors import error_summary, is_transient
from airflow_provider_slack_audit.transfers._schema import InvalidEntryError, Row, RowBuilder
from airflow_provider_slack_audit.transfers._table import BatchCounts
from airflow_provider_slack_audit.version_compat import AirflowFailException, ObjectStoragePath

__all__ = [
    "LoadSummary",
    "checked_event_extra",
    "landed_manifests",
    "landed_rows",
    "load_errors_classified",
    "load_summary",
    "manifest_location",
    "read_checked_manifest",
]


def manifest_location(source: Any) -> str | ObjectStoragePath:
    """The manifest a ``source`` names: the landing operator's summary, a dict with it, an asset
    event, or a path.

    The landing operator returns ``{"manifest": "<url>", "window": {...}, ...}``; its Asset events
    carry the same keys in their ``extra``, so either can be passed as-is. A partitioned event (or
    an extra with ``partition_key``) must name the window its extra records: see
    :func:`checked_event_extra`.
    """
    if _is_asset_event(source):
        source = checked_event_extra(source.extra, getattr(source, "partition_key", None))
    elif isinstance(source, Mapping) and source.get("partition_key"):
        source = checked_event_extra(source, None)
    if isinstance(source, Mapping):
        manifest = source.get("manifest")
        if not manifest:
            raise ValueError(
                f"source has no 'manifest' key (keys: {sorted(source)}); pass the landing operator's "
                "output (source=land.output) or the manifest's URL"
            )
        source = manifest
    if isinstance(source, ObjectStoragePath):
        return source
    if isinstance(source, str) and source.strip():
        return source.strip()
    raise TypeError(
        "source must be the landing operator's output (a dict with 'manifest'), an Asset event's extra, "
        f"or a manifest URL/path such as 'file:///data/slack_audit/_manifests/...manifest.json'; "
        f"got {type(source).__name__} {source!r}"
    )


def _is_asset_event(source: Any) -> bool:
    """An asset event as a run's ``triggering_asset_events`` holds it (an object with ``extra``)."""
    return not isinstance(source, Mapping | str | ObjectStoragePath) and isinstance(
        getattr(source, "extra", None), Mapping
    )


def checked_event_extra(extra: Mapping[str, Any], partition_key: str | None) -> dict[str, Any]:
    """A landing's asset event ``extra``, its partition key checked against the window it records.

    ``partition_key`` is the event's own key (Airflow 3.3 shows it on triggering events; 3.2 does
    not, and then the key the landing operator copied into the extra is checked). A key naming
    another window than the extra's means the event was not the landing's for that window: no load.
    """
    key = partition_key or extra.get("partition_key")
    if key:
        if partition_key and extra.get("partition_key") and extra["partition_key"] != partition_key:
            raise AirflowFailException(
                f"the asset event's partition key {partition_key!r} differs from the one its extra "
                f"records, {extra['partition_key']!r}: load the manifest by its URL instead"
            )
        try:
            check_partition_key(str(key), Window.from_json(extra["window"]))
        except (KeyError, TypeError) as error:
            raise AirflowFailException(
                f"the asset event with partition key {key!r} records no window in its extra "
                f"(keys: {sorted(extra)}): it was not emitted by the landing operator"
            ) from error
        except ValueError as error:
            raise AirflowFailException(str(error)) from error
    return dict(extra)


def read_checked_manifest(source: Any, source_conn_id: str | None) -> WindowManifest:
    """The source's manifest, verified by ``read_manifest`` to cover its window exactly once (before
    any row is written)."""
    location = manifest_location(source)
    try:
        return read_manifest(location, conn_id=source_conn_id)
    except FileNotFoundError as error:
        raise AirflowFailException(
            f"no window manifest at {location}: land the window first (pass source=land.output)"
        ) from error
    except ValueError as error:  # damaged, or not covering its window exactly once (ManifestCheckError)
        raise AirflowFailException(f"cannot load this window: {error}") from error


def landed_rows(manifest: WindowManifest, builder: RowBuilder) -> Iterator[Row]:
    """Every landed entry of the window as a row, file by file, each file verified as it is read.

    A file is read through a one-interval view of the manifest so errors can name the file and line.
    Corrupt or tampered data cannot be fixed by retrying, so both failures are AirflowFailException.
    """
    for landed in manifest.intervals:
        lines = dataclasses.replace(manifest, intervals=(landed,)).iter_lines(verify=True)
        number = 0
        try:
            for number, line in enumerate(lines, start=1):  # noqa: B007 (number is read in the handler)
                yield builder.build(line)
        except InvalidEntryError as error:
            raise AirflowFailException(
                f"line {number} of {landed.data_path} is not an Audit Logs entry: {error}; "
                "the landed file is corrupt, rerun the ingest of this window"
            ) from error
        except FileNotFoundError as error:
            raise AirflowFailException(
                f"{landed.data_path} is listed in the manifest but missing: rerun the ingest of this window"
            ) from error
        except ValueError as error:  # size, SHA-256 or line count differs from the manifest
            raise AirflowFailException(f"landed data failed verification: {error}") from error


@contextmanager
def load_errors_classified(what: str, *, permanent: tuple[type[BaseException], ...]) -> Iterator[None]:
    """Let errors a retry can fix propagate (Airflow retries them); fail the task on all others.

    ``what`` names the load in the message ("loading window ... into ..."); ``permanent`` lists the
    transfer's own errors whose message already says what to fix.
    """
    try:
        yield
    except AirflowFailException:
        raise
    except permanent as error:
        raise AirflowFailException(str(error)) from error
    except Exception as error:
        if is_transient(error):
            raise  # a lost connection, a lock, a busy warehouse or a timeout: a retry can succeed
        raise AirflowFailException(
            f"{what} failed with an error a retry would repeat: {error_summary(error)}"
        ) from error


class LoadSummary(TypedDict):
    """What every transfer returns (its XCom): the window it loaded, where, and what that did.

    Every row the window holds is counted once, as ``inserted`` (an id new to the table),
    ``updated`` (an id whose row changed) or ``unchanged``; a rerun of a loaded window counts
    them all unchanged.
    """

    #: The rows the window holds: ``inserted + updated + unchanged``.
    rows: int
    inserted: int
    updated: int
    unchanged: int
    #: The table loaded, by its full name.
    table: str
    #: The window loaded: its ISO bounds and the API's (``oldest``, ``latest``).
    window: dict[str, Any]
    #: The manifest's URL or path.
    manifest: str


def load_summary(
    log: Any, where: str, table: str, manifest: WindowManifest, counts: BatchCounts, started: float
) -> LoadSummary:
    """Log the load's one INFO line (what went where, what it did, how long it took) and return
    the transfer's :class:`LoadSummary`."""
    log.info(
        "Loaded window %s into %s: %d rows from %d files, %d inserted, %d updated, %d unchanged, %.1f s",
        manifest.window.key,
        where,
        counts.rows,
        len(manifest.intervals),
        counts.inserted,
        counts.updated,
        counts.unchanged,
        time.monotonic() - started,
    )
    return {
        "rows": counts.rows,
        "inserted": counts.inserted,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "table": table,
        "window": manifest.window.to_json(),
        "manifest": str(manifest.path),
    }


def landed_manifests(
    triggering_events: Mapping[Any, Any] | None, dag_run: Any = None
) -> list[dict[str, Any]]:
    """The ``extra`` of every landing that triggered an asset-scheduled run, oldest first.

    Pass a run's ``triggering_asset_events`` (``triggering_dataset_events`` on Airflow 2). Several
    windows can land before the run starts (a backfill lands many days): each becomes one load.
    Events without a manifest (e.g. created by hand in the UI) are skipped; a partitioned event
    whose key names another window than its extra fails the task (:func:`checked_event_extra`).
    In a partition-scheduled run they are the events of the run's partition, as Airflow chose them.
    A run no landing triggered (a manual run) loads the manifest its configuration names,
    ``{"manifest": "<url>"}``.
    """
    events = [event for per_asset in (triggering_events or {}).values() for event in per_asset]
    events.sort(key=lambda event: event.timestamp)
    manifests = [
        checked_event_extra(event.extra, getattr(event, "partition_key", None))
        for event in events
        if event.extra and event.extra.get("manifest")
    ]
    conf = getattr(dag_run, "conf", None) or {}
    if not manifests and conf.get("manifest"):
        manifests = [{"manifest": str(conf["manifest"])}]
    return manifests
