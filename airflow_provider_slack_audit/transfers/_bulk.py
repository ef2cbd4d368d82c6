"""What the bulk-loading transfers (Snowflake, BigQuery) share: one file of rows, one MERGE by id.

A warehouse loads fastest from files, and an upsert there is a ``MERGE`` from a staging table. So
these transfers write the window's rows (built by the SQL transfer's ``RowBuilder``) into ONE
newline-delimited JSON file, load it into a staging table with one statement, and ``MERGE`` that
into the target by ``id``: a constant handful of statements per window, whatever its size.

Each line of the file is one row as a JSON object keyed by column name, plus ``seq``, its position
in the window: when the window repeats an id (two intervals holding one entry, e.g. re-dated), the
``MERGE`` takes the last copy, as the SQL transfer does. Timestamps are ISO-8601 UTC text; ``details``,
``anomaly_reasons`` and ``raw`` are JSON text, parsed by the warehouse into its JSON type.

Going through a file of rows rather than the landed files themselves keeps one definition of the
columns (no second one in each warehouse's SQL), checks every byte loaded against the manifest, and
works for every landing store (a local landing included, which a warehouse cannot read).
"""

from __future__ import annotations

import importlib
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, NamedTuple

import msgspec
from isal import igzip

from airflow_provider_slack_audit._lineage import load_lineage
from airflow_provider_slack_audit.ingest.landing import WindowManifest
from airflow_provider_slack_audit.transfers._errors import (
    InvalidTableNameError,
    SchemaMismatchError,
    missing_provider_hint,
)
from airflow_provider_slack_audit.transfers._schema import (
    ADDED_COLUMNS,
    COLUMN_NAMES,
    COLUMNS,
    JSON_KINDS,
    VALUE_COLUMNS,
    ColumnKind,
    RowBuilder,
)
from airflow_provider_slack_audit.transfers._table import BatchCounts, iso_utc
from airflow_provider_slack_audit.transfers._window import (
    LoadSummary,
    landed_rows,
    load_errors_classified,
    load_summary,
    read_checked_manifest,
)
from airflow_provider_slack_audit.version_compat import AirflowFailException, BaseOperator

if TYPE_CHECKING:
    from airflow_provider_slack_audit.version_compat import Context

__all__ = [
    "BIGQUERY",
    "SEQ",
    "SNOWFLAKE",
    "STAGED_FILE_NAME",
    "BulkLoadOperator",
    "MergeDialect",
    "PerKind",
    "StagedRows",
    "Staging",
    "counts_from_merge",
    "identifier",
    "merge_statement",
    "write_staged_rows",
]

#: The column holding each row's position in the window (the last copy of an id wins).
SEQ: Final = "seq"
#: The staged file's name (gzip: warehouses decompress it on load).
STAGED_FILE_NAME: Final = "slack_audit_rows.jsonl.gz"
_IDENTIFIER_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def identifier(what: str, name: str, *, extra: str = "") -> str:
    """``name`` if it is a plain identifier (letters, digits, underscores; ``extra`` chars too)."""
    allowed = _IDENTIFIER_CHARS | frozenset(extra)
    if not name or len(name) > 255 or not set(name) <= allowed or name[0].isdigit():
        raise InvalidTableNameError(
            f"{what} {name!r} is not a plain identifier: use letters, digits and underscores"
            + (f" (and {' '.join(sorted(extra))})" if extra else "")
            + ", not starting with a digit"
        )
    return name


@dataclass(frozen=True)
class StagedRows:
    """The window's rows in one gzip'd JSON-lines file."""

    path: Path
    rows: int


def write_staged_rows(manifest: WindowManifest, directory: Path) -> StagedRows:
    """Write every landed entry of the window as a row to ``directory/STAGED_FILE_NAME``.

    The landed files are verified as they are read (see ``landed_rows``); memory stays flat.
    """
    builder = RowBuilder(iso_utc("Z"))
    encode = msgspec.json.Encoder().encode
    path = directory / STAGED_FILE_NAME
    rows = 0
    with igzip.open(path, "wb", compresslevel=1) as file:  # type: ignore[no-untyped-call]
        for rows, row in enumerate(landed_rows(manifest, builder), start=1):
            record = dict(zip(COLUMN_NAMES, row, strict=True))
            record[SEQ] = rows
            file.write(encode(record) + b"\n")
    return StagedRows(path, rows)


class PerKind(NamedTuple):
    """A warehouse's spelling of one thing for text (and key), timestamp and JSON (and raw) columns."""

    text: str
    timestamp: str
    json: str

    def of(self, name: str) -> str:
        """The spelling for column ``name``."""
        kind = COLUMNS[name]
        if kind in JSON_KINDS:
            return self.json
        return self.timestamp if kind is ColumnKind.TIMESTAMP else self.text


