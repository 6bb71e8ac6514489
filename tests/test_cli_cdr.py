"""`esl-callback cdr import DIR`: the CDRs mod_json_cdr kept in its err-log-dir, each stored
once (billing from them: tests/billing/test_switch_cdr_billing.py, tests/e2e/test_switch_cdr.py)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from esl_callback.cli import main
from esl_callback.db import Database
from esl_callback.models import SwitchCdr

UUID = "96a69f5d-ea35-461e-b30d-5c280b1a314d"


def cdr_file(folder: Path, uuid: str, billsec: int = 8) -> Path:
    """A file as backup_cdr writes it: the document and one LF."""
    variables = {"uuid": uuid, "hangup_cause": "NORMAL_CLEARING", "billsec": str(billsec)}
    path = folder / f"{uuid}.cdr.json"
    path.write_text(json.dumps({"variables": variables}, separators=(",", ":")) + "\n")
    return path


def test_import_stores_each_cdr_once_and_keeps_the_files_it_cannot_read(
    db: Database, tmp_path: Path
) -> None:
    good = cdr_file(tmp_path, UUID)
    bad = tmp_path / "0ff173a0-8402-43c0-a245-a8747619a1e9.cdr.json"
    bad.write_text("{not json\n")
    (tmp_path / "notes.txt").write_text("not a CDR file: left alone")
    run = ["cdr", "import", str(tmp_path), "--database", db.url]

    first = CliRunner().invoke(main, run)
    second = CliRunner().invoke(main, [*run, "--remove"])

    assert first.exit_code == second.exit_code == 1
    assert f"error: {bad}: the CDR is not valid JSON" in second.output
    assert "1 CDRs imported (1 unknown)" in first.output
    assert SwitchCdr.get(SwitchCdr.uuid == UUID).deliveries == 2
    assert (good.exists(), bad.exists()) == (False, True)


def test_import_of_a_folder_that_is_not_there_says_so(db: Database, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["cdr", "import", str(tmp_path / "json_cdr"), "--database", db.url]
    )
    assert result.exit_code == 1
    assert "is not a directory: give mod_json_cdr's err-log-dir" in result.output
