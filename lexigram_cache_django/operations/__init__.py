"""What an operator does to a cache alias: stats, health, clear, inspect, delete, list,
invalidate, doctor.

One set of functions shared by ``manage.py cache``, the admin page, the tasks and
``contrib/``, so each of them is a thin layer of presentation. Every function takes an alias
name from ``settings.CACHES``; an unknown one raises :class:`OperationError`. Results are
plain dicts of JSON types (the schema is in ``docs/operations.md``); passwords in LOCATION
are masked. Django's own backends are handled too, for what can be known about them.

One module per concern; import the names from here (``operations.alias_stats``).
"""

from __future__ import annotations

from .common import CannotEnumerate, OperationError, aliases
from .doctor import CLOCK_SKEW_WARNING, DOCTOR_SAMPLE, Finding, doctor
from .entries import PREVIEW_CHARS, describe_bytes, inspect_key
from .health import alias_health, worst_status
from .keyspace import CLEAR_BATCH, clear_alias, delete_keys, invalidate, list_keys
from .stats import add_stats_source, alias_stats, latency_of, server_names

__all__ = [
    "CLEAR_BATCH",
    "CLOCK_SKEW_WARNING",
    "DOCTOR_SAMPLE",
    "PREVIEW_CHARS",
    "CannotEnumerate",
    "Finding",
    "OperationError",
    "add_stats_source",
    "alias_health",
    "alias_stats",
    "aliases",
    "clear_alias",
    "delete_keys",
    "describe_bytes",
    "doctor",
    "inspect_key",
    "invalidate",
    "latency_of",
    "list_keys",
    "server_names",
    "worst_status",
]
