"""Exceptions raised by lexigram_cache_django.

Every error we raise on purpose derives from :class:`LexigramCacheError`, so callers can
catch ours without catching unrelated bugs.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


class LexigramCacheError(Exception):
    """Base class of every error this package raises on purpose."""


class CacheSerializationError(LexigramCacheError, TypeError):
    """A value cannot be encoded by the configured serializer.

    Subclasses :class:`TypeError` too, so code that expected the underlying library's
    ``TypeError`` keeps working.
    """


class CacheDecodeError(LexigramCacheError):
    """Stored bytes cannot be decoded (corrupt, foreign, or written by another serializer)."""


class CacheIntegrityError(CacheDecodeError):
    """A signed payload failed its HMAC check; it is never unpickled."""


class CacheDecryptionError(CacheIntegrityError):
    """An encrypted entry failed authentication (tampered, or written under another key),
    or an alias with ``ENCRYPTION_KEY`` read an unencrypted entry. A miss, like any
    :class:`CacheDecodeError`; counted as an integrity error."""


class CacheBackendError(LexigramCacheError):
    """The cache server failed (connection refused, timeout, protocol error).

    Raised only when ``OPTIONS["FAIL_SILENTLY"]`` is False; otherwise errors are logged
    and counted and the call returns its fail-open default.
    """


class CacheConfigurationError(ImproperlyConfigured, LexigramCacheError):
    """A ``CACHES`` entry or the ``LEXIGRAM_CACHE`` setting is invalid."""


class CacheIncrError(LexigramCacheError, TypeError):
    """``incr``/``decr`` of a stored value that is not an integer.

    A :class:`TypeError`, as on Django's in-memory backends, whatever the server said.
    """
