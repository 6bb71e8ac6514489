"""Bad clients never crash the simulator or disturb the other connections."""

from __future__ import annotations

import socket as pysocket
from collections.abc import Callable

import gevent
import gevent.socket
import pytest
from sim_client import EslClient, channel

from esl_callback.simulator import Simulator


def raw_connection(sim: Simulator) -> gevent.socket.socket:
    sock = gevent.socket.create_connection((sim.host, sim.port), timeout=5)
    assert sock.recv(100) == b"Content-Type: auth/request\n\n"
    return sock


def read_until_closed(sock: gevent.socket.socket, timeout: float = 5.0) -> bytes:
    data = b""
    with gevent.Timeout(timeout, AssertionError(f"still open; got {data!r}")):
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    return data


@pytest.fixture
def watcher(sim: Simulator, client: Callable[..., EslClient]) -> EslClient:
    """A healthy connection with a call and an event subscription, checked after each abuse."""
    conn = client()
    conn.command("event plain CHANNEL_CREATE CHANNEL_HANGUP_COMPLETE")
    return conn


def still_healthy(sim: Simulator, watcher: EslClient, client: Callable[..., EslClient]) -> None:
    assert watcher.api("global_getvar hold_music") == "local_stream://moh"
    uuid = sim.place_call("15550009999", "15550001001", "phones")
    watcher.event("CHANNEL_CREATE", channel(uuid))
    assert sim.api(f"uuid_kill {uuid}") == "+OK\n"
    watcher.event("CHANNEL_HANGUP_COMPLETE", channel(uuid))
    fresh = client()
    assert fresh.api("uptime").strip().isdigit()


@pytest.mark.parametrize(
    "junk",
    [
        b"\x00\xff\xfe garbage \x01\x02\n\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\n" * 10000,
        b"auth\n\n",
        b"auth ClueCon extra words\n\n",
    ],
)
def test_garbage_before_auth_is_refused(sim, watcher, client, junk: bytes) -> None:
    sock = raw_connection(sim)
    sock.sendall(junk)
    gevent.sleep(0.05)
    sock.close()
    still_healthy(sim, watcher, client)


def test_unknown_commands_before_auth_get_the_real_reply(sim) -> None:
    sock = raw_connection(sim)
    sock.sendall(b"api status\n\n")
    assert sock.recv(1000) == (
        b"Content-Type: command/reply\nReply-Text: -ERR command not found\n\n"
    )
    sock.close()


def test_one_megabyte_header_line_closes_only_that_connection(sim, watcher, client) -> None:
    sock = raw_connection(sim)
    try:
        for _ in range(64):
            sock.sendall(b"X" * 16384)
        sock.sendall(b"\n\n")
    except OSError:
        pass  # the simulator closed while we were still sending
    else:
        read_until_closed(sock)
    sock.close()
    still_healthy(sim, watcher, client)


def test_one_megabyte_header_line_after_auth(sim, watcher, client) -> None:
    conn = client()
    conn.send(b"api status\nX-Big: " + b"a" * (1024 * 1024) + b"\n\n")
    assert conn.closed.wait(5)
    still_healthy(sim, watcher, client)


def test_missing_blank_line_just_waits(sim, watcher, client) -> None:
    conn = client()
    conn.send("api global_getvar hold_music\n")
    gevent.sleep(0.1)
    assert conn.replies.empty()
    still_healthy(sim, watcher, client)
    conn.send("\n")
    assert conn.reply().text == "local_stream://moh"


def test_lying_content_length(sim, watcher, client) -> None:
    # longer than what follows, then the client goes away
    conn = client()
    conn.send(b"sendevent CUSTOM\nEvent-Subclass: x::y\nContent-Length: 1000\n\nshort")
    gevent.sleep(0.05)
    conn.close()
    # shorter than the body: the rest is read as the next command, like FreeSWITCH does
    conn = client()
    conn.send(b"sendevent CUSTOM\nContent-Length: 2\n\nab\nnonsense\n\n")
    assert conn.reply().get("Reply-Text", "").startswith("+OK")
    assert conn.reply().get("Reply-Text") == "-ERR command not found"
    # negative and non-numeric lengths close the connection
    for bad in (b"-5", b"12abc", b"99999999999"):
        conn = client()
        conn.send(b"sendevent CUSTOM\nContent-Length: " + bad + b"\n\n")
        assert conn.closed.wait(5)
    still_healthy(sim, watcher, client)


def test_vanishing_mid_frame(sim, watcher, client) -> None:
    for partial in (
        b"api sta",
        b"api status\nContent-Le",
        b"sendevent CUSTOM\nContent-Length: 9\n\nab",
    ):
        conn = client()
        conn.send(partial)
        gevent.sleep(0.01)
        conn.sock.setsockopt(
            pysocket.SOL_SOCKET, pysocket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        conn.close()  # RST
    still_healthy(sim, watcher, client)


def test_client_that_never_reads_is_dropped_without_harm(make_sim) -> None:
    """A listener that falls event_loss_limit events behind a full queue is dropped (FreeSWITCH:
    a queue of 100000 and 500 lost events); the others go on."""
    sim = make_sim(event_queue_limit=50, event_loss_limit=20, sessions_per_second=10000)
    lazy = gevent.socket.socket()
    lazy.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_RCVBUF, 4096)
    lazy.connect((sim.host, sim.port))
    lazy.sendall(b"auth ClueCon\n\nevent plain ALL\n\n")  # and never read again
    good = EslClient(sim.host, sim.port)
    good.command("event plain CHANNEL_HANGUP_COMPLETE")
    assert len(sim.connections) == 2
    for _ in range(300):
        uuid = sim.place_call("15550009999", "15550002004", "phones")  # busy: short calls
        good.event("CHANNEL_HANGUP_COMPLETE", channel(uuid))
        if len(sim.connections) == 1:
            break
    assert len(sim.connections) == 1
    with pytest.raises(OSError), gevent.Timeout(5):  # closed without a notice
        while lazy.recv(65536):
            pass
        raise OSError("EOF")
    assert good.api("global_getvar hold_music") == "local_stream://moh"
    lazy.close()
    good.close()


def test_500_connections_opened_and_dropped(sim, watcher, client) -> None:
    socks = []
    for i in range(500):
        sock = gevent.socket.create_connection((sim.host, sim.port), timeout=5)
        if i % 3 == 0:
            sock.sendall(b"auth ClueCon\n\n")
        elif i % 3 == 1:
            sock.sendall(b"auth Clue")
        socks.append(sock)
    gevent.sleep(0.05)
    for sock in socks:
        sock.close()
    still_healthy(sim, watcher, client)
    with gevent.Timeout(5):
        while len(sim.connections) > 2:  # the watcher and the fresh one
            gevent.sleep(0.02)
