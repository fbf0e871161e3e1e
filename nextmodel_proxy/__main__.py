"""`python -m nextmodel_proxy` runs the CLI."""

from nextmodel_proxy.cli.main import main

main()
