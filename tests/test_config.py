"""providers.yaml validation: every problem is reported with its YAML path; the CLI never shows a traceback."""

from __future__ import annotations

from decimal import Decimal

import pytest
from click.testing import CliRunner

from nextmodel_proxy.cli.main import main
from nextmodel_proxy.config import ConfigError, load_yaml_text, parse_config, parse_duration

GOOD = """
providers:
  openai: {kind: openai, base_url: https://api.openai.com/v1, api_key_env: OPENAI_API_KEY}
  demo: {kind: demo}
models:
  gpt-4o:
    provider: openai
    price: {input: 2.50, output: 10, cached_input: 1.25}
  demo-chat: {provider: demo, price: {input: 0.10, output: 0.40}}
"""


def _parse(text: str):
    return parse_config(load_yaml_text(text))


def test_good_config_parses_prices_exactly():
    config = _parse(GOOD)
    assert config.models["gpt-4o"].price.cached_input == Decimal("1.25")
    assert config.models["gpt-4o"].upstream_id == "gpt-4o"
    assert config.models["demo-chat"].price.input == Decimal("0.10")


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (GOOD.replace("input: 2.50", "input: -1"), "models.gpt-4o.price.input"),
        (GOOD.replace("input: 2.50", "input: cheap"), "models.gpt-4o.price.input"),
        (
            GOOD.replace("    price: {input: 2.50", "    pricee: 1\n    price: {input: 2.50"),
            "models.gpt-4o.pricee",
        ),
        (GOOD.replace("provider: demo,", "provider: nowhere,"), "models.demo-chat.provider"),
        (GOOD.replace("kind: demo", "kind: magic"), "providers.demo.kind"),
        (GOOD + "  gpt-4o: {provider: demo}\n", "models.gpt-4o"),
        (
            GOOD.replace("api_key_env: OPENAI_API_KEY", "api_key_env: sk-abc-123"),
            "providers.openai.api_key_env",
        ),
        (GOOD + "server: {port: eighty}\n", "server.port"),
        (GOOD + "extra: 1\n", "extra"),
    ],
)
def test_bad_config_names_the_yaml_path(text, path):
    with pytest.raises(ConfigError) as info:
        _parse(text)
    assert info.value.path == path


def test_duplicate_key_reports_line():
    with pytest.raises(ConfigError, match=r"duplicate key 'gpt-4o' \(line"):
        _parse(GOOD + "  gpt-4o: {provider: demo}\n")


def test_durations_accept_suffixes():
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("90s") == 90
    assert parse_duration(15) == 15
    with pytest.raises(ConfigError):
        parse_duration("soon", "cache.ttl")


def test_check_config_cli_is_clean_on_error(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text(GOOD.replace("input: 2.50", "input: -1"))
    result = CliRunner().invoke(main, ["check-config", "--config", str(bad)])
    assert result.exit_code != 0
    assert "models.gpt-4o.price.input" in result.output
    assert "Traceback" not in result.output
    good = tmp_path / "g.yaml"
    good.write_text(GOOD)
    ok = CliRunner().invoke(main, ["check-config", "--config", str(good)])
    assert ok.exit_code == 0
    assert "2 models" in ok.output
