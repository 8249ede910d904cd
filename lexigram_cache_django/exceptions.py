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


class CacheServerError(CacheBackendError):
    """A command could not be served: refused, timed out, or refused by the server itself.

    Raised by a networked backend's client at its single choke point (``execute``) and
    caught once per public method by the fail-open policy of
    :class:`~lexigram_cache_django.backends.remote.RemoteCache`.

    ``server`` is the server's masked address; ``answered`` tells whether the server
    replied (an error reply such as out-of-memory or read-only) rather than failing to
    answer at all (refused, reset, timed out), which decides whether another command to it
    within the same operation is worth sending.
    """

    def __init__(
        self,
        message: str,
        *,
        server: str = "",
        answered: bool = False,
        short_circuited: bool = False,
    ) -> None:
        super().__init__(message)
        self.server = server
        self.answered = answered
        #: Not sent at all: the server's breaker is open, or the server already failed
        #: within this operation (microseconds, no socket touched).
        self.short_circuited = short_circuited
