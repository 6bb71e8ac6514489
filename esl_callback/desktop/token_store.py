"""Where the API token is kept between runs: the OS keyring when `keyring` works there (macOS
Keychain, Windows Credential Locker, the Secret Service on Linux desktops), otherwise a file in
the configuration folder that only the user can read (0600, its folder 0700).

Tokens are kept per server and username. `choose_store` tries the keyring once; a keyring that
fails later (locked, gone) falls back to the file for that operation, with the reason logged.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

SERVICE = "esl-callback-desktop"
TOKEN_FILE = "tokens.json"


def key(server: str, username: str) -> str:
    return f"{username}@{server}"


class TokenStore(Protocol):
    description: str

    def load(self, server: str, username: str) -> str | None: ...

    def save(self, server: str, username: str, token: str) -> None: ...

    def forget(self, server: str, username: str) -> None: ...


class FileTokenStore:
    """Tokens in `folder/tokens.json`, mode 0600."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / TOKEN_FILE
        self.description = f"a file only you can read ({self.path})"

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return (
            {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}
        )

    def _write(self, tokens: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # a file made earlier with other permissions too
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(tokens, out)

    def load(self, server: str, username: str) -> str | None:
        return self._read().get(key(server, username))

    def save(self, server: str, username: str, token: str) -> None:
        tokens = self._read()
        tokens[key(server, username)] = token
        self._write(tokens)

    def forget(self, server: str, username: str) -> None:
        tokens = self._read()
        if tokens.pop(key(server, username), None) is not None:
            self._write(tokens)


class KeyringTokenStore:
    """Tokens in the OS keyring; any keyring failure falls back to `fallback`."""

    def __init__(self, fallback: FileTokenStore) -> None:
        import keyring

        self.keyring = keyring
        self.fallback = fallback
        self.description = f"the system keyring ({type(keyring.get_keyring()).__name__})"

    def load(self, server: str, username: str) -> str | None:
        try:
            found = self.keyring.get_password(SERVICE, key(server, username))
        except Exception as exc:  # keyring backends raise many kinds
            log.warning("the keyring cannot be read (%s); using %s", exc, self.fallback.path)
            found = None
        return found or self.fallback.load(server, username)

    def save(self, server: str, username: str, token: str) -> None:
        try:
            self.keyring.set_password(SERVICE, key(server, username), token)
        except Exception as exc:
            log.warning("the keyring cannot keep the token (%s); using %s", exc, self.fallback.path)
            self.fallback.save(server, username, token)
            return
        self.fallback.forget(server, username)  # one copy only

    def forget(self, server: str, username: str) -> None:
        try:
            self.keyring.delete_password(SERVICE, key(server, username))
        except Exception as exc:  # none kept there (PasswordDeleteError), or no keyring
            log.debug("nothing removed from the keyring: %s", exc)
        self.fallback.forget(server, username)


def keyring_works() -> bool:
    """Whether the `keyring` package is installed and has a usable backend here."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return False
    try:
        backend = keyring.get_keyring()
    except Exception:
        return False
    return not isinstance(backend, fail.Keyring) and getattr(backend, "priority", 0) > 0


def choose_store(folder: Path) -> TokenStore:
    """The keyring if it works here, else the file in `folder`."""
    fallback = FileTokenStore(folder)
    return KeyringTokenStore(fallback) if keyring_works() else fallback
