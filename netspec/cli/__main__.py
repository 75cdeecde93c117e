"""`python -m netspec.cli ...`, as the `netspec` console script."""

from netspec.cli.commands import main

main()
