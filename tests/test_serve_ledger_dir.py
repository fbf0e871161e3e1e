"""`nmproxy serve` refuses a ledger it could not write with one line naming the path and the UID (the container
case: a /data volume owned by someone else). The real UID-10001 case runs in tests/container/smoke.sh."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from nextmodel_proxy.cli.main import main
from nextmodel_proxy.config import Config


def serve(config: Config, db: Path) -> object:
    return CliRunner().invoke(
        main, ["serve", "--config", str(config.source_path), "--db", str(db), "--port", "1"]
    )


def test_a_missing_ledger_directory_is_one_line_naming_it(write_config, tmp_path: Path) -> None:
    config = write_config()
    result = serve(config, tmp_path / "no-such-dir" / "ledger.db")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"Error: the ledger's folder '{tmp_path / 'no-such-dir'}' does not exist: create it, or point --db elsewhere"
    ]
    assert not (tmp_path / "no-such-dir").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere; smoke.sh covers this as UID 10001")
@pytest.mark.parametrize("locked", ["directory", "file"])
def test_an_unwritable_ledger_is_one_line_naming_the_path_and_uid(
    write_config, tmp_path: Path, locked: str
) -> None:
    config = write_config()
    data = tmp_path / "data"
    data.mkdir()
    db = data / "ledger.db"
    if locked == "file":
        db.write_bytes(b"")
        db.chmod(0o444)
    blocked = db if locked == "file" else data
    data.chmod(0o555 if locked == "directory" else 0o755)
    try:
        result = serve(config, db)
    finally:
        data.chmod(0o755)
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert f"'{blocked}' is not writable by UID {os.getuid()}" in lines[0]
    assert f"chown {os.getuid()}:{os.getgid()} {blocked}" in lines[0]
