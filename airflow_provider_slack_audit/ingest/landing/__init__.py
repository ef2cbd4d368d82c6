"""
The landing contract: how one interval's audit events become a file a warehouse can trust.

Bottom to top, each module importing only from those before it: ``layout`` (where things live: keys,
partitions, paths, file names, the compression), ``_fs`` (opening files, exclusive create, small
documents, temporary names, on any accepted store), ``commit`` (the marker document), ``writer``
(one interval's data file, streamed), ``lease_store`` and ``lease`` (one live writer per interval),
``manifest`` (a window's intervals, checked and read back), ``ledger`` (the chain of manifests),
``plan`` (which intervals a run lands, pure), ``descriptor`` (the destination's recorded layout, and
the I/O planning needs), ``destination`` (:class:`Landing`, the facade the pipeline uses). Every
public name stays importable from this package.
"""

from __future__ import annotations

from .commit import FORMAT_VERSION, IntervalCommit
from .destination import Landing
from .layout import Compression
from .manifest import MANIFEST_KIND, ManifestInterval, WindowManifest, read_manifest
from .writer import IntervalWriter

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_KIND",
    "Compression",
    "IntervalCommit",
    "IntervalWriter",
    "Landing",
    "ManifestInterval",
    "WindowManifest",
    "read_manifest",
]
