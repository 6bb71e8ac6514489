"""What a newcomer runs first: `make demo` installs only what the demo needs, `make test` the
test-only Debian packages without their recommends and with short output, and the README names
every command and only files that `esl-callback freeswitch files` writes."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import click
import pytest
import yaml

from esl_callback import fsfiles
from esl_callback.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SYSTEM_PACKAGES = ROOT / "scripts" / "system-packages"

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def dry_run(target: str, tmp_path: Path) -> str:
    """What `make TARGET` would run on a machine where nothing is installed yet (a venv that
    does not exist: every install step is listed)."""
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-n",
            target,
            f"VENV={tmp_path / 'venv'}",
            f"AXE={tmp_path / 'node_modules' / 'axe-core' / 'axe.min.js'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@needs_make
def test_make_demo_installs_no_test_only_package(tmp_path: Path) -> None:
    steps = dry_run("demo", tmp_path)
    assert re.search(r"/pip install .* -e \.$", steps, re.MULTILINE), steps
    for test_only in ("chromium", "postgresql", "[test]", "playwright", "npm"):
        assert test_only not in steps, steps
    assert steps.rstrip().endswith("esl-callback demo")


@needs_make
def test_make_test_installs_the_test_packages_through_the_quiet_installer(tmp_path: Path) -> None:
    steps = dry_run("test", tmp_path)
    assert 'scripts/system-packages "for the tests" postgresql chromium' in steps
    assert "-e '.[test,desktop,test-desktop]'" in steps  # the desktop client's tests need Qt
    pip_lines = [line for line in steps.splitlines() if "/pip " in line]
    assert len(pip_lines) == 3 and all(" -qq " in line for line in pip_lines), pip_lines


@needs_make
def test_make_test_installs_the_pinned_axe_core_and_node_only_where_npm_is_missing(
    tmp_path: Path,
) -> None:
    steps = dry_run("test", tmp_path)
    node = 'command -v npm >/dev/null || scripts/system-packages "for the tests" nodejs npm'
    assert node in steps
    assert "npm ci --no-audit --no-fund --loglevel=error" in steps  # the lock file, exactly
    wanted = json.loads((ROOT / "package.json").read_text())["devDependencies"]["axe-core"]
    locked = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", wanted)  # pinned, not a range
    assert locked["node_modules/axe-core"]["version"] == wanted


def test_ci_runs_exactly_make_test() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert lines[-1] == "exec make test"


# -- scripts/system-packages, with dpkg-query, id and apt-get stood in for ------------------------


def fake_commands(tmp_path: Path, *, installed: list[str], uid: int, apt_fails: bool) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "apt-calls"
    scripts = {
        # dpkg-query --show --showformat=... PACKAGE
        "dpkg-query": f"""for package; do :; done
            case " {" ".join(installed)} " in
            *" $package "*) printf 'install ok installed';;
            *) echo "dpkg-query: no packages found matching $package" >&2; exit 1;;
            esac""",
        "id": f"echo {uid}",
        "apt-get": f"""echo "$*" >> {calls}
            echo 'Selecting previously unselected package libfoo.'
            echo 'Setting up libfoo (1.0) ...'
            {"echo 'E: Unable to locate package chromium' >&2; exit 100" if apt_fails else ""}""",
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "TMPDIR": str(tmp_path),
        "HOME": str(tmp_path),
    }


def run_installer(tmp_path: Path, env: dict) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SYSTEM_PACKAGES), "for the tests", "postgresql", "chromium"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_installer_installs_only_what_is_missing_quietly_without_recommends(
    tmp_path: Path,
) -> None:
    env = fake_commands(tmp_path, installed=["postgresql"], uid=0, apt_fails=False)
    done = run_installer(tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Installing Debian packages (for the tests): chromium"]
    assert done.stderr == ""
    assert (tmp_path / "apt-calls").read_text().splitlines() == [
        "update -qq",
        "install -y -qq --no-install-recommends chromium",
    ]
    assert not list(tmp_path.glob("esl-callback-apt.*")), "the log goes once apt-get succeeded"


def test_the_installer_does_nothing_when_everything_is_installed(tmp_path: Path) -> None:
    env = fake_commands(tmp_path, installed=["postgresql", "chromium"], uid=0, apt_fails=False)
    done = run_installer(tmp_path, env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert not (tmp_path / "apt-calls").exists()


def test_the_installer_shows_apts_output_only_when_it_fails(tmp_path: Path) -> None:
    env = fake_commands(tmp_path, installed=[], uid=0, apt_fails=True)
    done = run_installer(tmp_path, env)
    assert done.returncode == 1
    assert "E: Unable to locate package chromium" in done.stdout
    assert "apt-get failed; its whole output is in" in done.stdout


def test_the_installer_tells_another_user_what_to_run_as_root(tmp_path: Path) -> None:
    env = fake_commands(tmp_path, installed=[], uid=1000, apt_fails=False)
    done = run_installer(tmp_path, env)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "Missing Debian packages (for the tests): postgresql chromium",
        "Run as root: apt-get install -y --no-install-recommends postgresql chromium",
    ]
    assert not (tmp_path / "apt-calls").exists()


def test_the_installer_is_executable() -> None:
    assert os.access(SYSTEM_PACKAGES, os.X_OK)


# -- the README ------------------------------------------------------------------------------


def cli_table() -> str:
    section = README[README.index("## CLI reference") : README.index("### Start a callback")]
    return "\n".join(line for line in section.splitlines() if line.startswith("| `"))


def test_the_cli_table_names_every_command() -> None:
    table = cli_table()
    missing = []
    for name, command in main.commands.items():
        subcommands = command.commands if isinstance(command, click.Group) else {}
        names = [f"{name} {sub}" for sub in subcommands if name != "sim"] or [name]
        missing += [each for each in names if f"`{each}" not in table]
    assert missing == []


def test_the_install_steps_copy_and_list_exactly_the_files_the_command_writes() -> None:
    section = README[
        README.index("## Running against a real FreeSWITCH") : README.index("### Sizing")
    ]
    written = {file.path for file in fsfiles.FILES}
    copied = set(re.findall(r'\$OUT/([\w./-]+)"', section))
    listed = set(re.findall(r"^   \| `([\w./-]+)` \|", section, re.MULTILINE))
    assert copied and copied <= written, copied - written
    assert listed == written


# -- the install steps, followed literally on a stock configuration --------------------------------

STOCK_CONF = os.environ.get("FREESWITCH_CONF")


def install_commands(config: Path, conf: Path) -> str:
    """The shell lines of step 3 of the README's install, as printed, but for the paths of this
    test: $CONF (its first line) is a copy of the stock configuration, FreeSWITCH's group (its
    second) the test's own, /etc/esl-callback/config.yaml the test's configuration."""
    section = README[README.index("3. FreeSWITCH configuration") : README.index("4. Apply it")]
    lines = [line[7:] for line in section.splitlines() if line.startswith("       ")]
    script = "\n".join(lines)
    assert script.startswith("CONF=/usr/local/freeswitch/conf ")
    assert "\nFSGROUP=$(ps -o group= -C freeswitch | head -n 1)" in script
    script = script.replace("CONF=/usr/local/freeswitch/conf ", f"CONF={conf} ", 1)
    script = script.replace(
        "FSGROUP=$(ps -o group= -C freeswitch | head -n 1)", "FSGROUP=$(id -gn)"
    )
    return script.replace("/etc/esl-callback/config.yaml", str(config))


@pytest.mark.skipif(
    not STOCK_CONF,
    reason="set FREESWITCH_CONF to a stock FreeSWITCH 1.10 configuration directory "
    "(/usr/local/freeswitch/conf of a fresh source build, or conf/vanilla of its source)",
)
def test_the_install_steps_work_on_a_stock_configuration(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(str(STOCK_CONF), conf)
    secret = "5b1d0c7e9a8f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d"
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "freeswitch": {
                    "nodes": [{"name": "fs1", "password": secret, "user": fsfiles.DIRECTORY_USER}]
                },
                "outbound": {"port": 8094},
                "sms": {"enabled": True, "numbers": ["+4930100300"]},
            }
        )
    )
    shell = "\n".join(
        [
            "set -euo pipefail",
            # `esl-callback` as installed by step 1 (this checkout's, in the test's interpreter)
            f'esl-callback() {{ "{sys.executable}" -m esl_callback "$@"; }}',
            install_commands(config, conf),
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESL_CALLBACK_")}
    done = subprocess.run(
        ["bash", "-c", shell], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr

    def parse(path: str) -> ET.Element:
        return ET.parse(conf / path).getroot()

    acl = parse("autoload_configs/acl.conf.xml")
    assert [
        n.get("cidr") for n in acl.iterfind("network-lists/list[@name='esl_controller']/node")
    ] == ["127.0.0.1/32"]
    event_socket = {
        p.get("name"): p.get("value")
        for p in parse("autoload_configs/event_socket.conf.xml").iter("param")
    }
    assert event_socket["listen-ip"] == "127.0.0.1"
    assert event_socket["apply-inbound-acl"] == "esl_controller"
    assert len(event_socket["password"]) == 64 and event_socket["password"] != secret
    user = {
        p.get("name"): p.get("value") for p in parse("directory/esl-callback.xml").iter("param")
    }
    assert user["esl-password"] == secret
    dialplan = parse("dialplan/public/00_esl-callback.xml")
    assert {a.get("data") for a in dialplan.iter("action") if a.get("application") == "socket"} == {
        "127.0.0.1:8094 async full"
    }
    # public.xml takes dialplan/public/*.xml in, as freeswitch.xml takes chatplan/*.xml
    assert 'data="public/*.xml"' in (conf / "dialplan/public.xml").read_text()
    assert "mod_sms" in {
        m.get("module") for m in parse("autoload_configs/modules.conf.xml").iter("load")
    }
    limits = [
        (p.get("name"), p.get("value"))
        for p in parse("autoload_configs/switch.conf.xml").iter("param")
        if p.get("name") in ("max-sessions", "sessions-per-second")
    ]
    assert limits == [("max-sessions", "10000"), ("sessions-per-second", "200")]
    internal = parse("sip_profiles/internal.xml")
    assert [p.get("value") for p in internal.iterfind("settings/param[@name='auth-messages']")] == [
        "true"
    ]
    chatplan = parse("chatplan/esl-callback.xml")
    assert [c.get("expression") for c in chatplan.iter("condition")] == [r"^\+?(4930100300)$"]
    for secret_file in ("autoload_configs/event_socket.conf.xml", "directory/esl-callback.xml"):
        assert stat.S_IMODE((conf / secret_file).stat().st_mode) == 0o640, secret_file