@dataclass(frozen=True)
class MergeDialect:
    """How one warehouse types the columns and spells the MERGE from its staging table."""

    #: The target table's column types.
    types: PerKind
    #: A staged column (``{}``: its name) as a value of the target column's type.
    staged: PerKind
    #: A JSON value (``{}``) in a form that compares: JSON types have no equality, their text does.
    json_text: str
    #: The staged rows' ``seq`` as a number, for picking the last copy of an id.
    staged_seq: str
    #: A ``WHERE`` condition before ``QUALIFY``, for a dialect that wants one there (BigQuery).
    staged_where: str = ""

    def staged_value(self, name: str) -> str:
        return self.staged.of(name).format(name)

    def comparable(self, value: str, name: str) -> str:
        return self.json_text.format(value) if COLUMNS[name] in JSON_KINDS else value

    def count_distinct_ids(self, staging: str) -> str:
        return f"SELECT COUNT(DISTINCT {self.staged_value('id')}) FROM {staging}"  # noqa: S608


# Each warehouse's spelling, side by side, so that the MERGE below reads against both.
SNOWFLAKE: Final = MergeDialect(
    types=PerKind("VARCHAR", "TIMESTAMP_TZ", "VARIANT"),
    # The staging table's one VARIANT column, v, holds each row as the rows file's JSON object.
    staged=PerKind("v:{}::VARCHAR", "v:{}::TIMESTAMP_TZ", "PARSE_JSON(v:{}::VARCHAR)"),
    # VARIANTs compare as their JSON text: both sides come from PARSE_JSON of the same kind of text.
    json_text="TO_JSON({})",
    staged_seq=f"v:{SEQ}::NUMBER",
)
BIGQUERY: Final = MergeDialect(
    types=PerKind("STRING", "TIMESTAMP", "JSON"),
    # PARSE_JSON's wide_number_mode 'exact' (the default): a number JSON cannot hold exactly (past
    # 64-bit integers, or a decimal past 17 digits) fails the load rather than being silently rounded.
    staged=PerKind("{}", "TIMESTAMP({})", "PARSE_JSON({})"),
    # JSON values have no equality in BigQuery: compare their canonical text (both sides parsed alike).
    json_text="TO_JSON_STRING({})",
    staged_seq=SEQ,
    staged_where="TRUE",  # BigQuery wants QUALIFY next to a WHERE, GROUP BY or HAVING
)


def merge_statement(target: str, staging: str, dialect: MergeDialect) -> str:
    """``MERGE`` the staging table into ``target`` by id: new ids inserted, changed rows updated.

    ``WHEN MATCHED AND <a column differs>`` leaves identical rows untouched, so a reload writes
    nothing and the warehouse's own counts tell inserted, updated and unchanged rows apart.
    """
    values = ",\n    ".join(f"{dialect.staged_value(name)} AS {name}" for name in COLUMN_NAMES)
    differs = "\n    OR ".join(
        f"{dialect.comparable(f't.{name}', name)} IS DISTINCT FROM {dialect.comparable(f's.{name}', name)}"
        for name in VALUE_COLUMNS
    )
    updates = ", ".join(f"{name} = s.{name}" for name in VALUE_COLUMNS)
    # Names only: identifiers validated by the operators, column names from _schema; no values.
    return (
        f"MERGE INTO {target} AS t\n"  # noqa: S608
        f"USING (\n  SELECT\n    {values}\n  FROM {staging}\n"
        + (f"  WHERE {dialect.staged_where}\n" if dialect.staged_where else "")
        + f"  QUALIFY ROW_NUMBER() OVER (\n"  # noqa: S608
        f"    PARTITION BY {dialect.staged_value('id')} ORDER BY {dialect.staged_seq} DESC) = 1\n"
        f") AS s\nON t.id = s.id\n"
        f"WHEN MATCHED AND (\n    {differs}\n) THEN UPDATE SET {updates}\n"
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(COLUMN_NAMES)})\n"
        f"  VALUES ({', '.join(f's.{name}' for name in COLUMN_NAMES)})"
    )


def counts_from_merge(distinct: int, inserted: int, updated: int) -> BatchCounts:
    """Every distinct id of the window counted once: inserted, updated, or left unchanged."""
    return BatchCounts(inserted=inserted, updated=updated, unchanged=distinct - inserted - updated)


@dataclass(frozen=True)
class Staging:
    """One load's staging table in a warehouse, beside the target table made ready for it."""

    #: The target's full name, as the load's summary names it.
    target: str
    #: The target's and the staging table's names as the warehouse's SQL writes them.
    target_sql: str
    staging_sql: str
    #: Load the rows file into the staging table; return the rows the warehouse says it loaded.
    load: Callable[[Path], int]
    #: Run a query of one number; return it.
    count: Callable[[str], int]
    #: Run the MERGE; return the rows it inserted and updated.
    merge: Callable[[str], tuple[int, int]]


