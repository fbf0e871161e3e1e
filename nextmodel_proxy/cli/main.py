"""The `nmproxy` command: thin click groups, one module per noun."""

from __future__ import annotations

import click

from nextmodel_proxy import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nmproxy")
def main() -> None:
    """NextModel Proxy: an OpenAI-compatible LLM gateway with priced receipts and a verified exact cache."""


# Command modules register themselves here (one line each).
from nextmodel_proxy.cli.bench import bench_group  # noqa: E402
from nextmodel_proxy.cli.budgets import budgets_group  # noqa: E402
from nextmodel_proxy.cli.cache import cache_group  # noqa: E402
from nextmodel_proxy.cli.compare import compare_command  # noqa: E402
from nextmodel_proxy.cli.keys import keys_group  # noqa: E402
from nextmodel_proxy.cli.models import models_command  # noqa: E402
from nextmodel_proxy.cli.prices import prices_group  # noqa: E402
from nextmodel_proxy.cli.receipts import receipts  # noqa: E402
from nextmodel_proxy.cli.reconcile import reconcile_command  # noqa: E402
from nextmodel_proxy.cli.serve import check_config, serve  # noqa: E402
from nextmodel_proxy.cli.spend import spend_cmd  # noqa: E402

main.add_command(serve)
main.add_command(check_config)
main.add_command(models_command)
main.add_command(compare_command)
main.add_command(cache_group)
main.add_command(keys_group)
main.add_command(budgets_group)
main.add_command(receipts)
main.add_command(spend_cmd)
main.add_command(bench_group)
main.add_command(prices_group)
main.add_command(reconcile_command)
