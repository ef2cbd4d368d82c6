"""Write-once retention: data files, markers, manifests and ledger entries under S3 Object Lock.

With ``retention=`` every object that is evidence (data files, commit markers, window manifests and
ledger entries) is locked in COMPLIANCE mode until the write's time + ``retention``: markers,
manifests and ledger entries through the ``ObjectLockMode``/``ObjectLockRetainUntilDate`` arguments
of their PUT, a data file (a multipart upload) by one ``PutObjectRetention`` once uploaded, before its
marker commits it. In a bucket created with Object Lock (so versioned), a locked version cannot be
deleted, nor its retention shortened, by anyone (the account root included) before its date. A rerun
that rewrites an interval or a manifest writes a new version, locked too; a delete without a version
id only adds a delete marker: the evidence stays readable by version.

COMPLIANCE rather than GOVERNANCE: under GOVERNANCE a principal with ``s3:BypassGovernanceRetention``
can delete a protected version, which is the tamper this exists to prevent. The price is that a
retention set by mistake cannot be shortened: the bounds below guard against the worst of that.

Leases, owner records, the drift registry (``_registry/``) and temporary files are bookkeeping, not
evidence, and are written without a lock. The descriptor is created once, before the run's first
manifest, and is protected by the ledger's digests instead.

Other stores: GCS would need a bucket with object retention enabled and a per-object ``retention``
(``mode: Locked``, ``retainUntilTime``) set at upload; Azure Blob a container with version-level
immutability and a per-blob immutability policy (``Locked``, an expiry) set at upload. Neither is
implemented; ``retention=`` is refused for them, and for local and memory stores.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # importing this module imports no Airflow: the spec validates with it
    from airflow_provider_slack_audit.version_compat import ObjectStoragePath

RETENTION_MODE = "COMPLIANCE"
MIN_RETENTION = timedelta(days=1)
MAX_RETENTION = timedelta(days=100 * 366)
_S3_SCHEMES = ("s3", "s3a")


def validate_retention(retention: object, destination: str) -> None:
    """Raise (naming the fix) unless ``retention`` is None or a timedelta an S3 destination can keep."""
    if retention is None:
        return
    if not isinstance(retention, timedelta):
        raise TypeError(f"retention must be a timedelta such as timedelta(days=2557), got {retention!r}")
    if not MIN_RETENTION <= retention <= MAX_RETENTION:
        raise ValueError(
            f"retention {retention} is outside {MIN_RETENTION.days} day to {MAX_RETENTION.days // 366} "
            f"years; it locks every landed file in COMPLIANCE mode, which nobody can shorten afterwards"
        )
    scheme = urlsplit(destination).scheme.lower()
    if scheme not in _S3_SCHEMES:
        raise ValueError(
            f"retention= needs S3 Object Lock, but destination {destination!r} is on {scheme or 'a path'!r}: "
            f"land into an s3:// bucket created with Object Lock enabled, or drop retention= "
            f"(GCS and Azure Blob retention are not supported yet)"
        )


def lock_options(retention: timedelta | None, now: datetime | None = None) -> dict[str, Any]:
    """The extra arguments of an s3fs ``open`` that lock the object written (empty without retention)."""
    if retention is None:
        return {}
    written = now or datetime.now(timezone.utc)
    return {"ObjectLockMode": RETENTION_MODE, "ObjectLockRetainUntilDate": written + retention}


def lock_object(path: ObjectStoragePath, retention: timedelta, now: datetime | None = None) -> None:
    """Lock the current version of an object already written (one ``PutObjectRetention`` request).

    Data files are streamed through multipart uploads, and not every S3 implementation applies the
    lock headers of ``CreateMultipartUpload`` (moto does not): the lock is set once the upload is
    complete, before the commit marker that makes the interval committed is written.
    """
    bucket, key, _ = path.fs.split_path(path.path)
    written = now or datetime.now(timezone.utc)
    path.fs.call_s3(
        "put_object_retention",
        Bucket=bucket,
        Key=key,
        Retention={"Mode": RETENTION_MODE, "RetainUntilDate": written + retention},
    )


def check_object_lock(destination: ObjectStoragePath) -> None:
    """Raise ValueError unless the destination's bucket has Object Lock enabled (one storage request)."""
    bucket = destination.path.split("/", 1)[0]
    try:
        answer = destination.fs.call_s3("get_object_lock_configuration", Bucket=bucket)
    except (OSError, ValueError) as error:  # s3fs maps "no configuration" to an OSError
        raise ValueError(
            f"retention= needs S3 Object Lock, but bucket {bucket!r} has none ({error}); create the "
            f"bucket with Object Lock enabled (ObjectLockEnabledForBucket=True) or drop retention="
        ) from None
    enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
    if enabled != "Enabled":
        raise ValueError(
            f"retention= needs S3 Object Lock, but bucket {bucket!r} has it {enabled or 'off'}; create the "
            f"bucket with Object Lock enabled (ObjectLockEnabledForBucket=True) or drop retention="
        )


__all__ = [
    "MAX_RETENTION",
    "MIN_RETENTION",
    "RETENTION_MODE",
    "check_object_lock",
    "lock_object",
    "lock_options",
    "validate_retention",
]