class BulkLoadOperator(BaseOperator):
    """What both bulk transfers do around their load: check names, read the manifest, classify errors.

    The arguments both take are declared here (each operator documents them), and the load itself:
    the rows file into a staging table, a check that the warehouse loaded every row, one count of
    distinct ids and one ``MERGE``. A subclass names its ``warehouse`` and ``dialect``, sets
    ``hook_params``, and implements
    ``target`` (the table's name, validated; ``InvalidTableNameError`` fails the task), ``_staging``
    and ``_lineage_output``.
    """

    #: The warehouse's name in messages, logs and the docs' page title ("BigQuery", "Snowflake").
    warehouse: ClassVar[str]
    #: The provider's hook: its module, its class, the provider's name, its connection type.
    hook_class: ClassVar[tuple[str, str, str, str]]
    #: How the warehouse types the columns and spells the MERGE.
    dialect: ClassVar[MergeDialect]
    #: The hook's keyword arguments, set by each subclass's constructor from its own arguments (as
    #: common-sql's operators keep theirs).
    hook_params: dict[str, Any]
    #: The last load's summary in this process, for its lineage.
    _summary: LoadSummary | None = None

    def __init__(
        self,
        *,
        source: Any,
        table: str = "slack_audit_logs",
        source_conn_id: str | None = None,
        create_table: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.table = table
        self.source_conn_id = source_conn_id
        self.create_table = create_table

    @cached_property
    def hook(self) -> Any:
        """The provider's hook, built from ``hook_params``; a missing provider fails the task."""
        module, name, provider, conn_type = self.hook_class
        try:
            hook = getattr(importlib.import_module(module), name)
        except ImportError as error:
            raise AirflowFailException(
                f"the {provider} provider is not installed: {missing_provider_hint(conn_type)}"
            ) from error
        return hook(**self.hook_params)

    def target(self) -> str:
        raise NotImplementedError

    def _staging(self, target: str) -> AbstractContextManager[Staging]:
        """Make ``target`` ready (created, new columns added), and an empty staging table, dropped on exit."""
        raise NotImplementedError

    def _load(self, target: str, manifest: WindowManifest) -> tuple[str, BatchCounts]:
        """Load the window into ``target``; return the table's full name and the counts."""
        with self._staging(target) as staging:
            with tempfile.TemporaryDirectory(prefix="slack-audit-rows-") as directory:
                staged = write_staged_rows(manifest, Path(directory))
                loaded = staging.load(staged.path)
            if loaded != staged.rows:
                raise ValueError(
                    f"{self.warehouse} loaded {loaded} of the window's {staged.rows} rows into staging"
                )
            distinct = staging.count(self.dialect.count_distinct_ids(staging.staging_sql))
            inserted, updated = staging.merge(
                merge_statement(staging.target_sql, staging.staging_sql, self.dialect)
            )
        return staging.target, counts_from_merge(distinct, inserted, updated)

    def _lineage_output(self, table: str) -> tuple[str, str]:
        """The OpenLineage (namespace, name) of the table loaded."""
        raise NotImplementedError

    def execute(self, context: Context) -> LoadSummary:
        try:
            target = self.target()
        except InvalidTableNameError as error:
            raise AirflowFailException(str(error)) from error
        manifest = read_checked_manifest(self.source, self.source_conn_id)
        started = time.monotonic()
        with load_errors_classified(
            f"loading window {manifest.window.key} into {self.warehouse} table {target}",
            permanent=(SchemaMismatchError,),
        ):
            target, counts = self._load(target, manifest)
        self._summary = load_summary(
            self.log, f"{self.warehouse} table {target}", target, manifest, counts, started
        )
        return self._summary

    def _addable_columns(self, table: str, present: Sequence[str]) -> list[str]:
        """The columns newer releases added that ``table`` lacks; any other missing column fails."""
        have = {name.lower() for name in present}
        addable = [name for name in COLUMN_NAMES if name not in have and name in ADDED_COLUMNS]
        missing = [name for name in COLUMN_NAMES if name not in have and name not in ADDED_COLUMNS]
        if missing:
            raise SchemaMismatchError(
                f"{self.warehouse} table {table} lacks the columns {', '.join(missing)}; add them (the "
                f"docs' {self.warehouse} page lists their types), or load into a new table"
            )
        if addable:
            self.log.info("Adding columns %s to %s (added in a newer release)", ", ".join(addable), table)
        return addable

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the landing destination in, the table out."""
        if not self._summary:
            return None
        return load_lineage(self._summary, output=self._lineage_output(self._summary["table"]))
