"""
The landing contract: how one interval's audit events become a file a warehouse can trust.

``layout`` says where things live (keys, partitions, paths), ``writer`` writes files atomically
(gzip, temporary siblings), ``commit`` makes an interval committed (markers, the committed check),
``manifest`` lists a window's intervals and verifies them on read. :class:`Landing` ties them to
one destination. Every public name stays importable from this package.
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
