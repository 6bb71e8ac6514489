"""Logging: plain and JSON lines carrying call UUIDs and request ids, files, greenlets."""

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

from esl_callback.config import ConfigError, LoggingSettings
from esl_callback.logs import HANDLER_NAME, call_logger, setup_logging

LOG = logging.getLogger("esl_callback.test")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """Each test installs its own handler; put the root logger back as pytest left it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def capture(log_format: str = "plain", level: str = "DEBUG") -> io.StringIO:
    stream = io.StringIO()
    setup_logging(LoggingSettings(format=log_format, level=level), stream=stream)
    return stream


def test_plain_line_carries_call_uuid_and_request_id() -> None:
    stream = capture()
    call_logger(LOG, call_uuid="db8a2e82", request_id=42).info("leg A answered")
    line = stream.getvalue()
    assert line.endswith(
        " INFO esl_callback.test [call_uuid=db8a2e82 request_id=42]: leg A answered\n"
    )


def test_plain_line_without_context_has_no_brackets() -> None:
    stream = capture()
    LOG.warning("switch %s unreachable", "fs1")
    assert stream.getvalue().endswith(" WARNING esl_callback.test: switch fs1 unreachable\n")


def test_json_line_is_one_object_with_context_and_exception() -> None:
    stream = capture("json")
    log = call_logger(LOG, call_uuid="u-1", request_id=7)
    try:
        raise RuntimeError("socket closed")
    except RuntimeError:
        log.exception("bridge failed for %s", "u-2")
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "esl_callback.test"
    assert entry["message"] == "bridge failed for u-2"
    assert (entry["call_uuid"], entry["request_id"]) == ("u-1", 7)
    assert "RuntimeError: socket closed" in entry["exception"]
    assert entry["time"].endswith("+00:00")


def test_caller_controlled_line_breaks_cannot_forge_plain_lines() -> None:
    stream = capture()
    forged = "Bob\n2025-01-01 00:00:00,000 INFO esl_callback: account 1 credited"
    call_logger(LOG, call_uuid="a\nb").info("caller name %s", forged)
    assert len(stream.getvalue().splitlines()) == 1
    assert "[call_uuid=a\\nb]" in stream.getvalue()


def test_bind_adds_context_and_a_call_extra_wins() -> None:
    stream = capture("json")
    log = call_logger("esl_callback.test", call_uuid="u-1").bind(request_id=9, leg="b")
    log.info("originate", extra={"leg": "a", "node": "fs1"})
    entry = json.loads(stream.getvalue())
    assert {k: entry[k] for k in ("call_uuid", "request_id", "leg", "node")} == {
        "call_uuid": "u-1",
        "request_id": 9,
        "leg": "a",
        "node": "fs1",
    }


def test_absent_context_values_are_left_out() -> None:
    stream = capture()
    call_logger(LOG, call_uuid=None, request_id=5).info("queued")
    assert "[request_id=5]: queued" in stream.getvalue()


def test_context_cannot_overwrite_record_attributes() -> None:
    with pytest.raises(ValueError, match="msg"):
        call_logger(LOG, msg="x")


def test_setting_up_twice_keeps_one_handler() -> None:
    capture()
    stream = capture("json")
    ours = [h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME]
    assert len(ours) == 1
    LOG.info("once")
    assert len(stream.getvalue().splitlines()) == 1


def test_level_filters_records() -> None:
    stream = capture(level="WARNING")
    LOG.info("quiet")
    LOG.warning("loud")
    assert "quiet" not in stream.getvalue()
    assert "loud" in stream.getvalue()


def test_log_file_is_reopened_after_logrotate_moves_it(tmp_path: Path) -> None:
    path = tmp_path / "esl-callback.log"
    setup_logging(LoggingSettings(file=str(path)))
    LOG.info("before rotation")
    os.rename(path, tmp_path / "esl-callback.log.1")
    LOG.info("after rotation")
    assert "before rotation" in (tmp_path / "esl-callback.log.1").read_text()
    assert "after rotation" in path.read_text()
    assert "before rotation" not in path.read_text()


def test_unopenable_log_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "x.log"
    with pytest.raises(ConfigError) as caught:
        setup_logging(LoggingSettings(file=str(missing)))
    assert caught.value.messages == [
        f"logging.file: cannot open {missing}: No such file or directory"
    ]


def test_greenlets_keep_their_own_call_context() -> None:
    stream = capture("json")

    def call(uuid: str) -> None:
        log = call_logger(LOG, call_uuid=uuid)
        for step in range(3):
            log.info("step %d", step)
            gevent.sleep(0)  # let the other call run in between

    gevent.joinall([gevent.spawn(call, "A"), gevent.spawn(call, "B")], raise_error=True)
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["call_uuid"] for e in entries] == ["A", "B", "A", "B", "A", "B"]
