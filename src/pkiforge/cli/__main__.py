"""`python -m pkiforge.cli`."""

from pkiforge.cli.main import run

run()
