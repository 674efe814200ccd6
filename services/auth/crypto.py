"""Cryptography of the auth service: signing keys and their encryption at rest, and
password / client-secret hashing. CPU-bound functions here are called off the event loop.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt.algorithms import RSAAlgorithm

_NONCE = 12
_WRAP_INFO = b"imarc/auth/signing-key-wrap/v1"


def wrapping_key(secret: str) -> bytes:
    """An AES-256 key derived from the deployment secret (HKDF-SHA256, RFC 5869), so the
    private keys in the database are useless without the secret."""
    if not secret:
        raise RuntimeError(
            "IMARC_SECRET is not set; the auth service needs it to encrypt its signing keys"
        )
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_WRAP_INFO).derive(
        secret.encode()
    )


def seal(key: bytes, kid: str, plaintext: bytes) -> bytes:
    """AES-GCM with a random nonce; the kid is bound as associated data so a sealed key
    cannot be swapped onto another row."""
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, kid.encode())


def unseal(key: bytes, kid: str, sealed: bytes) -> bytes:
    return AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], kid.encode())


@dataclass(frozen=True)
class NewKey:
    kid: str
    private_pem: bytes
    public_jwk: dict[str, Any]


def public_jwk(private: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update(kid=kid, use="sig", alg="RS256")
    return jwk


def generate_key() -> NewKey:
    """A fresh 2048-bit RSA key for RS256 (RFC 7518 §3.3 requires at least 2048)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = secrets.token_urlsafe(12)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return NewKey(kid, pem, public_jwk(private, kid))


def load_private(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("a signing key is not an RSA key")
    return key


# -- passwords and client secrets --------------------------------------------------


def make_hasher() -> PasswordHasher:
    """Argon2id with argon2-cffi's defaults (RFC 9106's second recommended option:
    t=3, 64 MiB, p=4): memory-hard, so guessing on GPUs is expensive."""
    return PasswordHasher()


@cache
def hasher() -> PasswordHasher:
    return make_hasher()


def hash_secret(secret: str) -> str:
    return hasher().hash(secret)


@cache
def _dummy_hash() -> str:
    return hasher().hash(secrets.token_urlsafe(16))


def verify_secret(stored: str | None, candidate: str) -> tuple[bool, bool]:
    """(matches, needs rehash). With no stored hash (unknown account) a dummy hash is
    checked anyway, so a wrong username takes as long as a wrong password."""
    try:
        hasher().verify(stored or _dummy_hash(), candidate)
    except (VerificationError, InvalidHashError):
        return False, False
    if stored is None:
        return False, False
    return True, hasher().check_needs_rehash(stored)


def warm_up() -> None:
    """Compute the dummy hash once at start, not during the first login."""
    _dummy_hash()


def new_client_id(prefix: str) -> str:
    return prefix + secrets.token_hex(8)


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


def new_password() -> str:
    return secrets.token_urlsafe(15)
