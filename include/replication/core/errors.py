"""Typed errors of the replication pipeline.

Every error the pipeline raises on purpose derives from :class:`ReplicationError`. Subclasses carry
the table, column and row key they are about as attributes (and in the message), and say through
``retryable`` whether running the task again can help. Driver errors are wrapped with
``raise ... from exc`` so the original traceback stays attached. Messages never contain secrets:
connection URIs are passed through :func:`redact` before they reach a message.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "ReplicationError",
    "ConfigurationError",
    "UnsupportedTypeError",
    "DataError",
    "ValidationError",
    "SourceError",
    "TargetError",
    "redact",
]

_URI_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s]*)(?P<tail>@)", re.I)
_KV_PASSWORD = re.compile(r"(?P<head>\b(?:password|pwd)\s*=\s*)(?P<secret>[^;\s&]+)", re.I)


def redact(text: str) -> str:
    """Remove passwords from a text that may hold connection URIs or key=value strings.

    Args:
        text: any text, e.g. a driver's error message.

    Returns:
        The text with ``scheme://user:SECRET@`` and ``password=SECRET`` values replaced by ``***``.
    """
    text = _URI_PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", text)
    return _KV_PASSWORD.sub(lambda m: f"{m['head']}***", text)


class ReplicationError(Exception):
    """Base class of every error raised on purpose by the pipeline.

    Attributes:
        table: qualified table name the error is about, or None.
        column: column name, or None.
        key: primary-key value(s) of the offending row, or None.
        retryable: True when a retry of the task may succeed (a lost connection); False when the
            same input will fail the same way (a bad value, an unsupported type).
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        table: str | None = None,
        column: str | None = None,
        key: Any = None,
        retryable: bool | None = None,
    ) -> None:
        self.table = table
        self.column = column
        self.key = key
        if retryable is not None:
            self.retryable = retryable
        where = []
        if table is not None:
            where.append(f"table {table}")
        if column is not None:
            where.append(f"column {column}")
        if key is not None:
            where.append(f"key {key!r}")
        self.reason = redact(message)
        super().__init__(f"{', '.join(where)}: {self.reason}" if where else self.reason)


class ConfigurationError(ReplicationError):
    """A parameter, connection or option is missing or invalid (permanent)."""


class UnsupportedTypeError(ReplicationError):
    """A source column has a type the type map does not cover (permanent, raised before copying)."""


class DataError(ReplicationError):
    """A value cannot be held by the target unchanged: NUL in text, out of range, too long (permanent)."""


class ValidationError(ReplicationError):
    """Source and target disagree after a copy (row count or content); permanent for that run."""


class SourceError(ReplicationError):
    """Reading from the source failed; retryable unless stated otherwise."""

    retryable = True


class TargetError(ReplicationError):
    """Writing to the target failed; retryable unless stated otherwise."""

    retryable = True
