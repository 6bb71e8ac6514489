"""`esl-callback serve` stops cleanly on SIGTERM whatever is in flight (#23 item 4).

The real command in a subprocess, its SMS gateway's reply_url an HTTPS endpoint in this test
(a self-signed certificate made with `openssl`, trusted through SSL_CERT_FILE) that takes the
reply and then answers slowly: its status line and one endless header, a TLS record per byte,
so that the reply is being read (TLS in the controller) when SIGTERM arrives.

Before the fix the reply was POSTed from a native thread of gevent's pool: the interpreter
finalized under it and the process died of SIGSEGV (exit -11, 139 in a shell) in about half
the runs.
Replies are now greenlets that the stop abandons; and whatever else a gevent command leaves in
its thread pool is waited for, or left behind with `os._exit` (esl_callback.native_threads):
the last tests run the launcher on a command that leaves such work.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from ports import free_port

from esl_callback.db import Database
from esl_callback.models import SmsMessage

TOKEN = "gateway-token-0123456789"
SMS_NUMBER = "18005550300"
RUNS = 5  # the unchanged code crashed in about one run of two
REPLIES = 3  # SMS whose replies are in flight at once, in every run
STOP_SECONDS = 15.0  # serve's own bounds (web 1 s, replies 1 s, threads 5 s) and its start


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
    command += ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
    )
    return cert, key


class SlowGateway:
    """An HTTPS reply endpoint that reads the request, then answers a byte at a time."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests = threading.Semaphore(0)
        self.closed = threading.Event()
        threading.Thread(target=self.accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/send"

    def accept(self) -> None:
        while not self.closed.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.answer_slowly, args=(connection,), daemon=True).start()

    def answer_slowly(self, connection: socket.socket) -> None:
        try:
            with self.context.wrap_socket(connection, server_side=True) as tls:
                received = b""
                while b"\r\n\r\n" not in received:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    received += chunk
                self.requests.release()
                tls.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not self.closed.is_set():
                    tls.sendall(b"a")
                    time.sleep(0.0005)
        except OSError:
            return  # the controller hung up: what a stopping controller may do

    def wait_requests(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for _ in range(count):
            assert self.requests.acquire(timeout=max(deadline - time.monotonic(), 0)), (
                "the replies were not POSTed"
            )

    def close(self) -> None:
        self.closed.set()
        self.listener.close()


@pytest.fixture
def slow_gateway(certificate: tuple[Path, Path]) -> Iterator[SlowGateway]:
    gateway = SlowGateway(*certificate)
    yield gateway
    gateway.close()


def write_config(directory: Path, database_url: str, web_port: int, reply_url: str) -> Path:
    config = directory / "serve.yaml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "database": {"url": database_url},
                "web": {"port": web_port, "secret": "s" * 40, "secure_cookies": False},
                "metrics": {"enabled": False},
                "outbound": {"port": free_port()},
                # Nothing listens there: serve keeps trying, which stop ends.
                "freeswitch": {
                    "nodes": [{"name": "sim", "port": free_port(), "password": "test-secret"}]
                },
                "sms": {
                    "enabled": True,
                    "numbers": [SMS_NUMBER],
                    "reply_unknown_sender": True,  # every SMS here gets a reply
                    "gateways": [{"name": "phone1", "token": TOKEN, "reply_url": reply_url}],
                },
            }
        )
    )
    return config


