"""Secrets at rest: PINs and passwords hashed with Argon2, API tokens with SHA-256."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# PINs are short, so their hashes must be slow; a PIN check happens once per call, not per event.
_hasher = PasswordHasher()


def hash_secret(secret: str) -> str:
    """Argon2id hash of a PIN or password."""
    return _hasher.hash(secret)


def verify_secret(stored_hash: str | None, candidate: str) -> bool:
    """True when `candidate` matches the stored hash; False for no hash or any mismatch."""
    if not stored_hash:
        return False
    try:
        return _hasher.verify(stored_hash, candidate)
    except (VerificationError, InvalidHashError):
        return False


def new_api_token() -> str:
    """A fresh random API token, shown to the user once."""
    return secrets.token_urlsafe(32)


def hash_api_token(token: str) -> str:
    """API tokens are long and random, so a fast hash is enough to look them up."""
    return hashlib.sha256(token.encode()).hexdigest()
