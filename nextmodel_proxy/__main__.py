"""`python -m nextmodel_proxy` runs the CLI."""

from nextmodel_proxy.cli import main

main()
