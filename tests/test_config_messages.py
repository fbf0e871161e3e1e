"""Config problems a newcomer meets first: each one line naming what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from nextmodel_proxy.cli.main import main


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def test_a_missing_config_names_config_and_nmproxy_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NMPROXY_CONFIG", raising=False)
    code, out = run("check-config")
    assert code == 1 and "--config" in out and "NMPROXY_CONFIG" in out and "providers.yaml" in out
    code, out = run("serve", env={"NMPROXY_CONFIG": str(tmp_path / "nope.yaml")})
    assert code == 1 and "nope.yaml" in out and "NMPROXY_CONFIG" in out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1


def test_yaml_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("providers:\n  demo: {kind: demo}\nmodels:\n  a: {provider: demo\n  b: 1\n")
    code, out = run("check-config", "--config", str(path))
    assert code == 1 and str(path) in out and "line 4" in out
    assert "<unicode string>" not in out and len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n"])
def test_an_empty_config_is_an_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    code, out = run("check-config", "--config", str(path))
    assert code == 1 and "is empty" in out and "models" in out