def start_serve(config: Path, log: Path, cert: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESL_CALLBACK_")}
    env.update(SSL_CERT_FILE=str(cert), PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "esl_callback", "serve", "-c", str(config)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )


def wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, f"serve exited: {log.read_text()}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"serve does not listen: {log.read_text()}"
            time.sleep(0.1)


def send_sms(web_port: int, sender: str) -> None:
    body = {"from": sender, "to": SMS_NUMBER, "text": "BAL"}
    request = urllib.request.Request(
        f"http://127.0.0.1:{web_port}/api/v1/sms/inbound",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Gateway-Token": TOKEN},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=20) as response:
        assert json.loads(response.read())["reply"]


def test_sigterm_while_https_replies_are_in_flight_exits_cleanly(
    tmp_path: Path, slow_gateway: SlowGateway, certificate: tuple[Path, Path]
) -> None:
    outcomes = []
    for run in range(RUNS):
        directory = tmp_path / f"run{run}"
        directory.mkdir()
        database_url = f"sqlite:///{directory / 'serve.db'}"
        Database(database_url).init()
        web_port = free_port()
        config = write_config(directory, database_url, web_port, slow_gateway.url)
        log = directory / "serve.log"
        process = start_serve(config, log, certificate[0])
        try:
            wait_listening(process, web_port, log)
            for n in range(REPLIES):
                send_sms(web_port, f"1555999000{n}")
            slow_gateway.wait_requests(REPLIES, timeout=20)
            time.sleep(0.2)  # the answers trickle in
            process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            code = process.wait(STOP_SECONDS)
            took = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        output = log.read_text()
        outcomes.append((code, "Fatal Python error" in output, took))
        database = Database(database_url)
        database.peewee.connect(reuse_if_open=True)
        replies = [
            message.action for message in SmsMessage.select().where(SmsMessage.direction == "out")
        ]
        database.close()
        assert (code, "Fatal Python error" in output) == (0, False), (outcomes, output[-3000:])
        # Abandoned when serve stopped, and stored as such: the gateway never answered.
        assert replies == ["not_sent: service stopped"] * REPLIES, output[-3000:]
        assert took < 5, outcomes  # a second for the replies, no wait on the thread pool


# -- the launcher: work left in gevent's thread pool -------------------------------------------

LAUNCH = """
import sys, time, urllib.request
from pathlib import Path
from gevent import monkey
monkey.patch_all()
import gevent
import esl_callback.cli
from esl_callback import launcher, native_threads

task, grace, marker, url = sys.argv[1], float(sys.argv[2]), Path(sys.argv[3]), sys.argv[-1]
native_threads.GRACE_SECONDS = grace

def finish_late():
    time.sleep(0.5)  # gevent's sleep, in the worker's own hub
    marker.write_text("finished")

def read_slow_reply():  # what send_reply did before #23: urllib over TLS in a worker thread
    request = urllib.request.Request(url, data=b"{}", method="POST")
    urllib.request.urlopen(request, timeout=30)

def command():
    for _ in range(3):
        gevent.get_hub().threadpool.spawn(finish_late if task == "late" else read_slow_reply)
    gevent.sleep(0.3)
    raise SystemExit(3)

class Slow:  # finalizing these takes the interpreter a while (as a big program's modules do)
    def __del__(self):
        sum(range(2000))

leftovers = [Slow() for _ in range(20000)]
esl_callback.cli.main = command
sys.argv = ["esl-callback", "serve"]
launcher.main()
"""


def launch(tmp_path: Path, task: str, grace: float, *extra: str) -> tuple[int, str, float]:
    script = tmp_path / "launch.py"
    script.write_text(LAUNCH)
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    if extra:
        env["SSL_CERT_FILE"] = extra[1]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script), task, str(grace), str(tmp_path / "marker"), *extra[:1]],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return done.returncode, done.stderr, time.monotonic() - started


def test_a_gevent_command_waits_for_its_thread_pool_before_the_interpreter_exits(
    tmp_path: Path,
) -> None:
    code, stderr, _ = launch(tmp_path, "late", 5)

    assert code == 3, stderr
    assert (tmp_path / "marker").read_text() == "finished"  # was not: the process left it


def test_work_that_outlasts_the_grace_is_left_behind_without_a_crash(
    tmp_path: Path, slow_gateway: SlowGateway, certificate: tuple[Path, Path]
) -> None:
    outcomes = [
        launch(tmp_path, "tls", 0.5, slow_gateway.url, str(certificate[0])) for _ in range(RUNS)
    ]

    for code, stderr, took in outcomes:
        assert (code, "Fatal Python error" in stderr) == (3, False), stderr
        assert "native threads still busy" in stderr
        assert took < 10
