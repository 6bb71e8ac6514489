"""Operator mistakes the CLI must answer with `error: ...` and exit 1, never a traceback."""

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from ports import free_port

from esl_callback.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    "command", [("db", "init"), ("db", "version"), ("db", "upgrade"), ("account", "list")]
)
def test_a_file_that_is_not_a_database_is_an_error(tmp_path: Path, command) -> None:
    (tmp_path / "x.db").write_text("hi\n")
    result = run(*command, "--database", f"sqlite:///{tmp_path / 'x.db'}")
    assert (result.exit_code, result.exception.__class__) == (1, SystemExit)
    assert (
        "error: database sqlite:///" in result.output and "file is not a database" in result.output
    )


def test_a_read_only_database_is_an_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ro.db'}"
    assert run("db", "init", "--database", url).exit_code == 0
    if subprocess.run(["chattr", "+i", str(tmp_path / "ro.db")], check=False).returncode:
        pytest.skip("cannot make the file immutable here")
    try:
        result = run("account", "add", "alice", "--database", url)
    finally:
        subprocess.run(["chattr", "-i", str(tmp_path / "ro.db")], check=False)
    assert (result.exit_code, result.exception.__class__) == (1, SystemExit)
    assert "readonly database" in result.output and "writable" in result.output


@pytest.mark.parametrize("limit", ["99999999999999999999", "2147483648", "100001", "0"])
def test_an_absurd_concurrent_call_limit_is_refused(tmp_path: Path, limit: str) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    run("db", "init", "--database", url)
    run("account", "add", "alice", "--database", url)
    result = run("account", "set", "alice", "--max-calls", limit, "--database", url)
    assert (result.exit_code, result.exception.__class__) == (1, SystemExit)
    assert "error: max concurrent calls must be 1 to 100000" in result.output
    assert run("account", "set", "alice", "--max-calls", "100000", "--database", url).exit_code == 0


@pytest.fixture
def fake_server() -> Iterator:
    """A TCP server that answers every connection with the given bytes."""
    servers = []

    def start(reply: bytes) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        servers.append(listener)

        def answer() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(4096)
                    conn.sendall(reply)

        threading.Thread(target=answer, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}/metrics"

    yield start
    for listener in servers:
        listener.close()


def test_status_refuses_a_url_that_is_not_http() -> None:
    result = run("status", "--url", "notaurl")
    assert (result.exit_code, result.exception.__class__) == (1, SystemExit)
    assert "error: --url 'notaurl': give serve's metrics address" in result.output


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html><p>login</p></html>", "did not"),
        (b"Content-Type: auth/request\n\n", "cannot read"),
    ],
    ids=["web portal", "ESL port"],
)
def test_status_pointed_at_something_else_says_so(fake_server, reply: bytes, message: str) -> None:
    result = run("status", "--url", fake_server(reply), "--interval", "0.1")
    assert (result.exit_code, result.exception.__class__) == (1, SystemExit)
    assert "error: " in result.output and message in result.output


@pytest.mark.parametrize("taken", ["outbound", "web", "metrics"])
def test_serve_refuses_to_start_when_a_port_it_listens_on_is_taken(
    tmp_path: Path, taken: str
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert run("db", "init", "--database", url).exit_code == 0
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        ports = {name: free_port() for name in ("outbound", "web", "metrics")}
        ports[taken] = occupant.getsockname()[1]
        (tmp_path / "serve.yaml").write_text(
            f"database: {{url: '{url}'}}\n"
            f"freeswitch: {{nodes: [{{name: fs, port: {free_port()}, password: secret}}]}}\n"
            f"outbound: {{port: {ports['outbound']}}}\n"
            f"web: {{port: {ports['web']}, secret: '{'s' * 32}'}}\n"
            f"metrics: {{port: {ports['metrics']}}}\n"
        )
        serve = subprocess.run(
            [sys.executable, "-m", "esl_callback", "serve", "-c", str(tmp_path / "serve.yaml")],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert serve.returncode == 1
    assert f"error: cannot listen on the {taken} port 127.0.0.1:{ports[taken]}" in serve.stderr
    assert "Traceback" not in serve.stderr


def test_status_exits_2_when_a_freeswitch_node_is_down(fake_server) -> None:
    down = (
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\r\n"
        b'esl_callback_node_connected{node="fs1"} 1.0\n'
        b'esl_callback_node_connected{node="fs2"} 0.0\n'
    )
    result = run("status", "--url", fake_server(down), "--interval", "0.1")
    assert result.exit_code == 2
    assert "fs1 connected" in result.output and "fs2 DOWN" in result.output
