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
        # A prepared HMAC object per key; .copy() is cheaper than hmac.new() per call.
        self._signer = hmac.new(_derive_key(secret), digestmod=hashlib.sha256)
        self._verifiers = [self._signer] + [
            hmac.new(_derive_key(k), digestmod=hashlib.sha256) for k in fallbacks
        ]

    def _sign(self, data: bytes, signer: Any) -> bytes:
        h = signer.copy()
        h.update(data)
        digest: bytes = h.digest()
        return digest

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
