"""Every error the ingest raises, each with its kind stated, and the kind of any other exception.

Whether Airflow retries a failed landing depends on one thing, the error's kind:

- ``permanent``: another try fails the same way (a bad argument, a destination that does not fit, a
  store without the landing contract, an entry no strict UTF-8 file can hold). The task fails without
  retrying; the message says what to fix.
- ``transient``: the same work may succeed later (a lease another run keeps, a storage or network
  hiccup). The task's retries apply; the next try skips the committed intervals.
- ``cursor``: the API's cursor kept expiring on every re-read (only the client raises it).

The kind of an error of this package is a class attribute, never inferred from its builtin base (the
bases stay for callers who catch ``ValueError`` or ``TimeoutError``). Errors of the API client carry
their own kind (:mod:`airflow_provider_slack_audit.client`). Anything else is sorted by
:func:`kind_of`'s table: storage and network failures are transient, everything else permanent.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from airflow_provider_slack_audit.client.errors import ErrorKind, classify_exception


class _Interval(Protocol):
    """An interval, as an error names it (``windows.Interval``: this module sits below it)."""

    @property
    def key(self) -> str: ...


class IngestError(Exception):
    """An error of the ingest; ``kind`` says whether another try can help."""

    kind: ClassVar[ErrorKind] = "permanent"


class DestinationConflictError(IngestError, ValueError):
    """A run that would break "one destination, one truth": refused before any request (permanent)."""


class UnsupportedStoreError(IngestError, ValueError):
    """The destination's store cannot keep the landing contract (permanent: pick another store)."""


class ManifestCheckError(IngestError, ValueError):
    """The manifest does not cover its window exactly once, or its totals disagree with its intervals."""


class InvalidEntryError(IngestError, ValueError):
    """An entry that cannot be landed as strict UTF-8 JSON (permanent: a retry gets the same bytes).

    ``where`` names the entry (its position, page, interval and id), ``problem`` what is wrong with it.
    """

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(
            f"{where} {problem}; it cannot be landed as strict UTF-8 JSON, and the API returns the same "
            "bytes on a retry: report it to Slack, or land the window without that interval"
        )


class EvidenceLossError(IngestError):
    """A rewrite whose new read lacks ids the committed file holds: nothing was replaced (permanent)."""

    def __init__(self, interval: _Interval, *, lost: int, held: int) -> None:
        self.interval = interval
        self.lost = lost
        super().__init__(
            f"interval {interval.key} was not rewritten: the new read lacks {lost} of the {held} event ids "
            f"its committed file holds (API retention, an incident or a narrower token scope?). The landed "
            f"file and its marker are unchanged. To replace it anyway, destroying those events, rerun "
            f"with overwrite=True and replace_destructively=True"
        )


class LeaseWaitTimeout(IngestError, TimeoutError):
    """Another run kept an interval leased longer than ``max_wait`` (transient: retry later); the
    message says what the waiting run saw of it (renewals, or none)."""

    kind: ClassVar[ErrorKind] = "transient"


def kind_of(exc: BaseException) -> ErrorKind:
    """The kind of any exception a landing can raise: the error's own kind when it states one (this
    module's errors, the client's), the client's sorting of network and argument errors
    (:func:`~airflow_provider_slack_audit.client.classify_exception`), transient for storage
    failures (fsspec, s3fs, gcsfs and adlfs raise ``OSError`` subclasses for a store in trouble), and
    permanent for everything else (a missing connection, a bug: another try would fail the same way)."""
    if isinstance(exc, IngestError):
        return exc.kind
    kind = classify_exception(exc)
    if kind is not None:
        return kind
    return "transient" if isinstance(exc, OSError) else "permanent"


__all__ = [
    "DestinationConflictError",
    "ErrorKind",
    "EvidenceLossError",
    "IngestError",
    "InvalidEntryError",
    "LeaseWaitTimeout",
    "ManifestCheckError",
    "UnsupportedStoreError",
    "kind_of",
]
