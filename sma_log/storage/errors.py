"""Errors the storage layer raises; each carries one line a person can act on."""

from __future__ import annotations


class StorageError(Exception):
    """A write or read failed; ``str()`` is a single readable line."""


class DatabaseRefused(StorageError):
    """The file is not one sma-log may open (foreign, corrupt, newer, unreadable).

    Raised before any byte of the file is written.
    """


class NotFound(StorageError):
    pass


class Conflict(StorageError):
    """The change contradicts what is stored (e.g. a second open procedure)."""
