"""The package's version, in a module of its own below every stage: checkpoints record it
and the CLI prints it, and neither may import the package root (the public API over all)."""

__version__ = "0.1.0"
