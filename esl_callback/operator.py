"""The operator's credential: how a command on the serve's machine proves it is the operator.

`esl-callback call` reads the same configuration as `esl-callback serve`, so both know
`web.secret`. Each HTTP request the command makes carries

    Authorization: Operator t=<unix time>,n=<random nonce>,s=<signature>

where the signature is HMAC-SHA256, under a key derived from `web.secret` for this purpose only,
over the time, the nonce, the method, the path and the SHA-256 of the body. So a credential

* is worth nothing without `web.secret` (compared in constant time);
* is stale `MAX_AGE_SECONDS` after it was made (clocks of the two processes may differ that much);
* is good for that one request only: another method, path or body does not match, and the
  server remembers the nonces it has accepted until they are stale (`NonceCache`), so a copy of
  the header cannot be replayed either.

An operator is not a web user: no user, session or API token is involved, and a user's token is
never accepted here (nor an operator credential on the user's API).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

SCHEME = "Operator"
PURPOSE = b"esl-callback operator credential v1"
MAX_AGE_SECONDS = 60


class CredentialError(ValueError):
    """A credential that must be refused; the message says why, for the operator."""


def operator_key(secret: str) -> bytes:
    """The signing key for operator credentials, derived from `web.secret` (never the secret)."""
    if not secret:
        raise CredentialError(
            "web.secret is not set: operator commands need it (in the configuration file or "
            "ESL_CALLBACK_WEB_SECRET), the same for serve and for the command"
        )
    return hmac.new(secret.encode(), PURPOSE, hashlib.sha256).digest()


def signature(key: bytes, timestamp: int, nonce: str, method: str, path: str, body: bytes) -> str:
    message = "\n".join(
        (str(timestamp), nonce, method.upper(), path, hashlib.sha256(body).hexdigest())
    )
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def sign(secret: str, method: str, path: str, body: bytes = b"", now: float | None = None) -> str:
    """The `Authorization` header value for one request."""
    timestamp = int(time.time() if now is None else now)
    nonce = secrets.token_hex(16)
    sig = signature(operator_key(secret), timestamp, nonce, method, path, body)
    return f"{SCHEME} t={timestamp},n={nonce},s={sig}"


@dataclass(frozen=True)
class Credential:
    timestamp: int
    nonce: str
    signature: str


def parse(header: str) -> Credential:
    """The parts of an `Authorization: Operator ...` header, or CredentialError."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != SCHEME.lower():
        raise CredentialError(
            f"send an operator credential: Authorization: {SCHEME} t=...,n=...,s=..."
        )
    fields = dict(part.strip().partition("=")[::2] for part in rest.split(","))
    timestamp, nonce, sig = fields.get("t", ""), fields.get("n", ""), fields.get("s", "")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise CredentialError("the operator credential has no valid time (t=)")
    if not (8 <= len(nonce) <= 64 and nonce.isascii() and nonce.isalnum()):
        raise CredentialError("the operator credential has no valid nonce (n=)")
    if not (len(sig) == 64 and sig.isascii()):
        raise CredentialError("the operator credential has no valid signature (s=)")
    return Credential(int(timestamp), nonce, sig.lower())


class NonceCache:
    """Nonces of accepted credentials, kept until they would be stale anyway."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def add(self, nonce: str, expires_at: float, now: float) -> bool:
        """Remember `nonce`; False if it was already used."""
        if len(self._seen) > 1000:
            self._seen = {n: t for n, t in self._seen.items() if t > now}
        if self._seen.get(nonce, 0) > now:
            return False
        self._seen[nonce] = expires_at
        return True


def verify(
    secret: str,
    header: str,
    method: str,
    path: str,
    body: bytes,
    nonces: NonceCache,
    now: float | None = None,
) -> None:
    """Accept the credential for this request, or raise CredentialError saying why."""
    now = time.time() if now is None else now
    credential = parse(header)
    key = operator_key(secret)
    expected = signature(key, credential.timestamp, credential.nonce, method, path, body)
    if not hmac.compare_digest(expected, credential.signature):
        raise CredentialError(
            "the operator credential is wrong: the command's web.secret differs from serve's"
        )
    if abs(now - credential.timestamp) > MAX_AGE_SECONDS:
        raise CredentialError(
            f"the operator credential is stale (made {int(now - credential.timestamp)} s ago; "
            f"at most {MAX_AGE_SECONDS} s): check the clocks"
        )
    if not nonces.add(credential.nonce, credential.timestamp + MAX_AGE_SECONDS + 1, now):
        raise CredentialError("the operator credential was already used")
