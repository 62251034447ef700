"""Errors raised by the index store; each names the folder and says how to fix it."""

from __future__ import annotations


class IndexStoreError(ValueError):
    """An index folder is missing, incomplete or corrupt, or a build cannot proceed."""


class IndexMismatchError(IndexStoreError):
    """The index was built with a different model than the one it is being used with."""


class IndexBusyError(IndexStoreError):
    """Another process is building the same index folder right now."""
