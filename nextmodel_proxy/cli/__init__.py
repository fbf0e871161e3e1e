"""The `nmproxy` command: main (the click group) plus one module per command group, all thin over the domains."""

from nextmodel_proxy.cli.main import main

__all__ = ["main"]
