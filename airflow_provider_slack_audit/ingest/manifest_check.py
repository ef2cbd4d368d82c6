"""The window manifest check lives in ``landing.manifest`` (one "every second exactly once")."""

from .landing.manifest import ManifestCheckError, check_manifest  # merge shim

__all__ = ["ManifestCheckError", "check_manifest"]
