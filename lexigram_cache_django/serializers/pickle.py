"""Pickle signed with HMAC-SHA256, the default serializer.

Unpickling attacker-controlled bytes runs code, and a cache server is shared state that
other programs can write to. Every payload therefore carries an HMAC of the pickle keyed
from Django's ``SECRET_KEY``; a payload whose HMAC does not verify (against the current
key or any key in ``SECRET_KEY_FALLBACKS``) is rejected before ``pickle.loads`` sees it.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from ..exceptions import CacheIntegrityError, CacheSerializationError
from .base import Serializer

DIGEST_SIZE = hashlib.sha256().digest_size
_SALT = b"lexigram_cache_django.serializers.pickle.SignedPickleSerializer"


def _derive_key(secret: str | bytes) -> bytes:
    """Derive a dedicated key so the cache never signs with SECRET_KEY itself."""
    if isinstance(secret, str):
        secret = secret.encode()
    return hashlib.sha256(_SALT + secret).digest()


class _Signer:
    """HMAC-SHA256 (RFC 2104) from two prepared ``hashlib`` states, one per pad.

    The same bytes as ``hmac.new(key, data, "sha256").digest()`` (a test checks it), in
    ~0.7 µs instead of ~1.1 µs for ``HMAC.copy()`` (whose Python wrapper does the work
    twice) and ~1.7 µs for ``hmac.digest()``: it runs on every read and write.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        block = hashlib.sha256().block_size
        if len(key) > block:
            key = hashlib.sha256(key).digest()
        key = key.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def sign(self, data: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class SignedPickleSerializer(Serializer):
    """``pickle`` with an HMAC-SHA256 prefix; verified before anything is unpickled.

    OPTIONS: ``PICKLE_VERSION`` (default: highest), ``SIGNING_KEY`` (default
    ``settings.SECRET_KEY``) and ``SIGNING_KEY_FALLBACKS`` (default
    ``settings.SECRET_KEY_FALLBACKS``).
    """

    id = 1
    name = "pickle"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.protocol: int = int(self.options.get("PICKLE_VERSION", pickle.HIGHEST_PROTOCOL))
        if self.protocol < 0:
            self.protocol = pickle.HIGHEST_PROTOCOL
        secret = self.options.get("SIGNING_KEY") or settings.SECRET_KEY
        fallbacks = self.options.get("SIGNING_KEY_FALLBACKS")
        if fallbacks is None:
            fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", [])
        self._signer = _Signer(_derive_key(secret))
        self._verifiers = [self._signer] + [_Signer(_derive_key(k)) for k in fallbacks]

    @staticmethod
    def _sign(data: bytes, signer: _Signer) -> bytes:
        return signer.sign(data)

    def dumps(self, value: Any) -> bytes:
        try:
            data = pickle.dumps(value, self.protocol)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise CacheSerializationError(
                f"pickle cannot encode a value of type {type(value).__qualname__}: {exc}"
            ) from exc
        return self._sign(data, self._signer) + data

    def loads(self, data: bytes) -> Any:
        if len(data) < DIGEST_SIZE:
            raise CacheIntegrityError("payload too short to carry a signature")
        signature = data[:DIGEST_SIZE]
        body = data[DIGEST_SIZE:]
        for verifier in self._verifiers:
            if hmac.compare_digest(signature, self._sign(body, verifier)):
                return pickle.loads(body)
        raise CacheIntegrityError("bad signature: payload rejected without unpickling")
