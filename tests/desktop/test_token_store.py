"""Where the API token is kept: the OS keyring when one works (here a keyring backend of the
test's own, set through keyring's API), else a file only the user can read; a keyring that
fails falls back to the file."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyring.errors import KeyringLocked

from esl_callback.desktop.token_store import (
    TOKEN_FILE,
    FileTokenStore,
    KeyringTokenStore,
    choose_store,
)

SERVER = "https://portal.example.com"


class MemoryKeyring(KeyringBackend):
    """A keyring that works (in memory) or is locked."""

    priority = 1.0  # type: ignore[assignment]

    def __init__(self, locked: bool = False) -> None:
        super().__init__()
        self.locked = locked
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        if self.locked:
            raise KeyringLocked("the keyring is locked")
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        if self.locked:
            raise KeyringLocked("the keyring is locked")
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.secrets.pop((service, username), None)


@pytest.fixture
def restore_keyring() -> Iterator[None]:
    before = keyring.get_keyring()
    yield
    keyring.set_keyring(before)


def test_without_a_keyring_the_token_is_kept_in_a_file_only_the_user_can_read(
    tmp_path: Path, restore_keyring: None
) -> None:
    keyring.set_keyring(fail.Keyring())
    folder = tmp_path / "settings"
    store = choose_store(folder)
    assert isinstance(store, FileTokenStore)
    store.save(SERVER, "alice", "secret-token")
    assert stat.S_IMODE((folder / TOKEN_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert FileTokenStore(folder).load(SERVER, "alice") == "secret-token"
    assert store.load(SERVER, "bob") is None
    store.forget(SERVER, "alice")
    assert store.load(SERVER, "alice") is None


def test_a_working_keyring_keeps_the_token_and_no_file_does(
    tmp_path: Path, restore_keyring: None
) -> None:
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    store = choose_store(tmp_path)
    assert isinstance(store, KeyringTokenStore)
    store.save(SERVER, "alice", "secret-token")
    assert memory.secrets == {("esl-callback-desktop", f"alice@{SERVER}"): "secret-token"}
    assert not (tmp_path / TOKEN_FILE).exists()
    assert store.load(SERVER, "alice") == "secret-token"
    store.forget(SERVER, "alice")
    assert memory.secrets == {} and store.load(SERVER, "alice") is None


def test_a_keyring_that_fails_falls_back_to_the_file(tmp_path: Path, restore_keyring: None) -> None:
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    store = choose_store(tmp_path)
    memory.locked = True
    store.save(SERVER, "alice", "secret-token")
    assert FileTokenStore(tmp_path).load(SERVER, "alice") == "secret-token"
    assert store.load(SERVER, "alice") == "secret-token"
    store.forget(SERVER, "alice")
    assert store.load(SERVER, "alice") is None
