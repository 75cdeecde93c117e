"""The command line: `netspec check|train|eval|predict|bench|schema|expand`. The one place
that prints and exits; every NetspecError becomes one readable line and exit 1."""

from netspec.cli.commands import app, main

__all__ = ["app", "main"]
