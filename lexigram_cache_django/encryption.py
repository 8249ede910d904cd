"""Values encrypted at rest: AES-256-GCM-SIV over the codec's payload, keys rotatable.

For personal data in a cache shared with other programs (or readable by whoever can reach
the server), ``OPTIONS["ENCRYPTION_KEY"]`` makes the codec encrypt each payload after
serializing and compressing it. The header byte and the entry metadata stay readable (the
backends read tag versions without decoding values) but are authenticated as associated
data, so any change to an entry makes it unreadable: a miss, never a wrong value.

Why AES-GCM-SIV: it is as fast as AES-GCM on machines with AES instructions, adds 28 bytes
(96-bit nonce + 128-bit tag), and a repeated random nonce (a real risk after ~2**32 writes
under one key, which a busy cache reaches) only reveals that two values were equal instead
of breaking the key as it would with AES-GCM. Fernet measured 8-25x slower per value and
adds a third in base64. ``benchmarks/scenario_models.py`` measures the cost.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from .exceptions import CacheConfigurationError, CacheDecryptionError

NONCE_BYTES = 12
TAG_BYTES = 16
#: Bytes encryption adds to each payload.
OVERHEAD = NONCE_BYTES + TAG_BYTES
#: Shortest key accepted, in bytes (UTF-8 for a str): 256 bits of material if random.
MIN_KEY_BYTES = 32
_INFO = b"lexigram_cache_django.encryption.aes-256-gcm-siv"


def _load() -> tuple[Any, Any, Any, Any]:
    try:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    except ImportError as exc:
        raise CacheConfigurationError(
            "ENCRYPTION_KEY needs the cryptography package: pip install "
            f"'lexigram-cache-django[encryption]' ({exc})"
        ) from exc
    return InvalidTag, hashes, AESGCMSIV, HKDF


def _key_bytes(key: Any, name: str) -> bytes:
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, bytes):
        raise CacheConfigurationError(f"{name} must be a str or bytes, not {type(key).__name__}")
    if len(key) < MIN_KEY_BYTES:
        raise CacheConfigurationError(
            f"{name} must be at least {MIN_KEY_BYTES} bytes of random material "
            f"(got {len(key)}); e.g. secrets.token_urlsafe(32)"
        )
    return key


class Encryptor:
    """Encrypts with the current key; decrypts with it or any fallback (rotation).

    The AES key is derived from each configured key with HKDF-SHA256, so the configured
    string is never used as a cipher key directly and may be any length >= 32 bytes.
    """

    __slots__ = ("_ciphers", "_invalid", "_primary")

    def __init__(self, key: Any, fallbacks: Iterable[Any] = ()) -> None:
        invalid, hashes, aesgcmsiv, hkdf = _load()
        if isinstance(fallbacks, str | bytes) or not isinstance(fallbacks, Iterable):
            raise CacheConfigurationError("ENCRYPTION_KEY_FALLBACKS must be a list of keys")
        materials = [_key_bytes(key, "ENCRYPTION_KEY")]
        materials += [_key_bytes(k, "ENCRYPTION_KEY_FALLBACKS entry") for k in fallbacks]
        try:
            self._ciphers = [
                aesgcmsiv(
                    hkdf(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(m)
                )
                for m in materials
            ]
        except Exception as exc:  # UnsupportedAlgorithm: an OpenSSL older than 3.2
            raise CacheConfigurationError(
                f"ENCRYPTION_KEY: AES-GCM-SIV is unavailable ({exc}); cryptography >= 42 "
                "with its bundled OpenSSL provides it"
            ) from exc
        self._primary = self._ciphers[0]
        self._invalid: type[Exception] = invalid

    def encrypt(self, data: bytes, aad: bytes) -> bytes:
        """``nonce + ciphertext + tag``, authenticating ``aad`` (header and metadata)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed: bytes = self._primary.encrypt(nonce, data, aad)
        return nonce + sealed

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        """The plaintext, or CacheDecryptionError (tampered, truncated, or unknown key)."""
        if len(blob) < OVERHEAD:
            raise CacheDecryptionError("encrypted payload too short")
        nonce, sealed = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
        for cipher in self._ciphers:
            try:
                data: bytes = cipher.decrypt(nonce, sealed, aad)
            except self._invalid:
                continue
            return data
        raise CacheDecryptionError(
            "encrypted entry failed authentication (tampered, or written under a key that "
            "is neither ENCRYPTION_KEY nor in ENCRYPTION_KEY_FALLBACKS)"
        )
