"""The window manifest check lives in ``landing.manifest`` (one "every second exactly once")."""

from .errors import ManifestCheckError  # merge shim
from .landing.manifest import check_manifest  # merge shim

__all__ = ["ManifestCheckError", "check_manifest"]
