"""The processes a benchmark runs (simulator, controller, plain controller), and what /proc says.

Each runs in its own process group with its output in a log file; `stop` sends SIGTERM (then
SIGKILL) to that group only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port: int, timeout: float, process: Process) -> None:
    """Until something accepts on 127.0.0.1:port; RuntimeError if the process died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(
                f"{process.name} exited ({process.popen.returncode}); see {process.log}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{process.name} does not listen on port {port}; see {process.log}")


@dataclass(frozen=True)
class Usage:
    """CPU seconds used so far and resident memory now, of one process."""

    cpu: float
    rss: int


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def usage(self) -> Usage:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
        rss = int(Path(f"/proc/{self.pid}/statm").read_text().split()[1]) * PAGE
        return Usage(cpu, rss)

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is not None:
            return
        os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(5)


def start(name: str, argv: list[str], log: Path) -> Process:
    with log.open("ab") as out:
        popen = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
    return Process(name, popen, log)


def esl_callback_command() -> list[str]:
    """How to run the `esl-callback` CLI of this checkout."""
    found = Path(sys.executable).with_name("esl-callback")
    if found.exists():
        return [str(found)]
    return [shutil.which("esl-callback") or "esl-callback"]


def simulator_command(config: Path, port: int) -> list[str]:
    """`esl-callback sim -c CONFIG --listen 127.0.0.1:PORT`."""
    return [*esl_callback_command(), "sim", "-c", str(config), "--listen", f"127.0.0.1:{port}"]


class ThrowawayPostgres:
    """scripts/throwaway-postgres: a PostgreSQL cluster for this run, removed afterwards."""

    SCRIPT = ROOT / "scripts" / "throwaway-postgres"

    def __init__(self) -> None:
        started = subprocess.run(
            [str(self.SCRIPT), "start"], capture_output=True, text=True, check=True
        )
        self.directory, self.url = started.stdout.split()

    def stop(self) -> None:
        subprocess.run([str(self.SCRIPT), "stop", self.directory], check=False)
