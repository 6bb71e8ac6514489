"""Secrets at rest: passwords hashed with Argon2; PINs and API tokens with SHA-256.

A PIN identifies its account by itself (the caller types nothing else), so it must be found by
an index lookup: it is stored as HMAC-SHA256 under a random key kept in the database's settings,
never in clear. PINs are short, so no hash protects them against someone holding the database;
what protects them is the lockout after a few wrong tries (see `lockout`).
Argon2 costs tens of milliseconds of CPU; it is kept for web passwords, checked once per login.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def pin_digest(pin: str, key: str) -> str:
    """The stored, searchable form of a PIN: HMAC-SHA256 under the installation's key."""
    return hmac.new(key.encode(), pin.encode(), hashlib.sha256).hexdigest()


def new_key() -> str:
    """A random key for `pin_digest`, made once per database."""
    return secrets.token_hex(32)


def hash_password(secret: str) -> str:
    """Argon2id hash of a web password."""
    return _hasher.hash(secret)


def verify_password(stored_hash: str | None, candidate: str) -> bool:
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
